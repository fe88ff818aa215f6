"""Set operations on integer arrays (``unique``, ``isin``, ``intersect1d``, ``setdiff1d``, ``union1d``) by sorting.

NumPy 2.3+ answers a plain ``np.unique`` of integers with a hash table, and ``np.isin``, ``np.intersect1d``
and ``np.setdiff1d`` call it. With millions of distinct values -- (customer, item) keys, the usual input
here -- that path is tens of times slower than sorting (measured on 4M distinct int64 keys, NumPy 2.4:
``np.unique`` 3.4 s vs 0.04 s by sorting; ``np.isin`` 4.3 s vs 0.4 s; ``np.setdiff1d`` 6.2 s), and the
training pipeline runs such calls on every window, cutoff and batch. These functions give NumPy's results
(the same values, dtype and order) by sorting for integer and boolean arrays, and defer to NumPy for any
other input (strings, floats, objects), where NumPy already sorts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["unique", "isin", "intersect1d", "setdiff1d", "union1d", "first_appearance_codes"]


def _ints(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind in "iub"


def unique(a) -> np.ndarray:
    """``np.unique(a)`` (sorted distinct values, flattened)."""
    if not _ints(a):
        return np.unique(a)
    s = np.sort(a, axis=None)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def isin(element, test_elements, *, assume_unique: bool = False, invert: bool = False) -> np.ndarray:
    """``np.isin(element, test_elements, invert=invert)``: a boolean array shaped like ``element``."""
    if not (_ints(element) and _ints(test_elements)) or element.dtype.kind == "b" \
            or test_elements.dtype.kind == "b":
        return np.isin(element, test_elements, assume_unique=assume_unique, invert=invert)
    ref = np.sort(test_elements, axis=None) if assume_unique else unique(test_elements)
    flat = element.ravel()
    if len(ref) == 0:
        found = np.zeros(len(flat), dtype=bool)
    else:
        pos = np.searchsorted(ref, flat)
        np.minimum(pos, len(ref) - 1, out=pos)
        found = ref[pos] == flat
    if invert:
        np.logical_not(found, out=found)
    return found.reshape(element.shape)


def intersect1d(a, b) -> np.ndarray:
    """``np.intersect1d(a, b)``: sorted values in both."""
    if not (_ints(a) and _ints(b)):
        return np.intersect1d(a, b)
    ua = unique(a)
    return ua[isin(ua, b)].astype(np.result_type(a, b), copy=False)


def setdiff1d(a, b, *, assume_unique: bool = False) -> np.ndarray:
    """``np.setdiff1d(a, b, assume_unique)``: values of ``a`` not in ``b`` (sorted and distinct unless
    ``assume_unique``, which keeps ``a``'s order, as NumPy does)."""
    if not (_ints(a) and _ints(b)):
        return np.setdiff1d(a, b, assume_unique=assume_unique)
    ua = a.ravel() if assume_unique else unique(a)
    return ua[isin(ua, b, invert=True)]


def union1d(a, b) -> np.ndarray:
    """``np.union1d(a, b)``: sorted distinct values of either."""
    if not (_ints(a) and _ints(b)):
        return np.union1d(a, b)
    return unique(np.concatenate([a.ravel(), b.ravel()]))


def first_appearance_codes(codes: np.ndarray) -> np.ndarray:
    """Integer codes renumbered 0, 1, ... in order of first appearance (-1 stays -1): ``pd.factorize`` of the
    values they stand for, from the codes alone."""
    codes = np.asarray(codes)
    ok = codes >= 0
    out = np.full(len(codes), -1, np.int64)
    out[ok] = pd.factorize(codes[ok])[0]  # a hash pass over integers, in order of appearance
    return out
