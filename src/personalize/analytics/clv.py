"""Customer lifetime value.

Two families:

* :func:`simple_clv` — the formula retail teams use: purchase frequency x
  average order value x retention, summed (and optionally discounted) over a
  horizon of periods, with the retention rate estimated from the data.
* The probabilistic model of Fader, Hardie & Lee: BG/NBD
  (:class:`BGNBDModel`, "Counting your customers the easy way", Marketing
  Science 2005) for the number of future purchases and P(alive), and the
  Gamma-Gamma spend model (:class:`GammaGammaModel`, Fader, Hardie & Lee 2005
  spend note) for the value of a purchase; :func:`discounted_clv` combines them.

Both models are fitted by maximum likelihood with scipy (L-BFGS-B on the log
of the parameters, analytic gradients, log-likelihoods written with
``gammaln`` / ``logaddexp`` so they stay finite for large counts).

Calibration summary (:func:`calibration_summary`), the standard definitions:

* purchases are aggregated per customer and calendar day (several orders on
  one day count as one purchase whose value is their sum), as in the papers;
* ``frequency`` x = number of *repeat* purchase days in the calibration period
  (the first purchase is excluded);
* ``recency`` t_x = time from the first to the last purchase day;
* ``T`` = time from the first purchase day to the calibration end day;
* ``monetary_value`` = mean value of the repeat purchase days (0 when x = 0);
* times are measured in days and divided by the time unit's length in days
  (``"D"`` 1, ``"W"`` 7, ``"M"`` 365.25/12, ``"Y"`` 365.25), so a customer
  who first bought on 1997-01-01 has T = 272 / 7 = 38.86 weeks at a
  calibration end of 1997-09-30, as in the BG/NBD paper.
"""

from __future__ import annotations

import math
from typing import Any, TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import digamma, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

from personalize import _sets
from personalize.analytics._frames import as_timestamp, customer_codes, transactions_of
from personalize.analytics.profiles import prepare_arrays
from personalize._params import Params
from personalize.errors import ConvergenceError, DataError, NotFittedError, PersonalizeError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = [
    "TIME_UNITS",
    "ConvergenceError",
    "calibration_summary",
    "summary_from_arrays",
    "BGNBDModel",
    "MBGNBDModel",
    "PURCHASE_MODELS",
    "fit_diagnostics",
    "GammaGammaModel",
    "discounted_clv",
    "simple_clv",
    "simple_clv_period",
    "simple_clv_factor",
    "holdout_comparison",
    "holdout_table",
    "compare_purchase_models",
    "cumulative_repeat_purchases",
]

#: length of one time unit in days
TIME_UNITS: dict[str, float] = {"D": 1.0, "W": 7.0, "M": 365.25 / 12.0, "Y": 365.25}

_LOG_BOUND = 25.0  # parameters live in [e^-25, e^25]; hitting this bound means "did not converge"
#: Gamma-Gamma's q from which customers' spend rates no longer differ (the weight of a customer's own mean in
#: their expected spend, p x / (p x + q - 1), is below 1e-5 for x < 10 repeat purchases and p < 1); a fit that
#: runs past it is represented by this q (and v = q / nu), where its log-likelihood is still exact to ~1e-9
_Q_HOMOGENEOUS = 1e6


def _unit_days(time_unit: str) -> float:
    try:
        return TIME_UNITS[str(time_unit).upper()]
    except KeyError:
        raise PersonalizeError(
            f"time_unit must be one of {', '.join(TIME_UNITS)}, got {time_unit!r}") from None


def _day_numbers(ts: pd.Series) -> np.ndarray:
    """Whole days since the epoch (calendar day of each timestamp)."""
    return ts.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def _ts_day(ts: pd.Timestamp) -> int:
    return int(np.datetime64(ts.normalize().to_datetime64(), "D").astype(np.int64))


# ---------------------------------------------------------------------------
# calibration summary
# ---------------------------------------------------------------------------

def calibration_summary(data: History, *, calibration_end: DateLike | None = None, holdout_end: DateLike | None = None,
                        time_unit: str = "D") -> pd.DataFrame:
    """Per-customer (frequency, recency, T, monetary_value) for BG/NBD and Gamma-Gamma.

    ``data`` is a Dataset or a canonical transactions frame (``customer_id``,
    ``timestamp`` and ``amount`` or ``quantity`` x ``price``).
    ``calibration_end`` is an *inclusive* date (default: the last transaction
    day): transactions on that day belong to the calibration period.
    Customers whose first purchase is after it are not in the summary.
    With ``holdout_end`` (inclusive) the frame also has
    ``frequency_holdout`` (purchase days in (calibration_end, holdout_end]),
    ``monetary_value_holdout`` (mean value per purchase day there, 0 if none)
    and ``duration_holdout`` (the holdout length in time units).

    Returns a frame indexed by ``customer_id`` (sorted) with columns
    ``frequency`` (int64), ``recency``, ``T``, ``monetary_value`` (float64),
    ``first_purchase`` (datetime64) and the holdout columns; ``attrs`` holds
    ``time_unit`` and the ISO dates used.
    """
    _unit_days(time_unit)
    last_day = holdout_end if holdout_end is not None else calibration_end
    if last_day is not None and callable(getattr(data, "until", None)):
        # the Dataset as known at the end of the period (returns made later not yet netted)
        data = data.until(as_timestamp(last_day, "holdout_end").normalize() + pd.Timedelta(days=1))
    tx = transactions_of(data)
    if len(tx) == 0:
        raise DataError("no transactions to summarize", table="transactions")
    day = _day_numbers(tx["timestamp"])
    amount = tx["amount"].to_numpy(np.float64)
    if not np.isfinite(amount).all():
        bad = np.flatnonzero(~np.isfinite(amount))[:5].tolist()
        raise DataError("amount must be finite", table="transactions", column="amount", rows=bad)
    cal_end = (as_timestamp(calibration_end, "calibration_end").normalize()
               if calibration_end is not None else tx["timestamp"].max().normalize())
    cal_day = _ts_day(cal_end)
    hold_day = None
    if holdout_end is not None:
        hold_end = as_timestamp(holdout_end, "holdout_end").normalize()
        hold_day = _ts_day(hold_end)
        if hold_day <= cal_day:
            raise DataError(f"holdout_end {hold_end.date()} must be after calibration_end "
                            f"{cal_end.date()}")

    cidx = None if isinstance(data, pd.DataFrame) else getattr(data, "customer_idx", None)
    if cidx is not None and len(cidx) == len(tx):  # Dataset: reuse its customer codes
        codes, ids = np.asarray(cidx, dtype=np.int64), np.asarray(data.customer_vocab.ids, dtype=object)
    else:
        codes, ids = customer_codes(tx["customer_id"])
    return summary_from_arrays(codes, ids, day, amount, cal_day=cal_day, hold_day=hold_day,
                               time_unit=time_unit)


