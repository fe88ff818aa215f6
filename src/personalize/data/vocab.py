"""Id vocabularies: real ids <-> contiguous integer indices."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


class Vocabulary:
    """A sorted, immutable set of string ids with O(1) lookup of their indices.

    ``index(ids)`` maps ids to positions (``-1`` for unknown ids), ``ids[i]``
    maps back. Vocabularies are shared by every time slice of a dataset so
    that matrices built from slices line up.
    """

    __slots__ = ("_index",)

    def __init__(self, ids: Iterable[str] | pd.Index | np.ndarray) -> None:
        index = ids if isinstance(ids, pd.Index) else pd.Index(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=object))
        index = index.astype(object)
        if index.has_duplicates:
            dupes = index[index.duplicated()].unique()[:5].tolist()
            raise ValueError(f"vocabulary ids must be unique; duplicated: {dupes}")
        self._index = index

    @classmethod
    def from_values(cls, *arrays) -> "Vocabulary":
        """Build a sorted vocabulary from the union of several id arrays."""
        parts = [pd.unique(np.asarray(a, dtype=object)) for a in arrays if a is not None and len(a)]
        if not parts:
            return cls(np.array([], dtype=object))
        uniq = pd.unique(np.concatenate(parts)) if len(parts) > 1 else parts[0]
        uniq = np.sort(uniq.astype(str).astype(object))
        return cls(uniq)

    @property
    def ids(self) -> np.ndarray:
        return self._index.to_numpy(dtype=object)

    def compact(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``codes`` (positions in this vocabulary) renumbered 0..n-1 over the ids that occur, in vocabulary
        order, and those n ids: ``(new codes, ids)``."""
        present = np.bincount(codes, minlength=len(self)) > 0
        remap = np.cumsum(present) - 1
        return remap[codes], self.ids[present]

    @property
    def is_sorted(self) -> bool:
        """Ids in increasing order (as :meth:`from_values` builds them): codes then sort like the ids."""
        return bool(self._index.is_monotonic_increasing)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __iter__(self):
        return iter(self._index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._index.equals(other._index)

    def __hash__(self) -> int:  # pragma: no cover - vocabularies are not used as keys
        return id(self)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids)"

    def index(self, ids) -> np.ndarray:
        """Positions of ``ids`` (a scalar or array-like); ``-1`` where unknown."""
        scalar = isinstance(ids, str) or np.isscalar(ids)
        arr = np.asarray([ids] if scalar else ids, dtype=object)
        pos = self._index.get_indexer(arr).astype(np.int64)
        return pos[0] if scalar else pos

    def id_of(self, idx) -> np.ndarray | str:
        return self._index.to_numpy(dtype=object)[idx]
