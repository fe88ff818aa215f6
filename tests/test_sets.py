"""The sort-based set operations give NumPy's results (values, dtype, order) on every input kind."""

import numpy as np
import pytest

from personalize import _sets


def _cases():
    rng = np.random.default_rng(3)
    big = rng.integers(0, 10**12, 5_000)
    yield big, rng.choice(big, 2_000)  # keys: wide range, many repeats
    yield rng.integers(-50, 50, 1_000).astype(np.int32), rng.integers(-80, 20, 300).astype(np.int64)
    yield rng.integers(0, 30, (40, 25)), rng.integers(10, 40, 17)  # 2-D element
    yield np.zeros(0, np.int64), rng.integers(0, 5, 10)
    yield rng.integers(0, 5, 10), np.zeros(0, np.int64)
    yield rng.integers(0, 2, 50).astype(bool), np.array([True])
    yield rng.integers(0, 200, 500).astype(np.uint16), rng.integers(0, 300, 90).astype(np.uint16)
    yield rng.random(300), rng.random(100)  # floats and strings defer to NumPy
    yield np.array(["b", "a", "c", "a"], dtype=object), np.array(["a", "z"], dtype=object)


@pytest.mark.parametrize("case", range(9))
def test_set_operations_match_numpy(case):
    a, b = list(_cases())[case]
    for got, want in [
        (_sets.unique(a), np.unique(a)),
        (_sets.isin(a, b), np.isin(a, b)),
        (_sets.isin(a, b, invert=True), np.isin(a, b, invert=True)),
        (_sets.intersect1d(a, b), np.intersect1d(a, b)),
        (_sets.setdiff1d(a, b), np.setdiff1d(a, b)),
        (_sets.union1d(a, b), np.union1d(a, b)),
    ]:
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    ua, ub = np.unique(a), np.unique(b)
    np.testing.assert_array_equal(_sets.isin(ua, ub, assume_unique=True), np.isin(ua, ub, assume_unique=True))
    # assume_unique keeps a's order, as NumPy does
    perm = ua[::-1].copy()
    np.testing.assert_array_equal(_sets.setdiff1d(perm, ub, assume_unique=True),
                                  np.setdiff1d(perm, ub, assume_unique=True))
