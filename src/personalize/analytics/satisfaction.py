"""Satisfaction and feedback analytics: NPS, CSAT, ratings, complaints, drivers, and per-customer feedback columns.

Everything is point in time: ``as_of`` reads the feedback given strictly
before it, with complaints resolved at or after ``as_of`` still open
(:meth:`personalize.data.Dataset.until`).

Definitions
-----------
=================  ==========================================================
NPS                % promoters (9-10) - % detractors (0-6) of the NPS answers,
                   -100..100; the interval is the adjusted Wald interval of
                   Rocks (2016): add 3 answers (3/4 promoter, 3/4 detractor,
                   3/2 passive), then NPS' +- z * sqrt((p' + d' - NPS'^2) / n')
CSAT               % of CSAT answers that are 4 or 5 (satisfied), with a Wilson
                   interval; ``csat_mean`` is the mean answer (1-5)
rating             mean star rating (1-5) with a t interval; ``rating_low``:
                   share of 1-2 star ratings
normalized score   (score - lowest) / (highest - lowest) of its scale, 0..1
detractor answer   NPS 0-6, CSAT 1-2 or 1-2 stars
open complaint     a complaint not resolved before ``as_of``
=================  ==========================================================

Per-customer columns (:func:`feedback_columns`, added to
:func:`personalize.analytics.profiles` when the dataset has feedback):
``feedback_responses`` (scored answers), ``last_score``, ``last_score_scale``,
``last_score_norm``, ``mean_score_norm``, ``score_trend`` (last normalized
score minus the mean of the earlier ones; NaN with one answer), ``detractor``
(the last answer is a detractor answer), ``complaints``, ``open_complaints``,
``days_since_complaint``.

Groups with fewer than ``min_responses`` answers are flagged ``small`` (and
each measure with fewer, ``nps_small``, ``csat_small``, ``rating_small``) and
listed in the warnings: their intervals are wide and their order unreliable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from personalize.analytics._frames import as_timestamp
from personalize.data.schema import SCORE_SCALES
from personalize.errors import DataError

if TYPE_CHECKING:
    from personalize.data import Dataset, DateLike

__all__ = ["nps", "csat", "star_rating", "feedback_columns", "satisfaction_table", "scores_by", "complaint_table",
           "drivers", "satisfaction_report", "normalized_scores", "detractor_answers", "DIMENSIONS",
           "DEFAULT_MIN_RESPONSES", "FEEDBACK_COLUMNS"]

_NS_DAY = 86_400_000_000_000
DEFAULT_MIN_RESPONSES = 30
#: the groupings of :func:`satisfaction_table`
DIMENSIONS = ("overall", "segment", "tier", "lifecycle", "channel", "month")
#: the per-customer columns :func:`feedback_columns` returns
FEEDBACK_COLUMNS = ("feedback_responses", "last_score", "last_score_scale", "last_score_norm", "mean_score_norm",
                    "score_trend", "detractor", "complaints", "open_complaints", "days_since_complaint")
_DETRACTOR_MAX = {"nps": 6.0, "csat": 2.0, "stars": 2.0}


# --------------------------------------------------------------------------- single-group statistics
def _z(level: float) -> float:
    if not 0 < level < 1:
        raise DataError(f"confidence level must be between 0 and 1, got {level}")
    return float(stats.norm.ppf(0.5 + level / 2))


def nps(scores: Sequence[float] | np.ndarray, *, level: float = 0.95) -> dict:
    """Net Promoter Score of 0-10 answers: counts, NPS (-100..100) and its adjusted Wald interval."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    n = int(len(s))
    prom, det = int((s >= 9).sum()), int((s <= 6).sum())
    out = {"n": n, "promoters": prom, "passives": n - prom - det, "detractors": det, "nps": None,
           "nps_low": None, "nps_high": None}
    if n == 0:
        return out
    z = _z(level)
    n2 = n + 3.0
    p2, d2 = (prom + 0.75) / n2, (det + 0.75) / n2
    v2 = p2 - d2
    se = math.sqrt(max(p2 + d2 - v2 * v2, 0.0) / n2)
    raw = (prom - det) / n
    # the interval is centred on the adjusted estimate; with a single answer it can miss the raw one: widen it
    out.update(nps=100.0 * raw, nps_low=100.0 * min(raw, max(-1.0, v2 - z * se)),
               nps_high=100.0 * max(raw, min(1.0, v2 + z * se)))
    return out


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def csat(scores: Sequence[float] | np.ndarray, *, level: float = 0.95) -> dict:
    """CSAT of 1-5 answers: % satisfied (4-5) with a Wilson interval, and the mean answer."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    n = int(len(s))
    k = int((s >= 4).sum())
    out = {"n": n, "satisfied": k, "csat": None, "csat_low": None, "csat_high": None, "csat_mean": None}
    if n == 0:
        return out
    lo, hi = _wilson(k, n, _z(level))
    out.update(csat=100.0 * k / n, csat_low=100.0 * lo, csat_high=100.0 * hi, csat_mean=float(s.mean()))
    return out


def star_rating(scores: Sequence[float] | np.ndarray, *, level: float = 0.95) -> dict:
    """Mean star rating (1-5) with a t interval, and the share of 1-2 star ratings."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    n = int(len(s))
    out = {"n": n, "rating": None, "rating_low_ci": None, "rating_high_ci": None, "rating_low": None}
    if n == 0:
        return out
    m = float(s.mean())
    out.update(rating=m, rating_low=float((s <= 2).mean()))
    if n > 1:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * float(s.std(ddof=1)) / math.sqrt(n)
        out.update(rating_low_ci=max(1.0, m - half), rating_high_ci=min(5.0, m + half))
    return out


