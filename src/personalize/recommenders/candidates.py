"""Per-customer candidate lists precomputed at publish time, filtered at request time.

Scoring a 100,000-item catalog for every page view costs milliseconds; reading
a precomputed top-``n`` list and masking it with the request's filters costs
microseconds. A :class:`CandidateTable` holds, for every customer of the
dataset, the recommender's top-``n`` items (no exclusions applied), the items
each customer bought (to apply ``exclude`` at request time), the
:class:`~personalize.recommenders.catalog.ItemCatalog` the request's
:class:`~personalize.recommenders.filters.Filters` run on, and one "cold"
list for customers the model has never seen. When a filtered list runs short
of ``k`` items the caller asks the recommender itself (see
:class:`personalize.runtime.Runtime`).

Stored pickle-free: ``arrays.npz`` (``allow_pickle=False``, ids as fixed-width
unicode) plus ``meta.json``. The arrays include each source's score quantiles
(:meth:`CandidateTable.score_quantiles`, what the service's relevance scores
are read from), computed once when the table is built or saved, so a load does
not pass over every score again; a table saved without them computes them on
load.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalize._arrayfiles import read_npz
from personalize._atomic import atomic_write
from personalize.errors import BundleError, PersonalizeError
from personalize.recommenders.catalog import ItemCatalog
from personalize.recommenders.topk import blas_one_thread, bulk_scoring, ranks

if TYPE_CHECKING:
    from personalize.data import Dataset
    from personalize.recommenders.base import Recommender

__all__ = ["CandidateTable", "QUANTILE_GRID", "item_code_dtype"]

#: the probabilities at which :meth:`CandidateTable.score_quantiles` cuts each source's scores
QUANTILE_GRID = np.linspace(0.0, 1.0, 257)
#: scores drawn (without replacement, fixed seed) when a table holds more than this many
_QUANTILE_SAMPLE = 2_000_000


def item_code_dtype(n_items: int) -> np.dtype:
    """The dtype of a candidate table's item codes (-1 = no item): int16 for catalogs under 32,767 items (a
    million customers' top-200 lists take 0.4 GB instead of 0.8), int32 above."""
    return np.dtype(np.int16) if n_items < np.iinfo(np.int16).max else np.dtype(np.int32)


