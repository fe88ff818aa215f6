"""Train every model the library has on a dataset and publish them as one bundle.

Components of a bundle built by :func:`train_bundle`:

``recommender``  the served recommender (ALS on confidence-weighted purchases by default)
``popular``      the Popular baseline, the fallback for shoppers never seen
``candidates``   every customer's precomputed top-``n`` list (:class:`~personalize.recommenders.CandidateTable`)
``customers``    the customer table (:func:`personalize.customers.customer_table`: profile, RFM segment,
                 lifecycle, tier, CLV, consent flags) plus ``churn_risk``, ``churn_band`` and
                 ``churn_reasons`` when the churn model was trained
``churn``        the calibrated LightGBM :class:`~personalize.churn.ChurnModel` (see :mod:`personalize.pipeline.churn`)
``feedback``, ``points_lots``
                 with a feedback table / points ledger: the feedback rows (without free text) and the points
                 lots still holding points at the end of the data, so the service answers satisfaction and
                 points live (see :func:`loyalty_tables`)
``acceptance``, ``offers``, ``uplift``, ``coupons``
                 with an offer catalog and campaign exposures: the acceptance model, every customer's
                 next-best-offer scores, the coupon uplift model and every customer's coupon options
                 (see :mod:`personalize.pipeline.offers`)

The manifest says how good the recommender is: before the final fit, a fresh
copy of it and Popular are fitted on the data before the last validation
window and scored on the purchases in it (NDCG and recall at 10, on all
purchases and on discovery of new items; :func:`validate_recommender`).
With ``recommender="auto"`` (what ``personalize train`` does by default)
every candidate kind is scored that way and the best is served
(:func:`personalize.pipeline.select.select_recommender`; every score is in
the manifest).

With the store's event store (``events``), training honours it: customers
on its erasure list are dropped before anything is fitted, and the stored
purchase events are added to the training data (skipping order lines the
data already has), and so are its feedback and points events; the manifest records the last event id included
(``data.events_through_id``), so a service replays exactly the later ones.
Purchase events more than a year after the data's last purchase get a warning
(progress and ``data.events_warning`` in the manifest): the store most likely
belongs to another history.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from personalize._memory import release_memory
from personalize.customers import customer_table, merge_scores
from personalize.evaluation import evaluate, time_split
from personalize.errors import PersonalizeError
from personalize.offers import CandidateAffinity, OfferCatalog
from personalize.pipeline.offers import train_offers
from personalize.pipeline.select import select_recommender
from personalize.pipeline.churn import (DEFAULT_CHURN_CUTOFFS, DEFAULT_CHURN_HORIZON_DAYS, DEFAULT_CHURN_SPACING_DAYS,
                                        train_churn)
from personalize.recommenders import ALS, CandidateTable, Popular, Recommender
from personalize.store import BundleWriter
from personalize.store.bundles import check_keep
from personalize.store.events import EventStore

if TYPE_CHECKING:
    from personalize.churn import ChurnModel
    from personalize.data import Dataset

__all__ = ["train_bundle", "default_recommender", "validate_recommender", "validation_window"]

log = logging.getLogger(__name__)

DEFAULT_FACTORS = 64
DEFAULT_CANDIDATES = 200
VALIDATION_K = 10
#: stored purchase events reaching further than this past the history's last purchase get a warning (live events
#: are days or weeks newer than an export; years newer is another history's store)
STALE_EVENTS_DAYS = 365
#: the validation window: 28 days, or less on short histories (at most 15 % of the span, at least 7 days)
VALIDATION_DAYS = 28.0
_MIN_VALIDATION_DAYS = 7.0


def default_recommender(*, factors: int = DEFAULT_FACTORS, seed: int = 0) -> Recommender:
    """The recommender ``personalize train`` publishes by default."""
    return ALS(factors=factors, random_state=seed)


def _fresh(model: Recommender) -> Recommender:
    """An unfitted copy with the same hyperparameters."""
    return type(model)(**model.get_params())


def validation_window(dataset: Dataset, days: float | None = None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """(start, end) of the last validation window, or None when the history is too short for one.

    The window is ``days`` long (default 28, shortened to 15 % of the history
    on short histories, never below 7 days); at least twice its length must
    come before it.
    """
    first, last = dataset.first_timestamp, dataset.last_timestamp
    if first is None or last is None:
        return None
    span = (last - first) / pd.Timedelta(days=1)
    d = float(days) if days is not None else min(VALIDATION_DAYS, max(_MIN_VALIDATION_DAYS, 0.15 * span))
    if span < 3 * d:
        return None
    end = last + pd.Timedelta(1, "us")
    return end - pd.Timedelta(days=d), end


def validate_recommender(model: Recommender, dataset: Dataset, *, days: float | None = None,
                         k: int = VALIDATION_K) -> dict:
    """Score a fresh copy of ``model`` and Popular on the last validation window of ``dataset``.

    Returns ``{"status": "ok", "window": {...}, "k": k, "customers": {...}, "models": {name: {track: {"ndcg",
    "recall"}}}, "vs_popular": {track: ratio}}``, or ``{"status": "skipped", "reason": ...}`` when the history
    is too short or the window has no purchases by known customers. Never changes ``model``.
    """
    window = validation_window(dataset, days)
    if window is None:
        return {"status": "skipped", "reason": "history too short for a validation window "
                                               f"(needs at least {3 * _MIN_VALIDATION_DAYS:g} days)"}
    start, end = window
    split = time_split(dataset, start)
    if split.n_customers("all") == 0:
        return {"status": "skipped", "reason": f"no purchases by known customers in the validation window "
                                               f"{start.isoformat()} .. {end.isoformat()}"}
    name = model.kind or type(model).__name__.lower()
    models = {name: _fresh(model)}
    if name != "popular":
        models["popular"] = Popular()
    with threadpool_limits(1, "blas"):
        res = evaluate(models, split, k=k, tracks=("all", "discovery"), include_new_customers=False)
    scores: dict[str, dict] = {}
    for r in res.to_dict("records"):
        scores.setdefault(r["model"], {})[r["track"]] = {"ndcg": r["ndcg"], "recall": r["recall"]}
    vs = {}
    for track in ("all", "discovery"):
        pop = scores.get("popular", {}).get(track, {}).get("ndcg")
        mine = scores[name].get(track, {}).get("ndcg")
        vs[track] = (mine / pop) if pop and mine is not None and pop == pop and pop > 0 else None
    return {"status": "ok", "window": {"start": start.isoformat(), "end": end.isoformat()}, "k": k,
            "customers": {t: int(split.n_customers(t)) for t in ("all", "discovery")}, "models": scores,
            "served": name, "vs_popular": vs}


def train_bundle(dataset: Dataset, *, store: str | Path = "models", factors: int = DEFAULT_FACTORS,
                 candidates: int = DEFAULT_CANDIDATES, keep: int | None = None, seed: int = 0,
                 recommender: Recommender | str | None = None, popular: Popular | None = None, customers: bool = True,
                 churn: bool | ChurnModel | None = None, churn_horizon_days: float = DEFAULT_CHURN_HORIZON_DAYS,
                 churn_cutoffs: int = DEFAULT_CHURN_CUTOFFS, churn_spacing_days: float = DEFAULT_CHURN_SPACING_DAYS,
                 validate: bool = True, events: EventStore | None = None, include_events: bool = True,
                 offers: bool = True, ladder: str | None = None, progress: Callable[[str], None] | None = None,
                 extra_params: dict | None = None) -> dict:
    """Validate and fit the recommender, fit the Popular fallback and the churn model, precompute
    candidates, publish. Returns the manifest.

    ``recommender``: a Recommender to serve (validated against Popular), None
    for ALS, or ``"auto"`` to compare every candidate kind on the last
    validation window and serve the best (:mod:`personalize.pipeline.select`).

    ``churn``: True (the default churn model), an unfitted ``ChurnModel`` to
    train, or False to leave churn out (recorded in the manifest as skipped);
    None (default) means "with the customer table", i.e. ``customers``, since
    the scores live in that table. ``validate=False`` skips the validation fit
    (the manifest then says so). ``events``: the store's event store (erasures
    are always honoured; its purchases are added unless ``include_events`` is False).
    ``offers``: train the offer and coupon models when the data has offers and
    exposures (``ladder``: the coupon levels as offer ids, default every untargeted
    discount offer with exposures).
    """
    def say(msg: str) -> None:
        release_memory()  # each stage starts without the last one's freed memory (its peak stacks on less)
        if progress is not None:
            progress(msg)

    check_keep(keep)  # a bad value fails now, not after every model is trained
    timings: dict[str, float] = {}
    data_info: dict[str, Any] = {"events_through_id": 0}
    if events is not None:
        dataset, data_info = _apply_event_store(dataset, events, include_events, say)
    metrics: dict[str, Any] = {"timings": timings}
    if isinstance(recommender, str) and recommender == "auto":
        if validate:
            t = time.perf_counter()
            say("choosing the recommender on the last validation window")
            recommender, metrics["recommender"] = select_recommender(dataset, factors=factors, seed=seed,
                                                                     progress=say)
            timings["select_s"] = time.perf_counter() - t
            if recommender is None:
                say(f"no comparison ({metrics['recommender']['reason']}): serving ALS")
        else:
            recommender = None
            metrics["recommender"] = {"status": "skipped", "reason": "validation disabled (validate=False): "
                                                                     "auto serves ALS without comparing"}
        validate = False   # the comparison above is the validation
    elif isinstance(recommender, str):
        raise PersonalizeError(f"recommender must be a Recommender or 'auto', got {recommender!r}")
    if recommender is None:
        recommender = default_recommender(factors=factors, seed=seed)
    if popular is None:
        popular = Popular()
    if validate:
        t = time.perf_counter()
        say(f"validating {type(recommender).__name__} against Popular on the last validation window")
        metrics["recommender"] = validate_recommender(recommender, dataset)
        timings["validate_s"] = time.perf_counter() - t
    elif "recommender" not in metrics:
        metrics["recommender"] = {"status": "skipped", "reason": "validation disabled (validate=False)"}
    params = {"recommender": {"class": type(recommender).__name__, **_scalar_params(recommender)},
              "popular": {"class": type(popular).__name__, **_scalar_params(popular)},
              "candidates": candidates, "seed": seed, **(extra_params or {})}
    # the bundle is written component by component as each is ready (the served model and its candidates go to
    # disk before the churn and offer models are trained, and their memory is freed); it becomes visible only
    # when it is committed at the end, and an exception removes what was written
    models = {"recommender": recommender, "popular": popular}
    del recommender  # _train_components drops the model once it is written: no reference may stay here
    with BundleWriter(store) as bundle:
        return _train_components(dataset, bundle, models, params=params, metrics=metrics,
                                 data_info=data_info, timings=timings, candidates=candidates, keep=keep,
                                 seed=seed, customers=customers, churn=churn, churn_horizon_days=churn_horizon_days,
                                 churn_cutoffs=churn_cutoffs, churn_spacing_days=churn_spacing_days, offers=offers,
                                 ladder=ladder, say=say, progress=progress)


def _train_components(dataset: Dataset, bundle: BundleWriter, models: dict[str, Any], *,
                      params: dict, metrics: dict, data_info: dict, timings: dict, candidates: int,
                      keep: int | None, seed: int, customers: bool, churn, churn_horizon_days: float,
                      churn_cutoffs: int, churn_spacing_days: float, offers: bool, ladder: str | None, say,
                      progress) -> dict:
    """:func:`train_bundle` from the recommender fit on, adding each component to ``bundle`` when it is ready.

    ``models`` holds the recommender and Popular; the recommender is taken out of it once written, so that
    (unless the caller kept a reference) its memory is freed before the churn and offer models are trained."""
    recommender, popular = models.pop("recommender"), models.pop("popular")
    with threadpool_limits(1, "blas"):
        t = time.perf_counter()
        if (metrics.get("recommender") or {}).get("reuse") and hasattr(recommender, "refit"):
            say(f"refitting {type(recommender).__name__}'s generators on all the data (its rankers as compared)")
            recommender.refit(dataset)
        else:
            say(f"fitting {type(recommender).__name__}")
            recommender.fit(dataset)
        timings["fit_recommender_s"] = time.perf_counter() - t
        t = time.perf_counter()
        say("fitting Popular")
        popular.fit(dataset)
        timings["fit_popular_s"] = time.perf_counter() - t
        t = time.perf_counter()
        say(f"precomputing top-{candidates} candidates for {len(dataset.customer_vocab)} customers")
        step = {"next": 0.1}
        t_c = time.perf_counter()

        def cand_progress(done: int, total: int) -> None:  # every tenth of the way, with the time so far
            if total and done / total >= step["next"] and done < total:
                say(f"  candidates: {done:,} of {total:,} customers ({time.perf_counter() - t_c:.0f} s)")
                step["next"] = (int(done / total * 10) + 1) / 10

        table = CandidateTable.build(recommender, dataset, n=candidates, cold=popular,
                                     progress=cand_progress if progress is not None else None)
        timings["candidates_s"] = time.perf_counter() - t
    t = time.perf_counter()
    say("writing the recommender, Popular and the candidates")
    bundle.add("recommender", recommender)
    bundle.add("popular", popular)
    bundle.add("candidates", table)
    del recommender  # only the caller's reference (if any) keeps it now: the stages below never use it
    # the offer scores need only which offers' targets are among each customer's candidates: that, and not the
    # table (gigabytes at a million customers), is kept for them
    train_offers_now = offers and customers and dataset.offers is not None and dataset.exposures is not None \
        and len(dataset.exposures) > 0
    affinity = CandidateAffinity.from_table(OfferCatalog.from_frame(dataset.offers), table) \
        if train_offers_now else None
    del table
    timings["write_models_s"] = time.perf_counter() - t
    components: dict[str, Any] = {}
    if customers:
        t = time.perf_counter()
        say("building the customer table")
        components["customers"] = customer_table(dataset)
        timings["customers_s"] = time.perf_counter() - t
    if churn is None:
        churn = bool(customers)
    if churn is False:
        churn_info = {"status": "skipped", "reason": "churn disabled for this bundle (churn=False / --no-churn)"
                      if customers else "churn not requested: bundle built without a customer table (customers=False)"}
    else:
        t = time.perf_counter()
        say(f"training the churn model (production mode, {churn_horizon_days:g}-day horizon)")
        model, scores, churn_info = train_churn(dataset, model=None if churn is True else churn,
                                                horizon_days=churn_horizon_days, n_cutoffs=churn_cutoffs,
                                                spacing_days=churn_spacing_days, seed=seed)
        timings["churn_s"] = time.perf_counter() - t
        if model is not None:
            components["churn"] = model
            components["customers"] = merge_scores(components.get("customers"), scores)
            metrics["churn"] = {k: v for k, v in (model.validation_ or {}).items()
                                if k in ("auc", "pr_auc", "log_loss", "brier", "rows", "positive_rate")}
        else:
            say(f"churn skipped: {churn_info['reason']}")
    campaign_tables(dataset, components, say)
    loyalty_info = loyalty_tables(dataset, components, say)
    offer_info: dict[str, Any] = {}
    if offers and customers:
        t = time.perf_counter()
        comps, offer_info, offer_metrics = train_offers(dataset, components["customers"], affinity,
                                                        ladder=ladder, seed=seed, progress=say)
        del affinity
        components.update(comps)
        metrics.update(offer_metrics)
        timings["offers_s"] = time.perf_counter() - t
    if "churn" in components:
        params["churn"] = {"class": type(components["churn"]).__name__, "horizon_days": churn_horizon_days,
                           "n_cutoffs": churn_cutoffs, "spacing_days": churn_spacing_days,
                           **_scalar_params(components["churn"])}
    say("publishing")
    t = time.perf_counter()
    for name in list(components):
        bundle.add(name, components.pop(name))  # each table freed once written
    timings["write_tables_s"] = time.perf_counter() - t
    return bundle.commit(dataset, params=params, metrics=metrics, keep=keep,
                         extra={"churn": churn_info, **offer_info, **loyalty_info}, data=data_info)


def loyalty_tables(dataset: Dataset, components: dict, say) -> dict:
    """The ``feedback`` table (free text left out: the service needs scores, not words) and the ``points_lots``
    table (points lots with points left at the end of the data) for the service; the manifest's ``points`` info."""
    info: dict[str, Any] = {}
    end = (pd.Timestamp(dataset.last_timestamp).normalize() + pd.Timedelta(days=1)
           if dataset.last_timestamp is not None else None)
    fb = getattr(dataset, "feedback", None)
    if fb is not None and len(fb):
        say(f"keeping {len(fb):,} feedback rows for live satisfaction answers")
        components["feedback"] = fb.drop(columns=[c for c in ("text",) if c in fb.columns]).reset_index(drop=True)
    pts = getattr(dataset, "points", None)
    if pts is not None and len(pts) and end is not None:
        from personalize.analytics.points import DEFAULT_POINT_VALUE, points_lots

        cut = max(end, pd.Timestamp(pts["timestamp"].max()) + pd.Timedelta(microseconds=1))
        lots = points_lots(pts, cut)
        held = lots.lot_left > 0
        components["points_lots"] = pd.DataFrame({
            "customer_id": pd.array(lots.ids[lots.lot_cust[held]], dtype="str"),
            "earned_at": lots.lot_earned[held].view("datetime64[ns]"),
            "expires_at": np.where(lots.lot_expires[held] == np.iinfo(np.int64).max, np.iinfo(np.int64).min,
                                   lots.lot_expires[held]).view("datetime64[ns]"),  # never: NaT
            "left": lots.lot_left[held]})
        info["points"] = {"mode": lots.mode, "as_of": cut.isoformat(), "point_value": DEFAULT_POINT_VALUE,
                          "lots": int(held.sum())}
        say(f"keeping {int(held.sum()):,} points lots with points left for live balances")
    return info


