"""Choosing the served recommender at train time (``personalize train --recommender auto``, the default).

Every candidate kind is fitted on the history before the last validation
window and scored on the purchases in it (NDCG@10 on all purchases, the
served task; discovery of new items breaks ties within 1 %), beside Popular.
The best one is served; every candidate's scores, fit time, and the reason
a candidate was left out (a catalog too large for EASE, a history too short
for TwoStage's windows, a fit that failed) go into the manifest. A candidate
that does not beat Popular is never chosen over it: Popular is then served
(the data is popularity-dominated).

On large data the comparison runs on a random sample of customers (their
whole histories; ``max_customers``, default 100,000: the validation window then holds tens of
thousands of buyers, enough to tell the candidates apart), so the choice costs a few fits of a
sample, not of everyone; the chosen kind is then fitted on all the data. When TwoStage wins on a
sample, the compared model itself is returned and :meth:`TwoStage.refit
<personalize.recommenders.TwoStage.refit>` keeps its rankers (what was scored is what is served) and
refits only its generators and feature tables on everyone: its training windows, the most expensive
part of its fit, are not fitted twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from personalize.errors import PersonalizeError
from personalize.evaluation import evaluate, time_split
from personalize.recommenders import Popular, Recommender, make, registry

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["AUTO_CANDIDATES", "select_recommender", "EASE_MAX_ITEMS"]

#: the kinds ``auto`` compares (those the installed library has)
AUTO_CANDIDATES = ("als", "itemknn", "buyagain", "twostage", "ease")
#: EASE inverts an items x items matrix: only for catalogs up to this size
EASE_MAX_ITEMS = 30_000
#: ties on all-purchase NDCG within this relative margin are broken by discovery NDCG
TIE_MARGIN = 0.01


#: from this many customers up, TwoStage trains its rankers and generators on every core (its default is one
#: thread, right for a shared machine and small data)
LARGE_CUSTOMERS = 200_000


def _params(kind: str, factors: int, seed: int, n_customers: int = 0) -> dict:
    if kind in ("als", "bpr"):
        return {"factors": factors, "random_state": seed}
    if kind == "twostage":
        return {"random_state": seed, **({"num_threads": 0} if n_customers >= LARGE_CUSTOMERS else {})}
    return {}  # itemknn, buyagain, ease: deterministic; their defaults adapt to the data


def select_recommender(dataset: Dataset, *, candidates: Sequence[str] = AUTO_CANDIDATES, factors: int = 64,
                       seed: int = 0, window: tuple | None = None, k: int = 10, max_customers: int = 100_000,
                       progress: Callable[[str], None] | None = None) -> tuple[Recommender | None, dict]:
    """(the best candidate, or None when none could be scored; the report).

    The model is an unfitted copy, except a TwoStage chosen on a sample of the customers: then it is
    the compared (fitted) model, to be :meth:`~personalize.recommenders.TwoStage.refit` on all the data
    (``report["reuse"]`` says so).

    ``window``: the validation window ``(start, end)`` (default: the pipeline's
    :func:`~personalize.pipeline.train.validation_window`).
    """
    from personalize.pipeline.train import validation_window

    say = progress or (lambda msg: None)
    kinds = [c for c in candidates if c in registry()]
    if not kinds:
        raise PersonalizeError(f"none of the candidate models {list(candidates)} exists; kinds: {sorted(registry())}")
    window = window or validation_window(dataset)
    if window is None:
        return None, {"status": "skipped", "reason": "history too short for a validation window"}
    data, sampled = dataset, None
    if dataset.n_customers > max_customers:
        rng = np.random.default_rng(seed)
        ids = np.asarray(dataset.customer_vocab.ids, dtype=object)
        keep = pd.Index(rng.choice(ids, size=max_customers, replace=False))
        data = dataset.without_customers(lambda c: ~pd.Index(np.asarray(c, dtype=object)).isin(keep))
        sampled = max_customers
    split = time_split(data, window[0])
    if split.n_customers("all") == 0:
        return None, {"status": "skipped", "reason": "no purchases by known customers in the validation window"}
    scores: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    fit_s: dict[str, float] = {}
    fitted: dict[str, Recommender] = {}
    with threadpool_limits(1, "blas"):
        for kind in ["popular", *kinds]:
            if kind == "ease" and data.n_items > EASE_MAX_ITEMS:
                skipped[kind] = f"{data.n_items:,} items: EASE is for catalogs up to {EASE_MAX_ITEMS:,}"
                continue
            # threads by the size of the whole data: a TwoStage compared on a sample may be the one served
            model = Popular() if kind == "popular" else make(kind, **_params(kind, factors, seed,
                                                                              dataset.n_customers))
            say(f"  comparing {kind} on the validation window")
            t = time.perf_counter()
            try:
                res = evaluate({kind: model}, split, k=k, tracks=("all", "discovery"), include_new_customers=False)
            except PersonalizeError as exc:  # e.g. a history too short for the model's own windows
                skipped[kind] = str(exc)
                continue
            fit_s[kind] = round(time.perf_counter() - t, 2)
            fitted[kind] = model
            scores[kind] = {r["track"]: {"ndcg": float(r["ndcg"]), "recall": float(r["recall"])}
                            for r in res.to_dict("records")}

    def key(kind: str) -> tuple[float, float]:
        s = scores[kind]
        return (s.get("all", {}).get("ndcg", float("nan")), s.get("discovery", {}).get("ndcg", float("nan")))

    ranked = sorted((kd for kd in scores if np.isfinite(key(kd)[0])), key=lambda kd: key(kd)[0], reverse=True)
    if not ranked:
        return None, {"status": "skipped", "reason": "no candidate could be scored", "skipped": skipped}
    best = ranked[0]
    top = key(best)[0]
    close = [kd for kd in ranked if key(kd)[0] >= top * (1 - TIE_MARGIN)]
    best = max(close, key=lambda kd: np.nan_to_num(key(kd)[1], nan=-1.0))
    pop = key("popular") if "popular" in scores else (np.nan, np.nan)
    vs = {track: (scores[best][track]["ndcg"] / p if p and p > 0 and track in scores[best] else None)
          for track, p in (("all", pop[0]), ("discovery", pop[1]))}
    report: dict[str, Any] = {
        "status": "ok", "selection": "auto", "criterion": f"ndcg@{k} on all purchases of the validation window "
                                                          f"(discovery ndcg breaks ties within {TIE_MARGIN:.0%})",
        "window": {"start": window[0].isoformat(), "end": window[1].isoformat()}, "k": k,
        "customers": {t: int(split.n_customers(t)) for t in ("all", "discovery")}, "sampled_customers": sampled,
        "models": scores, "fit_seconds": fit_s, "skipped": skipped, "ranking": ranked, "served": best,
        "vs_popular": vs}
    say(f"  serving {best} (" + ", ".join(f"{kd} {key(kd)[0]:.4f}" for kd in ranked) + ")")
    if best == "twostage" and sampled is not None:
        report["reuse"] = ("the compared TwoStage's rankers (fitted on the sample before the window), "
                           "generators and feature tables refit on all the data")
        return fitted[best], report
    chosen = Popular() if best == "popular" else make(best, **_params(best, factors, seed, dataset.n_customers))
    return chosen, report
