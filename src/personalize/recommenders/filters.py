"""Business filters: which items may be shown (category, price band, in stock, allow / deny lists).

A filter runs on an :class:`~personalize.recommenders.catalog.ItemCatalog`
(plain numpy arrays aligned with an item index), so it is a handful of
vectorized comparisons. The serving runtime applies the same ``Filters`` to
the precomputed candidate lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.errors import ParameterError
from personalize.recommenders.catalog import ItemCatalog


def _as_tuple(value, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value)
    raise ParameterError(f"Filters.{name} must be a string or a list of strings, got {type(value).__name__}")


@dataclass(frozen=True)
class Filters:
    """Which items may be recommended.

    ``categories``: keep items in one of these categories; ``min_price`` /
    ``max_price``: keep items whose price is inside the band (items without a
    price are dropped by a price filter); ``in_stock``: True keeps in-stock
    items only (False: out-of-stock only); ``allow``: keep only these item ids;
    ``deny``: never these item ids; ``min_rating``: leave out items whose mean star rating (1-5, from the
    feedback the model was fitted with) is below it, once they have ``rating_min_count`` ratings (default 1;
    items with fewer ratings pass). Unknown ids and categories match nothing.
    """

    categories: tuple[str, ...] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool | None = None
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None
    min_rating: float | None = None
    rating_min_count: int | None = None

    def __post_init__(self) -> None:
        for name in ("categories", "allow", "deny"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name), name))
        for name in ("min_price", "max_price"):
            v = getattr(self, name)
            if v is not None:
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    raise ParameterError(f"Filters.{name} must be a number, got {v!r}") from None
                if not np.isfinite(v):
                    raise ParameterError(f"Filters.{name} must be finite, got {v!r}")
                object.__setattr__(self, name, v)
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ParameterError(f"Filters.min_price ({self.min_price}) is above max_price ({self.max_price})")
        if self.min_rating is not None:
            try:
                v = float(self.min_rating)
            except (TypeError, ValueError):
                raise ParameterError(f"Filters.min_rating must be a number, got {self.min_rating!r}") from None
            if not 1.0 <= v <= 5.0:
                raise ParameterError(f"Filters.min_rating must be between 1 and 5 (stars), got {self.min_rating!r}")
            object.__setattr__(self, "min_rating", v)
        if self.rating_min_count is not None:
            c = self.rating_min_count
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
                raise ParameterError(f"Filters.rating_min_count must be a positive integer, got {c!r}")
        if self.in_stock is not None and not isinstance(self.in_stock, (bool, np.bool_)):
            raise ParameterError(f"Filters.in_stock must be true, false or None, got {self.in_stock!r}")

    @classmethod
    def coerce(cls, value) -> "Filters | None":
        """Accept None, a Filters or a dict of its fields (as the HTTP layer passes them)."""
        if value is None or isinstance(value, Filters):
            return value
        if isinstance(value, dict):
            names = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ParameterError(f"unknown filter field(s) {unknown}; expected {sorted(names)}")
            return cls(**value)
        raise ParameterError(f"filters must be a Filters, a dict or None, got {type(value).__name__}")

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def to_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    def mask(self, catalog: ItemCatalog) -> np.ndarray:
        """Boolean array over the catalog's items: True where the item passes every filter."""
        n = len(catalog)
        keep = np.ones(n, dtype=bool)
        if self.categories is not None:
            codes = catalog.category_index.get_indexer(pd.Index(self.categories, dtype=object))
            keep &= _sets.isin(catalog.category_codes, codes[codes >= 0])
        if self.min_price is not None:
            keep &= catalog.price >= self.min_price  # NaN compares False
        if self.max_price is not None:
            keep &= catalog.price <= self.max_price
        if self.in_stock is not None:
            keep &= catalog.in_stock if self.in_stock else ~catalog.in_stock
        if self.allow is not None:
            allowed = np.zeros(n, dtype=bool)
            idx = catalog.item_index.get_indexer(pd.Index(self.allow, dtype=object))
            allowed[idx[idx >= 0]] = True
            keep &= allowed
        if self.deny is not None:
            idx = catalog.item_index.get_indexer(pd.Index(self.deny, dtype=object))
            keep[idx[idx >= 0]] = False
        if self.min_rating is not None:
            rated = catalog.rating_count >= (self.rating_min_count or 1)
            keep &= ~rated | (catalog.rating >= self.min_rating)
        return keep
