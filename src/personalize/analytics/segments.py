"""Segmentation: RFM scores and named segments, lifecycle stages, membership tiers, personas.

Everything here works on the output of :func:`personalize.analytics.profiles`
(one row per customer, indexed by ``customer_id``) and is vectorized.

RFM scores (:func:`rfm_scores`)
    R, F and M are 1..5 (5 = best: most recent, most orders, most spend).
    By default each is a quantile score computed from the mid-rank of the
    customer's value: ``score = 1 + floor(5 * (midrank - 0.5) / n)``. Equal
    values always get equal scores (a tie block sits at its middle
    percentile), the five scores are equally filled when values are
    distinct, and small populations behave (one customer scores 3, two
    customers 2 and 4). Fixed cut points can replace the quantiles per
    dimension (``thresholds={"orders": [2, 3, 5, 10]}``: 1 order -> 1,
    2 -> 2, 3-4 -> 3, 5-9 -> 4, 10+ -> 5; for ``recency_days`` cut points
    count down: ``[30, 90, 180, 365]`` gives <= 30 days -> 5 ... > 365 -> 1).
    ``FM`` = round-half-up of (F + M) / 2.

Named segments (:func:`assign_segments`, :data:`DEFAULT_SEGMENT_RULES`)
    An ordered rule list, first match wins; each rule gives inclusive ranges
    on R, F, M, FM and optionally on the raw number of orders. The default
    covers every (R, FM) cell:

    ===================  ===========================================
    segment              rule (in this order)
    ===================  ===========================================
    New                  R 5, exactly 1 order
    Promising            R 4, exactly 1 order
    Champions            R 4-5, FM 4-5
    Loyal                R 3-5, FM 3-5
    Potential Loyalist   R 4-5, FM 1-2
    Need Attention       R 3, FM 1-2
    Can't Lose           R 1, FM 4-5
    At Risk              R 1-2, FM 3-5
    Hibernating          R 2, FM 1-2
    Lost                 R 1, FM 1-2
    ===================  ===========================================

Lifecycle (:func:`lifecycle_stages`, :class:`LifecycleConfig`)
    Each customer's expected gap between purchases is their own mean
    inter-purchase time shrunk toward the population default
    (``(g * own + w * default) / (g + w)`` with g gaps and prior weight w;
    one-time buyers get the default, the median of the repeat buyers' means),
    floored at ``min_gap_days``. With ``ratio = recency / expected gap``:
    ``new`` if the first purchase is at most ``new_days`` old, else
    ``active`` (ratio <= at_risk_ratio), ``at-risk`` (<= lapsed_ratio),
    ``lapsed`` (<= churned_ratio), ``churned``.

Membership tiers (:func:`membership_tiers`, :class:`TierConfig`)
    A tier is reached when trailing-window (default 365 days) spend and/or
    orders meet its thresholds (``mode="any"``: one of the thresholds it
    sets, ``"all"``: every one). The current tier is the highest one met in
    the window ending at ``as_of``; ``tier_since`` is the time of the order
    that last lifted the customer into it (the start of the current unbroken
    qualification; for a threshold-free base tier, the first purchase).

Personas (:class:`Personas`)
    k-means (scikit-learn) on standardized, log-scaled profile features, with
    a readable description of each cluster from its standout features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize.analytics.profiles import ProfileArrays, prepare_arrays
from personalize.errors import DataError, NotFittedError, PersonalizeError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = [
    "rfm_scores", "SegmentRule", "DEFAULT_SEGMENT_RULES", "SEGMENT_NAMES", "assign_segments",
    "LifecycleConfig", "LIFECYCLE_STAGES", "lifecycle_stages",
    "Tier", "TierConfig", "DEFAULT_TIERS", "membership_tiers", "Personas",
]

_NS_DAY = 86_400_000_000_000
_NS_SEC = 1_000_000_000

# ---------------------------------------------------------------------------
# RFM
# ---------------------------------------------------------------------------

_RFM_COLS = {"R": "recency_days", "F": "orders", "M": "monetary"}


def _quantile_score(values: np.ndarray, higher_is_better: bool, ties: str = "mid") -> np.ndarray:
    v = values if higher_is_better else -values
    n = len(v)
    if n == 0:
        return np.zeros(0, np.int8)
    if ties == "mid":
        pos = pd.Series(v).rank(method="average").to_numpy() - 0.5
    else:  # "low": a tie block takes the score of its lowest member
        pos = pd.Series(v).rank(method="min").to_numpy() - 1.0
    return np.clip(1 + np.floor(5.0 * pos / n), 1, 5).astype(np.int8)


def _threshold_score(values: np.ndarray, cuts: Sequence[float], higher_is_better: bool,
                     name: str) -> np.ndarray:
    c = np.asarray(cuts, dtype=np.float64)
    if c.shape != (4,) or not np.all(np.diff(c) > 0):
        raise PersonalizeError(f"RFM thresholds for {name!r} must be 4 increasing cut points, "
                               f"got {list(cuts)}")
    if higher_is_better:
        return (1 + np.searchsorted(c, values, side="right")).astype(np.int8)
    return (5 - np.searchsorted(c, values, side="left")).astype(np.int8)


def rfm_scores(profiles: pd.DataFrame, *,
               thresholds: Mapping[str, Sequence[float]] | None = None,
               ties: str = "mid") -> pd.DataFrame:
    """R, F, M (1..5), FM and the code "RFM" (e.g. "545") for each profile row.

    ``thresholds`` maps ``recency_days`` / ``orders`` / ``monetary`` to four
    cut points that replace the quantile score of that dimension. ``ties``:
    ``"mid"`` (default) scores a block of equal values at its middle
    percentile, ``"low"`` at its lowest (so the one-time buyers always get
    F = 1, and a population of one scores 1).
    """
    if ties not in ("mid", "low"):
        raise PersonalizeError(f"ties must be 'mid' or 'low', got {ties!r}")
    thresholds = dict(thresholds or {})
    unknown = set(thresholds) - set(_RFM_COLS.values())
    if unknown:
        raise PersonalizeError(f"RFM thresholds for unknown column(s) {sorted(unknown)}; use "
                               f"{sorted(_RFM_COLS.values())}")
    out = {}
    for letter, col in _RFM_COLS.items():
        if col not in profiles.columns:
            raise DataError("required column is missing", table="profiles", column=col)
        v = profiles[col].to_numpy(dtype=np.float64)
        if np.isnan(v).any():
            raise DataError("missing values", table="profiles", column=col,
                            rows=profiles.index[np.isnan(v)][:5].tolist())
        better_high = letter != "R"
        out[letter] = (_threshold_score(v, thresholds[col], better_high, col) if col in thresholds
                       else _quantile_score(v, better_high, ties))
    fm = np.floor((out["F"].astype(np.int16) + out["M"]) / 2.0 + 0.5).astype(np.int8)
    frame = pd.DataFrame({"R": out["R"], "F": out["F"], "M": out["M"], "FM": fm},
                         index=profiles.index)
    code = (frame["R"].astype("str") + frame["F"].astype("str") + frame["M"].astype("str"))
    frame["rfm"] = code
    return frame


@dataclass(frozen=True)
class SegmentRule:
    """One named-segment rule: inclusive (lo, hi) score ranges; ``None`` = any value."""

    name: str
    R: tuple[int, int] | None = None
    F: tuple[int, int] | None = None
    M: tuple[int, int] | None = None
    FM: tuple[int, int] | None = None
    orders: tuple[int, int] | None = None  # raw order count range

    def mask(self, scores: pd.DataFrame, orders: np.ndarray | None) -> np.ndarray:
        m = np.ones(len(scores), dtype=bool)
        for key in ("R", "F", "M", "FM"):
            rng = getattr(self, key)
            if rng is not None:
                v = scores[key].to_numpy()
                m &= (v >= rng[0]) & (v <= rng[1])
        if self.orders is not None:
            if orders is None:
                raise DataError(f"segment rule {self.name!r} needs the 'orders' column",
                                table="profiles", column="orders")
            m &= (orders >= self.orders[0]) & (orders <= self.orders[1])
        return m


DEFAULT_SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("New", R=(5, 5), orders=(1, 1)),
    SegmentRule("Promising", R=(4, 4), orders=(1, 1)),
    SegmentRule("Champions", R=(4, 5), FM=(4, 5)),
    SegmentRule("Loyal", R=(3, 5), FM=(3, 5)),
    SegmentRule("Potential Loyalist", R=(4, 5), FM=(1, 2)),
    SegmentRule("Need Attention", R=(3, 3), FM=(1, 2)),
    SegmentRule("Can't Lose", R=(1, 1), FM=(4, 5)),
    SegmentRule("At Risk", R=(1, 2), FM=(3, 5)),
    SegmentRule("Hibernating", R=(2, 2), FM=(1, 2)),
    SegmentRule("Lost", R=(1, 1), FM=(1, 2)),
)

SEGMENT_NAMES: tuple[str, ...] = ("Champions", "Loyal", "Potential Loyalist", "New", "Promising",
                                  "Need Attention", "At Risk", "Can't Lose", "Hibernating", "Lost")


def assign_segments(scores: pd.DataFrame, profiles: pd.DataFrame | None = None, *,
                    rules: Sequence[SegmentRule] = DEFAULT_SEGMENT_RULES,
                    default: str = "Other") -> pd.Series:
    """Segment name per row of ``scores`` (from :func:`rfm_scores`); first matching rule wins.

    ``profiles`` supplies ``orders`` for rules that use it. Rows no rule
    matches get ``default``.
    """
    if not rules:
        raise PersonalizeError("segment rules are empty")
    orders = None
    if profiles is not None and "orders" in profiles.columns:
        orders = profiles["orders"].reindex(scores.index).to_numpy()
    conds = [r.mask(scores, orders) for r in rules]
    names = np.array([r.name for r in rules] + [default], dtype=object)
    choice = np.select(conds, np.arange(len(rules)), default=len(rules))
    return pd.Series(names[choice], index=scores.index, name="segment", dtype="str")


# ---------------------------------------------------------------------------
# lifecycle
# ---------------------------------------------------------------------------

LIFECYCLE_STAGES: tuple[str, ...] = ("new", "active", "at-risk", "lapsed", "churned")


@dataclass(frozen=True)
class LifecycleConfig:
    """Thresholds of :func:`lifecycle_stages` (see the module docstring)."""

    new_days: float = 30.0
    at_risk_ratio: float = 1.5
    lapsed_ratio: float = 2.5
    churned_ratio: float = 4.0
    min_gap_days: float = 7.0
    prior_weight: float = 1.0
    default_gap_days: float | None = None  # None: median mean gap of repeat buyers
    fallback_gap_days: float = 90.0        # used when nobody has bought twice

    def __post_init__(self) -> None:
        if not (0 < self.at_risk_ratio < self.lapsed_ratio < self.churned_ratio):
            raise PersonalizeError("lifecycle ratios must satisfy 0 < at_risk_ratio < "
                                   "lapsed_ratio < churned_ratio")
        if self.new_days < 0 or self.min_gap_days <= 0 or self.prior_weight < 0:
            raise PersonalizeError("new_days must be >= 0, min_gap_days > 0, prior_weight >= 0")


def lifecycle_stages(profiles: pd.DataFrame, config: LifecycleConfig | None = None
                     ) -> pd.DataFrame:
    """Lifecycle stage per customer from their own purchase rhythm.

    Needs ``recency_days``, ``tenure_days``, ``ipt_mean_days`` and
    ``purchase_days`` from :func:`profiles`. Returns ``expected_gap_days``,
    ``rhythm_ratio`` (recency / expected gap) and ``lifecycle``.
    """
    cfg = config or LifecycleConfig()
    for col in ("recency_days", "tenure_days", "ipt_mean_days", "purchase_days"):
        if col not in profiles.columns:
            raise DataError("required column is missing", table="profiles", column=col)
    rec = profiles["recency_days"].to_numpy(np.float64)
    ten = profiles["tenure_days"].to_numpy(np.float64)
    own = profiles["ipt_mean_days"].to_numpy(np.float64)
    gaps = np.maximum(profiles["purchase_days"].to_numpy(np.float64) - 1.0, 0.0)
    has = gaps > 0
    if cfg.default_gap_days is not None:
        default = float(cfg.default_gap_days)
    elif has.any():
        default = float(np.median(own[has]))
    else:
        default = float(cfg.fallback_gap_days)
    own0 = np.where(has, own, 0.0)
    denom = gaps + cfg.prior_weight
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(denom > 0, (gaps * own0 + cfg.prior_weight * default) / denom, default)
    gap = np.maximum(gap, cfg.min_gap_days)
    ratio = rec / gap
    idx = np.select(
        [ten <= cfg.new_days, ratio <= cfg.at_risk_ratio, ratio <= cfg.lapsed_ratio,
         ratio <= cfg.churned_ratio],
        [0, 1, 2, 3], default=4)
    stages = np.array(LIFECYCLE_STAGES, dtype=object)[idx]
    out = pd.DataFrame({"expected_gap_days": gap, "rhythm_ratio": ratio,
                        "lifecycle": pd.Series(stages, dtype="str", index=profiles.index)},
                       index=profiles.index)
    out.attrs["default_gap_days"] = default
    return out


# ---------------------------------------------------------------------------
# membership tiers
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Tier:
    """A membership tier: thresholds on trailing-window spend and orders (``None`` = unused)."""

    name: str
    min_spend: float | None = None
    min_orders: int | None = None


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("Bronze"),
    Tier("Silver", min_spend=500.0, min_orders=6),
    Tier("Gold", min_spend=1500.0, min_orders=12),
    Tier("Platinum", min_spend=5000.0, min_orders=24),
)


@dataclass(frozen=True)
class TierConfig:
    """Tiers from lowest to highest, the trailing window and how thresholds combine."""

    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    window_days: float = 365.0
    mode: str = "any"  # "any": one of the tier's thresholds; "all": each of them

    def __post_init__(self) -> None:
        if not self.tiers:
            raise PersonalizeError("at least one tier is required")
        if self.mode not in ("any", "all"):
            raise PersonalizeError(f"tier mode must be 'any' or 'all', got {self.mode!r}")
        if self.window_days <= 0:
            raise PersonalizeError("tier window_days must be > 0")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise PersonalizeError(f"tier names must be unique, got {names}")
        open_tiers = [t.name for t in self.tiers[1:] if t.min_spend is None and t.min_orders is None]
        if open_tiers:
            raise PersonalizeError(f"only the lowest tier may have no thresholds: {open_tiers}")
        for attr in ("min_spend", "min_orders"):
            vals = [getattr(t, attr) for t in self.tiers if getattr(t, attr) is not None]
            if any(b < a for a, b in zip(vals, vals[1:])):
                raise PersonalizeError(f"tier {attr} thresholds must not decrease from one tier "
                                       f"to the next: {vals}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TierConfig":
        """From ``{"tiers": [{"name":..., "min_spend":..., "min_orders":...}], ...}``."""
        tiers = tuple(Tier(**t) for t in d.get("tiers", [])) or DEFAULT_TIERS
        return cls(tiers=tiers, window_days=float(d.get("window_days", 365.0)),
                   mode=str(d.get("mode", "any")))


def _qualifies(tier: Tier, spend: np.ndarray, orders: np.ndarray, mode: str) -> np.ndarray:
    tests = []
    if tier.min_spend is not None:
        tests.append(spend >= tier.min_spend - 1e-9)
    if tier.min_orders is not None:
        tests.append(orders >= tier.min_orders)
    if not tests:
        return np.ones(len(spend), dtype=bool)
    if mode == "any":
        return np.logical_or.reduce(tests)
    return np.logical_and.reduce(tests)


def membership_tiers(data: History, as_of: DateLike, config: TierConfig | None = None, *,
                     arrays: ProfileArrays | None = None) -> pd.DataFrame:
    """Current tier, the time it was reached, trailing spend/orders and distance to the next tier.

    ``data`` is a Dataset or a canonical transactions frame (only rows
    strictly before ``as_of`` are read). Customers who meet no tier (possible
    when the lowest tier has thresholds) get a missing tier.
    """
    cfg = config or TierConfig()
    a = arrays if arrays is not None else prepare_arrays(data, as_of)
    n = len(a.ids)
    w_sec = int(round(cfg.window_days * 86400))
    sec = a.order_ts // _NS_SEC
    smin = int(sec.min())
    span = int(sec.max()) - smin + w_sec + 2
    key = a.order_cust * np.int64(span) + (sec - smin)  # sorted: orders are by (customer, time)
    lo = np.searchsorted(key, key - w_sec, side="right")
    cstart = a.starts[a.order_cust]
    lo = np.maximum(lo, cstart)
    pos = np.arange(len(key))
    cs = np.r_[0.0, np.cumsum(a.order_amount)]
    s_after = cs[pos + 1] - cs[lo]
    n_after = pos + 1 - lo
    s_before = s_after - a.order_amount
    n_before = n_after - 1
    first = pos == cstart

    # now: window (as_of - W, as_of)
    now_sec = a.as_of.value // _NS_SEC
    in_now = sec > now_sec - w_sec
    s_now = np.bincount(a.order_cust[in_now], weights=a.order_amount[in_now], minlength=n)
    n_now = np.bincount(a.order_cust[in_now], minlength=n).astype(np.int64)

    level = np.full(n, -1, dtype=np.int64)
    since = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    for k, tier in enumerate(cfg.tiers):
        q_now = _qualifies(tier, s_now, n_now, cfg.mode)
        level = np.where(q_now, k, level)
    for k, tier in enumerate(cfg.tiers):
        sel = level == k
        if not sel.any():
            continue
        up = (_qualifies(tier, s_after, n_after, cfg.mode)
              & ~(_qualifies(tier, s_before, n_before, cfg.mode) & ~first))
        idx = np.where(up, pos, -1)
        last_up = np.maximum.reduceat(idx, a.starts) if len(idx) else np.zeros(0, np.int64)
        ok = sel & (last_up >= 0)
        since[ok] = a.order_ts[last_up[ok]]

    names = np.array([t.name for t in cfg.tiers] + [None], dtype=object)
    tier = pd.Series(names[np.where(level >= 0, level, len(cfg.tiers))], dtype="str")
    out = pd.DataFrame({
        "tier": tier.to_numpy(),
        "tier_level": level,
        "tier_since": since.view("datetime64[ns]"),  # int64 min is NaT: no tier
        "t12m_spend": s_now,
        "t12m_orders": n_now,
    }, index=pd.Index(a.ids, name="customer_id", dtype="str"))
    out["tier"] = out["tier"].astype("str")
    # distance to the next tier
    nxt = level + 1
    has_next = nxt < len(cfg.tiers)
    spend_gap = np.full(n, np.nan)
    order_gap = np.full(n, np.nan)
    next_name = np.full(n, None, dtype=object)
    for k, t in enumerate(cfg.tiers):
        m = has_next & (nxt == k)
        if not m.any():
            continue
        next_name[m] = t.name
        if t.min_spend is not None:
            spend_gap[m] = np.maximum(t.min_spend - s_now[m], 0.0)
        if t.min_orders is not None:
            order_gap[m] = np.maximum(t.min_orders - n_now[m], 0)
    out["next_tier"] = pd.Series(next_name, index=out.index, dtype="str")
    out["spend_to_next_tier"] = spend_gap
    out["orders_to_next_tier"] = order_gap
    out.attrs["window_days"] = cfg.window_days
    return out


# ---------------------------------------------------------------------------
# personas
# ---------------------------------------------------------------------------

# feature -> (log-scale?, phrase when high, phrase when low)
_PERSONA_FEATURES: dict[str, tuple[bool, str, str]] = {
    "recency_days": (True, "long since last purchase", "bought recently"),
    "orders": (True, "frequent buyers", "few orders"),
    "monetary": (True, "high total spend", "low total spend"),
    "aov": (True, "big baskets", "small baskets"),
    "tenure_days": (True, "long-standing customers", "newcomers"),
    "ipt_mean_days": (True, "long gaps between purchases", "short gaps between purchases"),
    "items_per_order": (True, "many items per order", "few items per order"),
    "trend": (False, "spending more lately", "spending less lately"),
    "discount_share": (False, "deal seekers", "rarely use discounts"),
    "return_rate": (False, "return a lot", "rarely return"),
}
DEFAULT_PERSONA_FEATURES = ("recency_days", "orders", "monetary", "aov", "tenure_days",
                            "ipt_mean_days", "trend", "discount_share")


class Personas:
    """k-means personas on standardized profile features, each with a readable description.

    Hyperparameters: ``n_clusters``; ``features`` (profile columns; columns
    missing or entirely NaN in the data are skipped); ``random_state``;
    ``n_init``; ``threshold`` (a feature is a standout when the cluster mean
    is at least this many standard deviations from the population);
    ``max_fit_rows`` (k-means is fitted on a random sample of at most this
    many customers; every customer is still assigned).

    Fitted: ``features_`` (used), ``medians_`` (NaN fill), ``means_``,
    ``scales_``, ``centers_`` (standardized), ``sizes_``, ``descriptions_``.
    """

    def __init__(self, *, n_clusters: int = 5,
                 features: Sequence[str] = DEFAULT_PERSONA_FEATURES,
                 random_state: int = 0, n_init: int = 4, threshold: float = 0.5,
                 max_fit_rows: int = 200_000):
        self.n_clusters = n_clusters
        self.features = features
        self.random_state = random_state
        self.n_init = n_init
        self.threshold = threshold
        self.max_fit_rows = max_fit_rows

    def _raw(self, profiles: pd.DataFrame, feats: Sequence[str]) -> np.ndarray:
        cols = []
        for f in feats:
            if f not in profiles.columns:
                raise DataError("persona feature is missing", table="profiles", column=f)
            v = profiles[f].to_numpy(np.float64)
            log = _PERSONA_FEATURES.get(f, (False, "", ""))[0]
            cols.append(np.sign(v) * np.log1p(np.abs(v)) if log else v)
        return np.column_stack(cols) if cols else np.zeros((len(profiles), 0))

    def _transform(self, profiles: pd.DataFrame) -> np.ndarray:
        X = self._raw(profiles, self.features_)
        X = np.where(np.isnan(X), self.medians_, X)
        return (X - self.means_) / self.scales_

    def fit(self, profiles: pd.DataFrame) -> "Personas":
        from sklearn.cluster import KMeans

        if self.n_clusters < 1:
            raise PersonalizeError("n_clusters must be >= 1")
        if len(profiles) < self.n_clusters:
            raise DataError(f"{len(profiles)} customers cannot form {self.n_clusters} personas",
                            table="profiles")
        feats = [f for f in self.features
                 if f in profiles.columns and profiles[f].notna().any()]
        if not feats:
            raise DataError(f"none of the persona features {list(self.features)} is available",
                            table="profiles")
        self.features_ = tuple(feats)
        X = self._raw(profiles, feats)
        self.medians_ = np.nanmedian(X, axis=0)
        X = np.where(np.isnan(X), self.medians_, X)
        self.means_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scales_ = np.where(sd > 0, sd, 1.0)
        Z = (X - self.means_) / self.scales_
        rng = np.random.default_rng(self.random_state)
        fit_rows = Z if len(Z) <= self.max_fit_rows else Z[rng.choice(len(Z), self.max_fit_rows,
                                                                      replace=False)]
        km = KMeans(n_clusters=self.n_clusters, n_init=self.n_init,
                    random_state=self.random_state).fit(fit_rows)
        self.centers_ = km.cluster_centers_
        labels = self._assign(Z)
        self.sizes_ = np.bincount(labels, minlength=self.n_clusters)
        # describe clusters by the mean z-score of their members
        means = np.vstack([Z[labels == k].mean(axis=0) if self.sizes_[k] else np.zeros(Z.shape[1])
                           for k in range(self.n_clusters)])
        self.cluster_means_ = means
        self.descriptions_ = [self._describe(means[k]) for k in range(self.n_clusters)]
        return self

    def _assign(self, Z: np.ndarray) -> np.ndarray:
        c = self.centers_
        d = (c * c).sum(axis=1)[None, :] - 2.0 * (Z @ c.T)  # |z|^2 is the same for every center
        return d.argmin(axis=1)

    def _describe(self, z: np.ndarray) -> str:
        order = np.argsort(-np.abs(z))
        parts = []
        for j in order[:3]:
            if abs(z[j]) < self.threshold:
                break
            f = self.features_[j]
            hi, lo = _PERSONA_FEATURES.get(f, (False, f"high {f}", f"low {f}"))[1:]
            parts.append(f"{hi if z[j] > 0 else lo} ({z[j]:+.1f} sd)")
        return ", ".join(parts) if parts else "close to the average customer"

    def predict(self, profiles: pd.DataFrame) -> pd.Series:
        """Persona number (0..n_clusters-1) of each profile row."""
        if not hasattr(self, "centers_"):
            raise NotFittedError("Personas is not fitted: call fit() first")
        return pd.Series(self._assign(self._transform(profiles)), index=profiles.index,
                         name="persona")

    def describe(self) -> pd.DataFrame:
        """One row per persona: size, description and the mean z-score of each feature."""
        if not hasattr(self, "centers_"):
            raise NotFittedError("Personas is not fitted: call fit() first")
        df = pd.DataFrame(self.cluster_means_, columns=[f"z_{f}" for f in self.features_])
        df.insert(0, "description", self.descriptions_)
        df.insert(0, "customers", self.sizes_)
        df.index.name = "persona"
        return df

    def to_dict(self) -> dict:
        """JSON-able fitted state."""
        if not hasattr(self, "centers_"):
            raise NotFittedError("Personas is not fitted: call fit() first")
        return {"features": list(self.features_), "medians": self.medians_.tolist(),
                "means": self.means_.tolist(), "scales": self.scales_.tolist(),
                "centers": self.centers_.tolist(), "sizes": self.sizes_.tolist(),
                "cluster_means": self.cluster_means_.tolist(),
                "descriptions": list(self.descriptions_),
                "hyperparameters": {"n_clusters": self.n_clusters,
                                    "features": list(self.features),
                                    "random_state": self.random_state, "n_init": self.n_init,
                                    "threshold": self.threshold,
                                    "max_fit_rows": self.max_fit_rows}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Personas":
        m = cls(**d["hyperparameters"])
        m.features_ = tuple(d["features"])
        for k in ("medians", "means", "scales", "centers", "cluster_means"):
            setattr(m, f"{k}_", np.asarray(d[k], dtype=np.float64))
        m.sizes_ = np.asarray(d["sizes"], dtype=np.int64)
        m.descriptions_ = list(d["descriptions"])
        return m
