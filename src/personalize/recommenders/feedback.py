"""What customers said about items, as a recommender needs it.

* **Never again.** An item a customer rated 1-2 stars (a ``rating`` or
  ``review`` on the ``stars`` scale, :data:`personalize.data.loyalty.STAR_DISLIKE_MAX`)
  is never recommended to that customer again, by any model, whatever the
  exclusion mode or the fallback stage (:func:`disliked_matrix`, kept by every
  fitted model as ``disliked_``; the serving runtime adds ratings posted since).
* **Average rating.** Each item's mean star rating and number of ratings
  (:func:`item_ratings`) go into the item catalog, so a
  :class:`~personalize.recommenders.filters.Filters` ``min_rating`` can leave
  out badly rated items.

Both read the dataset's feedback table as the dataset knows it (a time slice
only sees the ratings given before its end).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from personalize.data.loyalty import STAR_DISLIKE_MAX

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["star_ratings", "disliked_matrix", "item_ratings", "STAR_DISLIKE_MAX"]


def star_ratings(feedback: pd.DataFrame | None) -> pd.DataFrame | None:
    """The star ratings of items in a feedback table: customer_id, item_id, score (None when there are none)."""
    if feedback is None or not len(feedback) or "item_id" not in feedback.columns:
        return None
    m = ((feedback["scale"].astype("object") == "stars").to_numpy() & feedback["score"].notna().to_numpy()
         & feedback["item_id"].notna().to_numpy())
    if not m.any():
        return None
    return feedback.loc[m, ["customer_id", "item_id", "score"]].reset_index(drop=True)


def disliked_matrix(dataset: Dataset, customer_ids: np.ndarray, item_ids: np.ndarray) -> sp.csr_matrix | None:
    """Customers x items (the given vocabularies) marking items the customer rated 1-2 stars; None when none."""
    r = star_ratings(getattr(dataset, "feedback", None))
    if r is None:
        return None
    r = r[r["score"].to_numpy() <= STAR_DISLIKE_MAX]
    ci = pd.Index(np.asarray(customer_ids, dtype=object)).get_indexer(r["customer_id"].to_numpy(dtype=object))
    ii = pd.Index(np.asarray(item_ids, dtype=object)).get_indexer(r["item_id"].to_numpy(dtype=object))
    ok = (ci >= 0) & (ii >= 0)
    if not ok.any():
        return None
    m = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (ci[ok], ii[ok])),
                      shape=(len(customer_ids), len(item_ids)))
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def item_ratings(dataset: Dataset, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean star rating, number of ratings) of each of ``item_ids`` (NaN / 0 when unrated); None without ratings."""
    r = star_ratings(getattr(dataset, "feedback", None))
    if r is None:
        return None
    ii = pd.Index(np.asarray(item_ids, dtype=object)).get_indexer(r["item_id"].to_numpy(dtype=object))
    ok = ii >= 0
    n = len(item_ids)
    cnt = np.bincount(ii[ok], minlength=n).astype(np.int64)
    tot = np.bincount(ii[ok], weights=r["score"].to_numpy(dtype=np.float64)[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return mean, cnt


def rows_of(matrix: sp.csr_matrix, cidx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``cidx``, item) of every marked entry of the rows ``cidx`` (negative = no row)."""
    c = np.asarray(cidx, dtype=np.int64)
    ok = c >= 0
    if not ok.any():
        z = np.zeros(0, np.int64)
        return z, z
    sub = matrix[np.where(ok, c, 0)].tocoo()
    keep = ok[sub.row]
    return sub.row[keep].astype(np.int64), sub.col[keep].astype(np.int64)
