"""Uplift evaluation on randomized data: Qini and uplift curves, Qini coefficient, AUUC, uplift@k, IPW policy value.

An uplift model cannot be checked row by row (nobody is both treated and not
treated), so every metric here ranks the rows by the *predicted* uplift and asks
whether the top of the ranking really responds more to the treatment, comparing
treated and control rows at each depth. Inputs are always ``y`` (outcome: 0/1
or a continuous amount such as spend), ``uplift`` (the model's score; only its
order matters) and ``treatment`` (1 = treated, 0 = control; for a several-arm
model, score each arm on the rows of that arm and the control).

Notation: rows sorted by ``uplift`` from high to low; for the top ``k`` rows
``n_t(k)``, ``n_c(k)`` count treated and control rows and ``Y_t(k)``,
``Y_c(k)`` sum their outcomes; ``n`` rows in all.

* **Qini curve** (Radcliffe 2007): ``Q(k) = Y_t(k) - Y_c(k) * n_t(k) / n_c(k)``
  -- the incremental outcome in the targeted treated group, the control sum
  rescaled to the treated group's size (the term is 0 while ``n_c(k) = 0``).
* **Uplift curve** (Rzepakowski & Jaroszewicz 2012):
  ``U(k) = (Y_t(k)/n_t(k) - Y_c(k)/n_c(k)) * k`` -- the incremental outcome if
  the whole top ``k`` were treated (a mean over an empty group counts as 0, as in
  scikit-uplift).
* **Ties**: rows with equal scores have no order, so curves are evaluated only at
  the ends of tie blocks (``k`` = number of rows scored at least a given value)
  and areas interpolate linearly inside a block -- the expected curve of a random
  order of the tied rows. The result never depends on the input row order.
* **Areas** use ``x = k / n`` (share targeted) and ``y = curve / n`` (per customer
  of the population), trapezoid rule. The *random* line joins ``(0, 0)`` to the
  curve's end point ``(1, curve(n)/n)``. The *perfect* curve is the curve of the
  oracle ordering of the observed outcomes: treated rows by decreasing ``y``
  first, control rows by increasing ``y`` last (score ``y`` if treated, ``-y`` if
  control) -- for binary outcomes, treated responders first and control
  responders last, scikit-uplift's ``perfect_qini_curve`` with negative effects.

**Normalisation (which one this module implements).** :func:`qini_coefficient`
and :func:`auuc` default to ``normalize=True``: ``(A_model - A_random) /
(A_perfect - A_random)``, scikit-uplift's convention (``qini_auc_score``,
``uplift_auc_score``): 0 = random, 1 = the oracle ordering, negative = worse
than random, comparable across data sets. ``normalize=False`` returns the raw
``A_model - A_random`` in the units above (area between the curve and the
random line, per customer of the population): the quantity causalml's
``qini_score`` reports in spirit (model minus random, divided by the number of
points), not numerically equal to it, since causalml sums over row positions of
unscaled curves.

:func:`uplift_at_k` is the observed treatment effect among the top ``k`` rows
(``strategy="overall"``) or between the top ``k`` share of the treated and the
top ``k`` share of the control rows taken separately (``strategy="by_group"``,
scikit-uplift's default and the one its Hillstrom tutorial reports).
:func:`uplift_at_k_by_segment` breaks it down by a customer segment.
:func:`policy_value_ipw` estimates the mean outcome a targeting policy would get
from randomized data by inverse propensity weighting; :func:`policy_gain_ipw` the
difference between two policies with its paired standard error.

Errors (:class:`~personalize.errors.DataError`, naming the argument): empty
input, lengths that differ, non-finite values, a treatment that is not 0/1, no
treated or no control rows, a top ``k`` without treated or control rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.errors import DataError, PersonalizeError

__all__ = ["qini_curve", "uplift_curve", "perfect_qini_curve", "perfect_uplift_curve", "qini_coefficient", "auuc",
           "uplift_at_k", "uplift_at_k_by_segment", "policy_value_ipw", "policy_gain_ipw"]


# --------------------------------------------------------------------------- inputs
def _vector(v: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(v.to_numpy() if isinstance(v, (pd.Series, pd.Index)) else v, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numeric", column=name) from None
    if a.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {a.shape}", column=name)
    bad = ~np.isfinite(a)
    if bad.any():
        raise DataError(f"{name} has missing or infinite values", column=name, rows=np.flatnonzero(bad)[:5].tolist())
    return a


def _inputs(y: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, s, t = _vector(y, "y"), _vector(uplift, "uplift"), _vector(treatment, "treatment")
    if len(y) == 0:
        raise DataError("no rows to evaluate", column="y")
    if not (len(y) == len(s) == len(t)):
        raise DataError(f"lengths differ: y {len(y)}, uplift {len(s)}, treatment {len(t)}", column="uplift")
    if not _sets.isin(t, (0.0, 1.0)).all():
        raise DataError("treatment must be 1 (treated) or 0 (control); score a several-arm model per arm on that "
                        "arm's and the control's rows", column="treatment",
                        rows=np.flatnonzero(~_sets.isin(t, (0.0, 1.0)))[:5].tolist())
    n_t = int(t.sum())
    if n_t == 0 or n_t == len(t):
        raise DataError(f"need both treated and control rows, got {n_t} treated of {len(t)}", column="treatment")
    return y, s, t


def _curve_sums(y: np.ndarray, s: np.ndarray, t: np.ndarray):
    """Cumulative sums at the ends of tie blocks of the descending score, with a leading 0 point."""
    order = np.argsort(-s, kind="stable")
    ss, ts, ys = s[order], t[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(ss) != 0), len(ss) - 1]
    k = np.r_[0, ends + 1].astype(np.int64)
    n_t = np.r_[0.0, np.cumsum(ts)[ends]]
    y_t = np.r_[0.0, np.cumsum(ys * ts)[ends]]
    n_c = k - n_t
    y_c = np.r_[0.0, np.cumsum(ys * (1 - ts))[ends]]
    return k, n_t, n_c, y_t, y_c


def _qini_from_sums(n_t, n_c, y_t, y_c) -> np.ndarray:
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    return y_t - y_c * ratio


def _uplift_from_sums(k, n_t, n_c, y_t, y_c) -> np.ndarray:
    mt = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t > 0)
    mc = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    return (mt - mc) * k


# --------------------------------------------------------------------------- curves
def qini_curve(y: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve ``(k, Q(k))``: rows targeted (starting at 0) and incremental outcome (see module docstring).

    Points at the ends of tie blocks only. ``Q(n) = Y_t - Y_c * N_t / N_c``.
    """
    y, s, t = _inputs(y, uplift, treatment)
    k, n_t, n_c, y_t, y_c = _curve_sums(y, s, t)
    return k, _qini_from_sums(n_t, n_c, y_t, y_c)


