"""Vectorized top-k over score blocks, and the small array helpers the recommenders share.

Scoring fills a ``(customers, items)`` float32 block where ``-inf`` means "no
opinion"; :func:`topk_rows` picks each row's best ``k`` columns exactly, with
a two-level selection for large catalogs. One BLAS thread is used while
scoring (:func:`blas_one_thread`): the matrices are small and extra threads
only fight the other server processes for the cores (STACK.md).
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np
from threadpoolctl import ThreadpoolController

NEG = np.float32(-np.inf)
BATCH = 256          # customers scored per block in batch recommend
_GROUP = 16          # group size of the two-level top-k
_GROUP_MIN = 8192    # catalogs at least this large use the two-level top-k

_controller: ThreadpoolController | None = None


def blas_one_thread():
    """Context manager limiting BLAS to one thread (cheap: the controller is built once)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


#: None outside :func:`bulk_scoring` (a request: one thread)
_SCORING_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("personalize_scoring_threads",
                                                                              default=None)


@contextlib.contextmanager
def bulk_scoring(threads: int = 0):
    """Within this block a model's own scorer (TwoStage's LightGBM ranker) may use ``threads`` threads (0 =
    every core): for batch jobs such as the candidate table. A request is scored on one thread (the default),
    the service scaling with worker processes instead."""
    token = _SCORING_THREADS.set(int(threads))
    try:
        yield
    finally:
        _SCORING_THREADS.reset(token)


def scoring_threads() -> int:
    """Threads a model's scorer may use here (see :func:`bulk_scoring`)."""
    threads = _SCORING_THREADS.get()
    return 1 if threads is None else threads


def in_bulk_scoring() -> bool:
    """True inside :func:`bulk_scoring` (a batch job, where compiling the ranker's trees pays off)."""
    return _SCORING_THREADS.get() is not None


def csr_gather(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR ``rows``: (position of the row in ``rows`` for each stored entry, index into data/indices)."""
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows].astype(np.int64)
    lens = indptr[rows + 1].astype(np.int64) - starts
    total = int(lens.sum())
    r = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    if total == 0:
        return r, np.zeros(0, dtype=np.int64)
    offs = np.cumsum(lens) - lens
    pos = np.arange(total, dtype=np.int64) - np.repeat(offs, lens) + np.repeat(starts, lens)
    return r, pos


def padded_width(ncols: int) -> int:
    """Width of a score block: padded to a multiple of the top-k group size for large catalogs."""
    if ncols >= _GROUP_MIN:
        return -(-ncols // _GROUP) * _GROUP
    return ncols


def topk_rows(out: np.ndarray, ncols: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` columns of each row of ``out[:, :ncols]``, sorted by score desc then column asc.

    Columns ``ncols:`` must already hold -inf. Large blocks use a two-level
    selection: the maximum of each of ``width / G`` strided groups, the top
    ``k`` groups, then the top ``k`` of their ``k * G`` members. It is exact:
    every one of the true top ``k`` lies in a group whose maximum is at least
    the k-th score, and at most ``k`` groups have that.
    """
    b, width = out.shape
    k = min(k, ncols)
    if k <= 0:
        return np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0), dtype=np.float32)
    if k >= ncols:
        cand = np.broadcast_to(np.arange(ncols, dtype=np.int64), (b, ncols))
        vals = out[:, :ncols]
    elif width >= _GROUP_MIN and width % _GROUP == 0 and k * _GROUP < width:
        m = width // _GROUP
        gmax = out.reshape(b, _GROUP, m).max(axis=1)
        gi = np.argpartition(-gmax, k - 1, axis=1)[:, :k]
        cand = (gi[:, None, :] + (np.arange(_GROUP, dtype=np.int64) * m)[None, :, None]).reshape(b, -1)
        vals = np.take_along_axis(out, cand, axis=1)
    else:
        cand = np.argpartition(-out[:, :ncols], k - 1, axis=1)[:, :k].astype(np.int64)
        vals = np.take_along_axis(out, cand, axis=1)
    if vals.dtype == np.float32 and width < 2 ** 32:
        top = sort_by_score_then_column(vals, cand)[:, :k]
        return top, np.take_along_axis(out, top, axis=1)
    order = np.lexsort((cand, -vals))[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(vals, order, axis=1)


def sort_by_score_then_column(vals: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``cols`` of each row ordered by ``vals`` (float32) descending, then column ascending: what
    ``np.lexsort((cols, -vals))`` orders, by one sort of 64-bit keys (3-4x faster than lexsort's two indirect
    sorts). NaN sorts last, as in lexsort; -0.0 ties with 0.0. ``cols`` must be in 0 .. 2**32 - 1."""
    neg = -(vals + np.float32(0.0))  # -0.0 -> 0.0; ascending -score = descending score
    u = neg.view(np.uint32)
    # float32 bits -> an unsigned key in the same order: negatives flip every bit, the others the sign bit
    u = np.where(u >> np.uint32(31), ~u, u | np.uint32(0x80000000))
    u[np.isnan(neg)] = np.uint32(0xFFFFFFFF)  # NaN last (their columns still ascending)
    key = u.astype(np.uint64) << np.uint64(32)
    key |= cols.astype(np.uint64)
    key.sort(axis=-1)
    key &= np.uint64(0xFFFFFFFF)
    return key.astype(np.int64)


def top_of_vector(scores: np.ndarray, k: int, block: np.ndarray, cand: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of one dense score vector, never ``block`` items, only ``cand`` items: (items, scores > -inf)."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[block] = NEG
    if cand is not None:
        scores[~cand] = NEG
    top, vals = topk_rows(scores[None, :], len(scores), k)
    ok = vals[0] > NEG
    return top[0][ok], vals[0][ok].astype(np.float64)


def sorted_pick(idx: np.ndarray, scores: np.ndarray, need: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``need`` of (idx, scores) by score desc, index asc."""
    if idx.size == 0 or need <= 0:
        return idx[:0], scores[:0]
    order = np.lexsort((idx, -scores))[:need]
    return idx[order], scores[order]


def ranks(rows: np.ndarray) -> np.ndarray:
    """1-based rank of each entry within its run of equal ``rows`` (rows grouped, in order)."""
    if not len(rows):
        return np.zeros(0, np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    lens = np.diff(np.r_[starts, len(rows)])
    return (np.arange(len(rows)) - np.repeat(starts, lens) + 1).astype(np.int64)