def summary_from_arrays(codes: np.ndarray, ids: np.ndarray, day: np.ndarray, amount: np.ndarray, *,
                        cal_day: int, hold_day: int | None = None,
                        time_unit: str = "D") -> pd.DataFrame:
    """Core of :func:`calibration_summary` on arrays.

    ``codes`` (int, 0..len(ids)-1), ``day`` (whole days since 1970-01-01) and
    ``amount`` are aligned per transaction or per order; ``cal_day`` and
    ``hold_day`` are inclusive day numbers.
    """
    unit = _unit_days(time_unit)
    codes = np.asarray(codes, dtype=np.int64)
    day = np.asarray(day, dtype=np.int64)
    n_cust = len(ids)
    # aggregate per (customer, day): one purchase per calendar day
    dmin = int(day.min())
    span = int(day.max()) - dmin + 1
    key = codes * span + (day - dmin)
    ukey, inv = np.unique(key, return_inverse=True)
    day_amount = np.bincount(inv.ravel(), weights=amount, minlength=len(ukey))
    k_cust = ukey // span
    k_day = ukey % span + dmin  # ukey sorted -> grouped by customer, days ascending

    in_cal = k_day <= cal_day
    c_cal, d_cal, a_cal = k_cust[in_cal], k_day[in_cal], day_amount[in_cal]
    n_days = np.bincount(c_cal, minlength=n_cust)
    present = n_days > 0
    cal_iso = np.datetime64(int(cal_day), "D").astype(str)
    if not present.any():
        raise DataError(f"no transactions on or before calibration_end {cal_iso}",
                        table="transactions", column="timestamp")
    starts = np.flatnonzero(np.r_[True, c_cal[1:] != c_cal[:-1]])
    ends = np.r_[starts[1:], len(c_cal)] - 1
    grp = c_cal[starts]
    first_day = np.zeros(n_cust, np.int64)
    last_day = np.zeros(n_cust, np.int64)
    first_amt = np.zeros(n_cust)
    first_day[grp] = d_cal[starts]
    last_day[grp] = d_cal[ends]
    first_amt[grp] = a_cal[starts]
    total = np.bincount(c_cal, weights=a_cal, minlength=n_cust)

    freq = (n_days - 1)[present]
    repeat_value = (total - first_amt)[present]
    monetary = np.where(freq > 0, repeat_value / np.maximum(freq, 1), 0.0)
    out = pd.DataFrame(
        {
            "frequency": freq.astype(np.int64),
            "recency": (last_day - first_day)[present] / unit,
            "T": (cal_day - first_day[present]) / unit,
            "monetary_value": monetary,
            "first_purchase": (first_day[present].astype("datetime64[D]")
                               .astype("datetime64[ns]")),
        },
        index=pd.Index(np.asarray(ids, dtype=object)[present], name="customer_id", dtype="str"),
    )
    if hold_day is not None:
        in_hold = (k_day > cal_day) & (k_day <= hold_day)
        hf = np.bincount(k_cust[in_hold], minlength=n_cust)[present]
        hv = np.bincount(k_cust[in_hold], weights=day_amount[in_hold], minlength=n_cust)[present]
        out["frequency_holdout"] = hf.astype(np.int64)
        out["monetary_value_holdout"] = np.where(hf > 0, hv / np.maximum(hf, 1), 0.0)
        out["duration_holdout"] = (hold_day - cal_day) / unit
    out.attrs["time_unit"] = str(time_unit).upper()
    out.attrs["calibration_end"] = cal_iso
    if hold_day is not None:
        out.attrs["holdout_end"] = np.datetime64(int(hold_day), "D").astype(str)
    return out