# --------------------------------------------------------------------------- feedback as of a date
def _feedback_as_of(data, as_of) -> tuple[pd.DataFrame | None, pd.Timestamp]:
    cut = as_timestamp(as_of, "as_of")
    if isinstance(data, pd.DataFrame):
        raise DataError("satisfaction analytics need a Dataset with a feedback table", table="feedback")
    fb = data.until(cut).feedback if callable(getattr(data, "until", None)) else getattr(data, "feedback", None)
    return fb, cut


def normalized_scores(fb: pd.DataFrame) -> np.ndarray:
    """Each row's score on 0..1 of its scale (NaN without a score)."""
    s = fb["score"].to_numpy(dtype=np.float64, na_value=np.nan)
    scale = fb["scale"].astype("object").to_numpy()
    lo = np.full(len(fb), np.nan)
    hi = np.full(len(fb), np.nan)
    for name, (a, b) in SCORE_SCALES.items():
        m = scale == name
        lo[m], hi[m] = a, b
    return (s - lo) / (hi - lo)


def detractor_answers(fb: pd.DataFrame) -> np.ndarray:
    """True where a row is a detractor answer (NPS 0-6, CSAT 1-2, 1-2 stars)."""
    s = fb["score"].to_numpy(dtype=np.float64, na_value=np.nan)
    scale = fb["scale"].astype("object").to_numpy()
    out = np.zeros(len(fb), bool)
    for name, cap in _DETRACTOR_MAX.items():
        out |= (scale == name) & (s <= cap)
    return out


