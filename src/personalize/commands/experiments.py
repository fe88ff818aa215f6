"""``personalize abtest`` (campaign readout), ``personalize abtest plan`` and ``personalize retention``.

``abtest`` reads exposures, not transactions, so it has its own ``--format``:
``hillstrom`` (the MineThatData e-mail test) or ``generic`` (any exposures
file with column options). ``retention`` reads a transaction dataset like every
other command (``--format online_retail | cdnow | cdnow_sample | generic``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from personalize.commands.common import (CampaignCol, ConvertedCol, CustomerCol, Decimal, ExposureOfferCol,
                                         ExposureOffersFile, ExposureTimeCol, FormatOpt, ItemCol, JsonOpt, OrderCol,
                                         PathArg, PriceCol, QuantityCol, Query, RandomizedCol, RandomizedFlag,
                                         RevenueCol, Sep, TimeCol, TimeFormat, emit, load_dataset)
from personalize.errors import DataError

EXPOSURE_FORMATS = ("generic", "hillstrom")

abtest_app = typer.Typer(name="abtest", help="A/B test readout of a campaign's exposures; `abtest plan` for "
                                             "sample sizes.", invoke_without_command=True)


def parse_split(text: str | None) -> dict[str, float] | None | str:
    """``"control=1,A=1"`` -> weights; ``"equal"`` -> the string "equal"; ``"none"``/None -> None."""
    if text is None:
        return None
    t = text.strip()
    if t.lower() == "none":
        return "none"
    if t.lower() == "equal":
        return "equal"
    out: dict[str, float] = {}
    for part in t.split(","):
        if "=" not in part:
            raise DataError(f"--planned-split: expected arm=weight pairs separated by commas (e.g. "
                            f"'control=1,A=1'), 'equal' or 'none'; got {part.strip()!r}")
        arm, w = part.rsplit("=", 1)
        arm = arm.strip()
        try:
            out[arm] = float(w)
        except ValueError:
            raise DataError(f"--planned-split: weight of {arm!r} is not a number: {w.strip()!r}") from None
        if not arm:
            raise DataError("--planned-split: empty arm name")
    return out


def _load_exposures(path: str, format: str, *, target: str, customer_col, offer_col, time_col, converted_col,
                    revenue_col, campaign_col, randomized_col, time_format, offers, features, randomized, sep,
                    decimal):
    from personalize.data.adapters import load_exposures, load_hillstrom

    if format not in EXPOSURE_FORMATS:
        raise DataError(f"unknown --format {format!r} for exposures; expected one of {', '.join(EXPOSURE_FORMATS)}")
    if not Path(path).exists():
        raise DataError(f"file not found: {path}")
    if format == "hillstrom":
        given = [o for o, v in (("--customer-col", customer_col), ("--offer-col", offer_col),
                                ("--time-col", time_col), ("--converted-col", converted_col),
                                ("--revenue-col", revenue_col), ("--campaign-col", campaign_col),
                                ("--randomized-col", randomized_col), ("--offers", offers),
                                ("--features", features)) if v]
        if given or randomized is not None:
            raise DataError(f"{', '.join(given) or '--randomized'} go with --format generic; the Hillstrom file "
                            "brings its own columns")
        return load_hillstrom(path, target=target)
    mapping = {k: v for k, v in {"customer_id": customer_col, "offer_id": offer_col, "exposed_at": time_col,
                                 "converted": converted_col, "revenue": revenue_col, "campaign_id": campaign_col,
                                 "randomized": randomized_col}.items() if v}
    return load_exposures(path, offers=offers, mapping=mapping, features=features, time_format=time_format,
                          randomized=randomized, sep="\t" if sep == "\\t" else sep, decimal=decimal)


@abtest_app.callback(invoke_without_command=True)
def abtest_command(
    ctx: typer.Context,
    exposures: Annotated[str | None, typer.Option("--exposures", help="Exposures file (CSV, CSV.gz, Parquet).")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="hillstrom | generic")] = "generic",
    campaign: Annotated[str | None, typer.Option("--campaign", help="Campaign id to read out (needed when the "
                                                                    "file holds several).")] = None,
    planned_split: Annotated[str | None, typer.Option("--planned-split", help="Planned allocation for the "
                                                      "sample-ratio check: 'control=1,A=1', 'equal' or 'none' "
                                                      "(hillstrom default: equal).")] = None,
    cuped: Annotated[list[str] | None, typer.Option("--cuped", help="Pre-period feature column for CUPED "
                                                                    "(repeatable), e.g. history.")] = None,
    target: Annotated[str, typer.Option("--target", help="hillstrom: visit | conversion")] = "visit",
    metric: Annotated[list[str] | None, typer.Option("--metric", help="conversion and/or revenue "
                                                                      "(default both).")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level (intervals are 1 - alpha).")] = 0.05,
    min_n: Annotated[int, typer.Option("--min-n", help="Minimum customers per arm before a verdict.")] = 100,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples (0 = none).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    mixture_sd: Annotated[float, typer.Option("--mixture-sd", help="mSPRT mixture scale in metric SDs.")] = 0.1,
    customer_col: CustomerCol = None, offer_col: ExposureOfferCol = None, time_col: ExposureTimeCol = None,
    converted_col: ConvertedCol = None, revenue_col: RevenueCol = None, campaign_col: CampaignCol = None,
    randomized_col: RandomizedCol = None, randomized: RandomizedFlag = None, offers: ExposureOffersFile = None,
    features: Annotated[str | None, typer.Option("--features", help="generic: pre-period features file "
                                                                    "(customer_id + covariates)")] = None,
    time_format: TimeFormat = None, sep: Sep = None, decimal: Decimal = ".",
    json: JsonOpt = False,
) -> None:
    """Read out a campaign: rates, revenue per customer, lifts with intervals, p-values, guards, verdicts."""
    if ctx.invoked_subcommand is not None:
        return
    from personalize.experiments import readout

    if exposures is None:
        raise DataError("abtest needs --exposures PATH (or the subcommand: personalize abtest plan --help)")
    t0 = time.perf_counter()
    data = _load_exposures(exposures, format, target=target, customer_col=customer_col, offer_col=offer_col,
                           time_col=time_col, converted_col=converted_col, revenue_col=revenue_col,
                           campaign_col=campaign_col, randomized_col=randomized_col, time_format=time_format,
                           offers=offers, features=features, randomized=randomized, sep=sep, decimal=decimal)
    split = parse_split(planned_split)
    if split == "none":
        data.planned_split = None
        split = None
    elif split == "equal":
        camp = data.campaign(campaign)
        arms = ([data.control_name] if camp.control_mask.any() else []) + camp.treatment_names
        split = {a: 1.0 for a in arms}
    rd = readout(data, campaign_id=campaign, planned_split=split, cuped=cuped or None,
                 metrics=tuple(metric) if metric else ("conversion", "revenue"), alpha=alpha, min_n=min_n,
                 n_bootstrap=bootstrap, seed=seed, mixture_sd=mixture_sd)
    doc = rd.to_dict()
    doc["format"], doc["path"] = format, exposures
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    emit(doc, json, str(rd))


def plan_command(
    baseline: Annotated[float | None, typer.Option("--baseline", help="Control conversion rate (e.g. 0.106), or "
                                                                      "with --sd the control mean.")] = None,
    mde: Annotated[float | None, typer.Option("--mde", help="Minimum detectable effect: absolute (0.01 = 1 pp, "
                                                            "or currency with --sd) unless --relative.")] = None,
    n: Annotated[float | None, typer.Option("--n", help="Control customers available: solve the MDE "
                                                        "instead.")] = None,
    power: Annotated[float, typer.Option("--power", help="Power (1 - beta).")] = 0.8,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")] = 0.05,
    sd: Annotated[float | None, typer.Option("--sd", help="Per-customer standard deviation: plan a mean "
                                                          "(revenue per customer) instead of a rate.")] = None,
    ratio: Annotated[float, typer.Option("--ratio", help="Treatment / control customers.")] = 1.0,
    relative: Annotated[bool, typer.Option("--relative", help="--mde is a fraction of the baseline "
                                                              "(0.1 = +10 %).")] = False,
    alternative: Annotated[str, typer.Option("--alternative", help="two-sided | larger | smaller")] = "two-sided",
    json: JsonOpt = False,
) -> None:
    """Sample size per arm for a minimum detectable effect (or the MDE for --n), for a rate or a mean."""
    from personalize.experiments import mde_mean, mde_proportion, sample_size_mean, sample_size_proportion

    if (mde is None) == (n is None):
        raise DataError("give exactly one of --mde (to get the sample size) and --n (to get the MDE)")
    if relative and mde is None:
        raise DataError("--relative goes with --mde")
    common = {"alpha": alpha, "power": power, "ratio": ratio, "alternative": alternative}
    if sd is None:
        if baseline is None:
            raise DataError("--baseline (the control conversion rate) is required; add --sd to plan a mean")
        plan = (sample_size_proportion(baseline, mde, relative=relative, **common) if mde is not None
                else mde_proportion(baseline, n, **common))
    else:
        plan = (sample_size_mean(sd, mde, baseline=baseline, relative=relative, **common) if mde is not None
                else mde_mean(sd, n, baseline=baseline, **common))
    doc = plan.to_dict()
    doc["solved_for"] = "n" if mde is not None else "mde"
    emit(doc, json, str(plan))


abtest_app.command("plan")(plan_command)


def retention_command(
    path: PathArg,
    format: FormatOpt = "generic",
    out: Annotated[str | None, typer.Option("--out", help="Write the cohort retention heatmap (PNG).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="The data is complete until this moment (exclusive; "
                                                          "default: the day after the last purchase).")] = None,
    all_months: Annotated[bool, typer.Option("--all-months", help="Keep a partial last month (its churn is "
                                                                  "overstated).")] = False,
    max_months: Annotated[int | None, typer.Option("--max-months", help="Cohort columns: months since the first "
                                                                        "purchase, at most.")] = None,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """Monthly active customers, retention and churn by month, repeat purchases and the cohort matrix."""
    from personalize.analytics.cohorts import plot_cohort_retention, retention_report

    t0 = time.perf_counter()
    ds = load_dataset(format, path, customer_col=customer_col, item_col=item_col, time_col=time_col,
                      time_format=time_format, quantity_col=quantity_col, price_col=price_col, order_col=order_col,
                      sep=sep, decimal=decimal, query=query)
    rep = retention_report(ds, end=end, complete_months=not all_months, max_months=max_months)
    doc = {"format": format, "path": path, **rep.to_dict(), "plot": None}
    if out:
        doc["plot"] = str(plot_cohort_retention(rep.cohorts, out, sizes=rep.cohort_sizes))
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    human = str(rep) + (f"\nwrote {doc['plot']}" if doc["plot"] else "")
    emit(doc, json, human)


def register(app: typer.Typer) -> None:
    app.add_typer(abtest_app, name="abtest")
    app.command("retention")(retention_command)
