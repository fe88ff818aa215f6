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
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize.analytics._frames import optional_table
from personalize.analytics.clv import (BGNBDModel, GammaGammaModel,
                                       discounted_clv, simple_clv, summary_from_arrays)
from personalize.analytics.profiles import prepare_arrays, profiles as build_profiles
from personalize.analytics.segments import (DEFAULT_SEGMENT_RULES, LifecycleConfig, Personas,
                                            SegmentRule, TierConfig, assign_segments,
                                            lifecycle_stages, membership_tiers, rfm_scores)
from personalize._json import json_scalar
from personalize.errors import ConvergenceError, DataError, UnknownIdError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = ["customer_view", "customer_record", "fit_clv"]

_NS_DAY = 86_400_000_000_000


def fit_clv(summary: pd.DataFrame, *, penalizer: float = 0.0
            ) -> tuple[BGNBDModel, GammaGammaModel, int]:
    """Fit BG/NBD on every row and Gamma-Gamma on repeat buyers with a positive mean spend.

    Returns (bgnbd, gamma_gamma, number of repeat buyers left out of the
    Gamma-Gamma fit because their mean repeat spend is not positive).
    """
    bg = BGNBDModel(penalizer=penalizer).fit(summary)
    rep = summary["frequency"].to_numpy() > 0
    ok = ~rep | (summary["monetary_value"].to_numpy() > 0)
    gg = GammaGammaModel(penalizer=penalizer).fit(summary.loc[ok])
    return bg, gg, int((~ok).sum())


def customer_view(data: History, as_of: DateLike, *, items: pd.DataFrame | None = None,
                  customers: pd.DataFrame | None = None,
                  rfm_thresholds: dict | None = None, rfm_ties: str = "mid",
                  segment_rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
                  lifecycle: LifecycleConfig | None = None, tiers: TierConfig | None = None,
                  clv: bool = True, clv_horizon_days: float = 365.0,
                  annual_discount_rate: float = 0.10, simple_period_days: float = 365.0,
                  personas: Personas | None = None) -> pd.DataFrame:
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

    When a CLV model cannot be fitted (for instance no repeat purchases), a
    warning is issued, its columns are NaN and ``attrs["clv_error"]`` says
    why; everything else is still returned. ``attrs["clv_models"]`` holds
    the fitted parameters.
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
        n = len(view)
        for col in ("p_alive", "expected_purchases", "expected_spend", "clv", "clv_simple"):
            view[col] = np.full(n, np.nan)
        try:
            cal_day = int((a.as_of.value - 1) // _NS_DAY)
            summary = summary_from_arrays(a.order_cust, a.ids, a.order_ts // _NS_DAY,
                                          a.order_amount, cal_day=cal_day, time_unit="W")
            bg, gg, left_out = fit_clv(summary)
            h = clv_horizon_days / 7.0
            step = 365.25 / 12.0 / 7.0
            monthly = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
            view["p_alive"] = bg.p_alive(summary)
            view["expected_purchases"] = bg.expected_purchases(h, summary)
            spend_summary = summary.assign(
                monetary_value=np.clip(summary["monetary_value"].to_numpy(), 0.0, None))
            view["expected_spend"] = gg.expected_spend(spend_summary)
            view["clv"] = discounted_clv(bg, gg, spend_summary, horizon=h, step=step,
                                         discount_rate=monthly).to_numpy()
            attrs["clv_models"] = {"bgnbd": bg.params_, "gamma_gamma": gg.params_,
                                        "time_unit": "W", "horizon_days": clv_horizon_days,
                                        "annual_discount_rate": annual_discount_rate,
                                        "gamma_gamma_left_out": left_out}
        except (ConvergenceError, DataError) as exc:
            attrs["clv_error"] = str(exc)
            warnings.warn(f"CLV model not fitted: {exc}", RuntimeWarning, stacklevel=2)
        try:
            view["clv_simple"] = simple_clv(data, as_of=as_of, period_days=simple_period_days,
                                            arrays=a)["clv"].to_numpy()
        except DataError as exc:
            attrs["clv_simple_error"] = str(exc)

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
