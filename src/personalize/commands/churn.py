"""``personalize churn evaluate`` and ``personalize churn score``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, Decimal, FeedbackFile, FormatOpt, ItemCol, JsonOpt, OrderCol,
                                         PathArg, PointsFile, PriceCol, QuantityCol, Query, Sep, TimeCol, TimeFormat,
                                         emit, dataset_from, progress_enabled, write_table, parse_date)
from personalize.errors import DataError

churn_app = typer.Typer(name="churn", help="Churn risk: evaluate against baselines, score customers.",
                        no_args_is_help=True)

LearningRateOpt = Annotated[float, typer.Option("--learning-rate", help="LightGBM learning rate (raise it, "
                                                                       "e.g. 0.1, for millions of customers).")]
HorizonOpt = Annotated[float, typer.Option("--horizon-days", help="Churn = no purchase in this many days "
                                                                  "after the cutoff.")]


def evaluate_command(
    path: PathArg,
    as_of: Annotated[str, typer.Option("--as-of", help="Last day of the feature period (inclusive): features "
                                                       "use data up to and including it.")],
    format: FormatOpt = "generic",
    horizon_days: HorizonOpt = 90.0,
    folds: Annotated[int, typer.Option("--folds", help="Customer-level cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (folds, model).")] = 0,
    plots: Annotated[str | None, typer.Option("--plots", help="Directory for roc/calibration/gains/lift/"
                                                              "importance PNGs.")] = None,
    profiles: Annotated[bool, typer.Option("--profiles/--no-profiles", help="Add the analytics profile "
                                                                            "columns as features.")] = False,
    details: Annotated[bool, typer.Option("--details/--no-details", help="Include calibration, lift, "
                                                                         "importance and example reasons.")] = True,
    learning_rate: LearningRateOpt = 0.02,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    feedback: FeedbackFile = None, points: PointsFile = None, json: JsonOpt = False,
) -> None:
    """Cross-validate the churn model at one cutoff and compare it with recency and BG/NBD baselines."""
    from personalize.churn.evaluate import evaluate_churn

    t0 = time.perf_counter()
    ds = dataset_from(locals())
    day = parse_date(as_of, "--as-of")
    show = progress_enabled(json)
    prog = (lambda k, n: typer.echo(f"fold {k}/{n} done", err=True)) if show else None
    ev = evaluate_churn(ds, as_of=day, horizon_days=horizon_days, folds=folds, random_state=seed,
                        profiles=profiles, progress=prog, model_params={"learning_rate": learning_rate})
    doc = ev.to_dict(details=details)
    doc["plots"] = None
    if plots:
        from personalize.churn.plots import plot_evaluation

        doc["plots"] = [str(p) for p in plot_evaluation(ev, plots)]
    doc["seconds"] = round(time.perf_counter() - t0, 2)
    m = doc["model"]
    lines = [f"{doc['customers']:,} customers, churn rate {doc['churn_rate']:.1%} "
             f"(no purchase in {horizon_days:g} days after {ev.cutoff.date()})",
             f"{'':16}{'AUC':>8}{'PR-AUC':>8}{'Brier':>8}{'logloss':>9}",
             f"  {'model':<14}{m['auc']:8.4f}{m['pr_auc']:8.4f}{m['brier']:8.4f}{m['log_loss']:9.4f}"]
    for name, b in doc["baselines"].items():
        fmt = (lambda v, w: f"{v:{w}.4f}" if v is not None else f"{'-':>{w}}")
        lines.append(f"  {name:<14}{fmt(b['auc'], 8)}{fmt(b['pr_auc'], 8)}{fmt(b['brier'], 8)}"
                     f"{fmt(b['log_loss'], 9)}")
    if doc["plots"]:
        lines.append(f"plots in {plots}")
    emit(doc, json, "\n".join(lines))


def score_command(
    path: PathArg,
    format: FormatOpt = "generic",
    horizon_days: HorizonOpt = 90.0,
    cutoffs: Annotated[int, typer.Option("--cutoffs", help="Training snapshots (latest closed label "
                                                           "windows).")] = 3,
    spacing_days: Annotated[float, typer.Option("--spacing-days", help="Days between training cutoffs.")] = 30.0,
    min_risk: Annotated[float, typer.Option("--min-risk", help="Keep customers at or above this churn "
                                                               "probability.")] = 0.0,
    reasons: Annotated[int, typer.Option("--reasons", help="Top reasons per customer (0 = none).")] = 3,
    out: Annotated[str | None, typer.Option("--out", help="Write the scored customers (.csv or .parquet).")] = None,
    model_dir: Annotated[str | None, typer.Option("--save-model", help="Save the trained model here.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    learning_rate: LearningRateOpt = 0.02,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    feedback: FeedbackFile = None, points: PointsFile = None, json: JsonOpt = False,
) -> None:
    """Production mode: train on the latest closed label windows, score every customer as of today."""
    from personalize.churn import ChurnModel, production_cutoffs, scoring_set, training_set

    t0 = time.perf_counter()
    if not 0.0 <= min_risk <= 1.0:
        raise DataError(f"--min-risk must be between 0 and 1, got {min_risk}")
    ds = dataset_from(locals())
    cuts = production_cutoffs(ds, horizon_days=horizon_days, n_cutoffs=cutoffs, spacing_days=spacing_days)
    train = training_set(ds, cuts, horizon_days=horizon_days)
    model = ChurnModel(random_state=seed, learning_rate=learning_rate).fit(train)
    today = scoring_set(ds, horizon_days=horizon_days)
    scored = model.score(today, reasons=reasons)
    if reasons:
        from personalize.churn.scoring import REASON_SEP

        scored["reasons"] = scored["reasons"].map(REASON_SEP.join)
    scored = scored[scored["probability"] >= min_risk].sort_values("probability", ascending=False,
                                                                   kind="stable")
    doc = {"as_of": str(today.cutoffs[0].date()), "training_cutoffs": [str(c.date()) for c in cuts],
           "horizon_days": horizon_days, "customers_scored": len(today), "customers_listed": len(scored),
           "bands": scored["band"].value_counts().to_dict(), "validation": model.validation_,
           "calibration": model.calibrator_.kind, "out": None, "model": None,
           "top": scored.head(10).to_dict(orient="records")}
    if out:
        doc["out"] = write_table(scored, out)
    if model_dir:
        doc["model"] = str(model.save(model_dir))
    doc["seconds"] = round(time.perf_counter() - t0, 2)
    lines = [f"scored {len(today):,} customers as of {doc['as_of']}; {len(scored):,} at risk >= {min_risk:g}",
             f"validation AUC {model.validation_['auc']:.3f} ({model.validation_['split']})"]
    lines += [f"  {r['customer_id']}: {r['probability']:.2f} {r['band']}"
              + (f" - {r['reasons']}" if reasons else "") for r in doc["top"]]
    if doc["out"]:
        lines.append(f"wrote {doc['out']}")
    emit(doc, json, "\n".join(lines))


churn_app.command("evaluate")(evaluate_command)
churn_app.command("score")(score_command)


def register(app: typer.Typer) -> None:
    app.add_typer(churn_app, name="churn")
