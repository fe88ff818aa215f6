"""Batch scoring of LightGBM models (personalize._trees): compiled trees score as LightGBM does, and every way
compiling can fail leaves LightGBM's own predict in place, saying why."""

import lightgbm as lgb
import numpy as np
import pytest

from personalize import _trees

lleaves = pytest.importorskip("lleaves", reason="the personalize[fast] extra (lleaves) is not installed")


@pytest.fixture(scope="module")
def booster():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 6))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take the trees' default branches
    y = (X[:, 0] + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(size=4000) > 0).astype(int)
    return lgb.train({"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 0}, lgb.Dataset(X, y), 40), X


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(_trees, "_WARNED", set())
    monkeypatch.setattr(_trees, "_CACHE", type(_trees._CACHE)())
    monkeypatch.delenv("PERSONALIZE_COMPILED_TREES", raising=False)


def test_compiled_scores_equal_lightgbm_and_are_compiled_once(booster):
    b, X = booster
    for raw in (False, True):
        got = _trees.predict_rows(b, X, compiled=True, raw_score=raw, num_threads=2)
        np.testing.assert_allclose(got, b.predict(X, raw_score=raw), rtol=1e-12, atol=1e-12)
        assert np.array_equal(np.argsort(-got, kind="stable"), np.argsort(-b.predict(X, raw_score=raw), kind="stable"))
    compiled = dict(_trees._CACHE[b])
    assert set(compiled) == {(False, None), (True, None)} and all(m is not None for m in compiled.values())
    _trees.predict_rows(b, X, compiled=True)
    assert _trees._CACHE[b][False, None] is compiled[False, None]  # not compiled again
    # the first rounds only (a model kept whole with its best iteration): the trees compiled are those rounds'
    got = _trees.predict_rows(b, X, compiled=True, raw_score=True, num_iteration=12)
    np.testing.assert_allclose(got, b.predict(X, raw_score=True, num_iteration=12), rtol=1e-12, atol=1e-12)
    assert not np.allclose(got, b.predict(X, raw_score=True))


def test_large_batches_are_scored_in_slices_that_add_up(booster, monkeypatch):
    b, X = booster
    monkeypatch.setattr(_trees, "_SLICE_ROWS", 999)  # 4000 rows: 5 slices, the last one short
    got = _trees.predict_rows(b, X.astype(np.float32), compiled=True)
    np.testing.assert_allclose(got, b.predict(X.astype(np.float32)), rtol=1e-12, atol=1e-12)
    # a multiclass model (the offer models score every offer at once): one column per class, slice by slice
    y = np.digitize(np.nan_to_num(X[:, 0]), [-0.5, 0.5])
    multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(X, y), 10)
    got = _trees.predict_rows(multi, X, compiled=True)
    assert got.shape == (len(X), 3)
    np.testing.assert_allclose(got, multi.predict(X), rtol=1e-12, atol=1e-12)


def test_small_batches_and_the_switch_use_lightgbm(booster, monkeypatch):
    b, X = booster
    _trees.predict_rows(b, X[:100])  # below COMPILE_MIN_ROWS: a serving request never waits for a compiler
    assert b not in _trees._CACHE
    monkeypatch.setenv("PERSONALIZE_COMPILED_TREES", "0")
    np.testing.assert_array_equal(_trees.predict_rows(b, X, compiled=True), b.predict(X))
    assert b not in _trees._CACHE


def test_a_compiler_failure_falls_back_and_warns_once(booster, monkeypatch):
    b, X = booster

    def broken(self, *a, **kw):
        raise AttributeError("module 'llvmlite.binding' has no attribute 'PassManagerBuilder'")

    monkeypatch.setattr(lleaves.Model, "compile", broken)
    with pytest.warns(RuntimeWarning, match="lleaves could not compile the trees.*PassManagerBuilder"):
        got = _trees.predict_rows(b, X, compiled=True)
    np.testing.assert_array_equal(got, b.predict(X))
    b2 = lgb.Booster(model_str=b.model_to_string())
    with _no_warning():
        np.testing.assert_array_equal(_trees.predict_rows(b2, X, compiled=True), b2.predict(X))


def test_compiled_trees_that_disagree_are_not_used(booster, monkeypatch):
    b, X = booster
    real = lleaves.Model.predict
    monkeypatch.setattr(lleaves.Model, "predict", lambda self, data, n_jobs=None: real(self, data, n_jobs) + 0.01)
    with pytest.warns(RuntimeWarning, match="differ from LightGBM's by up to 0.01"):
        got = _trees.predict_rows(b, X, compiled=True)
    np.testing.assert_array_equal(got, b.predict(X))
    assert _trees._CACHE[b][False, None] is None


class _no_warning:
    def __enter__(self):
        import warnings
        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)
