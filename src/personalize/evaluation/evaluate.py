"""Fit recommenders on a split's training data and score them on its test period."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.errors import PersonalizeError
from personalize.evaluation.metrics import catalog_coverage, novelty, ranking_metrics
from personalize.evaluation.splits import TRACKS, Split
from personalize.recommenders.topk import bulk_scoring

COLUMNS = ["model", "track", "recall", "ndcg", "map", "precision", "hit_rate", "coverage", "novelty", "customers",
           "fit_seconds", "recommend_seconds"]
_EXCLUDE = {"all": None, "discovery": "purchased", "new_customers": None}


def recommendations_matrix(recs: pd.DataFrame, customer_ids: Sequence[str], item_vocab, k: int) -> np.ndarray:
    """Turn a ``recommend`` frame into an ``(n_customers, k)`` item-index matrix (rank order, ``-1`` padded).

    Rows follow ``customer_ids``; rows for customers missing from ``recs`` stay empty.
    """
    out = np.full((len(customer_ids), k), -1, dtype=np.int64)
    if len(recs) == 0:
        return out
    for col in ("customer_id", "item_id", "rank"):
        if col not in recs.columns:
            raise PersonalizeError(f"recommendations lack the column {col!r} (got {list(recs.columns)})")
    row = pd.Index(np.asarray(customer_ids, dtype=object)).get_indexer(recs["customer_id"].to_numpy(dtype=object))
    item = item_vocab.index(recs["item_id"].to_numpy(dtype=object))
    frame = pd.DataFrame({"row": row, "item": item, "rank": recs["rank"].to_numpy()})
    frame = frame[(frame["row"] >= 0) & (frame["item"] >= 0)].sort_values(["row", "rank"], kind="stable")
    pos = frame.groupby("row", sort=False).cumcount().to_numpy()
    keep = pos < k
    out[frame["row"].to_numpy()[keep], pos[keep]] = frame["item"].to_numpy()[keep]
    return out


def _named(models) -> dict[str, object]:
    if isinstance(models, Mapping):
        return dict(models)
    named: dict[str, object] = {}
    for m in models:
        base = getattr(m, "name", None) or type(m).__name__.lower()
        name, n = base, 2
        while name in named:
            name, n = f"{base}_{n}", n + 1
        named[name] = m
    return named


def _recommend(model, customer_ids: np.ndarray, k: int, exclude, batch_size: int) -> pd.DataFrame:
    parts = []
    for lo in range(0, len(customer_ids), batch_size):
        batch = [str(c) for c in customer_ids[lo:lo + batch_size]]
        with bulk_scoring():  # an offline batch: a model's own scorer may use every core
            parts.append(model.recommend(batch, k=k, exclude=exclude))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["customer_id", "item_id", "rank"])


def score_track(model, split: Split, track: str, k: int, *, batch_size: int = 1000) -> dict:
    """Metrics of an already fitted ``model`` on one track of ``split``."""
    customers = split.customers(track)
    t0 = time.perf_counter()
    recs = _recommend(model, customers, k, _EXCLUDE[track], batch_size)
    seconds = time.perf_counter() - t0
    rec = recommendations_matrix(recs, customers, split.item_vocab, k)
    per = ranking_metrics(rec, split.relevant(track), k=k)
    train = split.train
    buyers = np.bincount(
        _sets.unique(train.customer_idx.astype(np.int64) * len(train.item_vocab) + train.item_idx) % len(train.item_vocab),
        minlength=len(train.item_vocab))
    row = {name: float(v.mean()) if v.size else float("nan") for name, v in per.items()}
    row.update(coverage=catalog_coverage(rec, max(train.n_items, 1)),
               novelty=novelty(rec, buyers, max(train.n_customers, 1)),
               customers=len(customers), recommend_seconds=seconds)
    return row


def evaluate(models, split: Split, k: int = 10, tracks: Sequence[str] = TRACKS, *,
             include_new_customers: bool = True, fit: bool = True, batch_size: int = 1000) -> pd.DataFrame:
    """Fit each model on ``split.train`` and score it on the test period.

    ``models`` is a ``{name: recommender}`` dict or a list (named after their
    ``name`` attribute or class). Returns a tidy frame, one row per model and
    track, with columns ``model, track, recall, ndcg, map, precision, hit_rate,
    coverage, novelty, customers, fit_seconds, recommend_seconds`` (metrics at
    ``k``, averaged over the track's customers).

    Tracks: ``all`` (every test purchase counts; past items may be
    recommended, ``exclude=None``) and ``discovery`` (only items new to the
    customer count; ``exclude="purchased"``). Both are computed over customers
    with training history and at least one relevant test purchase. Customers
    new in the test period are excluded from both and, with
    ``include_new_customers``, scored in their own ``new_customers`` rows
    (which is how each model's cold-start answer performs).
    ``fit=False`` scores models that were already fitted on ``split.train``.
    """
    if k < 1:
        raise PersonalizeError(f"k must be at least 1, got {k}")
    for t in tracks:
        if t not in TRACKS:
            raise PersonalizeError(f"unknown track {t!r}; expected some of {', '.join(TRACKS)}")
    named = _named(models)
    if not named:
        raise PersonalizeError("no models to evaluate")
    all_tracks = list(tracks) + (["new_customers"] if include_new_customers and split.n_customers("new_customers")
                                 else [])
    rows = []
    for name, model in named.items():
        fit_seconds = float("nan")
        if fit:
            t0 = time.perf_counter()
            model.fit(split.train)
            fit_seconds = time.perf_counter() - t0
        for track in all_tracks:
            if split.n_customers(track) == 0:
                row = {c: float("nan") for c in COLUMNS[2:]}
                row["customers"] = 0
            else:
                row = score_track(model, split, track, k, batch_size=batch_size)
            rows.append({"model": name, "track": track, **row, "fit_seconds": fit_seconds})
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.attrs["k"] = k
    out.attrs["split"] = split.summary()
    return out
