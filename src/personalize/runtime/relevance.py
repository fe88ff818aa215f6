"""Comparable scores: a raw score (an ALS dot product, a popularity count) as a relevance in [0, 1].

Every recommendation the service returns carries ``raw_score`` (what its
source computed) and ``score``: the share of that source's scores, over
every customer's precomputed candidate list, at or below it -- its
percentile. A 0.97 from ALS and a 0.97 from the popularity fallback both
mean "among the top 3 % of what this source recommends", whatever the raw
scales (0.76 against 149.0). A source the table never used (e.g. the live
model's cold-start chain) falls back to the position in the list:
``1 - (rank - 1) / k``.

The quantiles are the candidate table's
(:meth:`~personalize.recommenders.CandidateTable.score_quantiles`), stored
with it when it is saved: loading a bundle does not pass over its millions of
scores again.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Relevance"]


class Relevance:
    """Per-source score quantiles; :meth:`scale` maps raw scores to percentiles."""

    def __init__(self, quantiles: dict[str, np.ndarray]) -> None:
        self.quantiles = quantiles

    @classmethod
    def from_candidates(cls, table) -> "Relevance":
        return cls({} if table is None else dict(table.score_quantiles()))

    def scale(self, source: str, raw: np.ndarray, ranks: np.ndarray, k: int) -> np.ndarray:
        """Percentiles of ``raw`` among ``source``'s scores (by position when the source is unknown)."""
        q = self.quantiles.get(source.split(":", 1)[0])
        if q is None:
            return 1.0 - (np.asarray(ranks, np.float64) - 1.0) / max(int(k), 1)
        lo = np.searchsorted(q, raw, side="left")
        hi = np.searchsorted(q, raw, side="right")
        # the middle of the tied run: a score equal to many quantiles sits halfway through them
        return np.clip((lo + hi) / 2.0 / (len(q) - 1), 0.0, 1.0)

    def apply(self, items: list[dict], k: int) -> list[dict]:
        """Set ``raw_score`` and ``score`` (relevance) on recommendation dicts (in place; returns them)."""
        if not items:
            return items
        by_source: dict[str, list[int]] = {}
        for j, it in enumerate(items):
            by_source.setdefault(it["source"], []).append(j)
        for source, js in by_source.items():
            raw = np.array([items[j]["score"] for j in js], np.float64)
            rel = self.scale(source, raw, np.array([items[j]["rank"] for j in js]), k)
            for j, r in zip(js, rel.tolist()):
                items[j]["raw_score"] = items[j]["score"]
                items[j]["score"] = round(float(r), 6)
        return items
