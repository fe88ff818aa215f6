"""Live state that stays bounded and bundles that load without redoing work (issue 10, item 6 and the
2-worker swap): the live overlay's tail, the live candidate-list cache, the stored score quantiles and the
copy-free reading of a bundle's arrays."""

from __future__ import annotations

import tracemalloc
import zipfile

import numpy as np
import pytest

from personalize._arrayfiles import read_npz
from personalize.errors import BundleError
from personalize.recommenders import CandidateTable, LiveEvents
from personalize.recommenders.io import load_recommender
from personalize.runtime import Runtime
from personalize.runtime.runtime import LiveRowCache
from personalize.store import load_bundle
from serving_helpers import make_models, publish_tiny, tiny_dataset

ITEMS = np.array([f"I{i:03d}" for i in range(40)], dtype=object)


# --------------------------------------------------------------------------- the live overlay
def test_every_acknowledged_event_is_answered_across_compactions_and_forgets(monkeypatch):
    """Many customers, events in the tail, compactions between them and forgets on either side: every
    customer's events are exactly what was added (and a forgotten one has none, and no id kept)."""
    import personalize.recommenders.live as live_mod

    monkeypatch.setattr(live_mod, "_MIN_TAIL", 50)  # compact often
    live = LiveEvents(ITEMS)
    rng = np.random.default_rng(0)
    want: dict[str, list[tuple[int, int]]] = {}
    forgotten = set()
    for k in range(3000):
        c = f"C{int(rng.integers(0, 400))}" if k % 3 else f"new-{k}"
        n = int(rng.integers(1, 4))
        idx = rng.integers(0, len(ITEMS), n)
        ts = [np.datetime64("2024-05-01T00:00:00") + np.timedelta64(int(k * 60 + j), "s") for j in range(n)]
        live.add(c, list(ITEMS[idx]), [str(t) for t in ts])
        want.setdefault(c, []).extend(zip(idx.tolist(), [int(t.astype("datetime64[ns]").astype(np.int64))
                                                         for t in ts]))
        forgotten.discard(c)
        if k % 97 == 0:  # forget someone, sometimes still in the tail, sometimes compacted
            victim = sorted(want)[int(rng.integers(0, len(want)))]
            assert live.forget(victim)
            del want[victim]
            forgotten.add(victim)
    assert live.n_events == sum(len(v) for v in want.values())
    assert len(live) == len(want)
    for c, evs in want.items():
        got = live.events(c)
        assert got is not None and live.count(c) == len(evs) and c in live
        order = sorted(range(len(evs)), key=lambda j: evs[j][1])  # time order (stable)
        assert got.items.tolist() == [evs[j][0] for j in order]
        assert got.ns.tolist() == [evs[j][1] for j in order]
    for c in forgotten:
        assert live.events(c) is None and c not in live and live.count(c) == 0
    live.compact()
    assert all(c.encode() not in set(live._cust.tolist()) for c in forgotten)
    assert live.n_events == sum(len(v) for v in want.values())


