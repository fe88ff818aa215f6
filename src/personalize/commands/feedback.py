"""``personalize feedback report``: NPS, CSAT, ratings, complaints and drivers of a feedback table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, CustomersFile, Decimal, FeedbackFile, FormatOpt, ItemCol,
                                         ItemsFile, JsonOpt, MapOpt, OrderCol, PathArg, PointsFile, PriceCol,
                                         QuantityCol, Query, Sep, TimeCol, TimeFormat, dataset_from, emit,
                                         write_table, parse_date)
from personalize.errors import DataError

feedback_app = typer.Typer(name="feedback", help="Customer feedback: NPS, CSAT, ratings, complaints, drivers.",
                           no_args_is_help=True)

GROUPINGS = ("overall", "segment", "tier", "lifecycle", "channel", "month")


def _fmt(v, spec: str = ".1f", none: str = "-") -> str:
    return none if v is None or v != v else format(v, spec)


def report_command(
    path: PathArg,
    feedback: FeedbackFile = None,
    format: FormatOpt = "generic",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Report on feedback given strictly before this "
                                                              "date; complaints resolved later count as open "
                                                              "(default: the day after the last data).")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Only feedback from this date on.")] = None,
    by: Annotated[list[str] | None, typer.Option("--by", help="Groupings: overall, segment, tier, lifecycle, "
                                                              "channel, month (repeatable; default all).")] = None,
    min_responses: Annotated[int, typer.Option("--min-responses", help="Groups with fewer answers are flagged "
                                                                       "small (and warned about).")] = 30,
    drivers_min: Annotated[int, typer.Option("--drivers-min", help="Answers a group needs to enter the "
                                                                   "drivers table.")] = 10,
    plots: Annotated[str | None, typer.Option("--plots", help="Directory for satisfaction, complaints and "
                                                              "drivers PNGs.")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Write the drivers table (.csv, .parquet, "
                                                          ".jsonl).")] = None,
    items: ItemsFile = None, customers: CustomersFile = None, points: PointsFile = None, maps: MapOpt = None,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """NPS (with intervals), CSAT and ratings by segment, tier, lifecycle, channel and month; complaint rates and
    resolution times; what goes with low scores (drivers)."""
    from personalize.analytics.satisfaction import satisfaction_report

    t0 = time.perf_counter()
    if feedback is None:
        raise DataError("--feedback is required: the feedback file (customer_id, timestamp, kind, score, ...)")
    groupings = list(dict.fromkeys(by)) if by else list(GROUPINGS)
    bad = [b for b in groupings if b not in GROUPINGS]
    if bad:
        raise DataError(f"--by {bad[0]!r}: expected one of {', '.join(GROUPINGS)}")
    if min_responses < 1 or drivers_min < 1:
        raise DataError("--min-responses and --drivers-min must be at least 1")
    cut, lo = parse_date(as_of, "--as-of"), parse_date(start, "--start")
    if cut is not None and lo is not None and lo >= cut:
        raise DataError(f"--start {start} is not before --as-of {as_of}")
    ds = dataset_from(locals())
    rep = satisfaction_report(ds, as_of=cut, start=lo, by=groupings, min_responses=min_responses,
                              drivers_min_count=drivers_min)
    doc = {"path": path, "feedback": feedback, **{k: v for k, v in rep.items()
                                                  if k not in ("satisfaction", "complaints", "drivers")},
           "satisfaction": {b: t.to_dict(orient="records") for b, t in rep["satisfaction"].items()},
           "complaints": {b: t.to_dict(orient="records") for b, t in rep["complaints"].items()},
           "drivers": rep["drivers"].to_dict(orient="records"), "plots": None, "out": None}
    if plots:
        from personalize.analytics.satisfaction_plots import (plot_complaints, plot_drivers, plot_scores_by,
                                                              plot_scores_over_time)

        d = Path(plots)
        files = []
        tabs = rep["satisfaction"]
        if "month" in tabs and len(tabs["month"]):
            files.append(plot_scores_over_time(tabs["month"], d / "satisfaction_by_month.png"))
        for b in ("segment", "tier", "lifecycle", "channel"):
            if b in tabs and len(tabs[b]):
                files.append(plot_scores_by(tabs[b], d / f"nps_by_{b}.png"))
        if "month" in rep["complaints"] and len(rep["complaints"]["month"]):
            files.append(plot_complaints(rep["complaints"]["month"], d / "complaints_by_month.png"))
        if len(rep["drivers"]):
            files.append(plot_drivers(rep["drivers"], d / "drivers.png"))
        doc["plots"] = [str(f) for f in files]
    if out:
        doc["out"] = write_table(rep["drivers"], out)
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    emit(doc, json, "\n".join(_human(rep, doc)))


def _human(rep: dict, doc: dict) -> list[str]:
    lines = [f"{rep['responses']:,} scored answers from {rep['customers']:,} customers "
             f"({', '.join(f'{k} {v:,}' for k, v in rep['kinds'].items())}), as of {rep['as_of']}"]
    for b, t in rep["satisfaction"].items():
        lines.append(f"{b:<20}{'answers':>8}{'NPS':>8}{'n':>6}{'95% CI':>14}{'CSAT%':>8}{'n':>6}{'stars':>7}{'n':>6}")
        for r in t.to_dict(orient="records"):
            ci = (f"[{_fmt(r['nps_low'], '.0f')}, {_fmt(r['nps_high'], '.0f')}]" if r["nps"] is not None else "-")
            star = lambda m: "*" if r[f"{m}_small"] else ""  # noqa: E731
            lines.append(f"  {str(r['group'])[:18]:<18}{r['responses']:>8,}{_fmt(r['nps'], '.1f'):>8}"
                         f"{str(r['nps_n']) + star('nps'):>6}{ci:>14}{_fmt(r['csat'], '.1f'):>8}"
                         f"{str(r['csat_n']) + star('csat'):>6}{_fmt(r['rating'], '.2f'):>7}"
                         f"{str(r['rating_n']) + star('rating'):>6}" + ("  (few)" if r["small"] else ""))
    c = rep["complaints"].get("overall")
    if c is not None and len(c):
        r = c.iloc[0]
        lines.append(f"complaints: {int(r['complaints']):,} ({_fmt(r['per_1000_orders'], '.1f')} per 1,000 orders), "
                     f"{int(r['open']):,} open, median {_fmt(r['median_days_to_resolve'], '.1f')} days to resolve")
    d = rep["drivers"]
    if len(d):
        lines.append("drivers (share of detractor answers vs overall):")
        for r in d.dropna(subset=["lift"]).sort_values("lift", ascending=False).head(8).to_dict(orient="records"):
            lines.append(f"  {r['dimension']}={r['value']}: {r['low_share']:.0%} ({r['lift']:.1f}x, "
                         f"{r['responses']:,} answers, {r['complaints']:,} complaints)")
    lines += [f"warning: {w}" for w in rep["warnings"][:10]]
    if len(rep["warnings"]) > 10:
        lines.append(f"warning: ... and {len(rep['warnings']) - 10} more small groups")
    if doc.get("plots"):
        lines.append(f"plots: {', '.join(doc['plots'])}")
    if doc.get("out"):
        lines.append(f"wrote {doc['out']}")
    return lines


feedback_app.command("report")(report_command)


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")