def _summary_arrays(summary: Any, frequency=None, recency=None, T=None):
    if summary is not None:
        if not isinstance(summary, pd.DataFrame):
            raise DataError("summary must be a DataFrame from calibration_summary()")
        for col in ("frequency", "recency", "T"):
            if col not in summary.columns:
                raise DataError("required column is missing", table="summary", column=col)
        frequency, recency, T = summary["frequency"], summary["recency"], summary["T"]
    x = np.asarray(frequency, dtype=np.float64)
    tx = np.asarray(recency, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    x, tx, T = np.broadcast_arrays(x, tx, T)
    return x, tx, T


def _check_rft(x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> None:
    if x.size == 0:
        raise DataError("empty summary: no customers to fit", table="summary")
    checks = [
        ("frequency", ~np.isfinite(x) | (x < 0) | (x != np.round(x))),
        ("recency", ~np.isfinite(tx) | (tx < 0)),
        ("T", ~np.isfinite(T) | (T < tx - 1e-9)),
        ("recency", (x == 0) & (tx != 0)),
    ]
    for col, bad in checks:
        if bad.any():
            rows = np.flatnonzero(bad.ravel())[:5].tolist()
            msg = {"frequency": "must be a non-negative whole number",
                   "recency": "must be >= 0 (and 0 when frequency is 0)",
                   "T": "must be >= recency"}[col]
            raise DataError(msg, table="summary", column=col, rows=rows)


def _minimize(fun, theta0: np.ndarray, names: tuple[str, ...], model: str, *, max_iter: int,
              tol: float) -> optimize.OptimizeResult:
    """L-BFGS-B on log-parameters; raises ConvergenceError on failure."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(theta0)
    # L-BFGS-B makes tiny BLAS calls: with several BLAS threads on a busy machine each call
    # waits for thread hand-offs (measured 4x slower), so the fit runs single-threaded.
    with threadpool_limits(1, "blas"):
        res = optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-9})
    _, grad = fun(res.x)
    stationary = np.all(np.isfinite(res.x)) and np.isfinite(res.fun) and \
        float(np.max(np.abs(grad))) < 1e-4
    at_bound = np.abs(res.x) >= _LOG_BOUND - 1e-6
    if at_bound.any():
        which = ", ".join(n for n, b in zip(names, at_bound) if b)
        raise ConvergenceError(
            f"{model} fit did not converge: parameter(s) {which} ran to "
            f"{'0' if (res.x[at_bound] < 0).all() else 'infinity'}; the data may not identify "
            "the model (too few repeat purchases, or every customer alive/dead)")
    if not (res.success or stationary):
        exc = ConvergenceError(f"{model} fit did not converge after {res.nit} iterations: {res.message}")
        exc.result = res  # where it stopped, for a caller that knows a limit model to compare with
        raise exc
    return res


# ---------------------------------------------------------------------------
# BG/NBD
# ---------------------------------------------------------------------------

class _MaximumLikelihoodModel(Params):
    """Shared by the probabilistic CLV models: hyperparameters, the fitted-state check and the JSON state.

    ``penalizer`` adds ``penalizer * sum(log(theta)^2)`` to the mean negative
    log-likelihood (0 = plain maximum likelihood); ``max_iter`` and ``tol``
    control L-BFGS-B.
    """

    #: name in the JSON state, and the parameter names in order
    model_name: str = ""
    param_names: tuple[str, ...] = ()

    def __init__(self, *, penalizer: float = 0.0, max_iter: int = 1000, tol: float = 1e-12):
        self.penalizer = penalizer
        self.max_iter = max_iter
        self.tol = tol

    def _best_start(self, fun, starts, label: str):
        """The best L-BFGS-B optimum over several starting points (ConvergenceError if none converges)."""
        best, err = None, None
        for th0 in starts:
            try:
                res = _minimize(fun, th0, self.param_names, label, max_iter=self.max_iter, tol=self.tol)
            except ConvergenceError as exc:
                err = exc
                continue
            if best is None or res.fun < best.fun:
                best = res
        if best is None:
            raise err  # type: ignore[misc]
        return best

    def _p(self) -> tuple[float, ...]:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")
        return tuple(self.params_[k] for k in self.param_names)

    def to_dict(self) -> dict:
        """JSON-able state (parameters, log-likelihood, time unit, hyperparameters)."""
        self._p()
        out = {"model": self.model_name, "params": dict(self.params_), "log_likelihood": self.log_likelihood_,
               "n_customers": self.n_customers_, "hyperparameters": self.get_params()}
        if hasattr(self, "time_unit_"):
            out["time_unit"] = self.time_unit_
        if hasattr(self, "diagnostics_"):
            out["diagnostics"] = self.diagnostics_
        return out

    @classmethod
    def from_dict(cls, state: dict):
        if state.get("model") != cls.model_name:
            raise PersonalizeError(f"not a {cls.__name__} state (model {state.get('model')!r})")
        m = cls(**state.get("hyperparameters", {}))
        m.params_ = {k: float(state["params"][k]) for k in cls.param_names}
        m.log_likelihood_ = float(state.get("log_likelihood", float("nan")))
        m.n_customers_ = int(state.get("n_customers", 0))
        m.n_iter_ = 0
        if "time_unit" in state:
            m.time_unit_ = state["time_unit"]
        if "diagnostics" in state:
            m.diagnostics_ = state["diagnostics"]
        return m


class BGNBDModel(_MaximumLikelihoodModel):
    """BG/NBD model of repeat purchasing and drop-out (Fader, Hardie & Lee 2005).

    Purchase rate lambda ~ Gamma(r, alpha); after each purchase the customer
    drops out with probability p ~ Beta(a, b). Times are in the unit of the
    calibration summary (``alpha`` scales with it). A customer who never
    bought again (frequency 0) cannot have dropped out under this model, so
    their P(alive) is 1 whatever their silence: :class:`MBGNBDModel` lifts that.

    Hyperparameters: ``penalizer``, ``max_iter``, ``tol`` (see :class:`_MaximumLikelihoodModel`).

    Fitted attributes: ``params_`` (dict r, alpha, a, b), ``log_likelihood_``
    (total at the optimum), ``n_customers_``, ``n_iter_``, ``time_unit_`` and
    ``diagnostics_`` (:func:`fit_diagnostics`: ``status`` "ok" or "degenerate"
    and the issues found, e.g. a fit with no drop-out whose P(alive) is 1 for
    everyone).
    """

    model_name = "bgnbd"
    param_names = ("r", "alpha", "a", "b")
    #: 0 for BG/NBD (drop-out after each repeat purchase), 1 for MBG/NBD (also right after the first)
    _shift = 0

    # -- likelihood --------------------------------------------------------
    @classmethod
    def _loglik_terms(cls, params, x, tx, T):
        r, alpha, a, b = params
        s = cls._shift
        A1 = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
        A2 = gammaln(a + b) + gammaln(b + x + s) - gammaln(b) - gammaln(a + b + x + s)
        A3 = -(r + x) * np.log(alpha + T)
        can_die = (x > 0) if s == 0 else np.ones(np.shape(x), dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            A4 = np.where(can_die, math.log(a) - np.log(np.where(can_die, b + x + s - 1, 1.0))
                          - (r + x) * np.log(alpha + tx), -np.inf)
        return A1, A2, A3, A4

    @classmethod
    def _loglik(cls, params, x, tx, T):
        A1, A2, A3, A4 = cls._loglik_terms(params, x, tx, T)
        return A1 + A2 + np.logaddexp(A3, A4)

    def _objective(self, theta, x, tx, T, w, wsum):
        r, alpha, a, b = np.exp(theta)
        s = self._shift
        A1, A2, A3, A4 = self._loglik_terms((r, alpha, a, b), x, tx, T)
        m = np.logaddexp(A3, A4)
        ll = A1 + A2 + m
        w4 = np.exp(A4 - m)  # share of the "dropped out right after the last purchase" term
        w3 = 1.0 - w4
        can_die = (x > 0) if s == 0 else np.ones(np.shape(x), dtype=bool)
        bx1 = np.where(can_die, b + x + s - 1, 1.0)
        d_r = digamma(r + x) - digamma(r) + math.log(alpha) - w3 * np.log(alpha + T) \
            - w4 * np.log(alpha + tx)
        d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + tx)
        dg_ab = digamma(a + b)
        dg_abx = digamma(a + b + x + s)
        d_a = dg_ab - dg_abx + w4 / a
        d_b = dg_ab + digamma(b + x + s) - digamma(b) - dg_abx - np.where(can_die, w4 / bx1, 0.0)
        grad = np.array([
            r * (w * d_r).sum(), alpha * (w * d_alpha).sum(), a * (w * d_a).sum(), b * (w * d_b).sum(),
        ]) / wsum
        f = -(w * ll).sum() / wsum + self.penalizer * float(np.dot(theta, theta))
        g = -grad + 2.0 * self.penalizer * theta
        if not np.isfinite(f):
            return 1e300, np.zeros_like(theta)
        return f, g

    # -- fit ---------------------------------------------------------------
    def fit(self, summary: pd.DataFrame | None = None, *, frequency=None, recency=None, T=None,
            weights=None) -> "BGNBDModel":
        """Fit on a calibration summary (or ``frequency``/``recency``/``T`` arrays).

        ``weights`` (optional) counts how many customers each row stands for.
        Identical rows are merged internally, so the cost grows with the
        number of distinct (x, t_x, T) triples. A fit that converges to a
        degenerate optimum is kept, and ``diagnostics_`` says so.
        """
        if self.penalizer < 0:
            raise PersonalizeError("penalizer must be >= 0")
        x, tx, T = _summary_arrays(summary, frequency, recency, T)
        x, tx, T = x.ravel(), tx.ravel(), T.ravel()
        _check_rft(x, tx, T)
        w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64).ravel()
        if w.shape != x.shape or (w < 0).any() or not np.isfinite(w).all():
            raise DataError("weights must be finite, >= 0 and one per customer", column="weights")
        triples = np.column_stack([x, tx, T])
        uniq, inv = np.unique(triples, axis=0, return_inverse=True)
        uw = np.bincount(inv.ravel(), weights=w, minlength=len(uniq))
        ux, utx, uT = uniq[:, 0], uniq[:, 1], uniq[:, 2]
        wsum = float(uw.sum())
        if wsum <= 0:
            raise DataError("weights sum to zero", column="weights")

        if (ux == 0).all():
            raise ConvergenceError(f"{self._label} fit needs repeat purchases: every customer has "
                                   "frequency 0")
        mean_x = float((uw * ux).sum() / wsum)
        mean_T = float(np.dot(uw, uT) / wsum)
        starts = [
            np.log([1.0, max(mean_T / max(mean_x, 1e-3), 1e-3), 1.0, 1.0]),
            np.log([0.5, max(mean_T, 1e-3), 0.5, 2.0]),
        ]
        best = self._best_start(lambda th: self._objective(th, ux, utx, uT, uw, wsum), starts, self._label)
        r, alpha, a, b = np.exp(best.x)
        self.params_ = {"r": float(r), "alpha": float(alpha), "a": float(a), "b": float(b)}
        self.log_likelihood_ = float((uw * self._loglik((r, alpha, a, b), ux, utx, uT)).sum())
        self.n_customers_ = int(round(wsum))
        self.n_iter_ = int(best.nit)
        self.time_unit_ = (summary.attrs.get("time_unit") if isinstance(summary, pd.DataFrame)
                           else None)
        self.diagnostics_ = fit_diagnostics(self, ux, utx, uT, uw)
        return self

    @property
    def _label(self) -> str:
        return "MBG/NBD" if self._shift else "BG/NBD"

    # -- predictions -------------------------------------------------------
    def log_likelihood(self, summary=None, *, frequency=None, recency=None, T=None) -> np.ndarray:
        """Per-customer log-likelihood under the fitted parameters."""
        x, tx, T = _summary_arrays(summary, frequency, recency, T)
        return self._loglik(self._p(), x, tx, T)

    def _log_odds_dead(self, x, tx, T):
        """log of a/(b+x+s-1) * ((alpha+T)/(alpha+t_x))^(r+x) where the customer can have dropped out, else -inf."""
        r, alpha, a, b = self._p()
        s = self._shift
        can_die = (x > 0) if s == 0 else np.ones(np.shape(x), dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(can_die, math.log(a) - np.log(np.where(can_die, b + x + s - 1, 1.0))
                            + (r + x) * (np.log(alpha + T) - np.log(alpha + tx)), -np.inf)

    def p_alive(self, summary=None, *, frequency=None, recency=None, T=None) -> np.ndarray:
        """P(customer still active at T | x, t_x, T)."""
        x, tx, T = _summary_arrays(summary, frequency, recency, T)
        return np.exp(-np.logaddexp(0.0, self._log_odds_dead(x, tx, T)))

    def expected_purchases(self, t, summary=None, *, frequency=None, recency=None,
                           T=None) -> np.ndarray:
        """E[number of purchases in (T, T + t] | x, t_x, T] (equation 10 of the BG/NBD paper)."""
        r, alpha, a, b = self._p()
        s = self._shift
        x, tx, T = _summary_arrays(summary, frequency, recency, T)
        t = np.asarray(t, np.float64)
        if (t < 0).any():
            raise PersonalizeError("horizon t must be >= 0")
        # alive: p | data ~ Beta(a, b + x + s), lambda | data ~ Gamma(r + x, alpha + T)
        z = t / (alpha + T + t)
        log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
        term = 1.0 - np.exp(log_ratio) * hyp2f1(r + x, b + x + s, a + b + x + s - 1.0, z)
        num = (a + b + x + s - 1.0) / (a - 1.0) * term
        den_log = np.logaddexp(0.0, self._log_odds_dead(x, tx, T))
        return num * np.exp(-den_log)

    def expected_purchases_new(self, t) -> np.ndarray:
        """E[X(t)]: purchases in (0, t] of a new customer (repeat purchases after the first)."""
        r, alpha, a, b = self._p()
        s = self._shift
        t = np.asarray(t, np.float64)
        z = t / (alpha + t)
        # B(a - 1, b + s) / B(a, b): (a + b - 1) / (a - 1) for BG/NBD, b / (a - 1) for MBG/NBD
        const = (a + b - 1.0) / (a - 1.0) if s == 0 else b / (a - 1.0)
        return const * (1.0 - np.exp(r * (np.log(alpha) - np.log(alpha + t))) * hyp2f1(r, b + s, a + b + s - 1.0, z))


class MBGNBDModel(BGNBDModel):
    """MBG/NBD (Batislam, Denizel & Filiztekin 2007): BG/NBD where a customer may also drop out right after
    the first purchase.

    The likelihood is BG/NBD's with ``b + x`` replaced by ``b + x + 1`` and the
    drop-out term present for every customer, so a one-time buyer's P(alive)
    falls with their silence (``1 / (1 + a / b ((alpha + T) / alpha)^r)``)
    instead of staying at 1. Same parameters, fitting and predictions as
    :class:`BGNBDModel`; ``model_name`` "mbgnbd".
    """

    model_name = "mbgnbd"
    _shift = 1


#: the probabilistic purchase models by name (``customer_view(clv_model=...)``, ``personalize clv --model``)
PURCHASE_MODELS: dict[str, type[BGNBDModel]] = {"bgnbd": BGNBDModel, "mbgnbd": MBGNBDModel}

#: thresholds of :func:`fit_diagnostics`
MIN_MEAN_DROPOUT = 1e-3
MAX_MEAN_DROPOUT = 0.999
UNINFORMATIVE_P_ALIVE = 0.99
UNINFORMATIVE_SHARE = 0.99
OVERDUE_GAPS = 3.0
OVERDUE_MIN_CUSTOMERS = 20
OVERDUE_ALIVE = 0.95
OVERDUE_ALIVE_SHARE = 0.9
NEAR_BOUND = 20.0  # |log parameter| beyond which a parameter is running to 0 or infinity


def fit_diagnostics(model: BGNBDModel, x, tx, T, w=None) -> dict:
    """Is a fitted BG/NBD-type model degenerate? ``{"status": "ok" | "degenerate", "issues", "warnings", ...}``.

    Issues (any makes the fit degenerate), on the customers it was fitted on (``w`` counts each row):

    * ``no_dropout``: the mean drop-out probability per purchase ``a / (a + b)``
      is below 0.001: the fit found no drop-out, P(alive) is about 1 for
      every customer and cannot tell active from lapsed ones (what Online
      Retail's BG/NBD fit does: a = 6.5e-07, b = 14612);
    * ``immediate_dropout``: ``a / (a + b)`` above 0.999 (everyone is gone
      after their next purchase);
    * ``p_alive_uninformative``: P(alive) > 0.99 for more than 99 % of the
      customers;
    * ``boundary``: ``r`` or ``alpha`` within e^-20 / e^20 of 0 / infinity (``a``
      and ``b`` may both run to 0 together: that is a two-point drop-out
      distribution, each customer gone at once or never, and their ratio is
      checked above).

    Warnings (reported, not degenerate): ``p_alive_ignores_silence``: of the
    repeat buyers (frequency >= 2) silent for more than 3 times their own mean
    gap, over 90 % still get P(alive) > 0.95 (checked when there are at least
    20; genuine when those customers are only slow, suspicious otherwise).

    Each issue or warning is ``{"code", "message"}``; the record also holds the mean drop-out, a
    summary of P(alive) and the overdue-customer counts.
    """
    x, tx, T = (np.asarray(v, np.float64).ravel() for v in (x, tx, T))
    w = np.ones_like(x) if w is None else np.asarray(w, np.float64).ravel()
    r, alpha, a, b = model._p()
    pa = model.p_alive(frequency=x, recency=tx, T=T)
    wsum = float(w.sum())
    issues, warnings_ = [], []
    mean_dropout = a / (a + b)
    name = model._label
    if mean_dropout < MIN_MEAN_DROPOUT:
        issues.append({"code": "no_dropout",
                       "message": f"{name} found (almost) no drop-out: a/(a+b) = {mean_dropout:.2g} (a = {a:.3g}, "
                                  f"b = {b:.3g}), so P(alive) is about 1 for every customer and does not tell "
                                  "active from lapsed ones"})
    elif mean_dropout > MAX_MEAN_DROPOUT:
        issues.append({"code": "immediate_dropout",
                       "message": f"{name} has every customer drop out at the next purchase: a/(a+b) = "
                                  f"{mean_dropout:.4f} (a = {a:.3g}, b = {b:.3g})"})
    alive_share = float(w[pa > UNINFORMATIVE_P_ALIVE].sum() / wsum) if wsum else 0.0
    if alive_share > UNINFORMATIVE_SHARE and not any(i["code"] == "no_dropout" for i in issues):
        issues.append({"code": "p_alive_uninformative",
                       "message": f"{name} gives {alive_share:.1%} of the customers P(alive) > "
                                  f"{UNINFORMATIVE_P_ALIVE:g}: it does not tell active from lapsed ones"})
    gap = np.where(x >= 2, tx / np.maximum(x, 1.0), np.inf)
    overdue = (x >= 2) & ((T - tx) > OVERDUE_GAPS * gap)
    n_over = float(w[overdue].sum())
    share = float(w[overdue & (pa > OVERDUE_ALIVE)].sum() / n_over) if n_over else None
    if n_over >= OVERDUE_MIN_CUSTOMERS and share is not None and share > OVERDUE_ALIVE_SHARE:
        warnings_.append({"code": "p_alive_ignores_silence",
                          "message": f"{share:.0%} of the {int(n_over):,} repeat buyers silent for more than "
                                     f"{OVERDUE_GAPS:g} times their usual gap still get P(alive) > "
                                     f"{OVERDUE_ALIVE:g}"})
    logs = {k: math.log(model.params_[k]) for k in ("r", "alpha")}
    near = [k for k, v in logs.items() if abs(v) >= NEAR_BOUND]
    if near:
        issues.append({"code": "boundary",
                       "message": f"{name} parameter(s) {', '.join(near)} ran towards "
                                  f"{'0' if all(logs[k] < 0 for k in near) else 'infinity'}: the data barely "
                                  "identify the model"})
    return {
        "status": "degenerate" if issues else "ok",
        "issues": issues,
        "warnings": warnings_,
        "mean_dropout": float(mean_dropout),
        "p_alive": {"min": float(pa.min()), "median": float(_weighted_median(pa, w)),
                    "share_above_0.99": alive_share},
        "overdue_repeat_buyers": int(round(n_over)),
        "overdue_share_alive": share,
    }


def _weighted_median(v: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cw, cw[-1] / 2.0)]) if len(v) else float("nan")


# ---------------------------------------------------------------------------
# Gamma-Gamma
# ---------------------------------------------------------------------------

class GammaGammaModel(_MaximumLikelihoodModel):
    """Gamma-Gamma model of the value of a purchase (Fader, Hardie & Lee 2005 spend note).

    Purchase values of a customer are Gamma(p, nu) with nu ~ Gamma(q, v);
    it assumes value and frequency are independent. Fitted on customers with
    at least one repeat purchase (frequency > 0) and a positive mean repeat
    value; ``monetary_value`` is that mean over the x repeat purchases.

    Hyperparameters as :class:`BGNBDModel`. Fitted: ``params_`` (p, q, v),
    ``log_likelihood_``, ``n_customers_``, ``n_iter_``.
    """

    model_name = "gamma_gamma"
    param_names = ("p", "q", "v")

    @classmethod
    def from_dict(cls, state: dict):
        m = super().from_dict(state)
        # the limit model (every customer's spend rate equal) is what the saved diagnostics say it is
        m.homogeneous_ = any(w.get("code") == "equal_spend_rates"
                             for w in (getattr(m, "diagnostics_", None) or {}).get("warnings") or [])
        return m

    @staticmethod
    def _loglik(params, x, m):
        p, q, v = params
        px = p * x
        return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * math.log(v)
                + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v))

    def _objective(self, theta, x, m, w, wsum):
        p, q, v = np.exp(theta)
        ll = self._loglik((p, q, v), x, m)
        px = p * x
        dg = digamma(px + q)
        lxmv = np.log(x * m + v)
        d_p = x * (dg - digamma(px) + np.log(m) + np.log(x) - lxmv)
        d_q = dg - digamma(q) + math.log(v) - lxmv
        d_v = q / v - (px + q) / (x * m + v)
        grad = np.array([p * (w * d_p).sum(), q * (w * d_q).sum(), v * (w * d_v).sum()]) / wsum
        f = -(w * ll).sum() / wsum + self.penalizer * float(np.dot(theta, theta))
        if not np.isfinite(f):
            return 1e300, np.zeros_like(theta)
        return f, -grad + 2.0 * self.penalizer * theta

    @staticmethod
    def _arrays(summary, frequency, monetary_value):
        if summary is not None:
            for col in ("frequency", "monetary_value"):
                if col not in summary.columns:
                    raise DataError("required column is missing", table="summary", column=col)
            frequency, monetary_value = summary["frequency"], summary["monetary_value"]
        x = np.asarray(frequency, np.float64)
        m = np.asarray(monetary_value, np.float64)
        return np.broadcast_arrays(x, m)

    def fit(self, summary: pd.DataFrame | None = None, *, frequency=None, monetary_value=None,
            weights=None) -> "GammaGammaModel":
        """Fit on the repeat buyers of a summary (rows with frequency 0 are ignored).

        Raises DataError when a repeat buyer has a non-positive or missing
        ``monetary_value`` (drop those customers first, e.g.
        ``summary[summary.monetary_value > 0]``).
        """
        if self.penalizer < 0:
            raise PersonalizeError("penalizer must be >= 0")
        x, m = self._arrays(summary, frequency, monetary_value)
        x, m = x.ravel(), m.ravel()
        w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64).ravel()
        if w.shape != x.shape:
            raise DataError("weights must be one per customer", column="weights")
        rep = x > 0
        bad = rep & ~(np.isfinite(m) & (m > 0))
        if bad.any():
            rows = np.flatnonzero(bad)
            labels = (summary.index[rows[:5]].tolist() if isinstance(summary, pd.DataFrame)
                      else rows[:5].tolist())
            raise DataError(f"{len(rows)} repeat buyer(s) have a non-positive or missing mean "
                            "spend; Gamma-Gamma needs positive values", table="summary",
                            column="monetary_value", rows=labels)
        x, m, w = x[rep], m[rep], w[rep]
        if len(x) < 2:
            raise ConvergenceError("Gamma-Gamma fit needs at least 2 repeat buyers")
        if float(np.ptp(m)) <= 1e-12 * float(np.max(m)):
            # no spread between customers' mean spends: the likelihood rises without end as p, q, v grow, and
            # where the optimizer stops short of its bounds depends on the SciPy version, so say it here
            raise ConvergenceError("Gamma-Gamma fit did not converge: parameter(s) p, q, v ran to infinity; "
                                   f"every repeat buyer's mean spend is {float(m[0]):g}, and without a spread "
                                   "between customers the model is not identified")
        wsum = float(w.sum())
        mean_m = float((w * m).sum() / wsum)
        starts = [np.log([p0, q0, mean_m * (q0 - 1.0) / p0]) for p0, q0 in ((2.0, 3.0), (1.0, 2.0))]
        try:
            best, full_err = self._best_start(lambda th: self._objective(th, x, m, w, wsum), starts,
                                              "Gamma-Gamma"), None
        except ConvergenceError as exc:
            best, full_err = None, exc
        self.homogeneous_ = False
        if self.penalizer == 0 and (best is None or math.exp(best.x[1]) >= _Q_HOMOGENEOUS):
            # spend rates that do not differ between customers (means that differ no more than chance makes
            # them) put the optimum at q, v -> infinity, where the likelihood is flat up to rounding and
            # L-BFGS-B stops wherever its line search loses precision; the limit model (one Gamma(p, nu) for
            # every purchase) is then fitted directly and kept if the open fit found nothing better
            hom = self._fit_homogeneous(x, m, w, wsum)
            stopped = best if best is not None else getattr(full_err, "result", None)
            if hom is not None and (stopped is None or hom[2] <= float(stopped.fun) + 1e-6):
                p, nu, _, nit = hom
                best = optimize.OptimizeResult(x=np.log([p, _Q_HOMOGENEOUS, _Q_HOMOGENEOUS / nu]), nit=nit)
                self.homogeneous_ = True
        if best is None:
            raise full_err  # type: ignore[misc]
        p, q, v = np.exp(best.x)
        self.params_ = {"p": float(p), "q": float(q), "v": float(v)}
        self.log_likelihood_ = float((w * self._loglik((p, q, v), x, m)).sum())
        self.n_customers_ = int(round(wsum))
        self.n_iter_ = int(best.nit)
        self.diagnostics_ = self._diagnostics(x, m, w)
        return self

    @staticmethod
    def _fit_homogeneous(x, m, w, wsum):
        """The q -> infinity limit: every purchase value ~ Gamma(p, nu), one nu for all customers.

        The mean of x values is then Gamma(p x, nu x); for a given p the likelihood is highest at
        nu = p sum(w x) / sum(w x m), so only p is searched. Returns (p, nu, mean negative
        log-likelihood, iterations), or None when p does not converge either (no spread within customers).
        """
        sx, sxm = float((w * x).sum()), float((w * x * m).sum())
        lx, lm = np.log(x), np.log(m)

        def fun(theta):
            p = math.exp(theta[0])
            nu = p * sx / sxm
            px = p * x
            ll = px * math.log(nu) - gammaln(px) + (px - 1.0) * lm + px * lx - nu * x * m
            d_p = (w * x * (math.log(nu) - digamma(px) + lm + lx)).sum()  # nu's own term is 0 at its optimum
            return -float((w * ll).sum()) / wsum, np.array([-p * d_p / wsum])

        try:
            res = _minimize(fun, np.array([0.0]), ("p",), "Gamma-Gamma (equal spend rates)", max_iter=1000,
                            tol=1e-12)
        except ConvergenceError:
            return None
        p = math.exp(float(res.x[0]))
        return p, p * sx / sxm, float(res.fun), int(res.nit)

    def _diagnostics(self, x, m, w) -> dict:
        """``{"status": "ok" | "degenerate", "issues": [...], "spend_frequency_correlation"}``.

        Degenerate: ``q <= 1`` (the population mean spend, what a one-time buyer
        is expected to spend, is infinite) or a parameter within e^-20 / e^20 of
        0 / infinity. A correlation between repeat buyers' frequency and mean
        spend above 0.3 in size is reported as ``spend_depends_on_frequency``
        (Gamma-Gamma assumes none) without making the fit degenerate.
        """
        p, q, v = self._p()
        issues, warnings_ = [], []
        if q <= 1.0:
            issues.append({"code": "infinite_mean_spend",
                           "message": f"Gamma-Gamma q = {q:.3g} <= 1: the population mean spend is infinite, so the "
                                      "expected spend of a one-time buyer is not finite"})
        homogeneous = getattr(self, "homogeneous_", False)
        near = [k for k, val in self.params_.items()
                if abs(math.log(val)) >= NEAR_BOUND and not (homogeneous and k in ("q", "v"))]
        if homogeneous:
            warnings_.append({"code": "equal_spend_rates",
                              "message": "repeat buyers' mean spends differ no more than chance would make them: "
                                         f"Gamma-Gamma found no difference between customers (q = {q:.3g}), so "
                                         "every customer's expected spend is the population mean "
                                         f"{p * v / (q - 1.0):.4g}"})
        if near:
            issues.append({"code": "boundary", "message": f"Gamma-Gamma parameter(s) {', '.join(near)} ran towards "
                                                          "0 or infinity: the data barely identify the model"})
        corr = None
        if len(x) > 2 and np.std(x) > 0 and np.std(m) > 0:
            xm, mm = np.average(x, weights=w), np.average(m, weights=w)
            cov = np.average((x - xm) * (m - mm), weights=w)
            corr = float(cov / math.sqrt(np.average((x - xm) ** 2, weights=w) * np.average((m - mm) ** 2, weights=w)))
            if abs(corr) > 0.3:
                warnings_.append({"code": "spend_depends_on_frequency",
                                  "message": f"frequency and mean spend of repeat buyers correlate ({corr:+.2f}); "
                                             "Gamma-Gamma assumes they do not"})
        return {"status": "degenerate" if issues else "ok", "issues": issues, "warnings": warnings_,
                "spend_frequency_correlation": corr}

    @property
    def population_mean_spend_(self) -> float:
        """E[value of a purchase] for a customer with no history: p v / (q - 1) (inf if q <= 1)."""
        p, q, v = self._p()
        return p * v / (q - 1.0) if q > 1.0 else float("inf")

    def expected_spend(self, summary=None, *, frequency=None, monetary_value=None) -> np.ndarray:
        """E[value of a purchase | x, m_x] = p (v + x m_x) / (p x + q - 1).

        Customers with x = 0 get the population mean p v / (q - 1).
        """
        p, q, v = self._p()
        x, m = self._arrays(summary, frequency, monetary_value)
        m = np.where(x > 0, m, 0.0)
        return p * (v + x * m) / (p * x + q - 1.0)

# ---------------------------------------------------------------------------
# CLV
# ---------------------------------------------------------------------------

def discounted_clv(bgnbd: BGNBDModel, gamma_gamma: GammaGammaModel, summary: pd.DataFrame, *,
                   horizon: float, step: float = 1.0, discount_rate: float = 0.0,
                   margin: float = 1.0) -> pd.Series:
    """Discounted expected value of each customer's purchases over ``horizon`` time units.

    The horizon is cut into steps of ``step`` units; the purchases expected in
    step k, E[X(k*step)] - E[X((k-1)*step)] from BG/NBD, are valued at the
    Gamma-Gamma expected spend times ``margin`` and discounted by
    ``(1 + discount_rate) ** k`` (``discount_rate`` is per step: e.g. with
    weekly summaries, step=4.35 and a monthly rate). Returns a Series indexed
    like ``summary``.
    """
    if horizon <= 0 or step <= 0:
        raise PersonalizeError("horizon and step must be > 0")
    if discount_rate <= -1:
        raise PersonalizeError("discount_rate must be > -1")
    n_steps = int(math.ceil(horizon / step - 1e-9))
    times = np.minimum(np.arange(1, n_steps + 1) * step, horizon)
    spend = gamma_gamma.expected_spend(summary) * margin
    prev = np.zeros(len(summary))
    value = np.zeros(len(summary))
    for k, t in enumerate(times, start=1):  # loop over steps, vectorized over customers
        cur = bgnbd.expected_purchases(t, summary)
        value += (cur - prev) / (1.0 + discount_rate) ** k
        prev = cur
    return pd.Series(value * spend, index=summary.index, name="clv")


#: the shortest period :func:`simple_clv` shortens its period to
MIN_SIMPLE_PERIOD_DAYS = 7.0
#: the ``attrs`` of :func:`simple_clv` that ``customer_view`` reports as ``attrs["clv_simple"]``
SIMPLE_CLV_ATTRS = ("period_days", "requested_period_days", "history_days", "retention", "retained_of", "note")
_NS_DAY = 86_400_000_000_000


def simple_clv_period(period_days: float, *, as_of: pd.Timestamp, first_ns: int | None
                      ) -> tuple[float, float, str | None]:
    """The period :func:`simple_clv` uses: (period in days, history in days, note or None).

    ``first_ns`` is the first order's time (integer nanoseconds; None when
    there is no order before ``as_of``). The period is ``period_days``,
    shortened to half the history when the history holds fewer than two
    periods (with a note saying so). Raises DataError when there is no order
    or the period would be shorter than :data:`MIN_SIMPLE_PERIOD_DAYS`.
    """
    if first_ns is None:
        raise DataError(f"clv_simple: no orders before {as_of.date()}", table="transactions", column="timestamp")
    history_days = (int(as_of.value) - int(first_ns)) / _NS_DAY
    period = min(float(period_days), history_days / 2.0)
    note = None
    if period < float(period_days):
        if period < MIN_SIMPLE_PERIOD_DAYS:
            raise DataError(f"clv_simple needs two periods of history to estimate retention (who bought in the "
                            f"period before last and again in the last one): the history before {as_of.date()} "
                            f"covers {history_days:.1f} days, less than two periods of the "
                            f"{MIN_SIMPLE_PERIOD_DAYS:g}-day minimum", table="transactions", column="timestamp")
        note = (f"period shortened from {period_days:g} to {period:.1f} days: the history covers "
                f"{history_days:.1f} days and retention needs two periods")
    return period, history_days, note


def simple_clv_no_retention(period: float, as_of: pd.Timestamp) -> DataError:
    """The error of :func:`simple_clv` when nobody bought in the period before last."""
    return DataError(f"clv_simple: nobody bought in the period before last ({period:g} days, "
                     f"{(as_of - pd.Timedelta(days=2 * period)).date()} .. "
                     f"{(as_of - pd.Timedelta(days=period)).date()}), so retention cannot be estimated",
                     table="transactions", column="timestamp")


def simple_clv_factor(retention: float, period: float, period_days: float, *, horizon_periods: int = 1,
                      discount_rate: float = 0.0) -> float:
    """sum_{k=1..H} (retention / (1 + d))^k of :func:`simple_clv`: H = ``horizon_periods x period_days / period``
    periods of ``period`` days (the last one counted in part), ``discount_rate`` per ``period_days`` turned into
    the rate ``d`` per ``period`` days."""
    steps = horizon_periods * float(period_days) / period
    d = (1.0 + discount_rate) ** (period / float(period_days)) - 1.0
    g = retention / (1.0 + d)
    whole = int(math.floor(steps + 1e-9))
    return sum(g ** k for k in range(1, whole + 1)) + max(steps - whole, 0.0) * g ** (whole + 1)


def simple_clv(data: History, *, as_of: DateLike, period_days: float = 365.0, horizon_periods: int = 1,
               discount_rate: float = 0.0, margin: float = 1.0, arrays: Any = None) -> pd.DataFrame:
    """The retail formula: CLV = purchase frequency x AOV x retention (x margin), over a horizon.

    Definitions (only transactions strictly before ``as_of`` are used; orders
    as in :func:`personalize.analytics.profiles`):

    * the period ``p`` is ``period_days``, shortened to half the history
      (first order to ``as_of``) when the history holds fewer than two such
      periods: retention needs two (down to 7 days, so at least 14 days of
      history are needed);
    * ``frequency`` = orders in the last period (``p`` days before ``as_of``);
    * ``aov`` = mean order value in that period (all-time mean when the
      customer did not buy in the last period);
    * ``retention`` = population repeat rate: share of the customers who
      bought in the period before last who bought again in the last period;
    * ``clv`` = frequency x aov x margin x sum_{k=1..H} (retention / (1 + d))^k
      over the horizon ``horizon_periods x period_days`` days, i.e. H =
      ``horizon_periods x period_days / p`` periods of ``p`` days (the last one
      counted in part when H is not whole) with ``discount_rate`` per
      ``period_days`` turned into the rate per ``p`` days.

    Customers who did not buy in the last period get frequency 0 and clv 0.
    Raises DataError, saying why, when the history is shorter than two 7-day
    periods or nobody bought in the period before last. Returns a frame
    indexed by customer_id with frequency, aov, retention, clv; ``attrs`` hold
    ``retention``, ``retained_of``, ``period_days`` (used),
    ``requested_period_days`` and a ``note`` when the period was shortened.
    """
    if period_days <= 0 or horizon_periods < 1:
        raise PersonalizeError("period_days must be > 0 and horizon_periods >= 1")
    if discount_rate <= -1:
        raise PersonalizeError("discount_rate must be > -1")
    a = arrays if arrays is not None else prepare_arrays(data, as_of)
    n = len(a.ids)
    c_ns = a.as_of.value
    first_ns = int(a.order_ts.min()) if len(a.order_ts) else None
    period, history_days, note = simple_clv_period(period_days, as_of=a.as_of, first_ns=first_ns)
    p_ns = int(period * _NS_DAY)
    last = a.order_ts >= c_ns - p_ns
    prev = (a.order_ts >= c_ns - 2 * p_ns) & ~last
    freq = np.bincount(a.order_cust[last], minlength=n)
    val = np.bincount(a.order_cust[last], weights=a.order_amount[last], minlength=n)
    all_v = np.bincount(a.order_cust, weights=a.order_amount, minlength=n)
    aov = np.where(freq > 0, val / np.maximum(freq, 1), all_v / np.maximum(a.counts, 1))
    in_prev = np.bincount(a.order_cust[prev], minlength=n) > 0
    n_prev = int(in_prev.sum())
    if n_prev == 0:
        raise simple_clv_no_retention(period, a.as_of)
    retention = float((in_prev & (freq > 0)).sum() / n_prev)
    factor = simple_clv_factor(retention, period, period_days, horizon_periods=horizon_periods,
                               discount_rate=discount_rate)
    out = pd.DataFrame({"frequency": freq.astype(np.int64), "aov": aov,
                        "retention": retention, "clv": freq * aov * margin * factor},
                       index=pd.Index(a.ids, name="customer_id", dtype="str"))
    out.attrs["retention"] = retention
    out.attrs["retained_of"] = n_prev
    out.attrs["period_days"] = period
    out.attrs["requested_period_days"] = float(period_days)
    out.attrs["history_days"] = history_days
    if note:
        out.attrs["note"] = note
    return out


# ---------------------------------------------------------------------------
# holdout checks
# ---------------------------------------------------------------------------

def cumulative_repeat_purchases(data: History, summary: pd.DataFrame, bgnbd: BGNBDModel, *,
                                end: DateLike | None = None) -> pd.DataFrame:
    """Actual vs predicted cumulative repeat purchases per time unit (figure 2 of the paper).

    For each time unit boundary after the start of the data up to ``end``
    (default: the last transaction), the actual count is the number of repeat
    purchase days of the summary's customers so far, the predicted count is
    sum_i E[X(t - s_i)] with s_i the customer's first purchase. Returns a
    frame with ``time`` (units since the first purchase in the data), ``date``,
    ``actual``, ``predicted``.
    """
    unit = _unit_days(summary.attrs.get("time_unit", "D"))
    tx = transactions_of(data)
    tx = tx.loc[tx["customer_id"].isin(summary.index)]
    day = _day_numbers(tx["timestamp"])
    codes, _ = customer_codes(tx["customer_id"])
    span_key = codes * (int(day.max()) + 1) + day
    ukey = _sets.unique(span_key)
    u_day = ukey % (int(day.max()) + 1)
    u_c = ukey // (int(day.max()) + 1)
    is_first = np.r_[True, u_c[1:] != u_c[:-1]]
    repeat_days = np.sort(u_day[~is_first])
    first = np.sort(_day_numbers(summary["first_purchase"]))
    start = int(first.min())
    last_day = _ts_day(as_timestamp(end, "end")) if end is not None else int(day.max())
    n_units = int(math.floor((last_day - start + 1) / unit + 1e-9))
    bounds = start + np.arange(1, n_units + 1) * unit  # exclusive day boundary of each unit
    actual = np.searchsorted(repeat_days, bounds, side="left")
    # group customers by first-purchase day to vectorize the prediction
    fd, cnt = np.unique(first, return_counts=True)
    age = (bounds[:, None] - (fd[None, :] + 1)) / unit  # units since the first purchase day's end
    predicted = (bgnbd.expected_purchases_new(np.clip(age, 0, None)) * cnt[None, :]).sum(axis=1)
    dates = (np.floor(bounds).astype(np.int64) - 1).astype("datetime64[D]").astype("datetime64[ns]")
    return pd.DataFrame({"time": np.arange(1, n_units + 1, dtype=np.float64),
                         "date": dates, "actual": actual.astype(np.float64),
                         "predicted": predicted})


def holdout_comparison(bgnbd: BGNBDModel, summary: pd.DataFrame) -> dict:
    """Predicted vs actual repeat purchases in the holdout period of ``summary``.

    ``bgnbd`` is any fitted purchase model (:class:`BGNBDModel`, :class:`MBGNBDModel`);
    ``summary`` must come from ``calibration_summary(..., holdout_end=...)``.
    Returns totals, the mean absolute error per customer, a table by
    calibration frequency (0..7+, as in table 2 of the BG/NBD paper) and
    ``group_error``: the sum over those frequency groups of |predicted -
    actual| holdout purchases, which is what :func:`compare_purchase_models`
    ranks models by (it counts both the total and how well each group is
    predicted). ``p_alive_auc`` is the chance that a customer who bought in the
    holdout had a higher P(alive) at the calibration end than one who did not
    (0.5 = no better than chance; None when everyone or no one bought).
    """
    if "frequency_holdout" not in summary.columns:
        raise DataError("summary has no holdout columns: pass holdout_end to "
                        "calibration_summary()", table="summary", column="frequency_holdout")
    t = float(summary["duration_holdout"].iloc[0])
    pred = bgnbd.expected_purchases(t, summary)
    act = summary["frequency_holdout"].to_numpy(np.float64)
    bucket = np.minimum(summary["frequency"].to_numpy(), 7)
    by = (pd.DataFrame({"frequency": bucket, "actual": act, "predicted": pred})
          .groupby("frequency").agg(customers=("actual", "size"), actual=("actual", "mean"),
                                    predicted=("predicted", "mean"),
                                    actual_sum=("actual", "sum"), predicted_sum=("predicted", "sum")))
    return {
        "model": bgnbd.model_name,
        "duration": t,
        "customers": int(len(summary)),
        "predicted_total": float(pred.sum()),
        "actual_total": float(act.sum()),
        "mae_per_customer": float(np.mean(np.abs(pred - act))),
        "group_error": float(np.abs(by["predicted_sum"] - by["actual_sum"]).sum()),
        "p_alive_auc": _auc(bgnbd.p_alive(summary), act > 0),
        "by_frequency": [
            {"frequency": (f"{int(k)}+" if k == 7 else str(int(k))),
             "customers": int(r.customers), "actual_mean": float(r.actual),
             "predicted_mean": float(r.predicted)}
            for k, r in by.iterrows()
        ],
    }


def _auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Rank AUC of ``score`` for the boolean ``label`` (ties count one half)."""
    pos, neg = int(label.sum()), int((~label).sum())
    if not pos or not neg:
        return None
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[label].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def holdout_table(comparison: dict) -> pd.DataFrame:
    """The ``by_frequency`` rows of :func:`holdout_comparison` (plus a total row) as a DataFrame."""
    rows = [dict(r) for r in comparison["by_frequency"]]
    n = comparison["customers"]
    rows.append({"frequency": "total", "customers": n,
                 "actual_mean": comparison["actual_total"] / max(n, 1),
                 "predicted_mean": comparison["predicted_total"] / max(n, 1)})
    out = pd.DataFrame(rows)
    out["actual_total"] = out["actual_mean"] * out["customers"]
    out["predicted_total"] = out["predicted_mean"] * out["customers"]
    return out


def compare_purchase_models(summary: pd.DataFrame, models=("bgnbd", "mbgnbd"), *, penalizer: float = 0.0
                            ) -> tuple[dict, dict[str, BGNBDModel]]:
    """Fit each purchase model on the calibration columns of ``summary`` and check it on the holdout columns.

    ``summary`` comes from ``calibration_summary(..., holdout_end=...)``; ``models`` are names of
    :data:`PURCHASE_MODELS`. The chosen model is the one with the smallest holdout ``group_error``
    (see :func:`holdout_comparison`) among the fits that are not degenerate (:func:`fit_diagnostics`);
    when every fit is degenerate, the smallest error among them (and ``"degenerate": True``). Fits that
    do not converge are recorded and left out. Returns (record, {name: fitted model}) where the record
    holds every candidate's parameters, diagnostics and holdout comparison, ``chosen`` and ``reason``.
    Raises ConvergenceError when no model can be fitted.
    """
    unknown = [m for m in models if m not in PURCHASE_MODELS]
    if unknown or not models:
        raise PersonalizeError(f"unknown purchase model(s) {unknown or models!r}; choose from "
                               f"{', '.join(PURCHASE_MODELS)}")
    record: dict = {"criterion": "holdout group_error (sum over calibration-frequency groups of |predicted - "
                                 "actual| repeat purchases), non-degenerate fits first", "candidates": {}}
    fitted: dict[str, BGNBDModel] = {}
    errors = []
    for name in models:
        try:
            m = PURCHASE_MODELS[name](penalizer=penalizer).fit(summary)
        except ConvergenceError as exc:
            record["candidates"][name] = {"status": "failed", "reason": str(exc)}
            errors.append(exc)
            continue
        fitted[name] = m
        record["candidates"][name] = {"status": m.diagnostics_["status"], "params": dict(m.params_),
                                      "log_likelihood": m.log_likelihood_, "diagnostics": m.diagnostics_,
                                      "holdout": holdout_comparison(m, summary)}
    if not fitted:
        raise errors[0]
    order = sorted(fitted, key=lambda n: (fitted[n].diagnostics_["status"] != "ok",
                                          record["candidates"][n]["holdout"]["group_error"]))
    chosen = order[0]
    record["ranking"] = order
    record["chosen"] = chosen
    record["degenerate"] = fitted[chosen].diagnostics_["status"] != "ok"
    c = record["candidates"][chosen]["holdout"]
    record["reason"] = (f"{chosen}: holdout group error {c['group_error']:.1f} repeat purchases "
                        f"(predicted {c['predicted_total']:.1f} vs actual {c['actual_total']:.0f})"
                        + ("; every candidate is degenerate" if record["degenerate"] else "")
                        + "".join(f"; {n}: {record['candidates'][n]['holdout']['group_error']:.1f}"
                                  + (" (degenerate)" if fitted[n].diagnostics_["status"] != "ok" else "")
                                  for n in order[1:]))
    return record, fitted