def test_the_tail_holds_no_python_object_per_event():
    """Recent events are arrays plus one dict entry per customer: 8,000 single-item events of 8,000
    customers (all still in the tail) take well under the ~350 bytes an event took as numpy objects."""
    live = LiveEvents(ITEMS)
    ids = [f"customer-{k:06d}" for k in range(8000)]
    items = [[ITEMS[k % 40]] for k in range(8000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for c, it in zip(ids, items):
            live.add(c, it, "2024-05-01T10:00:00")
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert live._tail_n == 8000  # nothing compacted yet: this is the tail
    assert used / 8000 < 250, f"{used / 8000:.0f} bytes per tail event"


# --------------------------------------------------------------------------- the live row cache
def test_live_row_cache_is_one_block_that_does_not_grow_and_evicts_oldest():
    cache = LiveRowCache(4, 5)
    assert cache.nbytes == 0  # nothing until the first row
    rows = {}
    for k in range(10):
        row = (np.arange(k, k + 3, dtype=np.int32), np.full(3, k, np.float32), np.zeros(3, np.int8))
        rows[f"c{k}"] = row
        cache.put(f"c{k}", k, *row)
        if k == 0:
            size = cache.nbytes
        assert cache.nbytes == size and len(cache) == min(k + 1, 4)
    assert [c in cache for c in ("c5", "c6", "c7", "c8", "c9")] == [False, True, True, True, True]
    got = cache.get("c7", 7)
    assert [a.tolist() for a in got] == [a.tolist() for a in rows["c7"]]
    got[0][:] = -5  # a copy: the slot is untouched
    assert cache.get("c7", 7)[0].tolist() == rows["c7"][0].tolist()
    assert cache.get("c7", 8) is None  # another stamp (a new event) is a miss
    cache.pop("c7")
    assert "c7" not in cache and cache.get("c7", 7) is None
    long = (np.arange(9, dtype=np.int32), np.ones(9, np.float32), np.ones(9, np.int8))
    cache.put("x", 1, *long)  # longer than a slot: cut to the slot's width
    assert cache.get("x", 1)[0].tolist() == [0, 1, 2, 3, 4]


def test_cached_live_answers_equal_fresh_ones_after_evictions(tmp_path, monkeypatch):
    import personalize.runtime.runtime as rt_mod

    monkeypatch.setattr(rt_mod, "LIVE_CACHE_SIZE", 3)
    publish_tiny(tmp_path / "models")
    rt = Runtime(load_bundle(tmp_path / "models"))
    customers = ["C001", "C002", "C003", "C004", "new-1", "new-2"]
    for j, c in enumerate(customers):
        rt.record_purchase(c, [f"I{(7 * j) % 40:03d}"], ["2024-04-02T10:00:00"])
    first = {c: rt.recommend(c, 8).items for c in customers}
    block = rt._cache.nbytes
    for _ in range(3):  # hits, misses and evictions in turn
        for c in customers[::-1]:
            assert rt.recommend(c, 8).items == first[c]
    assert rt._cache.nbytes == block and len(rt._cache) == 3
    rt.record_purchase("C002", ["I021"], ["2024-04-03T10:00:00"])  # a new event: the cached row is stale
    fresh = Runtime(load_bundle(tmp_path / "models"))
    for j, c in enumerate(customers):
        fresh.record_purchase(c, [f"I{(7 * j) % 40:03d}"], ["2024-04-02T10:00:00"])
    fresh.record_purchase("C002", ["I021"], ["2024-04-03T10:00:00"])
    assert rt.recommend("C002", 8).items == fresh.recommend("C002", 8).items
    assert all(it["item_id"] != "I021" for it in rt.recommend("C002", 8).items)  # bought: excluded


# --------------------------------------------------------------------------- loading a bundle
def test_a_loaded_bundle_reuses_the_stored_score_quantiles(tmp_path, monkeypatch):
    """The relevance scale comes with the candidate table: building the served runtime does not pass over
    every score again (np.quantile is never called), and answers the same as recomputing it."""
    publish_tiny(tmp_path / "models")
    bundle = load_bundle(tmp_path / "models")
    recomputed = CandidateTable(**{n: getattr(bundle["candidates"], n) for n in CandidateTable._ARRAYS},
                                catalog=bundle["candidates"].catalog,
                                source_names=bundle["candidates"].source_names, n=bundle["candidates"].n)
    want = recomputed.score_quantiles()

    def boom(*a, **k):
        raise AssertionError("quantiles recomputed on load")

    monkeypatch.setattr(np, "quantile", boom)
    rt = Runtime(load_bundle(tmp_path / "models"))
    assert set(rt.relevance.quantiles) == set(want)
    for name, q in want.items():
        np.testing.assert_allclose(rt.relevance.quantiles[name], q)
    assert rt.recommend("C001", 5).items


def test_a_candidate_table_saved_without_quantiles_still_loads(tmp_path):
    """A bundle written before the quantiles were stored: it loads, and they are computed from its scores."""
    ds = tiny_dataset()
    rec, pop = make_models(ds)
    table = CandidateTable.build(rec, ds, n=10, cold=pop)
    table.save(tmp_path / "c")
    with np.load(tmp_path / "c" / "arrays.npz") as z:
        old = {k: z[k] for k in z.files if k != "score_quantiles"}
    np.savez(tmp_path / "c" / "arrays.npz", **old)
    back = CandidateTable.load(tmp_path / "c")
    assert back._quantiles is None
    q = back.score_quantiles()
    assert set(q) == set(table.score_quantiles())
    for name in q:
        np.testing.assert_allclose(q[name], table.score_quantiles()[name])


def test_read_npz_equals_np_load_without_copying(tmp_path):
    arrays = {"ints": np.arange(10, dtype=np.int64), "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
              "ids": np.array(["a", "bb", "ccc"]), "empty": np.zeros((0, 3), np.float32),
              "scalar": np.float64(2.5), "flags": np.array([True, False])}
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez_compressed(tmp_path / "z.npz", **arrays)
    for f in ("a.npz", "z.npz"):
        got = read_npz(tmp_path / f)
        assert set(got) == set(arrays)
        for k, v in arrays.items():
            assert got[k].dtype == v.dtype and got[k].shape == np.shape(v)
            np.testing.assert_array_equal(got[k], v)
        got["ints"][0] = 99  # copy-on-write: the file does not change
        assert read_npz(tmp_path / f)["ints"][0] == 0
    mapped = read_npz(tmp_path / "a.npz")["ints"]
    assert not mapped.flags.owndata  # a view of the mapped file, not a copy


def test_read_npz_refuses_pickled_and_damaged_archives(tmp_path):
    np.savez(tmp_path / "o.npz", obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        read_npz(tmp_path / "o.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not an npz"):
        read_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "t.npz", x=np.arange(100000))
    data = (tmp_path / "t.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "t.npz") as zf:
        info = zf.getinfo("x.npy")
    # keep the central directory but cut the member short: its header promises more than the file holds
    cut = info.header_offset + 30 + len("x.npy") + 200
    (tmp_path / "t2.npz").write_bytes(data[:cut] + data[cut + 400_000:])
    with pytest.raises(ValueError):
        read_npz(tmp_path / "t2.npz")


def test_a_damaged_model_file_is_a_bundle_error(tmp_path):
    ds = tiny_dataset()
    rec, _ = make_models(ds)
    rec.save(tmp_path / "m")
    (tmp_path / "m" / "arrays.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(BundleError, match="unreadable model file"):
        load_recommender(tmp_path / "m")
