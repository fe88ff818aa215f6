"""Customer purchase histories: the fitted customer x item matrix, merged with live events per call.

:class:`Histories` is the training data's history (read-only). A
:class:`Batch` is a block of customers being scored in one call: their row
in the fitted data (or -1 for customers known only from live events), their
history as coordinates (training history plus live purchases, counted like
training lines) and their live events, for models whose state depends on
purchase times (repurchase recency, pair features).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from personalize import _sets
from personalize.recommenders.live import CustomerEvents
from personalize.recommenders.topk import csr_gather

_EMPTY_I = np.zeros(0, np.int64)
_EMPTY_W = np.zeros(0, np.float32)


class Histories:
    """Training purchase weights (count of lines) per customer and item, CSR with sorted indices."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        m = matrix.tocsr().astype(np.float32)
        m.sort_indices()
        self.matrix = m
        self._nnz = np.diff(m.indptr)

    @property
    def n_customers(self) -> int:
        return self.matrix.shape[0]

    def row(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if c < 0 or c >= self.matrix.shape[0]:
            return _EMPTY_I, _EMPTY_W
        m = self.matrix
        s, e = m.indptr[c], m.indptr[c + 1]
        return m.indices[s:e].astype(np.int64), m.data[s:e]

    def has_history(self, cidx: np.ndarray) -> np.ndarray:
        c = np.asarray(cidx, dtype=np.int64)
        has = np.zeros(len(c), dtype=bool)
        ok = (c >= 0) & (c < len(self._nnz))
        has[ok] = self._nnz[c[ok]] > 0
        return has

    def batch(self, cidx: np.ndarray, events: dict[int, CustomerEvents] | None = None,
              now_ns: int | None = None) -> "Batch":
        """A :class:`Batch` of customers ``cidx`` (block positions -> live ``events``)."""
        cidx = np.asarray(cidx, dtype=np.int64)
        events = events or {}
        base_rows = np.flatnonzero(cidx >= 0)
        if events:
            base_rows = base_rows[~_sets.isin(base_rows, np.fromiter(events, np.int64, len(events)))]
        m = self.matrix
        r, pos = csr_gather(m.indptr, cidx[base_rows])
        r = base_rows[r]
        j = m.indices[pos].astype(np.int64)
        w = m.data[pos]
        if events:
            rs, js, ws = [r], [j], [w]
            for p, ev in events.items():
                hi, hw = merge_history(*self.row(int(cidx[p])), ev.items)
                rs.append(np.full(len(hi), p, dtype=np.int64))
                js.append(hi)
                ws.append(hw)
            r, j, w = np.concatenate(rs), np.concatenate(js), np.concatenate(ws)
        return Batch(cidx, (r, j, w), events, now_ns)


def merge_history(hi: np.ndarray, hw: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A history (items, weights) plus one line per purchased item in ``items``: sorted items, summed weights."""
    if not len(items):
        return hi, hw
    add_i, add_c = np.unique(np.asarray(items, np.int64), return_counts=True)
    all_i = np.concatenate([hi, add_i])
    all_w = np.concatenate([np.asarray(hw, np.float32), add_c.astype(np.float32)])
    ui, inv = np.unique(all_i, return_inverse=True)
    return ui.astype(np.int64), np.bincount(inv, weights=all_w, minlength=len(ui)).astype(np.float32)


@dataclass
class Batch:
    """A block of customers scored together (see the module docstring)."""

    cidx: np.ndarray                      # row in the fitted data; -1 = known only from live events
    hist: tuple[np.ndarray, np.ndarray, np.ndarray]  # (block position, item, weight) of every history entry
    events: dict[int, CustomerEvents] = field(default_factory=dict)  # block position -> live events
    now_ns: int | None = None             # latest live event time (ns), None without live events

    def __len__(self) -> int:
        return len(self.cidx)

    def history(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, weights) of block position ``p``."""
        r, j, w = self.hist
        sel = r == p
        return j[sel], w[sel]

    def has_history(self) -> np.ndarray:
        return np.bincount(self.hist[0], minlength=len(self.cidx)) > 0

    def subset(self, positions: np.ndarray) -> "Batch":
        """The customers at ``positions`` (renumbered 0..), history and events included."""
        positions = np.asarray(positions, dtype=np.int64)
        new_of = np.full(len(self.cidx), -1, np.int64)
        new_of[positions] = np.arange(len(positions))
        r, j, w = self.hist
        keep = new_of[r] >= 0
        events = {int(new_of[p]): ev for p, ev in self.events.items() if new_of[p] >= 0}
        return Batch(self.cidx[positions], (new_of[r[keep]], j[keep], w[keep]), events, self.now_ns)
