"""``personalize points report``: balances, expiring points, activity, liability, tiers and the price of a point."""

from __future__ import annotations

import json as jsonlib
import time
from pathlib import Path
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, CustomersFile, Decimal, FeedbackFile, FormatOpt, ItemCol,
                                         ItemsFile, JsonOpt, MapOpt, OrderCol, PathArg, PointsFile, PriceCol,
                                         QuantityCol, Query, Sep, TimeCol, TimeFormat, dataset_from, emit,
                                         write_table)
from personalize.commands.common import parse_date
from personalize.commands.feedback import _fmt
from personalize.errors import DataError, PersonalizeError

points_app = typer.Typer(name="points", help="Loyalty points: balances, expiry, liability, tiers.",
                         no_args_is_help=True)


def _tiers(path: str | None, basis: str | None):
    from personalize.analytics.points import PointsTierConfig

    d: dict = {}
    if path is not None:
        try:
            d = jsonlib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read tier config {path}: {exc}") from None
        if not isinstance(d, dict):
            raise DataError(f"tier config {path} must be a JSON object")
    if basis is not None:
        d = {**d, "basis": basis}
    try:
        return PointsTierConfig.from_dict(d)
    except (TypeError, KeyError, ValueError) as exc:
        raise PersonalizeError(f"tier config {path}: {exc}") from None


def report_command(
    path: PathArg,
    points: PointsFile = None,
    format: FormatOpt = "generic",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Balances as of this date (rows strictly before "
                                                              "it; default: the day after the last data).")] = None,
    start: Annotated[str | None, typer.Option("--start", help="First period of the activity table.")] = None,
    freq: Annotated[str, typer.Option("--freq", help="Activity period: D, W, M, Q or Y.")] = "M",
    point_value: Annotated[float, typer.Option("--point-value", help="Value of one point (currency), for the "
                                                                     "liability.")] = 0.01,
    validity_days: Annotated[float | None, typer.Option("--validity-days", help="Points without an expires_at "
                                                                                "expire this many days after "
                                                                                "they were earned (default: "
                                                                                "never).")] = None,
    expiry: Annotated[str, typer.Option("--expiry", help="auto | ledger (trust the ledger's expire rows) | lots "
                                                         "(write off what is left at expiry).")] = "auto",
    expiring_days: Annotated[float, typer.Option("--expiring-days", help="Report points due to expire within "
                                                                         "this many days.")] = 30.0,
    tier_basis: Annotated[str | None, typer.Option("--tier-basis", help="Tiers from 'points' (earned in the "
                                                                        "window) or 'spend'.")] = None,
    tier_config: Annotated[str | None, typer.Option("--tier-config", help="JSON: {\"basis\": \"points\", "
                                                                          "\"tiers\": [{\"name\", \"min_points\"}], "
                                                                          "\"window_days\"} (spend basis: the "
                                                                          "segments tier config).")] = None,
    plots: Annotated[str | None, typer.Option("--plots", help="Directory for points_activity.png.")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Write every member's balance row (.csv, .parquet, "
                                                          ".jsonl).")] = None,
    items: ItemsFile = None, customers: CustomersFile = None, feedback: FeedbackFile = None, maps: MapOpt = None,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """Outstanding points and liability, points expiring soon, earned / redeemed / expired per period, tier
    qualification (points or spend) and the price of a point for points-multiplier offers."""
    from personalize.analytics.points import PointsPolicy, points_balances, points_report

    t0 = time.perf_counter()
    if points is None:
        raise DataError("--points is required: the points ledger file (customer_id, timestamp, delta, reason, ...)")
    if freq not in ("D", "W", "M", "Q", "Y"):
        raise DataError(f"--freq must be D, W, M, Q or Y, got {freq!r}")
    if expiring_days <= 0:
        raise DataError(f"--expiring-days must be positive, got {expiring_days}")
    if tier_basis is not None and tier_basis not in ("points", "spend"):
        raise DataError(f"--tier-basis must be points or spend, got {tier_basis!r}")
    policy = PointsPolicy(validity_days=validity_days, expiry=expiry, point_value=point_value)
    tiers = _tiers(tier_config, tier_basis)
    cut = parse_date(as_of, "--as-of")
    ds = dataset_from(locals())
    rep = points_report(ds, as_of=cut, start=parse_date(start, "--start"), freq=freq, policy=policy,
                        expiring_days=expiring_days, tiers=tiers)
    doc = {"path": path, "points": points, **rep, "activity": rep["activity"].to_dict(orient="records"),
           "plots": None, "out": None}
    if plots:
        from personalize.analytics.satisfaction_plots import plot_points_activity

        doc["plots"] = [str(plot_points_activity(rep["activity"], Path(plots) / "points_activity.png"))]
    if out:
        doc["out"] = write_table(points_balances(ds, rep["as_of"], policy=policy, expiring_days=expiring_days),
                                 out, index=True)
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    li, ex = rep["liability"], rep["expiring"]
    lines = [f"{rep['members']:,} members, {rep['members_with_points']:,} holding points, as of {rep['as_of']} "
             f"({rep['mode']} expiry)",
             f"outstanding {rep['outstanding_points']:,.0f} points = liability {li['liability']:,.2f} at "
             f"{li['point_value']:g} per point; expected cost {li['expected_cost']:,.2f} at a redemption rate of "
             f"{li['redemption_rate']:.0%}",
             f"{ex['points']:,.0f} points of {ex['customers']:,} customers expire within {ex['days']:g} days",
             f"{'period':<10}{'earned':>12}{'redeemed':>12}{'expired':>12}{'outstanding':>14}"]
    for r in doc["activity"][-12:]:
        lines.append(f"{r['period']:<10}{r['earned']:>12,.0f}{r['redeemed']:>12,.0f}{r['expired']:>12,.0f}"
                     f"{r['balance_end']:>14,.0f}")
    lines.append(f"tiers by {rep['tiers']['basis']}: " + ", ".join(f"{t['tier']} {t['customers']:,}"
                                                                   for t in rep["tiers"]["counts"]))
    pr = rep["pricing"]
    lines.append(f"a point costs {pr['point_value'] * pr['redemption_rate']:.4f}; one unit of spend earns "
                 f"{_fmt(pr['points_per_currency'], '.2f')} points: a 2x points offer costs "
                 f"{pr['cost_per_currency']:.2%} of the basket")
    if doc["plots"]:
        lines.append(f"plots: {', '.join(doc['plots'])}")
    if doc["out"]:
        lines.append(f"wrote {doc['out']}")
    emit(doc, json, "\n".join(lines))


points_app.command("report")(report_command)


def register(app: typer.Typer) -> None:
    app.add_typer(points_app, name="points")
