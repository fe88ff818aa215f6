"""Per-item attributes a model needs at query time, as numpy arrays aligned with its item index."""

from __future__ import annotations

import numpy as np
import pandas as pd


class ItemCatalog:
    """Per-item attributes aligned with a model's item index.

    ``category_codes`` (int32, -1 = no category) index ``categories``;
    ``price`` (float64, NaN = unknown); ``in_stock`` (bool, True when the items
    table has no ``in_stock``); ``repeatable`` (bool, False when the items table
    has no ``repeatable``: then nothing counts as repeatable); ``rating`` (float64 mean star rating, NaN =
    unrated) and ``rating_count`` (int64 number of star ratings), from the dataset's feedback
    (:func:`personalize.recommenders.feedback.item_ratings`).
    """

    def __init__(self, item_ids: np.ndarray, category_codes: np.ndarray, categories: np.ndarray,
                 price: np.ndarray, in_stock: np.ndarray, repeatable: np.ndarray, rating: np.ndarray | None = None,
                 rating_count: np.ndarray | None = None) -> None:
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.category_codes = np.asarray(category_codes, dtype=np.int32)
        self.categories = np.asarray(categories, dtype=object)
        self.price = np.asarray(price, dtype=np.float64)
        self.in_stock = np.asarray(in_stock, dtype=bool)
        self.repeatable = np.asarray(repeatable, dtype=bool)
        n = len(self.item_ids)
        self.rating = np.full(n, np.nan) if rating is None else np.asarray(rating, dtype=np.float64)
        self.rating_count = np.zeros(n, np.int64) if rating_count is None else np.asarray(rating_count, np.int64)
        self.item_index = pd.Index(self.item_ids, dtype=object)
        self.category_index = pd.Index(self.categories, dtype=object)
        self._masks: dict = {}

    def mask(self, filters) -> np.ndarray:
        """Eligible items of ``filters`` (a :class:`~personalize.recommenders.filters.Filters`), cached: a shop
        asks the same few filters over and over."""
        m = self._masks.get(filters)
        if m is None:
            m = filters.mask(self)
            if len(self._masks) > 256:
                self._masks.clear()
            self._masks[filters] = m
        return m

    def __len__(self) -> int:
        return len(self.item_ids)

    @classmethod
    def from_items(cls, item_ids: np.ndarray, items: pd.DataFrame | None) -> "ItemCatalog":
        n = len(item_ids)
        codes = np.full(n, -1, dtype=np.int32)
        categories = np.array([], dtype=object)
        price = np.full(n, np.nan)
        in_stock = np.ones(n, dtype=bool)
        repeatable = np.zeros(n, dtype=bool)
        if items is not None and len(items):
            pos = pd.Index(np.asarray(item_ids, dtype=object)).get_indexer(items["item_id"].to_numpy(dtype=object))
            ok = pos >= 0
            pos = pos[ok]
            if "category" in items:
                cat = items["category"].to_numpy(dtype=object)[ok]
                present = pd.notna(cat)
                cc, uniques = pd.factorize(pd.Index(cat[present], dtype=object), sort=True)
                categories = np.asarray(uniques, dtype=object)
                codes[pos[present]] = cc.astype(np.int32)
            if "price" in items:
                price[pos] = items["price"].to_numpy(dtype=np.float64, na_value=np.nan)[ok]
            if "in_stock" in items:
                v = items["in_stock"].to_numpy(dtype=object)[ok]
                in_stock[pos] = [True if pd.isna(x) else bool(x) for x in v]
            if "repeatable" in items:
                v = items["repeatable"].to_numpy(dtype=object)[ok]
                repeatable[pos] = [False if pd.isna(x) else bool(x) for x in v]
        return cls(item_ids, codes, categories, price, in_stock, repeatable)

    def with_ratings(self, rating: np.ndarray, rating_count: np.ndarray) -> "ItemCatalog":
        """A copy of this catalog with the items' mean star ratings and rating counts."""
        return ItemCatalog(self.item_ids, self.category_codes, self.categories, self.price, self.in_stock,
                           self.repeatable, rating, rating_count)

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"cat_codes": self.category_codes, "cat_names": np.asarray(self.categories, dtype=str),
               "price": self.price, "in_stock": self.in_stock, "repeatable": self.repeatable}
        if self.rating_count.any():
            out.update(rating=self.rating, rating_count=self.rating_count)
        return out

    @classmethod
    def from_arrays(cls, item_ids: np.ndarray, a) -> "ItemCatalog":
        return cls(item_ids, a["cat_codes"], np.asarray(a["cat_names"]).astype(object), a["price"],
                   a["in_stock"], a["repeatable"], a.get("rating"), a.get("rating_count"))
