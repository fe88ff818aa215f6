"""Point-in-time training sets for churn and purchase-propensity models.

A *snapshot* at a cutoff ``c`` (a timestamp; "as of c" means data strictly
before ``c``) holds one row per **eligible** customer, i.e. one who bought at
least once before ``c``:

* **features** from transactions with ``timestamp < c`` only
  (:func:`personalize.churn.features.churn_features`: rhythm, recent windows,
  spend trend, BG/NBD outputs; plus, when ``profiles=True`` and the analytics
  module provides it, the extra profile columns such as category and channel
  shares);
* **label** from the window ``c <= timestamp < c + horizon``: for churn,
  ``1`` = no purchase in that window; for a :class:`PurchaseTarget`, ``1`` =
  bought the target category / items in it.

A user-facing inclusive date ("as of 1997-09-30", i.e. including that day)
means the cutoff is the next midnight: ``cutoff = date + 1 day``;
:func:`cutoff_from_as_of` does that conversion.

Two modes
---------
*Evaluation* (``mode="evaluation"``): features at each cutoff and labels from
the following horizon; every label window must be closed, i.e. lie inside the
data (``c + horizon <= data_end``, where ``data_end`` is midnight after the
last transaction day unless given). Score held-out customers
(customer-level folds, :mod:`personalize.churn.evaluate`) or a later cutoff.

*Production* (:func:`production_cutoffs` + :func:`scoring_set`): train on the
latest cutoffs whose label window has closed (``c <= data_end - horizon``,
spaced ``spacing_days`` apart), then score every customer with features as of
``data_end`` ("today"); those customers have no label yet.

No leakage by construction: features read ``timestamp < c``, labels read
``[c, c + horizon)``; appending data at or after ``c + horizon`` changes
neither (a test checks this).
"""

from __future__ import annotations

from collections.abc import Sequence

from dataclasses import dataclass, field
from typing import Literal, TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.analytics.profiles import profiles
from personalize.churn.features import (DEFAULT_WINDOWS, churn_features, to_timestamp,
                                        transactions_frame, window_selector, point_in_time, align_mask)
from personalize.errors import DataError

if TYPE_CHECKING:
    from personalize.data import DateLike, History

__all__ = ["PurchaseTarget", "TrainingSet", "snapshot", "training_set", "production_cutoffs",
           "scoring_set", "cutoff_from_as_of", "data_end", "labels"]


@dataclass(frozen=True)
class PurchaseTarget:
    """Propensity target: buys any of ``items`` or anything in ``category`` (needs items.category).

    Give one or both; a transaction matches when its item is listed or its
    category equals ``category``.
    """

    category: str | None = None
    items: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.category is None and not self.items:
            raise DataError("PurchaseTarget needs a category or a list of items")
        if self.items is not None and not isinstance(self.items, tuple):
            object.__setattr__(self, "items", tuple(str(i) for i in self.items))

    @property
    def name(self) -> str:
        parts = []
        if self.category is not None:
            parts.append(f"category={self.category}")
        if self.items:
            parts.append(f"items={','.join(self.items[:3])}{'...' if len(self.items) > 3 else ''}")
        return "purchase(" + ";".join(parts) + ")"

    def to_dict(self) -> dict:
        return {"category": self.category, "items": list(self.items) if self.items else None}

    @classmethod
    def from_dict(cls, d: dict | None) -> "PurchaseTarget | None":
        if not d:
            return None
        return cls(category=d.get("category"), items=tuple(d["items"]) if d.get("items") else None)

    def mask(self, data: History) -> np.ndarray:
        """Boolean array over the transactions rows of ``data`` marking target purchases."""
        tx = transactions_frame(data)
        m = np.zeros(len(tx), dtype=bool)
        if self.items:
            if "item_id" not in tx.columns:
                raise DataError("required column is missing", table="transactions", column="item_id")
            m |= tx["item_id"].isin(list(self.items)).to_numpy()
        if self.category is not None:
            items = getattr(data, "items", None)
            if items is None or "category" not in items.columns:
                raise DataError("a category target needs an items table with a category column",
                                table="items", column="category")
            known = set(items["category"].dropna().astype(str))
            if str(self.category) not in known:
                raise DataError(f"unknown category {self.category!r}; known: {sorted(known)[:10]}",
                                table="items", column="category")
            cat_items = items.loc[items["category"].astype("object") == self.category, "item_id"]
            m |= tx["item_id"].isin(cat_items.tolist()).to_numpy()
        return m


Target = Literal["churn"] | PurchaseTarget


