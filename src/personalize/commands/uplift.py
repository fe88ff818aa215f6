"""``personalize uplift evaluate``: held-out uplift@k, Qini, AUUC and IPW policy values of the uplift learners.

Reads campaign exposures like ``personalize abtest`` (``--format hillstrom`` or ``generic`` with
column options), builds the training set with :func:`personalize.uplift.campaign_training_set`
(features from ``--features`` or, with ``--history``, computed from the purchase history
strictly before each exposure) and runs :func:`personalize.uplift.evaluate_uplift`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from personalize.commands.common import (CampaignCol, ConvertedCol, CustomerCol, Decimal, ExposureOfferCol,
                                         ExposureOffersFile, ExposureTimeCol, JsonOpt, RandomizedCol, RandomizedFlag,
                                         RevenueCol, Sep, TimeFormat, emit)
from personalize.errors import DataError

uplift_app = typer.Typer(name="uplift", help="Uplift models of randomized campaigns: `uplift evaluate`.",
                         no_args_is_help=True)

HILLSTROM_DEFAULT = Path("..") / "shared" / "data" / "hillstrom" / "hillstrom.csv.gz"
_HILLSTROM_TARGETS = {"visit": ("visit", "converted"), "conversion": ("conversion", "converted"),
                      "spend": ("visit", "revenue")}
_GENERIC_TARGETS = ("converted", "revenue")
HISTORY_FORMATS = ("online_retail", "cdnow", "cdnow_sample", "generic")


def _resolve_target(format: str, target: str | None) -> tuple[str | None, str]:
    """(Hillstrom loader target, training-set target) for ``--target``."""
    if format == "hillstrom":
        t = target or "visit"
        if t not in _HILLSTROM_TARGETS:
            raise DataError(f"--target {t!r}: the Hillstrom file's targets are {', '.join(_HILLSTROM_TARGETS)}")
        return _HILLSTROM_TARGETS[t]
    t = target or "converted"
    if t not in _GENERIC_TARGETS:
        raise DataError(f"--target {t!r}: generic exposures have the targets {', '.join(_GENERIC_TARGETS)} "
                        "(the --converted-col and --revenue-col columns)")
    return None, t


def evaluate_command(
    exposures: Annotated[str | None, typer.Option("--exposures", help="Exposures file (CSV, CSV.gz, Parquet); "
                                                  f"hillstrom default: {HILLSTROM_DEFAULT}")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="hillstrom | generic")] = "generic",
    treatment: Annotated[list[str] | None, typer.Option("--treatment", help="Treatment arm (offer id) to model "
                                                        "against the control (repeatable: several arms make a "
                                                        "multi-treatment problem; default: every arm).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="hillstrom: visit | conversion | spend; generic: "
                                               "converted | revenue")] = None,
    campaign: Annotated[str | None, typer.Option("--campaign", help="Campaign id to keep (default: every "
                                                 "exposure).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Random train/test splits (seeds 0 .. n-1).")] = 5,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of rows held out for "
                                                 "testing, stratified by arm and outcome.")] = 0.3,
    cv: Annotated[int, typer.Option("--cv", help="Folds of the model selection inside the training rows.")] = 5,
    select_by: Annotated[str, typer.Option("--select-by", help="Validation metric that chooses the learner: "
                                           "qini | auuc | uplift_at_30")] = "qini",
    candidates: Annotated[str, typer.Option("--candidates", help="grid (S/T/X-learner and the transformed-outcome "
                                            "learner at five tree settings) | meta (S/T/X only)")] = "grid",
    k: Annotated[float, typer.Option("--k", help="Top share for uplift@k and the top-k policy.")] = 0.3,
    feature: Annotated[list[str] | None, typer.Option("--feature", help="Feature column to use (repeatable; "
                                                      "default: all).")] = None,
    plots: Annotated[str | None, typer.Option("--plots", help="Folder for qini_curve.png and uplift_curve.png "
                                              "(first seed's test rows); its parent must exist.")] = None,
    n_jobs: Annotated[int | None, typer.Option("--n-jobs", help="LightGBM threads per model.")] = None,
    customer_col: CustomerCol = None, offer_col: ExposureOfferCol = None, time_col: ExposureTimeCol = None,
    converted_col: ConvertedCol = None, revenue_col: RevenueCol = None, campaign_col: CampaignCol = None,
    randomized_col: RandomizedCol = None, randomized: RandomizedFlag = None, offers: ExposureOffersFile = None,
    features: Annotated[str | None, typer.Option("--features", help="generic: customer features file "
                                                 "(customer_id + columns measured before the campaign)")] = None,
    history: Annotated[str | None, typer.Option("--history", help="generic: purchase history file; features are "
                                                "computed from it strictly before each exposure")] = None,
    history_format: Annotated[str, typer.Option("--history-format", help="Format of --history: online_retail | "
                                                "cdnow | cdnow_sample | generic (canonical column "
                                                "names)")] = "generic",
    time_format: TimeFormat = None, sep: Sep = None, decimal: Decimal = ".",
    json: JsonOpt = False,
) -> None:
    """Held-out uplift@k, Qini, AUUC of every learner and the CV-chosen one, IPW policy values; mean over seeds."""
    from personalize.commands.experiments import _load_exposures
    from personalize.uplift import campaign_training_set, candidate_grid, default_candidates, evaluate_uplift
    from personalize.uplift.plots import plot_evaluation

    t0 = time.perf_counter()
    if format not in ("hillstrom", "generic"):
        raise DataError(f"unknown --format {format!r} for exposures; expected hillstrom or generic")
    if candidates not in ("grid", "meta"):
        raise DataError(f"--candidates {candidates!r}: expected grid or meta")
    if seeds < 1:
        raise DataError(f"--seeds must be >= 1, got {seeds}")
    if cv < 2:
        raise DataError(f"--cv must be >= 2 folds, got {cv}")
    if not 0 < test_fraction < 1:
        raise DataError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    plot_dir = None
    if plots is not None:
        plot_dir = Path(plots)
        if not plot_dir.parent.is_dir():
            raise DataError(f"--plots {plots}: folder {plot_dir.parent} does not exist")
        if plot_dir.exists() and not plot_dir.is_dir():
            raise DataError(f"--plots {plots}: is a file, not a folder")
    loader_target, ts_target = _resolve_target(format, target)
    if format == "hillstrom" and exposures is None:
        if not HILLSTROM_DEFAULT.is_file():
            raise DataError(f"the Hillstrom file is not at {HILLSTROM_DEFAULT}; pass --exposures PATH")
        exposures = str(HILLSTROM_DEFAULT)
    if exposures is None:
        raise DataError("uplift evaluate needs --exposures PATH (or --format hillstrom)")
    if history is not None and (format != "generic" or features is not None):
        raise DataError("--history goes with --format generic and replaces --features")
    data = _load_exposures(exposures, format, target=loader_target or "visit", customer_col=customer_col,
                           offer_col=offer_col, time_col=time_col, converted_col=converted_col,
                           revenue_col=revenue_col, campaign_col=campaign_col, randomized_col=randomized_col,
                           time_format=time_format, offers=offers, features=features, randomized=randomized,
                           sep=sep, decimal=decimal)
    source = data
    if history is not None:
        source = _history_dataset(history, history_format, data, sep=sep, decimal=decimal)
    elif data.features is None:
        raise DataError("uplift needs customer features: pass --features FILE (customer_id + pre-campaign "
                        "columns) or --history FILE (a purchase history to compute them from)")
    ts = campaign_training_set(source, campaign_id=campaign, treatments=treatment, target=ts_target,
                               features=feature, control_name=data.control_name)
    grid = candidate_grid if candidates == "grid" else default_candidates
    cands = grid(control_name=ts.control_name, n_jobs=n_jobs)
    progress = (lambda line: print(line, file=sys.stderr)) if not json and sys.stderr.isatty() else None
    ev = evaluate_uplift(ts.X, ts.treatment, ts.y, control_name=ts.control_name, seeds=seeds,
                         test_fraction=test_fraction, candidates=cands, cv=cv, metric=select_by, k=k,
                         keep_curves=plot_dir is not None, progress=progress)
    doc = {"format": format, "path": exposures, "target": target or ("visit" if format == "hillstrom"
                                                                     else "converted"),
           "training_set": ts.summary(), **ev.to_dict(), "plots": None, "warnings": []}
    if ts.randomized is not True:
        doc["warnings"].append("the exposures are not flagged randomized: uplift and IPW values assume a "
                               "randomized assignment and are associations otherwise")
    human = str(ev)
    if plot_dir is not None:
        label = {"visit": "visits", "conversion": "conversions", "spend": "spend", "converted": "conversions",
                 "revenue": "revenue"}[doc["target"]]
        paths = plot_evaluation(ev, plot_dir, outcome_label=label)
        doc["plots"] = {k2: str(p) for k2, p in paths.items()}
        human += "\n" + "\n".join(f"wrote {p}" for p in paths.values())
    if doc["warnings"]:
        human += "\n" + "\n".join(f"warning: {w}" for w in doc["warnings"])
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    emit(doc, json, human)


def _history_dataset(history: str, history_format: str, data, *, sep, decimal):
    """The purchase history with the campaign's (already validated) exposures attached."""
    from personalize.data import adapters

    if history_format not in HISTORY_FORMATS:
        raise DataError(f"unknown --history-format {history_format!r}; expected one of {', '.join(HISTORY_FORMATS)}")
    if not Path(history).exists():
        raise DataError(f"file not found: --history {history}")
    if history_format == "generic":
        ds = adapters.load_generic(history, sep="\t" if sep == "\\t" else sep, decimal=decimal)
    else:
        ds = adapters.FORMATS[history_format](history)
    return ds.with_tables(exposures=data.exposures, offers=data.offers)


uplift_app.command("evaluate")(evaluate_command)


def register(app: typer.Typer) -> None:
    app.add_typer(uplift_app, name="uplift")
