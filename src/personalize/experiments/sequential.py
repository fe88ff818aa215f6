"""Peeking: always-valid p-values from the mixture sequential probability ratio test (mSPRT).

Teams that look at a running test every day and stop when "it is
significant" inflate the false-positive rate of a fixed-horizon test far past
alpha (about 0.2-0.3 with daily looks over a month instead of 0.05). We offer
**always-valid p-values** (Johari, Koomen, Pekelis & Walsh, "Peeking at A/B
tests", KDD 2017; Robbins 1970 for the normal mixture), not a group-sequential
alpha-spending boundary, because

* they are valid whenever and however often one looks, with no plan of the
  number or timing of the looks (alpha spending needs the maximum sample size
  and information fractions fixed in advance, and daily looks with unequal
  traffic break that plan);
* they need only the current difference and its variance, so every readout
  can carry one (``p_always_valid``) without storing earlier looks;
* the price is power: at the planned sample size a fixed-horizon test rejects
  more often, so a team that does not peek should use the fixed-horizon p.

With ``d`` the difference of the arm means, ``V`` its variance
(``s1^2/n1 + s0^2/n0``) and a normal mixture ``N(0, tau^2)`` over the
effect, the mixture likelihood ratio against "no effect" is

``Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))``.

Under no effect ``Lambda`` is a non-negative martingale, so by Ville's
inequality ``P(Lambda ever >= 1/alpha) <= alpha``: ``p = min(1, 1 / Lambda)``
is valid at any stopping time, and the running minimum over the looks taken
(:func:`msprt_pvalues`) is the sequential p-value. ``tau`` is fixed before
the test: by default 0.1 standard deviations of the metric (``mixture_sd``),
a typical size of the effects retail promotions have; it is the scale of
effects the test is most sensitive to. The outcome variance is estimated from
the data (plug-in, asymptotically valid, as in Johari et al.).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sst

from personalize.data.campaign import CampaignData
from personalize.errors import DataError

__all__ = ["msprt_pvalues", "always_valid_p", "sequential_looks"]


def msprt_pvalues(diff, variance, tau) -> np.ndarray:
    """Always-valid p-values of a sequence of looks (last axis = looks): running min of ``min(1, 1/Lambda)``.

    ``diff``, ``variance`` and ``tau`` broadcast; ``variance`` must be positive.
    """
    d = np.asarray(diff, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau, dtype=np.float64) ** 2
    if np.any(~np.isfinite(v)) or np.any(v <= 0):
        raise DataError("mSPRT needs a positive, finite variance of the difference at every look")
    if np.any(~np.isfinite(t2)) or np.any(t2 <= 0):
        raise DataError("mSPRT mixture scale tau must be positive")
    log_lr = 0.5 * np.log(v / (v + t2)) + t2 * d ** 2 / (2.0 * v * (v + t2))
    p = np.exp(np.minimum(0.0, -log_lr))
    return np.minimum.accumulate(p, axis=-1) if p.ndim else p


def always_valid_p(diff: float, variance: float, tau: float) -> float:
    """The always-valid p-value of one look (``min(1, 1/Lambda)``)."""
    return float(msprt_pvalues(np.float64(diff), np.float64(variance), np.float64(tau)))


def sequential_looks(data, *, freq: str = "D", metric: str = "conversion", mixture_sd: float = 0.1,
                     campaign_id: str | None = None) -> pd.DataFrame:
    """Always-valid p-values at every look, one look per ``freq`` period of ``exposed_at``.

    Each look uses the exposures up to the end of its period (with their
    outcomes as recorded). Rows: look (period end), arm, n_treatment,
    n_control, diff, p_always_valid (running minimum over the looks so far)
    and p_fixed (the fixed-horizon Welch p at that look, for comparison: not
    valid when peeking). ``metric`` is ``conversion`` or ``revenue``.
    """
    if not isinstance(data, CampaignData):
        raise DataError(f"expected CampaignData, got {type(data).__name__}")
    if metric not in ("conversion", "revenue"):
        raise DataError(f"metric must be 'conversion' or 'revenue', got {metric!r}")
    camp = data.campaign(campaign_id)
    exp = camp.exposures
    col = "converted" if metric == "conversion" else "revenue"
    if col not in exp.columns:
        raise DataError(f"the exposures have no {col} column", table="exposures", column=col)
    y = exp[col].to_numpy(dtype=np.float64)
    if metric == "revenue":
        y = np.where(np.isnan(y) & ~exp.get("converted", pd.Series(False, index=exp.index)).to_numpy(bool), 0.0, y)
        if np.isnan(y).any():
            raise DataError("revenue missing for converted exposures", table="exposures", column="revenue")
    ctrl = camp.control_mask
    if not ctrl.any():
        raise DataError("no control group (exposures with an empty offer_id): no sequential test",
                        table="exposures", column="offer_id")
    try:
        period = exp["exposed_at"].dt.to_period(freq)
    except (ValueError, TypeError) as exc:
        raise DataError(f"freq {freq!r} is not a pandas period frequency ({exc})") from None
    looks = np.sort(period.unique())
    pos = np.searchsorted(looks, period.to_numpy())
    rows = []
    for arm in camp.treatment_names:
        trt = (exp["offer_id"] == arm).to_numpy()
        d_list, v_list, tau_list, info = [], [], [], []
        for k, look in enumerate(looks):
            upto = pos <= k
            y1, y0 = y[trt & upto], y[ctrl & upto]
            if len(y1) < 2 or len(y0) < 2:
                continue
            v = y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0)
            if v <= 0:
                continue
            sd = np.concatenate([y1, y0]).std(ddof=1)
            d_list.append(y1.mean() - y0.mean())
            v_list.append(v)
            tau_list.append(mixture_sd * sd)
            p_fixed = float(sst.ttest_ind(y1, y0, equal_var=False).pvalue)
            info.append((look.end_time.floor("s"), len(y1), len(y0), p_fixed))
        if not info:
            continue
        p_av = msprt_pvalues(np.array(d_list), np.array(v_list), np.array(tau_list))
        for (end, n1, n0, pf), d, p in zip(info, d_list, p_av):
            rows.append({"look": end, "arm": arm, "n_treatment": n1, "n_control": n0, "diff": float(d),
                         "p_always_valid": float(p), "p_fixed": pf})
    return pd.DataFrame(rows, columns=["look", "arm", "n_treatment", "n_control", "diff", "p_always_valid",
                                       "p_fixed"])