@dataclass
class TrainingSet:
    """Stacked snapshots: features ``X``, labels ``y`` (int8), and each row's customer and cutoff."""

    X: pd.DataFrame
    y: np.ndarray | None
    customer_id: np.ndarray
    cutoff: np.ndarray            # datetime64[ns] per row
    horizon_days: float
    target: str = "churn"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def feature_names(self) -> list[str]:
        return list(self.X.columns)

    @property
    def cutoffs(self) -> list[pd.Timestamp]:
        return [pd.Timestamp(c) for c in _sets.unique(self.cutoff)]

    def subset(self, rows: np.ndarray) -> "TrainingSet":
        rows = np.asarray(rows)
        return TrainingSet(self.X.iloc[rows], None if self.y is None else self.y[rows],
                           self.customer_id[rows], self.cutoff[rows], self.horizon_days, self.target,
                           dict(self.meta))


def cutoff_from_as_of(as_of: DateLike) -> pd.Timestamp:
    """An inclusive as-of *date* -> the cutoff (next midnight): 1997-09-30 -> 1997-10-01 00:00."""
    return to_timestamp(as_of, "as_of").normalize() + pd.Timedelta(days=1)


def data_end(data: History) -> pd.Timestamp:
    """Midnight after the last transaction day (the exclusive end of the data)."""
    tx = transactions_frame(data)
    if len(tx) == 0:
        raise DataError("no transactions", table="transactions")
    return pd.Timestamp(tx["timestamp"].max()).normalize() + pd.Timedelta(days=1)


def labels(data: History, cutoff: pd.Timestamp, horizon_days: float, customer_ids: np.ndarray, *,
           target: Target = "churn", target_mask: np.ndarray | None = None) -> np.ndarray:
    """Label of each customer from the window ``[cutoff, cutoff + horizon)`` (int8)."""
    tx = transactions_frame(data)
    end = cutoff + pd.Timedelta(days=float(horizon_days))
    sel = window_selector(data, cutoff, end)
    win = tx.iloc[sel] if isinstance(sel, slice) else tx.loc[sel]
    pt = point_in_time(data, cutoff, end)
    if pt is not None:
        win = pt.transactions  # as known at the window's end: later returns do not erase its purchases
    if target == "churn":
        bought = pd.Index(win["customer_id"].unique())
        return (~pd.Index(customer_ids).isin(bought)).astype(np.int8)
    if target_mask is None:
        target_mask = target.mask(data)
    tm = align_mask(pt, target_mask[sel])
    bought = pd.Index(win["customer_id"].to_numpy()[tm]).unique()
    return pd.Index(customer_ids).isin(bought).astype(np.int8)


def _with_profiles(data: History, cutoff: pd.Timestamp, feats: pd.DataFrame) -> pd.DataFrame:
    """Add the analytics profile columns not already covered (numeric only)."""
    prof = profiles(data, cutoff)
    skip = {"recency_days", "tenure_days", "orders", "lines", "purchase_days", "monetary",
            "ipt_mean_days", "ipt_std_days", "spend_recent", "spend_previous"}
    extra = [c for c in prof.columns
             if c not in skip and c not in feats.columns and pd.api.types.is_numeric_dtype(prof[c])
             and not pd.api.types.is_bool_dtype(prof[c])]
    if not extra:
        return feats
    add = prof[extra].reindex(feats.index).astype(np.float64)
    add.columns = [f"profile_{c}" for c in extra]
    return pd.concat([feats, add], axis=1)


def snapshot(data: History, cutoff: DateLike, *, horizon_days: float = 90.0, target: Target = "churn",
             with_labels: bool = True, windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True,
             profiles: bool = False, end: DateLike | None = None, target_mask: np.ndarray | None = None) -> TrainingSet:
    """One snapshot at ``cutoff`` (see module docstring).

    ``with_labels=True`` requires the label window to be closed:
    ``cutoff + horizon_days <= end`` (``end`` defaults to :func:`data_end`).
    """
    cut = to_timestamp(cutoff, "cutoff")
    if horizon_days <= 0:
        raise DataError(f"horizon_days must be > 0, got {horizon_days}")
    if target != "churn" and not isinstance(target, PurchaseTarget):
        raise DataError(f"target must be 'churn' or a PurchaseTarget, got {target!r}")
    if with_labels:
        stop = to_timestamp(end, "end") if end is not None else data_end(data)
        if cut + pd.Timedelta(days=float(horizon_days)) > stop:
            raise DataError(f"label window of cutoff {cut.date()} + {horizon_days:g} days ends after the data "
                            f"(which ends {stop.date()}); use an earlier cutoff or a shorter horizon")
    if isinstance(target, PurchaseTarget) and target_mask is None:
        target_mask = target.mask(data)
    feats = churn_features(data, cut, horizon_days=horizon_days, windows=windows, bgnbd=bgnbd,
                           target_mask=target_mask)
    if profiles:
        feats = _with_profiles(data, cut, feats)
    ids = feats.index.to_numpy(dtype=object)
    y = labels(data, cut, horizon_days, ids, target=target, target_mask=target_mask) if with_labels else None
    tname = "churn" if target == "churn" else target.name
    meta = {"bgnbd_params": feats.attrs.get("bgnbd_params"), "cutoffs": [cut.isoformat()]}
    if isinstance(target, PurchaseTarget):
        meta["target"] = target.to_dict()
    X = feats.reset_index(drop=True)
    X.attrs = {}
    return TrainingSet(X, y, ids, np.full(len(ids), cut.to_datetime64(), dtype="datetime64[ns]"),
                       float(horizon_days), tname, meta)


