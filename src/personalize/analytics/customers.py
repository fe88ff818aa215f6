"""The customer table a serving layer or a marketing export reads.

* :func:`customer_view` — every customer who bought before ``as_of``: profile,
  RFM scores and segment, lifecycle stage, membership tier, CLV (simple and
  BG/NBD + Gamma-Gamma) and, when a customers table is present, region and
  consent flags. One vectorized pass; point-in-time like ``profiles``.
* :func:`customer_record` — one customer of that table as a JSON-ready dict.

Customer lists (filters, consent) are :mod:`personalize.customers`' job.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize.analytics._frames import optional_table
from personalize.analytics.clv import (PURCHASE_MODELS, SIMPLE_CLV_ATTRS, BGNBDModel, GammaGammaModel,
                                       compare_purchase_models, discounted_clv, simple_clv, summary_from_arrays)
from personalize.analytics.profiles import prepare_arrays, profiles as build_profiles
from personalize.analytics.segments import (DEFAULT_SEGMENT_RULES, LifecycleConfig, Personas,
                                            SegmentRule, TierConfig, assign_segments,
                                            lifecycle_stages, membership_tiers, rfm_scores)
from personalize._json import json_scalar
from personalize.errors import ConvergenceError, DataError, PersonalizeError, UnknownIdError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = ["customer_view", "customer_record", "fit_clv", "clv_dtypes"]

_NS_DAY = 86_400_000_000_000


def fit_clv(summary: pd.DataFrame, *, penalizer: float = 0.0, model: str = "bgnbd"
            ) -> tuple[BGNBDModel, GammaGammaModel, int]:
    """Fit a purchase model (``model``: "bgnbd" or "mbgnbd") on every row and Gamma-Gamma on repeat buyers
    with a positive mean spend.

    Returns (purchase model, gamma_gamma, number of repeat buyers left out of the
    Gamma-Gamma fit because their mean repeat spend is not positive). Both
    fitted models carry ``diagnostics_`` (degenerate fits are kept and flagged).
    """
    if model not in PURCHASE_MODELS:
        raise PersonalizeError(f"unknown purchase model {model!r}; choose from {', '.join(PURCHASE_MODELS)}")
    bg = PURCHASE_MODELS[model](penalizer=penalizer).fit(summary)
    gg, left_out = fit_spend(summary, penalizer)
    return bg, gg, left_out


def fit_spend(summary: pd.DataFrame, penalizer: float = 0.0) -> tuple[GammaGammaModel, int]:
    """Gamma-Gamma on the one-time buyers and the repeat buyers with a positive mean spend; (model, repeat
    buyers left out)."""
    rep = summary["frequency"].to_numpy() > 0
    ok = ~rep | (summary["monetary_value"].to_numpy() > 0)
    return GammaGammaModel(penalizer=penalizer).fit(summary.loc[ok]), int((~ok).sum())


#: the holdout :func:`customer_view` chooses the purchase model on: a third of the history, 4 to 26 weeks
_HOLDOUT_MIN_DAYS, _HOLDOUT_MAX_DAYS = 28, 182
#: customers sampled for that comparison (seeded), so that large tables stay fast
SELECTION_CUSTOMERS = 50_000
#: the values of ``clv_status``
CLV_STATUSES = ("ok", "degenerate", "unavailable")

# The steps of the CLV columns, shared by :func:`customer_view` and the Spark path
# (:func:`personalize.spark.features.customer_view`), which only differ in where the data lives.

#: ``orders(keep)``: the order-level arrays (customer codes into the sorted ids, ids, day numbers, amounts), in
#: the order of ``ProfileArrays`` (customer, then time), of the customers whose code is True in ``keep`` (all
#: customers when ``keep`` is None)
OrderArrays = Callable[[np.ndarray | None], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def selection_sample(n_customers: int) -> np.ndarray | None:
    """The customers (a boolean mask over the codes) the purchase models are ranked on; None: all of them."""
    if n_customers <= SELECTION_CUSTOMERS:
        return None
    keep = np.zeros(n_customers, dtype=bool)
    keep[np.random.default_rng(0).choice(n_customers, SELECTION_CUSTOMERS, replace=False)] = True
    return keep


def rank_purchase_models(clv_model: str, *, cal_day: int, first_day: int, n_customers: int,
                         orders: OrderArrays) -> tuple[list[str], dict]:
    """The purchase models to try, best first, and the record of how that order was found.

    ``cal_day`` is the last day number of the history, ``first_day`` the first
    order's; ``orders`` gives the order-level arrays (see :data:`OrderArrays`) of
    the :func:`selection_sample` (asked for only when there is a holdout to rank on).
    """
    if clv_model != "auto":
        if clv_model not in PURCHASE_MODELS:
            raise PersonalizeError(f"clv_model must be 'auto' or one of {', '.join(PURCHASE_MODELS)}, "
                                   f"got {clv_model!r}")
        return [clv_model], {"status": "given", "chosen": clv_model}
    names = list(PURCHASE_MODELS)
    history = cal_day - first_day + 1
    hold = int(min(_HOLDOUT_MAX_DAYS, max(_HOLDOUT_MIN_DAYS, history // 3)))
    if history < 3 * hold:
        return names, {"status": "skipped", "reason": f"history of {history} days is too short for a holdout of "
                                                      f"{hold} days (needs {3 * hold})", "ranking": names}
    codes, ids, day, amount = orders(selection_sample(n_customers))
    try:
        summary = summary_from_arrays(codes, ids, day, amount, cal_day=cal_day - hold, hold_day=cal_day,
                                      time_unit="W")
        record, _ = compare_purchase_models(summary, names)
    except (ConvergenceError, DataError) as exc:
        return names, {"status": "skipped", "reason": f"holdout comparison failed: {exc}", "ranking": names}
    record.update(status="ok", holdout_days=hold, customers=int(len(summary)),
                  calibration_end=summary.attrs["calibration_end"], holdout_end=summary.attrs["holdout_end"])
    return list(record["ranking"]), record


def _rank_purchase_models(a, cal_day: int, clv_model: str) -> tuple[list[str], dict]:
    """:func:`rank_purchase_models` on the ``ProfileArrays`` ``a``."""
    def orders(keep):
        codes, day, amount = a.order_cust, a.order_ts // _NS_DAY, a.order_amount
        if keep is not None:
            sel = keep[codes]
            codes, day, amount = codes[sel], day[sel], amount[sel]
        return codes, a.ids, day, amount

    return rank_purchase_models(clv_model, cal_day=cal_day, first_day=int(a.order_ts.min() // _NS_DAY),
                                n_customers=len(a.ids), orders=orders)


def fit_ranked_purchase_model(summary: pd.DataFrame, ranking: Sequence[str], selection: dict) -> BGNBDModel:
    """The first model of ``ranking`` that is not degenerate when fitted on ``summary`` (else the first one
    fitted); ``selection`` gets ``used`` (and why, when it is not the one the holdout chose). Raises the first
    ConvergenceError when none can be fitted."""
    bg, first, failures, failed = None, None, [], set()
    for name in ranking:
        try:
            m = PURCHASE_MODELS[name]().fit(summary)
        except ConvergenceError as exc:
            failures.append(exc)
            failed.add(name)
            continue
        first = first or m
        if m.diagnostics_["status"] == "ok":
            bg = m
            break
    if first is None:
        raise failures[0]
    bg = bg or first
    selection["used"] = bg.model_name
    if selection.get("chosen") not in (None, bg.model_name):
        selection["reason"] = (selection.get("reason", "") + f"; on all the data {selection['chosen']} is "
                               f"{'not fitted' if selection['chosen'] in failed else 'degenerate'}: "
                               f"{bg.model_name} is used")
    return bg


def clv_scores(bg: BGNBDModel, gg: GammaGammaModel, summary: pd.DataFrame, *, horizon_days: float,
               annual_discount_rate: float) -> dict[str, np.ndarray]:
    """p_alive, expected_purchases (next ``horizon_days``), expected_spend and clv (monthly steps discounted at
    ``annual_discount_rate``) of every row of the weekly ``summary``; not finite -> NaN for the last two."""
    h = horizon_days / 7.0
    step = 365.25 / 12.0 / 7.0
    monthly = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
    spend_summary = summary.assign(monetary_value=np.clip(summary["monetary_value"].to_numpy(), 0.0, None))
    spend = gg.expected_spend(spend_summary)
    value = discounted_clv(bg, gg, spend_summary, horizon=h, step=step, discount_rate=monthly).to_numpy()
    return {"p_alive": bg.p_alive(summary), "expected_purchases": bg.expected_purchases(h, summary),
            "expected_spend": np.where(np.isfinite(spend), spend, np.nan),
            "clv": np.where(np.isfinite(value), value, np.nan)}


def clv_fit_status(bg: BGNBDModel, gg: GammaGammaModel, ranking: Sequence[str],
                   lost_alive: Callable[[], int]) -> tuple[str, list[str], bool]:
    """(status, notes, withhold p_alive) of fitted models: "degenerate" when either fit is.

    ``lost_alive()`` counts the customers of the Lost segment with p_alive above
    0.95 (asked for only when the purchase fit is degenerate, for the note).
    """
    status, notes, withhold = "ok", [], False
    if bg.diagnostics_["status"] != "ok":
        status, withhold = "degenerate", True
        msg = "; ".join(i["message"] for i in bg.diagnostics_["issues"])
        lost = lost_alive()
        extra = f" (it called {lost:,} customers of the Lost segment alive)" if lost else ""
        others = [k for k in ranking if k != bg.model_name]
        tried = f"; {', '.join(others)} too" if others else ""
        notes.append(f"p_alive withheld: {msg}{extra}{tried}. clv and expected_purchases still use the "
                     "fitted purchase rates")
    if gg.diagnostics_["status"] != "ok":
        status = "degenerate"
        notes.append("; ".join(i["message"] for i in gg.diagnostics_["issues"]))
    return status, notes, withhold


def clv_model_attrs(attrs: dict, bg: BGNBDModel, gg: GammaGammaModel, left_out: int, *, horizon_days: float,
                    annual_discount_rate: float) -> None:
    """``clv_models`` and ``clv_diagnostics`` of the fitted models, into ``attrs``."""
    attrs["clv_models"] = {"model": bg.model_name, "purchase": bg.params_, bg.model_name: bg.params_,
                           "gamma_gamma": gg.params_, "time_unit": "W", "horizon_days": horizon_days,
                           "annual_discount_rate": annual_discount_rate, "gamma_gamma_left_out": left_out}
    attrs["clv_diagnostics"] = {"purchase": bg.diagnostics_, "spend": gg.diagnostics_}


def clv_unavailable(attrs: dict, notes: list[str], exc: Exception, *, stacklevel: int = 2) -> None:
    """Record (and warn) that no CLV model could be fitted."""
    attrs["clv_error"] = str(exc)
    notes.append(f"CLV model not fitted: {exc}")
    warnings.warn(f"CLV model not fitted: {exc}", RuntimeWarning, stacklevel=stacklevel + 1)


def simple_clv_attrs(attrs: dict, notes: list[str], simple_attrs: dict) -> None:
    """``clv_simple`` (from :func:`simple_clv`'s attrs) into ``attrs``, its note into ``notes``."""
    attrs["clv_simple"] = {k: simple_attrs.get(k) for k in SIMPLE_CLV_ATTRS}
    if simple_attrs.get("note"):
        notes.append(f"clv_simple: {simple_attrs['note']}")


def simple_clv_failed(attrs: dict, notes: list[str], exc: DataError) -> None:
    attrs["clv_simple_error"] = str(exc)
    notes.append(str(exc))


def clv_outcome(attrs: dict, status: str, notes: list[str]) -> str | None:
    """``clv_status`` and ``clv_notes`` into ``attrs``; returns the ``clv_note`` of every row (None: no note)."""
    attrs["clv_status"] = status
    attrs["clv_notes"] = notes
    return " | ".join(notes) if notes else None


def customer_view(data: History, as_of: DateLike, *, items: pd.DataFrame | None = None,
                  customers: pd.DataFrame | None = None,
                  rfm_thresholds: dict | None = None, rfm_ties: str = "mid",
                  segment_rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
                  lifecycle: LifecycleConfig | None = None, tiers: TierConfig | None = None,
                  clv: bool = True, clv_horizon_days: float = 365.0,
                  annual_discount_rate: float = 0.10, simple_period_days: float = 365.0,
                  clv_model: str = "auto", personas: Personas | None = None) -> pd.DataFrame:
    """Everything known about each customer as of ``as_of`` (strictly before it).

    Columns: the :func:`profiles` columns; ``R``, ``F``, ``M``, ``FM``,
    ``rfm``, ``segment``; ``expected_gap_days``, ``rhythm_ratio``,
    ``lifecycle``; ``tier``, ``tier_level``, ``tier_since``, ``t12m_spend``,
    ``t12m_orders``, ``next_tier``, ``spend_to_next_tier``,
    ``orders_to_next_tier``; with ``clv``: ``p_alive``,
    ``expected_purchases`` (next ``clv_horizon_days``), ``expected_spend``
    (per purchase), ``clv`` (BG/NBD x Gamma-Gamma, monthly steps discounted
    at ``annual_discount_rate``) and ``clv_simple`` (:func:`simple_clv`
    with ``simple_period_days``, one period); ``persona`` and
    ``persona_description`` with a fitted ``personas``; ``region`` and
    ``consent_*`` from the customers table.

    The purchase model (``clv_model``) is "bgnbd", "mbgnbd" or "auto": both
    are fitted on the history up to a holdout (a third of the history, 4 to
    26 weeks; at most 50,000 sampled customers) and ranked by how well they
    predict its repeat purchases, degenerate fits last
    (:func:`~personalize.analytics.clv.compare_purchase_models`); the best
    one that is not degenerate on all the data is used.

    CLV knows when it fails. ``clv_status`` (one value for every row) is "ok",
    "degenerate" (a fit converged to a degenerate optimum, see
    :func:`~personalize.analytics.clv.fit_diagnostics`: with no drop-out
    found, ``p_alive`` is withheld (NaN) because it would be about 1 for
    everyone; ``clv`` and ``expected_purchases`` still come from the purchase
    rates) or "unavailable" (no model could be fitted, e.g. no repeat
    purchases: a warning is issued and the columns are NaN); ``clv_note`` says
    what went wrong in words (also when ``clv_simple`` had to shorten its
    period or could not be computed), None when nothing did. ``attrs`` hold
    ``clv_status``, ``clv_notes`` (a list), ``clv_models`` (the fitted
    parameters and the model used), ``clv_selection`` (the holdout
    comparison), ``clv_diagnostics``, ``clv_simple`` (period, retention) and,
    on failure, ``clv_error`` / ``clv_simple_error``.
    """
    a = prepare_arrays(data, as_of)
    prof = build_profiles(data, as_of, items=items, customers=customers, arrays=a)
    scores = rfm_scores(prof, thresholds=rfm_thresholds, ties=rfm_ties)
    seg = assign_segments(scores, prof, rules=segment_rules)
    life = lifecycle_stages(prof, lifecycle)
    tier = membership_tiers(data, as_of, tiers, arrays=a)
    view = pd.concat([prof, scores, seg, life, tier], axis=1)
    attrs = {"as_of": prof.attrs["as_of"], "default_gap_days": life.attrs.get("default_gap_days")}

    if clv:
        _add_clv(view, attrs, data, as_of, a, clv_model=clv_model, clv_horizon_days=clv_horizon_days,
                 annual_discount_rate=annual_discount_rate, simple_period_days=simple_period_days)

    if personas is not None:
        if not hasattr(personas, "centers_"):
            personas.fit(view)
        lab = personas.predict(view)
        view["persona"] = lab.to_numpy()
        view["persona_description"] = pd.Series(
            np.asarray(personas.descriptions_, dtype=object)[lab.to_numpy()], index=view.index,
            dtype="str")

    cust_t = optional_table(data, "customers", customers)
    if cust_t is not None:
        extra = [c for c in ("region", "consent_email", "consent_sms", "consent_personalization")
                 if c in cust_t.columns]
        if extra:
            ct = cust_t.drop_duplicates("customer_id").set_index("customer_id")[extra]
            ct.index = ct.index.astype("str")
            view = view.join(ct, how="left")
    view.attrs = attrs
    return view


def _add_clv(view: pd.DataFrame, attrs: dict, data, as_of, a, *, clv_model: str, clv_horizon_days: float,
             annual_discount_rate: float, simple_period_days: float) -> None:
    """The CLV columns, their status and notes (see :func:`customer_view`), in place."""
    n = len(view)
    for col in ("p_alive", "expected_purchases", "expected_spend", "clv", "clv_simple"):
        view[col] = np.full(n, np.nan)
    notes: list[str] = []
    status = "unavailable"
    try:
        cal_day = int((a.as_of.value - 1) // _NS_DAY)
        summary = summary_from_arrays(a.order_cust, a.ids, a.order_ts // _NS_DAY,
                                      a.order_amount, cal_day=cal_day, time_unit="W")
        ranking, selection = _rank_purchase_models(a, cal_day, clv_model)
        attrs["clv_selection"] = selection
        bg = fit_ranked_purchase_model(summary, ranking, selection)
        gg, left_out = fit_spend(summary)
        scores = clv_scores(bg, gg, summary, horizon_days=clv_horizon_days,
                            annual_discount_rate=annual_discount_rate)
        for col, values in scores.items():
            view[col] = values
        p_alive = scores["p_alive"]
        status, fit_notes, withhold = clv_fit_status(
            bg, gg, ranking,
            lambda: int(((view["segment"] == "Lost") & (p_alive > 0.95)).sum()) if "segment" in view else 0)
        notes += fit_notes
        if withhold:
            view["p_alive"] = np.nan
        clv_model_attrs(attrs, bg, gg, left_out, horizon_days=clv_horizon_days,
                        annual_discount_rate=annual_discount_rate)
    except (ConvergenceError, DataError) as exc:
        clv_unavailable(attrs, notes, exc, stacklevel=3)
    try:
        simple = simple_clv(data, as_of=as_of, period_days=simple_period_days, arrays=a)
        view["clv_simple"] = simple["clv"].to_numpy()
        simple_clv_attrs(attrs, notes, simple.attrs)
    except DataError as exc:
        simple_clv_failed(attrs, notes, exc)
    note = clv_outcome(attrs, status, notes)
    view["clv_status"] = pd.Series([status] * n, index=view.index, dtype=object)
    view["clv_note"] = pd.Series([note] * n, index=view.index, dtype=object)
    clv_dtypes(view)


def clv_dtypes(view: pd.DataFrame) -> pd.DataFrame:
    """``clv_status`` and ``clv_note`` as categoricals (status over :data:`CLV_STATUSES`), in place: the
    dtypes of :func:`customer_view`, also for a view collected from Spark."""
    def values(col):
        return [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v)
                for v in view[col].tolist()]

    if "clv_status" in view.columns:
        view["clv_status"] = pd.Categorical(values("clv_status"), categories=list(CLV_STATUSES))
    if "clv_note" in view.columns:
        view["clv_note"] = pd.Series(values("clv_note"), index=view.index, dtype="category")
    return view


def customer_record(view: pd.DataFrame, customer_id: str) -> dict:
    """One customer of :func:`customer_view` as a JSON-ready dict (NaN -> None, times -> ISO).

    Raises UnknownIdError when the customer has no row (never bought before
    the view's ``as_of``).
    """
    cid = str(customer_id)
    try:
        row = view.loc[cid]
    except KeyError:
        raise UnknownIdError(f"unknown customer {cid!r}: no purchase before "
                             f"{view.attrs.get('as_of', 'the cutoff')}") from None
    if isinstance(row, pd.DataFrame):  # duplicated index: impossible for customer_view output
        row = row.iloc[0]
    out = {"customer_id": cid, "as_of": view.attrs.get("as_of")}
    out.update({str(k): json_scalar(v) for k, v in row.items()})
    return out
