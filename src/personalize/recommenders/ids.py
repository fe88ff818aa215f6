"""Real ids <-> row positions inside a model (ids are strings in every vocabulary)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize.errors import UnknownIdError


def id_array(ids) -> np.ndarray:
    """One id or an iterable of ids -> object array of str."""
    if isinstance(ids, (str, np.str_)) or np.isscalar(ids):
        return np.array([str(ids)], dtype=object)
    arr = np.asarray(list(ids), dtype=object)
    if any(not isinstance(x, str) for x in arr):
        arr = np.array([str(x) for x in arr], dtype=object)
    return arr


class IdMap:
    """A model's id vocabulary: position of each id, -1 for ids it does not know.

    The single-id path (what the service calls per request) is a hash lookup
    with no array machinery.
    """

    def __init__(self, ids: np.ndarray, what: str) -> None:
        self.ids = np.asarray(ids, dtype=object)
        self.what = what
        self._index = pd.Index(self.ids, dtype=object)

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """int64 positions of ``ids`` (object array of str); -1 where unknown."""
        if len(ids) == 1:
            try:
                pos = self._index.get_loc(ids[0])
            except (KeyError, TypeError):
                return np.array([-1], dtype=np.int64)
            if isinstance(pos, (int, np.integer)):
                return np.array([pos], dtype=np.int64)
        if not len(ids):
            return np.zeros(0, np.int64)
        if len(ids) <= 8:  # a session or one event: hash lookups beat the indexer's set-up
            out = np.empty(len(ids), np.int64)
            for k, x in enumerate(ids):
                try:
                    pos = self._index.get_loc(x)
                except (KeyError, TypeError):
                    pos = -1
                out[k] = pos if isinstance(pos, (int, np.integer)) else -1
            return out
        return self._index.get_indexer(ids).astype(np.int64)

    def lookup_strict(self, ids) -> np.ndarray:
        """Positions of ``ids``; :class:`UnknownIdError` naming the first unknown ones."""
        arr = id_array(ids) if not isinstance(ids, np.ndarray) else ids
        idx = self.lookup(arr)
        if (idx < 0).any():
            unknown = arr[idx < 0][:5].tolist()
            raise UnknownIdError(f"unknown {self.what} id(s) {unknown}: not in the model's {self.what} vocabulary")
        return idx

    def to_array(self) -> np.ndarray:
        """Fixed-width unicode, for pickle-free saving."""
        return np.asarray(self.ids, dtype=str)
