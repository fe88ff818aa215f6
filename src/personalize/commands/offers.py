"""``personalize offers evaluate`` and ``personalize coupons plan``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, CustomersFile, Decimal, ExposuresFile, FormatOpt, ItemCol,
                                         ItemsFile, JsonOpt, MapOpt, OffersFile, OrderCol, PathArg, PriceCol,
                                         QuantityCol, Query, Sep, TimeCol, TimeFormat, dataset_from, emit,
                                         progress_enabled, write_table)
from personalize.errors import DataError

offers_app = typer.Typer(name="offers", help="Next-best-offer: evaluate the acceptance model and the policy.",
                         no_args_is_help=True)
coupons_app = typer.Typer(name="coupons", help="Personalized coupons: plan who gets which level under a budget.",
                          no_args_is_help=True)

ChannelOpt = Annotated[str, typer.Option("--channel", help="email | sms | web | app: consent and rules of this "
                                                           "channel apply")]


def evaluate_command(
    path: PathArg,
    offers: OffersFile = None, exposures: ExposuresFile = None, customers: CustomersFile = None,
    items: ItemsFile = None, maps: MapOpt = None,
    format: FormatOpt = "generic",
    holdout: Annotated[float, typer.Option("--holdout", help="Share of the exposures (the latest days) held "
                                                             "out to test on.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """Train the acceptance model on earlier exposures, test it on the latest ones against rate baselines, and
    estimate the learned policy's acceptance rate (randomized exposures only)."""
    from personalize.offers.evaluate import evaluate_offers

    t0 = time.perf_counter()
    ds = dataset_from(locals())
    if ds.offers is None or ds.exposures is None:
        raise DataError("offers evaluate needs an offer catalog and exposures: --offers PATH --exposures PATH")
    doc = evaluate_offers(ds, holdout_fraction=holdout, seed=seed)
    doc["seconds"] = round(time.perf_counter() - t0, 2)
    fmt = (lambda v: "-" if v is None else f"{v:.4f}")
    lines = [f"trained on {doc['train_exposures']:,} exposures before {doc['split'][:10]}, tested on "
             f"{doc['test_exposures']:,} after (acceptance rate {doc['test_acceptance_rate']:.1%})",
             f"{'':16}{'AUC':>8}{'PR-AUC':>8}{'Brier':>8}{'logloss':>9}"]
    for name, m in [("model", doc["model"]), *doc["baselines"].items()]:
        lines.append(f"  {name:<14}{fmt(m['auc']):>8}{fmt(m['pr_auc']):>8}{fmt(m['brier']):>8}"
                     f"{fmt(m['log_loss']):>9}")
    pol = doc["policy"]
    if pol["status"] == "estimated":
        lines.append(f"policy (IPW): the model's pick accepted {pol['model_policy']:.1%}, best training offer "
                     f"{pol['best_training_offer']:.1%}, random offers {pol['random_offer']:.1%}")
    else:
        lines.append(f"policy value not estimated: {pol['reason']}")
    emit(doc, json, "\n".join(lines))


def plan_command(
    path: Annotated[str | None, typer.Argument(help="Transactions file (omit with --models).")] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Total expected coupon cost (default: no "
                                                                  "budget, every paying level).")] = None,
    ladder: Annotated[str | None, typer.Option("--ladder", help="Coupon levels as offer ids, comma-separated "
                                                                "(default: every untargeted discount offer with "
                                                                "exposures).")] = None,
    channel: ChannelOpt = "email",
    models: Annotated[str | None, typer.Option("--models", help="Plan from a published bundle (a model store or "
                                                                "bundle directory) instead of training.")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Write the plan (.csv, .parquet or .jsonl).")] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="Write the profit vs budget curve here (.png).")] = None,
    offers: OffersFile = None, exposures: ExposuresFile = None, customers: CustomersFile = None,
    items: ItemsFile = None, maps: MapOpt = None,
    format: FormatOpt = "generic",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """The profit-optimal coupon level (or none) per customer within a budget, honouring consent, caps and
    suppression for the channel; with totals, and the profit vs budget curve."""
    t0 = time.perf_counter()
    if budget is not None and budget < 0:
        raise DataError(f"--budget must be >= 0, got {budget}")
    if plot is not None and not plot.lower().endswith(".png"):
        raise DataError(f"--plot {plot}: write a .png file")
    if models is not None:
        if path is not None or ladder is not None:
            raise DataError("--models plans from the bundle's own ladder: give no data file and no --ladder")
        from personalize.runtime import Runtime
        from personalize.store import load_bundle

        runtime = Runtime(load_bundle(models))
        source = f"bundle {runtime.version}"
    else:
        if path is None:
            raise DataError("give a transactions file with --offers and --exposures, or --models DIR")
        from personalize.customers import customer_table
        from personalize.pipeline.offers import train_offers
        from personalize.runtime.offers import OfferDesk

        ds = dataset_from(locals())
        if ds.offers is None or ds.exposures is None:
            raise DataError("coupons plan needs an offer catalog and exposures: --offers PATH --exposures PATH")
        say = (lambda m: typer.echo(m, err=True)) if progress_enabled(json) else None
        comps, info, _metrics = train_offers(ds, customer_table(ds), None, ladder=ladder, seed=seed, progress=say)
        if "coupons" not in comps:
            reason = info.get("coupons", info.get("offers", {})).get("reason", "unknown")
            raise DataError(f"no coupon plan: {reason}")
        runtime = None
        desk = OfferDesk(comps["offers"], comps["coupons"])
        source = "trained on the data given"
    if runtime is not None:
        plan, curve, totals = runtime.coupon_plan(channel=channel, budget=budget)
    else:
        import pandas as pd

        from personalize.customers.consent import opted_out_ids

        plan, curve, totals = desk.plan(channel=channel, budget=budget, excluded_ids=opted_out_ids(ds.customers),
                                        now=pd.Timestamp(comps["offers"].as_of))
    doc = {"source": source, "channel": channel, "budget": budget, **totals, "curve": curve, "out": None,
           "plot": None, "by_level": plan.groupby("level").size().to_dict() if len(plan) else {},
           "top": plan.sort_values("expected_incremental_profit", ascending=False).head(10).to_dict("records")}
    if out:
        doc["out"] = write_table(plan, out)
    if plot:
        from personalize.coupons.plots import plot_profit_curve

        doc["plot"] = str(plot_profit_curve(curve, plot, budget=budget))
    doc["seconds"] = round(time.perf_counter() - t0, 2)
    lines = [f"{totals['customers']:,} customers get a coupon ({source}, channel {channel}): expected cost "
             f"{totals['total_cost']:,.2f}" + (f" of {budget:,.2f}" if budget is not None else "")
             + f", expected incremental profit {totals['total_profit']:,.2f}"]
    lines += [f"  {lvl}: {n:,}" for lvl, n in doc["by_level"].items()]
    for what in ("out", "plot"):
        if doc[what]:
            lines.append(f"wrote {doc[what]}")
    emit(doc, json, "\n".join(lines))


offers_app.command("evaluate")(evaluate_command)
coupons_app.command("plan")(plan_command)


def register(app: typer.Typer) -> None:
    app.add_typer(offers_app, name="offers")
    app.add_typer(coupons_app, name="coupons")
