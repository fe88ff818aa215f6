"""Popularity baselines: all-time or trending, overall or within the customer's favourite category."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize.errors import ParameterError
from personalize.recommenders.base import Recommender
from personalize.recommenders.fallback import DEFAULT_FALLBACK, distinct_customers
from personalize.recommenders.topk import NEG


class Popular(Recommender):
    """Items bought by the most distinct customers.

    ``window_days``: None counts all time; a number counts only the last
    ``window_days`` days before the end of the data ("trending"; rows are
    labelled ``source="trending"``). ``by_category``: rank only items in the
    customer's favourite category (by past purchases); the other slots are
    filled by the fallback chain. Items nobody bought (in the window) get no
    score from the model and come from the fallback chain.
    """

    kind = "popular"
    default_exclude = "non_repeatable"

    def __init__(self, *, window_days: float | None = None, by_category: bool = False,
                 fallback=DEFAULT_FALLBACK, trending_days: float = 30.0, session_neighbors: int = 20) -> None:
        super().__init__(fallback=fallback, trending_days=trending_days, session_neighbors=session_neighbors)
        self.window_days = window_days
        self.by_category = by_category

    @property
    def source(self) -> str:
        return "popular" if self.window_days is None else "trending"

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.window_days is not None and not (isinstance(self.window_days, (int, float)) and self.window_days > 0):
            raise ParameterError(f"window_days must be None or a positive number, got {self.window_days!r}")

    def _fit(self, ds, X) -> None:
        if self.window_days is None:
            counts = self.popularity_.copy()
        else:
            counts = distinct_customers(ds, since=self.now_ - pd.Timedelta(days=float(self.window_days)))
        self.item_scores_ = counts.astype(np.float32)

    def _scores(self, cols):
        s = self.item_scores_ if cols is None else self.item_scores_[cols]
        return np.where(s > 0, s, NEG).astype(np.float32)

    def _make_scorer(self, query, cols, width):
        vals = self._scores(cols)
        ncols = len(vals)
        codes = self.catalog_.category_codes if cols is None else self.catalog_.category_codes[cols]
        ncat = len(self.catalog_.categories)

        def score(batch, out, colpos):
            if not self.by_category or ncat == 0:
                out[:, :ncols] = vals
                return
            r, j, w = batch.hist
            c = batch.cidx
            cj = self.catalog_.category_codes[j]
            ok = cj >= 0
            sums = np.bincount(r[ok] * ncat + cj[ok], weights=w[ok].astype(np.float64),
                               minlength=len(c) * ncat).reshape(len(c), ncat)
            fav = np.where(sums.max(axis=1) > 0, sums.argmax(axis=1), -1)
            out[:, :ncols] = np.where(codes[None, :] == fav[:, None], vals[None, :], NEG)

        return score

    def _session_scores(self, hi, hw):
        vals = self._scores(None)
        if self.by_category:
            fav = self.item_stats_.favourite_category(hi, hw)
            vals = np.where(self.catalog_.category_codes == fav, vals, NEG) if fav >= 0 else None
        return vals

    def to_arrays(self):
        return {**super().to_arrays(), "model_item_scores": self.item_scores_}

    def _set_arrays(self, saved):
        super()._set_arrays(saved)
        a = saved.arrays
        self.item_scores_ = a["model_item_scores"]