def uplift_curve(y: Any, uplift: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """Uplift curve ``(k, U(k))`` with ``U(k) = (mean_t(k) - mean_c(k)) * k`` (see module docstring)."""
    y, s, t = _inputs(y, uplift, treatment)
    k, n_t, n_c, y_t, y_c = _curve_sums(y, s, t)
    return k, _uplift_from_sums(k, n_t, n_c, y_t, y_c)


def _oracle_score(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.where(t == 1, y, -y)


def perfect_qini_curve(y: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve of the oracle ordering (treated by decreasing ``y``, then control by increasing ``y``)."""
    y, t = _vector(y, "y"), _vector(treatment, "treatment")
    return qini_curve(y, _oracle_score(y, t), t)


def perfect_uplift_curve(y: Any, treatment: Any) -> tuple[np.ndarray, np.ndarray]:
    """The uplift curve of the oracle ordering (see :func:`perfect_qini_curve`)."""
    y, t = _vector(y, "y"), _vector(treatment, "treatment")
    return uplift_curve(y, _oracle_score(y, t), t)


def _area_over_random(k: np.ndarray, v: np.ndarray) -> float:
    """Trapezoid area between the curve and its random line, with x = k/n and y = v/n."""
    n = float(k[-1])
    x, yv = k / n, v / n
    area = float(np.sum((x[1:] - x[:-1]) * (yv[1:] + yv[:-1]) / 2.0))
    return area - yv[-1] / 2.0


def _coefficient(y, uplift, treatment, curve, normalize: bool, what: str) -> float:
    y, s, t = _inputs(y, uplift, treatment)
    model = _area_over_random(*curve(y, s, t))
    if not normalize:
        return model
    perfect = _area_over_random(*curve(y, _oracle_score(y, t), t))
    if not perfect > 0:
        raise DataError(f"{what} is undefined here: the oracle ordering is no better than random "
                        "(is the outcome constant?); use normalize=False", column="y")
    return model / perfect


def qini_coefficient(y: Any, uplift: Any, treatment: Any, *, normalize: bool = True) -> float:
    """Area between the Qini curve and the random line.

    ``normalize=True`` (default, scikit-uplift's ``qini_auc_score`` convention): divided by the
    same area of the perfect (oracle) curve, so 0 = random and 1 = oracle ordering.
    ``normalize=False``: the raw area with x = share targeted and y = incremental outcome per
    customer of the population (model minus random, not divided by the perfect curve).
    """
    return _coefficient(y, uplift, treatment, qini_curve, normalize, "the normalised Qini coefficient")


def auuc(y: Any, uplift: Any, treatment: Any, *, normalize: bool = True) -> float:
    """Area under the uplift curve over the random line; same normalisation as :func:`qini_coefficient`.

    ``normalize=True`` (default, scikit-uplift's ``uplift_auc_score`` convention):
    ``(A_model - A_random) / (A_perfect - A_random)``; ``normalize=False``: ``A_model - A_random``
    with x = share targeted and y = ``U(k) / n``.
    """
    return _coefficient(y, uplift, treatment, uplift_curve, normalize, "the normalised AUUC")


# --------------------------------------------------------------------------- uplift@k
def _top_count(k: Any, n: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)):
        raise PersonalizeError(f"k must be a share in (0, 1] or a row count >= 1, got {k!r}")
    if isinstance(k, (float, np.floating)):
        if not 0 < float(k) <= 1:
            raise PersonalizeError(f"k as a share must be in (0, 1], got {k!r}")
        m = int(math.floor(float(k) * n + 1e-9))
    else:
        m = int(k)
        if m < 1:
            raise PersonalizeError(f"k as a row count must be >= 1, got {k!r}")
        m = min(m, n)
    if m < 1:
        raise DataError(f"the top {k!r} of {n} {what} rows is empty", column="uplift")
    return m


def _top_weights(s: np.ndarray, m: int) -> np.ndarray:
    """Weight 1 for rows strictly above the m-th score, a shared fraction for the rows tied with it
    (so the weights add up to exactly m whatever the row order), 0 below."""
    if m >= len(s):
        return np.ones(len(s))
    v = np.partition(-s, m - 1)[m - 1] * -1.0  # the m-th largest score
    above = s > v
    tied = s == v
    w = above.astype(np.float64)
    w[tied] = (m - above.sum()) / tied.sum()
    return w


def _weighted_effect(y, t, w) -> tuple[float, float, float, float]:
    wt, wc = w * t, w * (1 - t)
    st, sc = wt.sum(), wc.sum()
    mean_t = float(np.dot(wt, y) / st) if st > 0 else math.nan
    mean_c = float(np.dot(wc, y) / sc) if sc > 0 else math.nan
    return st, sc, mean_t, mean_c


def uplift_at_k(y: Any, uplift: Any, treatment: Any, *, k: float | int = 0.3, strategy: str = "overall") -> float:
    """Observed uplift (treated mean minus control mean of ``y``) among the highest-scored rows.

    ``k``: a share in (0, 1] (rounded down to whole rows) or a row count.
    ``strategy="overall"``: the top ``k`` of all rows, then treated mean minus control mean inside it.
    ``strategy="by_group"``: the top ``k`` share (or count) of the treated rows and, separately, of
    the control rows, then the difference of their means (scikit-uplift's default).
    Rows tied with the last selected score share its remaining weight (order-independent).
    Raises :class:`DataError` when the selection has no treated or no control rows.
    """
    y, s, t = _inputs(y, uplift, treatment)
    if strategy == "overall":
        w = _top_weights(s, _top_count(k, len(s), "scored"))
        st, sc, mt, mc = _weighted_effect(y, t, w)
        if st == 0 or sc == 0:
            raise DataError(f"the top {k!r} rows hold {st:g} treated and {sc:g} control rows: uplift@k needs both "
                            "(use strategy='by_group' or a larger k)", column="treatment")
        return mt - mc
    if strategy == "by_group":
        tr, co = t == 1, t == 0
        m_t, m_c = _top_count(k, int(tr.sum()), "treated"), _top_count(k, int(co.sum()), "control")
        mean_t = float(np.dot(_top_weights(s[tr], m_t), y[tr])) / m_t
        mean_c = float(np.dot(_top_weights(s[co], m_c), y[co])) / m_c
        return mean_t - mean_c
    raise PersonalizeError(f"strategy must be 'overall' or 'by_group', got {strategy!r}")


def uplift_at_k_by_segment(y: Any, uplift: Any, treatment: Any, segment: Any, *, k: float | int = 0.3,
                           strategy: str = "overall") -> pd.DataFrame:
    """:func:`uplift_at_k` within each segment (e.g. tier, region, channel), one row per segment.

    Columns: ``segment``, ``rows``, ``treated``, ``control``, ``observed_uplift`` (treated minus
    control mean over the whole segment), ``mean_predicted_uplift`` and ``uplift_at_k``. A
    segment where a value is undefined (no treated or no control rows, or a top ``k`` without
    one of them) gets NaN there rather than failing the whole report; the counts show why.
    """
    y, s, t = _vector(y, "y"), _vector(uplift, "uplift"), _vector(treatment, "treatment")
    seg = np.asarray(segment.to_numpy(dtype=object) if isinstance(segment, pd.Series) else segment, dtype=object)
    if not (len(y) == len(s) == len(t) == len(seg)):
        raise DataError(f"lengths differ: y {len(y)}, uplift {len(s)}, treatment {len(t)}, segment {len(seg)}",
                        column="segment")
    if len(y) == 0:
        raise DataError("no rows to evaluate", column="y")
    if pd.isna(seg).any():
        raise DataError("segment has missing values", column="segment", rows=np.flatnonzero(pd.isna(seg))[:5].tolist())
    if not _sets.isin(t, (0.0, 1.0)).all():
        raise DataError("treatment must be 1 (treated) or 0 (control)", column="treatment")
    rows = []
    codes, names = pd.factorize(seg, sort=True)
    for g, name in enumerate(names):
        m = codes == g
        yg, sg, tg = y[m], s[m], t[m]
        nt = int(tg.sum())
        nc = int(m.sum()) - nt
        obs = float(yg[tg == 1].mean() - yg[tg == 0].mean()) if nt and nc else math.nan
        try:
            at_k = uplift_at_k(yg, sg, tg, k=k, strategy=strategy) if nt and nc else math.nan
        except DataError:
            at_k = math.nan
        rows.append({"segment": name, "rows": int(m.sum()), "treated": nt, "control": nc, "observed_uplift": obs,
                     "mean_predicted_uplift": float(sg.mean()), "uplift_at_k": at_k})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- policy value
def _ipw_terms(y: Any, treatment: Any, policy: Any, propensity: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per row: ``y * 1[t == policy] / e`` and the weight ``1[t == policy] / e`` (see :func:`policy_value_ipw`)."""
    yv = _vector(y, "y")
    t = np.asarray(treatment.to_numpy(dtype=object) if isinstance(treatment, pd.Series) else treatment, dtype=object)
    pi = np.asarray(policy.to_numpy(dtype=object) if isinstance(policy, pd.Series) else policy, dtype=object)
    n = len(yv)
    if n == 0:
        raise DataError("no rows to evaluate", column="y")
    if not (len(t) == len(pi) == n):
        raise DataError(f"lengths differ: y {n}, treatment {len(t)}, policy {len(pi)}", column="policy")
    for name, v in (("treatment", t), ("policy", pi)):
        if pd.isna(v).any():
            raise DataError(f"{name} has missing values", column=name, rows=np.flatnonzero(pd.isna(v))[:5].tolist())
    arms, tc = np.unique(t.astype(str), return_inverse=True)
    pc = np.searchsorted(arms, pi.astype(str))
    pc = np.clip(pc, 0, len(arms) - 1)
    unknown = arms[pc] != pi.astype(str)
    if unknown.any():
        raise DataError(f"the policy chooses arm(s) {sorted(set(pi[unknown].astype(str)))[:5]} that no row received: "
                        "their outcome cannot be estimated from this data", column="policy")
    if propensity is None:
        e = (np.bincount(tc, minlength=len(arms)) / n)[tc]
    elif isinstance(propensity, Mapping):
        given = {str(k): float(v) for k, v in propensity.items()}
        missing = [a for a in arms if a not in given]
        if missing:
            raise DataError(f"propensity mapping lacks arm(s) {missing[:5]}", column="propensity")
        e = np.array([given[a] for a in arms])[tc]
    else:
        e = _vector(propensity, "propensity")
        if len(e) != n:
            raise DataError(f"propensity has {len(e)} values for {n} rows", column="propensity")
    if not ((e > 0) & (e <= 1)).all():
        raise DataError("propensity must be in (0, 1]", column="propensity")
    w = (tc == pc) / e
    return yv * w, w


def policy_value_ipw(y: Any, treatment: Any, policy: Any, *, propensity: Any = None,
                     self_normalized: bool = False) -> dict:
    """Estimated mean outcome per customer if everyone got the arm ``policy`` chooses.

    Randomized data reveal, for each row, the outcome under the arm it was given; rows whose
    arm matches the policy's choice stand for all rows the policy would send that arm, weighted
    by ``1 / P(arm | x)``: ``V = mean(y * 1[t == policy] / e)`` (Horvitz-Thompson). With
    ``self_normalized=True`` the weights are rescaled to sum to ``n`` (SNIPW: a little biased,
    lower variance).

    ``treatment`` and ``policy``: arm names per row (any labels, e.g. ``"No E-Mail"``).
    ``propensity``: None -- each arm's share of the rows (a randomized design with fixed
    shares); a mapping arm -> probability; or an array holding, per row, the probability of the
    arm that row actually got. Returns ``{"value", "std_error", "matched_rows", "rows"}``;
    ``std_error`` is the standard error of the mean of the weighted terms (Horvitz-Thompson).
    """
    terms, w = _ipw_terms(y, treatment, policy, propensity)
    n = len(terms)
    if self_normalized:
        value = float(terms.sum() / w.sum()) if w.sum() > 0 else math.nan
    else:
        value = float(terms.mean())
    se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"value": value, "std_error": se, "matched_rows": int((w > 0).sum()), "rows": int(n)}


def policy_gain_ipw(y: Any, treatment: Any, policy: Any, baseline: Any, *, propensity: Any = None) -> dict:
    """IPW estimate of ``V(policy) - V(baseline)`` on the same rows, with its paired standard error.

    Both values are Horvitz-Thompson means (:func:`policy_value_ipw`) over the same rows, so
    their difference is ``mean(d)`` with ``d = y * (1[t == policy] - 1[t == baseline]) / e``,
    and its standard error ``sd(d) / sqrt(n)`` accounts for the rows where both policies agree
    (they cancel) -- far tighter than combining the two values' own errors. ``baseline``: arm
    names per row, or one arm name for everyone (e.g. ``"No E-Mail"``).
    Returns ``{"gain", "std_error", "z", "rows"}``.
    """
    n = len(_vector(y, "y"))
    if isinstance(baseline, (str, int, float)) or baseline is None:
        baseline = np.full(n, baseline, dtype=object)
    a, _ = _ipw_terms(y, treatment, policy, propensity)
    b, _ = _ipw_terms(y, treatment, baseline, propensity)
    d = a - b
    gain = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    z = gain / se if se and se > 0 else (0.0 if gain == 0 else math.copysign(math.inf, gain))
    return {"gain": gain, "std_error": se, "z": float(z), "rows": int(n)}