def campaign_tables(dataset: Dataset, components: dict, say) -> None:
    """The campaigns' exposures and pre-period features (``campaign_exposures`` / ``campaign_features``
    tables), so the service can read a campaign out (``GET /v1/campaigns/{id}/readout``)."""
    exp = dataset.exposures
    if exp is None or not len(exp) or "campaign_id" not in exp.columns or exp["campaign_id"].isna().all():
        return
    from personalize.data import CampaignData

    say("keeping the campaigns' exposures and pre-period features for readouts")
    data = CampaignData.from_dataset(dataset, exposures=exp[exp["campaign_id"].notna()].reset_index(drop=True))
    components["campaign_exposures"] = data.exposures.reset_index(drop=True)
    if data.features is not None:
        feats = data.features.reset_index()
        if "campaign_id" not in feats.columns:
            feats.insert(0, "campaign_id", str(data.campaign_ids[0]))
        components["campaign_features"] = feats


def _apply_event_store(dataset: Dataset, events: EventStore, include: bool, say) -> tuple[Dataset, dict]:
    """Drop erased customers, add stored purchases; the manifest's record of what was used."""
    erasures = events.erasures()
    info: dict[str, Any] = {"events_through_id": 0, "erasures_applied": len(erasures)}
    if len(erasures):
        before = dataset.n_customers
        dataset = dataset.without_customers(erasures.mask)
        say(f"dropped {before - dataset.n_customers} erased customer(s) before fitting")
    if include:
        through = events.last_id()
        frame = events.purchases_frame(upto_id=through)
        if len(erasures) and len(frame):
            frame = frame.loc[~erasures.mask(frame["customer_id"].to_numpy(dtype=object))]
        n0, end0 = len(dataset), dataset.last_timestamp
        dataset = dataset.with_purchases(frame)
        info.update(events_through_id=through, event_purchases_added=len(dataset) - n0)
        say(f"added {len(dataset) - n0} stored purchase event(s) (through event {through})")
        gap = (dataset.last_timestamp - end0) if end0 is not None and dataset.last_timestamp is not None else None
        if gap is not None and gap > pd.Timedelta(days=STALE_EVENTS_DAYS):
            # live events are days or weeks newer than the export; years newer is another history's store
            # (e.g. the demo's): every window of the models would then sit in the events' dates, not the data's
            info["events_warning"] = (
                f"the event store's purchases reach {dataset.last_timestamp:%Y-%m-%d}, {gap.days:,} days after this "
                f"history's last purchase ({end0:%Y-%m-%d}): if the store belongs to another history (e.g. the "
                f"demo's), train into another --out, or pass --no-events to leave its events out")
            log.warning(info["events_warning"])
            say(f"WARNING: {info['events_warning']}")
        for kind in ("feedback", "points"):
            rows = events.feedback_frame(upto_id=through) if kind == "feedback" else events.points_frame(
                upto_id=through)
            if len(erasures) and len(rows):
                rows = rows.loc[~erasures.mask(rows["customer_id"].to_numpy(dtype=object))]
            if len(rows):
                before = 0 if getattr(dataset, kind) is None else len(getattr(dataset, kind))
                dataset = dataset.with_feedback(rows) if kind == "feedback" else dataset.with_points(rows)
                info[f"event_{kind}_added"] = len(getattr(dataset, kind)) - before
                say(f"added {len(getattr(dataset, kind)) - before} stored {kind} event(s)")
        shown = events.exposures_frame(upto_id=through)
        if len(erasures) and len(shown):
            shown = shown.loc[~erasures.mask(shown["customer_id"].to_numpy(dtype=object))]
        if len(shown) and dataset.offers is not None:
            e0 = 0 if dataset.exposures is None else len(dataset.exposures)
            dataset = dataset.with_exposures(shown)
            added = (0 if dataset.exposures is None else len(dataset.exposures)) - e0
            info["event_exposures_added"] = added
            say(f"added {added} stored offer exposure(s) (they count against caps and cooldowns)")
    return dataset, info


def _scalar_params(model) -> dict:
    return {k: v for k, v in model.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))}
