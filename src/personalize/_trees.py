"""Scoring many rows with a LightGBM model: LightGBM's own predict, or the same trees compiled by lleaves.

lleaves (the optional ``personalize[fast]`` extra) compiles a LightGBM model's trees to machine code. On the
TwoStage ranker's candidate rows (2.1M rows, 44 features, 133 trees of 15 leaves) it scored 4.1x faster than
``Booster.predict`` on 2 threads, with scores equal to 1e-14 and the same order. :func:`predict_rows` uses it
for large batches (the candidate lists of a whole customer base, scored some 300 customers at a time; a
validation window; churn and offer scores of every customer), never for a serving request (TwoStage's scorer
asks for it only inside ``bulk_scoring``): compiling takes about a second per model, once per process and
model, and a request's few hundred rows score in well under a millisecond either way.

A compiled model is checked against ``Booster.predict`` on the first rows it is given; when lleaves is not
installed, cannot compile (e.g. an llvmlite it does not support), or disagrees, LightGBM's own predict serves
and the reason is warned once. ``PERSONALIZE_COMPILED_TREES=0`` turns compiling off.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path

import numpy as np

#: batches from this many rows up are scored by the compiled trees (when lleaves is installed)
COMPILE_MIN_ROWS = 10_000
#: rows scored per call of a compiled model
_SLICE_ROWS = 131_072
#: rows compared with Booster.predict before a compiled model is trusted
_CHECK_ROWS = 2_000
_LOCK = threading.Lock()
#: booster -> {(raw_score, num_iteration): compiled model or None (cannot)}; weak, so a model's compiled
#: code goes with it
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_WARNED: set[str] = set()
#: what this process compiled (models, seconds): the benchmarks report it
STATS = {"compiled": 0, "compile_seconds": 0.0}


def compiling_enabled() -> bool:
    """False when ``PERSONALIZE_COMPILED_TREES`` is set to 0/false/no/off."""
    return os.environ.get("PERSONALIZE_COMPILED_TREES", "1").strip().lower() not in ("0", "false", "no", "off")


def _warn_once(reason: str) -> None:
    if reason not in _WARNED:
        _WARNED.add(reason)
        warnings.warn(f"scoring with LightGBM's own predict: {reason}", RuntimeWarning, stacklevel=3)


def _compile(booster, raw_score: bool, num_iteration: int | None):
    """A compiled lleaves model of ``booster``'s first ``num_iteration`` rounds (None = all), or None."""
    try:
        import lleaves
    except ImportError:
        return None  # the extra is not installed: nothing to say, LightGBM's predict is the default
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="personalize-trees-") as tmp:
            path = Path(tmp) / "model.txt"
            path.write_text(booster.model_to_string(num_iteration=num_iteration))
            model = lleaves.Model(model_file=str(path))
            model.compile(raw_score=raw_score)
        STATS["compiled"] += 1
        STATS["compile_seconds"] += time.perf_counter() - t0
        return model
    except Exception as exc:  # noqa: BLE001 - any compiler failure leaves LightGBM's predict in place
        _warn_once(f"lleaves could not compile the trees ({type(exc).__name__}: {exc})")
        return None


def _compiled(booster, raw_score: bool, num_iteration: int | None, X: np.ndarray, num_threads: int):
    key = (raw_score, num_iteration)
    cache = _CACHE.get(booster)
    if cache is not None and key in cache:
        return cache[key]
    with _LOCK:
        cache = _CACHE.setdefault(booster, {})
        if key not in cache:
            model = _compile(booster, raw_score, num_iteration)
            if model is not None:
                head = X[:_CHECK_ROWS]
                want = booster.predict(head, raw_score=raw_score, num_iteration=num_iteration,
                                       num_threads=num_threads)
                got = model.predict(head, n_jobs=1)
                if not np.allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True):
                    worst = float(np.nanmax(np.abs(np.asarray(got) - want)))
                    _warn_once(f"lleaves' scores differ from LightGBM's by up to {worst:.3g}")
                    model = None
            cache[key] = model
    return cache[key]


def predict_rows(booster, X: np.ndarray, *, num_threads: int = 1, raw_score: bool = False,
                 num_iteration: int | None = None, compiled: bool | None = None) -> np.ndarray:
    """``booster.predict(X)`` (float64: one score per row, or rows x classes for a multiclass model), from
    compiled trees for large batches.

    ``compiled``: None = when lleaves is installed and ``X`` has at least :data:`COMPILE_MIN_ROWS` rows;
    False = LightGBM's predict; True = compiled whatever the size (still falling back when it cannot).
    ``num_threads`` <= 0 means every core; ``num_iteration`` as LightGBM's (the first rounds only; None or
    <= 0 = all of them).
    """
    if num_iteration is not None and num_iteration <= 0:
        num_iteration = None
    threads = int(num_threads) if num_threads and num_threads > 0 else (os.cpu_count() or 1)
    use = compiled if compiled is not None else len(X) >= COMPILE_MIN_ROWS
    if use and compiling_enabled() and len(X):
        model = _compiled(booster, raw_score, num_iteration, X, threads)
        if model is not None:
            # in slices: lleaves copies rows that are not float64 (e.g. a float32 feature matrix), and a copy
            # of a whole customer base's rows would add to the run's peak memory
            first = np.asarray(model.predict(X[:_SLICE_ROWS], n_jobs=threads), dtype=np.float64)
            out = np.empty((len(X), *first.shape[1:]), dtype=np.float64)  # (rows, classes) for multiclass
            out[:len(first)] = first
            for i in range(_SLICE_ROWS, len(X), _SLICE_ROWS):
                out[i:i + _SLICE_ROWS] = model.predict(X[i:i + _SLICE_ROWS], n_jobs=threads)
            return out
    return booster.predict(X, raw_score=raw_score, num_iteration=num_iteration, num_threads=threads)