def open_complaints_mask(fb: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """Complaints made before ``as_of`` and not resolved before it."""
    comp = (fb["kind"].astype("object") == "complaint").to_numpy() & (fb["timestamp"] < as_of).to_numpy()
    if "resolved_at" in fb.columns:
        closed_at = fb["resolved_at"]
        closed = (closed_at < as_of).fillna(False).to_numpy(dtype=bool).copy()
        if "resolved" in fb.columns:  # resolved without a time: counted as resolved when made
            closed |= fb["resolved"].to_numpy(dtype=bool) & closed_at.isna().to_numpy()
    elif "resolved" in fb.columns:
        closed = fb["resolved"].to_numpy(dtype=bool)
    else:
        closed = np.zeros(len(fb), bool)
    return comp & ~closed


def feedback_columns(feedback: pd.DataFrame | None, as_of: DateLike,
                     customer_ids: Sequence[str] | np.ndarray | None = None) -> pd.DataFrame | None:
    """The per-customer feedback columns (module docstring) from feedback rows, as of ``as_of``.

    ``feedback`` should already be cut at ``as_of`` (``dataset.until(as_of).feedback``); rows on or after it
    are ignored anyway. Indexed by ``customer_id`` (``customer_ids`` when given, else everyone with feedback).
    """
    if feedback is None:
        return None
    cut = as_timestamp(as_of, "as_of")
    fb = feedback.loc[(feedback["timestamp"] < cut).to_numpy()]
    ids = (pd.Index(np.asarray(customer_ids, dtype=object), dtype="str") if customer_ids is not None
           else pd.Index(sorted(fb["customer_id"].unique().tolist()), dtype="str"))
    n = len(ids)
    pos = ids.get_indexer(fb["customer_id"].to_numpy(dtype=object))
    fb = fb.loc[pos >= 0]
    pos = pos[pos >= 0]
    norm = normalized_scores(fb)
    scored = np.isfinite(norm)
    sp, sn = pos[scored], norm[scored]
    ts = fb["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    cols: dict[str, Any] = {}
    cnt = np.bincount(sp, minlength=n)
    cols["feedback_responses"] = cnt.astype(np.int64)
    # rows are time-sorted: the last scored row of each customer
    last = np.full(n, -1, np.int64)
    idx = np.flatnonzero(scored)
    np.maximum.at(last, sp, idx)
    has = last >= 0
    score = fb["score"].to_numpy(dtype=np.float64, na_value=np.nan)
    scale = fb["scale"].astype("object").to_numpy()
    # a customer without a scored row points at an appended empty entry (also when no row at all is before
    # as_of: a survey programme younger than the cutoff)
    pick = np.where(has, last, len(fb))

    def at_last(values: np.ndarray, none):
        """Each customer's value on her last scored row (``none`` without one)."""
        return np.append(values, np.array([none], dtype=values.dtype))[pick]

    cols["last_score"] = at_last(score, np.nan)
    cols["last_score_scale"] = pd.array(at_last(scale, None), dtype="str")
    cols["last_score_norm"] = at_last(norm, np.nan)
    tot = np.bincount(sp, weights=sn, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["mean_score_norm"] = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
        earlier = (tot - np.nan_to_num(cols["last_score_norm"])) / np.maximum(cnt - 1, 1)
    cols["score_trend"] = np.where(cnt > 1, cols["last_score_norm"] - earlier, np.nan)
    det = detractor_answers(fb)
    cols["detractor"] = at_last(det, False)
    comp = (fb["kind"].astype("object") == "complaint").to_numpy()
    cols["complaints"] = np.bincount(pos[comp], minlength=n).astype(np.int64)
    cols["open_complaints"] = np.bincount(pos[open_complaints_mask(fb, cut)], minlength=n).astype(np.int64)
    last_c = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last_c, pos[comp], ts[comp])
    cols["days_since_complaint"] = np.where(last_c > np.iinfo(np.int64).min, (cut.value - last_c) / _NS_DAY, np.nan)
    out = pd.DataFrame(cols, index=ids.rename("customer_id"))
    out.attrs["as_of"] = cut.isoformat()
    return out


# --------------------------------------------------------------------------- group tables
def _scored_rows(fb: pd.DataFrame) -> pd.DataFrame:
    keep = fb["score"].notna().to_numpy()
    return fb.loc[keep].reset_index(drop=True)


def _group_keys(data, fb: pd.DataFrame, by: str, cut: pd.Timestamp | None) -> pd.Series:
    if by == "overall":
        return pd.Series("all", index=fb.index, dtype="str")
    if by == "month":
        return fb["timestamp"].dt.to_period("M").astype(str)
    if by == "channel":
        if "channel" not in fb.columns:
            raise DataError("the feedback table has no channel column", table="feedback", column="channel")
        return fb["channel"].astype("object").fillna("unknown").astype("str")
    if by in ("segment", "tier", "lifecycle"):
        view = _customer_labels(data, cut)
        lab = view[by].reindex(fb["customer_id"].to_numpy(dtype=object)).astype("object")
        return pd.Series(lab.fillna("no purchase").to_numpy(), index=fb.index, dtype="str")
    raise DataError(f"unknown grouping {by!r}; expected one of {', '.join(DIMENSIONS)}")


def _customer_labels(data, cut: pd.Timestamp) -> pd.DataFrame:
    """Segment, tier and lifecycle of every customer who bought before ``cut``."""
    import warnings

    from personalize.analytics.customers import customer_view

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return customer_view(data, cut, clv=False)[["segment", "tier", "lifecycle"]]


def satisfaction_table(data: Dataset, by: str = "overall", *, as_of: DateLike | None = None,
                       start: DateLike | None = None, min_responses: int = DEFAULT_MIN_RESPONSES,
                       level: float = 0.95, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """NPS, CSAT and star rating per group of ``by`` (one of :data:`DIMENSIONS`), for feedback in
    ``[start, as_of)``; segment, tier and lifecycle are the customers' as of ``as_of``.

    Columns: ``group``, ``responses``, the :func:`nps`, :func:`csat` and :func:`star_rating` fields (``nps_n``,
    ``csat_n``, ``rating_n`` count each kind of answer), ``small`` (fewer than ``min_responses`` answers).
    """
    fb, cut = _feedback_as_of(data, _default_as_of(data, as_of))
    if fb is None:
        raise DataError("the dataset has no feedback table (load one with --feedback)", table="feedback")
    if start is not None:
        fb = fb.loc[(fb["timestamp"] >= as_timestamp(start, "start")).to_numpy()]
    fb = _scored_rows(fb)
    if labels is None and by in ("segment", "tier", "lifecycle"):
        labels = _customer_labels(data, cut)
    out = scores_by(fb, by, labels=labels, min_responses=min_responses, level=level)
    out.attrs.update(by=by, as_of=cut.isoformat(), min_responses=int(min_responses))
    return out


def scores_by(feedback: pd.DataFrame, by: str = "overall", *, labels: pd.DataFrame | None = None,
              min_responses: int = DEFAULT_MIN_RESPONSES, level: float = 0.95) -> pd.DataFrame:
    """The :func:`satisfaction_table` of feedback rows (any frame with the feedback columns); ``labels``
    (indexed by customer_id, with ``segment`` / ``tier`` / ``lifecycle``) for those groupings."""
    fb = _scored_rows(feedback)
    if by in ("segment", "tier", "lifecycle"):
        if labels is None or by not in labels.columns:
            raise DataError(f"grouping by {by} needs the customers' {by} labels", column="by")
        lab = labels[by].reindex(fb["customer_id"].to_numpy(dtype=object)).astype("object")
        keys = pd.Series(lab.fillna("no purchase").to_numpy(), index=fb.index, dtype="str")
    else:
        keys = _group_keys(None, fb, by, None)
    scale = fb["scale"].astype("object").to_numpy()
    score = fb["score"].to_numpy(dtype=np.float64)
    rows = []
    for g, ix in pd.Series(np.arange(len(fb))).groupby(keys.to_numpy(), sort=True):
        ix = ix.to_numpy()
        sc, sl = score[ix], scale[ix]
        a = nps(sc[sl == "nps"], level=level)
        b = csat(sc[sl == "csat"], level=level)
        c = star_rating(sc[sl == "stars"], level=level)
        row = {"group": str(g), "responses": int(len(ix)),
               **{("nps_n" if k == "n" else k): v for k, v in a.items()},
               **{("csat_n" if k == "n" else k): v for k, v in b.items()},
               **{("rating_n" if k == "n" else k): v for k, v in c.items()}}
        row["small"] = bool(len(ix) < min_responses)
        for m, k in (("nps", "nps_n"), ("csat", "csat_n"), ("rating", "rating_n")):
            row[f"{m}_small"] = bool(0 < row[k] < min_responses)
        rows.append(row)
    out = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    if by == "month" and len(out):
        out = out.sort_values("group", kind="stable").reset_index(drop=True)
    elif len(out):
        out = out.sort_values(["responses", "group"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return out


_TABLE_COLUMNS = ["group", "responses", "nps_n", "promoters", "passives", "detractors", "nps", "nps_low", "nps_high",
                  "csat_n", "satisfied", "csat", "csat_low", "csat_high", "csat_mean", "rating_n", "rating",
                  "rating_low_ci", "rating_high_ci", "rating_low", "small", "nps_small", "csat_small",
                  "rating_small"]


def _default_as_of(data, as_of) -> pd.Timestamp:
    if as_of is not None:
        return as_timestamp(as_of, "as_of")
    ends = []
    for t, col in ((getattr(data, "transactions", None), "timestamp"), (getattr(data, "feedback", None), "timestamp"),
                   (getattr(data, "feedback", None), "resolved_at")):
        if t is not None and col in t.columns and len(t) and t[col].notna().any():
            ends.append(pd.Timestamp(t[col].max()))
    if not ends:
        raise DataError("no data to report on", table="feedback")
    return max(ends).normalize() + pd.Timedelta(days=1)


def complaint_table(data: Dataset, by: str = "month", *, as_of: DateLike | None = None,
                    start: DateLike | None = None, min_responses: int = DEFAULT_MIN_RESPONSES) -> pd.DataFrame:
    """Complaints per group (``month``, ``channel``, ``category`` or ``overall``): count, complaints per 1,000
    orders (month, channel, overall: orders in the same group), resolved share, open now, days to resolution
    (median, mean, 90th percentile, of the resolved ones)."""
    cut = _default_as_of(data, as_of)
    fb, cut = _feedback_as_of(data, cut)
    if fb is None:
        raise DataError("the dataset has no feedback table (load one with --feedback)", table="feedback")
    lo = as_timestamp(start, "start") if start is not None else None
    if lo is not None:
        fb = fb.loc[(fb["timestamp"] >= lo).to_numpy()]
    c = fb.loc[(fb["kind"].astype("object") == "complaint").to_numpy()].reset_index(drop=True)
    if by not in ("month", "channel", "category", "overall"):
        raise DataError(f"unknown complaint grouping {by!r}; expected month, channel, category or overall")
    if by == "category" and "category" not in c.columns:
        raise DataError("the feedback table has no category column", table="feedback", column="category")
    key = {"month": lambda d, t: d[t].dt.to_period("M").astype(str),
           "channel": lambda d, t: d["channel"].astype("object").fillna("unknown").astype("str")
           if "channel" in d.columns else pd.Series("unknown", index=d.index),
           "category": lambda d, t: d["category"].astype("object").fillna("unknown").astype("str"),
           "overall": lambda d, t: pd.Series("all", index=d.index)}[by]
    openm = open_complaints_mask(c, cut)
    days = ((c["resolved_at"] - c["timestamp"]).dt.total_seconds() / 86400.0).to_numpy() \
        if "resolved_at" in c.columns else np.full(len(c), np.nan)
    orders = None
    if by in ("month", "channel", "overall"):
        tx = data.until(cut).transactions
        if lo is not None:
            tx = tx.loc[(tx["timestamp"] >= lo).to_numpy()]
        if by == "channel" and "channel" not in tx.columns:
            orders = None
        else:
            oid = tx["order_id"] if "order_id" in tx.columns else (tx["customer_id"].astype(str) + "|"
                                                                  + tx["timestamp"].astype(str))
            first = tx.assign(_o=oid.to_numpy()).drop_duplicates("_o")
            orders = key(first, "timestamp").value_counts()
    rows = []
    keys = key(c, "timestamp") if len(c) else pd.Series([], dtype="str")
    groups = sorted(set(keys.tolist()) | (set(orders.index.tolist()) if orders is not None and by != "channel"
                                          else set()))
    for g in groups:
        m = (keys == g).to_numpy() if len(c) else np.zeros(0, bool)
        d = days[m]
        d = d[np.isfinite(d)]
        n = int(m.sum())
        o = int(orders.get(g, 0)) if orders is not None else None
        rows.append({"group": g, "complaints": n, "orders": o,
                     "per_1000_orders": (1000.0 * n / o) if o else None,
                     "resolved": int(n - openm[m].sum()), "open": int(openm[m].sum()),
                     "resolved_share": (float((n - openm[m].sum()) / n) if n else None),
                     "median_days_to_resolve": float(np.median(d)) if len(d) else None,
                     "mean_days_to_resolve": float(d.mean()) if len(d) else None,
                     "p90_days_to_resolve": float(np.quantile(d, 0.9)) if len(d) else None,
                     "small": bool(n < min_responses)})
    out = pd.DataFrame(rows)
    if by != "month" and len(out):
        out = out.sort_values(["complaints", "group"], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.attrs.update(by=by, as_of=cut.isoformat())
    return out


def drivers(data: Dataset, *, as_of: DateLike | None = None, start: DateLike | None = None,
            min_count: int = 10) -> pd.DataFrame:
    """What goes with low scores: per channel, item, item category and complaint category, the answers
    (``responses``), mean normalized score (0-100), share of detractor answers, its lift (the share over
    the share the group's own mix of scales would have at the overall rate of each scale: NPS detractors
    0-6 are more common than CSAT 1-2), and the complaints (open ones too); groups with fewer than
    ``min_count`` answers (complaints, for complaint categories) are left out. Sorted by lift, worst first
    within each dimension."""
    cut = _default_as_of(data, as_of)
    fb, cut = _feedback_as_of(data, cut)
    if fb is None:
        raise DataError("the dataset has no feedback table (load one with --feedback)", table="feedback")
    if start is not None:
        fb = fb.loc[(fb["timestamp"] >= as_timestamp(start, "start")).to_numpy()]
    fb = fb.reset_index(drop=True)
    norm = normalized_scores(fb)
    det = detractor_answers(fb)
    scored = np.isfinite(norm)
    comp = (fb["kind"].astype("object") == "complaint").to_numpy()
    base = float(det[scored].mean()) if scored.any() else float("nan")
    # detractor answers are more common on some scales (NPS 0-6 vs CSAT 1-2): a group's lift compares it with
    # what its own mix of scales would give at the overall rates
    scale = fb["scale"].astype("object").to_numpy()
    expect = np.full(len(fb), np.nan)
    for name in _DETRACTOR_MAX:
        on = scored & (scale == name)
        if on.any():
            expect[on] = det[on].mean()
    openm = open_complaints_mask(fb, cut)
    dims: list[tuple[str, pd.Series]] = []
    if "channel" in fb.columns:
        dims.append(("channel", fb["channel"].astype("object")))
    if "item_id" in fb.columns:
        dims.append(("item", fb["item_id"].astype("object")))
        items = getattr(data, "items", None)
        if items is not None and "category" in items.columns:
            cat = pd.Series(items["category"].to_numpy(dtype=object), index=items["item_id"].to_numpy(dtype=object))
            dims.append(("item_category", pd.Series(cat.reindex(fb["item_id"].to_numpy(dtype=object)).to_numpy(),
                                                    index=fb.index, dtype=object)))
    if "category" in fb.columns:
        dims.append(("complaint_category", fb["category"].astype("object").where(pd.Series(comp, index=fb.index))))
    rows = []
    for dim, key in dims:
        k = key.to_numpy(dtype=object)
        present = pd.notna(k)
        for g, ix in pd.Series(np.flatnonzero(present)).groupby(k[present], sort=True):
            ix = ix.to_numpy()
            sc = ix[scored[ix]]
            nc = int(comp[ix].sum())
            count = len(sc) if dim != "complaint_category" else nc
            if count < min_count:
                continue
            low = float(det[sc].mean()) if len(sc) else None
            exp = float(expect[sc].mean()) if len(sc) else None
            rows.append({"dimension": dim, "value": str(g), "responses": int(len(sc)),
                         "mean_score": float(100.0 * norm[sc].mean()) if len(sc) else None,
                         "low_share": low, "lift": (low / exp) if low is not None and exp and exp > 0 else None,
                         "complaints": nc, "open_complaints": int(openm[ix].sum())})
    out = pd.DataFrame(rows, columns=["dimension", "value", "responses", "mean_score", "low_share", "lift",
                                      "complaints", "open_complaints"])
    if len(out):
        out["_o"] = out["lift"].fillna(-1.0)
        out["_c"] = out["complaints"]
        out = (out.sort_values(["dimension", "_o", "_c", "value"], ascending=[True, False, False, True],
                               kind="stable").drop(columns=["_o", "_c"]).reset_index(drop=True))
    out.attrs.update(as_of=cut.isoformat(), overall_low_share=base, min_count=int(min_count))
    return out


def satisfaction_report(data: Dataset, *, as_of: DateLike | None = None, start: DateLike | None = None,
                        by: Sequence[str] = DIMENSIONS, min_responses: int = DEFAULT_MIN_RESPONSES,
                        level: float = 0.95, drivers_min_count: int = 10, top_drivers: int = 10) -> dict:
    """Everything ``personalize feedback report`` prints: satisfaction tables per grouping, complaints by month,
    channel and category, the drivers table (top ``top_drivers`` per dimension) and the small-group warnings."""
    cut = _default_as_of(data, as_of)
    fb, cut = _feedback_as_of(data, cut)
    if fb is None:
        raise DataError("the dataset has no feedback table (load one with --feedback)", table="feedback")
    bad = [b for b in by if b not in DIMENSIONS]
    if bad:
        raise DataError(f"unknown grouping(s) {bad}; expected {', '.join(DIMENSIONS)}")
    labels = _customer_labels(data, cut) if any(b in ("segment", "tier", "lifecycle") for b in by) else None
    tables = {b: satisfaction_table(data, b, as_of=cut, start=start, min_responses=min_responses, level=level,
                                    labels=labels) for b in by}
    complaints = {b: complaint_table(data, b, as_of=cut, start=start, min_responses=min_responses)
                  for b in ("overall", "month", "channel", "category")
                  if b != "category" or "category" in fb.columns}
    drv = drivers(data, as_of=cut, start=start, min_count=drivers_min_count)
    if top_drivers and len(drv):
        drv = drv.groupby("dimension", sort=False, group_keys=False).head(top_drivers).reset_index(drop=True)
    warnings = []
    for b, t in tables.items():
        for r in (t.to_dict("records") if len(t) else []):
            thin = [f"{m.upper() if m != 'rating' else 'rating'} from {r[m + '_n']}" for m in ("nps", "csat", "rating")
                    if r[f"{m}_small"]]
            if r["small"]:
                warnings.append(f"{b}: group {r['group']!r} has only {r['responses']} answers (< {min_responses}): "
                                "its scores are uncertain")
            elif thin:
                warnings.append(f"{b}: group {r['group']!r}: {', '.join(thin)} answers only (< {min_responses})")
    sub = fb.loc[(fb["timestamp"] >= as_timestamp(start, "start")).to_numpy()] if start is not None else fb
    return {"as_of": cut.isoformat(), "start": None if start is None else as_timestamp(start, "start").isoformat(),
            "responses": int(sub["score"].notna().sum()), "feedback_rows": int(len(sub)),
            "customers": int(sub["customer_id"].nunique()),
            "kinds": {str(k): int(v) for k, v in sub["kind"].value_counts().sort_index().items()},
            "satisfaction": tables, "complaints": complaints, "drivers": drv,
            "overall_low_share": drv.attrs.get("overall_low_share"), "min_responses": int(min_responses),
            "warnings": warnings}