class CandidateTable:
    """Precomputed top-``n`` candidates per customer plus what request-time filters need."""

    bundle_kind = "candidates"

    def __init__(self, *, customer_ids: np.ndarray, item_ids: np.ndarray, items: np.ndarray, scores: np.ndarray,
                 sources: np.ndarray, source_names: list[str], bought_indptr: np.ndarray,
                 bought_indices: np.ndarray, cold_items: np.ndarray, cold_scores: np.ndarray,
                 cold_sources: np.ndarray, catalog: ItemCatalog, n: int,
                 score_quantiles: dict[str, np.ndarray] | None = None) -> None:
        self.customer_ids = customer_ids
        self.item_ids = item_ids
        self.items = items
        self.scores = scores
        self.sources = sources
        self.source_names = list(source_names)
        self.bought_indptr = bought_indptr
        self.bought_indices = bought_indices
        self.cold_items = cold_items
        self.cold_scores = cold_scores
        self.cold_sources = cold_sources
        self.catalog = catalog
        self.n = int(n)
        self.customer_pos = {str(c): i for i, c in enumerate(self.customer_ids.tolist())}
        self.item_ids_list = [str(x) for x in self.item_ids.tolist()]
        self.item_index = pd.Index(self.item_ids_list)
        self._quantiles = dict(score_quantiles) if score_quantiles is not None else None

    @property
    def item_pos(self) -> dict[str, int]:
        """Item id -> position (built on first use: a load does not pay for it)."""
        pos = self.__dict__.get("_item_pos")
        if pos is None:
            pos = self.__dict__["_item_pos"] = {c: i for i, c in enumerate(self.item_ids_list)}
        return pos

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, recommender: Recommender, dataset: Dataset, *, n: int = 200, cold: Recommender | None = None,
              batch_size: int = 2000, n_jobs: int = 0, progress=None) -> "CandidateTable":
        """Ask ``recommender`` for the top-``n`` items of every customer in ``dataset`` (no exclusions).

        ``cold`` (default: ``recommender``) answers for a customer it has never
        seen; its list is served to unknown customers. ``n_jobs`` batches are scored at once, in threads, each
        scorer on one thread (0 = one per core): most of the scoring is NumPy and LightGBM code that releases
        the GIL, and one batch on every core leaves cores idle in its single-threaded steps.
        """
        if n < 1:
            raise PersonalizeError(f"candidate list length n must be at least 1, got {n}")
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 0:
            raise PersonalizeError(f"n_jobs must be an integer >= 0 (0 = one per core), got {n_jobs!r}")
        item_ids = np.asarray(dataset.item_vocab.ids, dtype=str)
        customer_ids = np.asarray(dataset.customer_vocab.ids, dtype=str)
        item_pos = pd.Index(item_ids)
        n_c = len(customer_ids)
        n = int(min(n, len(item_ids))) if len(item_ids) else int(n)
        items = np.full((n_c, n), -1, dtype=item_code_dtype(len(item_ids)))
        scores = np.zeros((n_c, n), dtype=np.float32)
        sources = np.zeros((n_c, n), dtype=np.int8)
        source_names: list[str] = []

        def src_codes(values) -> np.ndarray:
            vals = pd.Series(np.asarray(values, dtype=object), copy=False).astype(str)
            for s in pd.unique(vals):
                if s not in source_names:
                    if len(source_names) >= 127:
                        raise PersonalizeError("more than 127 distinct recommendation sources")
                    source_names.append(str(s))
            return pd.Index(source_names).get_indexer(vals).astype(np.int8)

        # on index arrays, not frames: a million customers x 200 items is 200M rows
        model_items = item_pos.get_indexer(np.asarray(recommender.item_ids_, dtype=str))
        model_sources = src_codes(recommender.source_names_)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(int(n_jobs) or cores, max(1, -(-n_c // batch_size)))

        def one(start: int, threads: int) -> None:  # fills rows start.. of the tables (batches never overlap)
            batch = customer_ids[start:start + batch_size]
            with bulk_scoring(threads):  # a batch job: the model's own scorer may use these threads
                row, item, score, src = recommender.recommend_indices(batch.astype(object), k=n, exclude="none")
            if len(row):
                col = ranks(row) - 1
                iidx = model_items[item]
                ok = (col < n) & (iidx >= 0)
                row = row + start
                items[row[ok], col[ok]] = iidx[ok]
                scores[row[ok], col[ok]] = score[ok].astype(np.float32)
                sources[row[ok], col[ok]] = model_sources[src[ok]]

        def report(start: int) -> None:
            if progress is not None:
                progress(min(start + batch_size, n_c), n_c)

        starts = list(range(0, n_c, batch_size))
        if starts:
            # the first batch alone builds whatever the model caches on first use; then `workers` at a time,
            # BLAS on one thread each (the threads are the parallelism)
            one(starts[0], 0)
            report(starts[0])
        if workers == 1:
            for start in starts[1:]:
                one(start, 0)
                report(start)
        elif len(starts) > 1:
            with blas_one_thread(), ThreadPoolExecutor(workers, thread_name_prefix="candidates") as pool:
                for start, _ in zip(starts[1:], pool.map(lambda s: one(s, 1), starts[1:])):
                    report(start)

        cold_model = cold if cold is not None else recommender
        unknown = "\x00__personalize_unknown_customer__"
        cdf = cold_model.recommend(unknown, k=n, exclude="none")
        ci = item_pos.get_indexer(cdf["item_id"].astype(str))
        keep = ci >= 0
        cold_items = ci[keep].astype(np.int32)
        cold_scores = cdf["score"].to_numpy(dtype=np.float32)[keep]
        cold_sources = src_codes(cdf["source"].to_numpy(dtype=object)[keep]) if keep.any() else np.zeros(0, np.int8)

        bought = dataset.interaction_matrix("count").tocsr()
        bought.sort_indices()

        return cls(customer_ids=customer_ids, item_ids=item_ids, items=items, scores=scores, sources=sources,
                   source_names=source_names or ["unknown"], bought_indptr=bought.indptr.astype(np.int64),
                   bought_indices=bought.indices.astype(np.int32), cold_items=cold_items, cold_scores=cold_scores,
                   cold_sources=cold_sources, catalog=ItemCatalog.from_items(item_ids, dataset.items), n=n)

    # ------------------------------------------------------------------ score distribution
    def score_quantiles(self) -> dict[str, np.ndarray]:
        """Per source name, the quantiles (at :data:`QUANTILE_GRID`) of its finite scores over every
        customer's list and the cold list (2,000,000 list positions drawn at random when there are more)."""
        if self._quantiles is None:
            # sample positions first, then gather: a million customers x 200 is 200M scores, and copying them
            # all (as float64, with their sources and items) would cost gigabytes for a 2M-score sample
            flat_items, flat_scores = np.asarray(self.items).reshape(-1), np.asarray(self.scores).reshape(-1)
            flat_sources = np.asarray(self.sources).reshape(-1)
            n_main, n_all = flat_items.size, flat_items.size + len(self.cold_items)
            pick = np.arange(n_all) if n_all <= _QUANTILE_SAMPLE else \
                np.sort(np.random.default_rng(0).choice(n_all, _QUANTILE_SAMPLE, replace=False))
            main, cold = pick[pick < n_main], pick[pick >= n_main] - n_main
            scores = np.concatenate([flat_scores[main].astype(np.float64),
                                     np.asarray(self.cold_scores, np.float64)[cold]])
            sources = np.concatenate([flat_sources[main], np.asarray(self.cold_sources)[cold]])
            items = np.concatenate([flat_items[main], np.asarray(self.cold_items)[cold]])
            ok = (items >= 0) & np.isfinite(scores)
            scores, sources = scores[ok], sources[ok]
            out = {}
            for code, name in enumerate(self.source_names):
                v = scores[sources == code]
                if v.size:
                    out[str(name)] = np.quantile(v, QUANTILE_GRID)
            self._quantiles = out
        return self._quantiles

    def _quantile_array(self) -> np.ndarray:
        """:meth:`score_quantiles` as one array, a row per source name (NaN: the source has no scores)."""
        q = self.score_quantiles()
        out = np.full((len(self.source_names), len(QUANTILE_GRID)), np.nan)
        for code, name in enumerate(self.source_names):
            if str(name) in q:
                out[code] = q[str(name)]
        return out

    # ------------------------------------------------------------------ persistence
    _ARRAYS = ("customer_ids", "item_ids", "items", "scores", "sources", "bought_indptr", "bought_indices",
               "cold_items", "cold_scores", "cold_sources")

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        arrays.update({f"catalog_{k}": v for k, v in self.catalog.to_arrays().items()})
        arrays["score_quantiles"] = self._quantile_array()
        atomic_write(d / "arrays.npz", lambda fh: np.savez(fh, **arrays))
        meta = {"kind": "candidates", "n": self.n, "source_names": self.source_names}
        atomic_write(d / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2)), binary=False)

    @classmethod
    def load(cls, directory: str | Path) -> "CandidateTable":
        d = Path(directory)
        try:
            meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
            z = read_npz(d / "arrays.npz")
            arrays = {name: z[name] for name in cls._ARRAYS}
            catalog = ItemCatalog.from_arrays(arrays["item_ids"], {k[len("catalog_"):]: v for k, v in z.items()
                                                                   if k.startswith("catalog_")})
            qa = z.get("score_quantiles")
            names = meta["source_names"]
            quantiles = None  # a table saved before the quantiles were: computed on first use
            if qa is not None:
                if qa.ndim != 2 or qa.shape != (len(names), len(QUANTILE_GRID)):
                    raise ValueError(f"score_quantiles has shape {qa.shape}, expected "
                                     f"{(len(names), len(QUANTILE_GRID))}")
                quantiles = {str(name): qa[code] for code, name in enumerate(names) if np.isfinite(qa[code]).all()}
            return cls(**arrays, catalog=catalog, source_names=names, n=meta["n"], score_quantiles=quantiles)
        except FileNotFoundError as exc:
            raise BundleError(f"candidate table file missing: {exc.filename}") from None
        except (KeyError, ValueError, json.JSONDecodeError) as exc:
            raise BundleError(f"candidate table in {d} is unreadable: {exc}") from None

    # ------------------------------------------------------------------ lookup
    def bought(self, row: int) -> np.ndarray:
        return self.bought_indices[self.bought_indptr[row]:self.bought_indptr[row + 1]]