def training_set(data: History, cutoffs: Sequence[DateLike], *, horizon_days: float = 90.0, target: Target = "churn",
                 windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True, profiles: bool = False,
                 end: DateLike | None = None) -> TrainingSet:
    """Snapshots at several cutoffs stacked (evaluation mode: every label window must be closed)."""
    if isinstance(cutoffs, (str, pd.Timestamp)) or not hasattr(cutoffs, "__iter__"):
        cutoffs = [cutoffs]
    cuts = sorted(to_timestamp(c, "cutoff") for c in cutoffs)
    if not cuts:
        raise DataError("give at least one cutoff")
    tmask = target.mask(data) if isinstance(target, PurchaseTarget) else None
    snaps = [snapshot(data, c, horizon_days=horizon_days, target=target, windows=windows, bgnbd=bgnbd,
                      profiles=profiles, end=end, target_mask=tmask) for c in cuts]
    cols = snaps[-1].X.columns
    X = pd.concat([s.X.reindex(columns=cols) for s in snaps], ignore_index=True)
    meta = dict(snaps[-1].meta)
    meta["cutoffs"] = [c.isoformat() for c in cuts]
    meta["bgnbd_params_by_cutoff"] = [s.meta.get("bgnbd_params") for s in snaps]
    return TrainingSet(X, np.concatenate([s.y for s in snaps]),
                       np.concatenate([s.customer_id for s in snaps]),
                       np.concatenate([s.cutoff for s in snaps]), float(horizon_days), snaps[-1].target, meta)


def production_cutoffs(data: History, *, horizon_days: float = 90.0, n_cutoffs: int = 3,
                       spacing_days: float = 30.0, end: DateLike | None = None) -> list[pd.Timestamp]:
    """The latest ``n_cutoffs`` cutoffs whose label window has closed, ``spacing_days`` apart.

    The last one is ``end - horizon_days`` (midnight); earlier ones step back
    by ``spacing_days``. Cutoffs before the first transaction are dropped.
    """
    if n_cutoffs < 1:
        raise DataError(f"n_cutoffs must be >= 1, got {n_cutoffs}")
    if spacing_days <= 0:
        raise DataError(f"spacing_days must be > 0, got {spacing_days}")
    stop = to_timestamp(end, "end") if end is not None else data_end(data)
    last = (stop - pd.Timedelta(days=float(horizon_days))).normalize()
    tx = transactions_frame(data)
    first = pd.Timestamp(tx["timestamp"].min())
    cuts = [last - pd.Timedelta(days=float(spacing_days) * i) for i in range(n_cutoffs)]
    cuts = [c for c in cuts if c > first]
    if not cuts:
        raise DataError(f"the data ({first.date()} .. {stop.date()}) is shorter than the horizon of "
                        f"{horizon_days:g} days: no closed label window to train on")
    return sorted(cuts)


def scoring_set(data: History, as_of: DateLike | None = None, *, horizon_days: float = 90.0,
                windows: tuple[int, ...] = DEFAULT_WINDOWS, bgnbd: bool = True, profiles: bool = False,
                target: Target = "churn") -> TrainingSet:
    """Production scoring: features of every customer as of ``as_of`` (a cutoff; default
    :func:`data_end`), no labels."""
    cut = to_timestamp(as_of, "as_of") if as_of is not None else data_end(data)
    return snapshot(data, cut, horizon_days=horizon_days, target=target, with_labels=False,
                    windows=windows, bgnbd=bgnbd, profiles=profiles)
