"""``personalize audience``: a customer list from the published bundle."""

from __future__ import annotations

from typing import Annotated

import typer

from personalize.commands.common import JsonOpt, emit, write_table
from personalize.errors import MissingComponentError
from personalize.store import load_bundle


def audience_command(
    models: Annotated[str, typer.Option("--models", help="Model store (directory with CURRENT) or a version "
                                                         "directory.")] = "models",
    version: Annotated[str | None, typer.Option("--version", help="Bundle version (default: CURRENT).")] = None,
    min_churn_risk: Annotated[float | None, typer.Option("--min-churn-risk", help="Keep customers with churn "
                                                                                  "probability >= this.")] = None,
    max_churn_risk: Annotated[float | None, typer.Option("--max-churn-risk", help="Keep customers with churn "
                                                                                  "probability <= this.")] = None,
    tier: Annotated[list[str] | None, typer.Option("--tier", help="Membership tier(s) to keep.")] = None,
    segment: Annotated[list[str] | None, typer.Option("--segment", help="RFM segment(s) to keep.")] = None,
    lifecycle: Annotated[list[str] | None, typer.Option("--lifecycle", help="Lifecycle stage(s) to keep.")] = None,
    min_clv: Annotated[float | None, typer.Option("--min-clv", help="Keep customers with CLV >= this.")] = None,
    consent: Annotated[str | None, typer.Option("--consent", help="email | sms | personalization: only "
                                                                  "customers who consented.")] = None,
    unhappy: Annotated[bool, typer.Option("--unhappy", help="Only detractors and customers with an open complaint "
                                                            "(the service-recovery list).")] = False,
    detractor: Annotated[bool, typer.Option("--detractor", help="Only customers whose last answer was a "
                                                                "detractor answer.")] = False,
    open_complaints: Annotated[bool, typer.Option("--open-complaints", help="Only customers with a complaint "
                                                                            "not resolved yet.")] = False,
    min_points: Annotated[float | None, typer.Option("--min-points", help="Points balance at least this.")] = None,
    points_expiring_within_days: Annotated[float | None, typer.Option(
        "--points-expiring-within-days", help="Only customers with points expiring within this many days.")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Write the list (.csv or .parquet).")] = None,
    json: JsonOpt = False,
) -> None:
    """Customer list from the published bundle: churn risk, tier, segment, lifecycle, CLV and consent filters.

    The list holds customer ids with their scores and labels, never personal
    attributes (region, birth date...) or consent flags; with ``--consent``
    only customers who explicitly consented to that channel are listed.
    """
    from personalize.customers import select_audience

    bundle = load_bundle(models, version)
    table = bundle.get("customers")
    if (min_churn_risk is not None or max_churn_risk is not None) and table is not None \
            and "churn_risk" not in table.columns:
        why = ((bundle.manifest.get("extra") or {}).get("churn") or {}).get("reason")
        raise MissingComponentError(f"bundle {bundle.version} has no churn scores"
                                    + (f" ({why})" if why else "") + "; cannot filter by churn risk")
    extra = {k: v for k, v in (("unhappy", True if unhappy else None), ("detractor", True if detractor else None),
                                ("open_complaints", True if open_complaints else None), ("min_points", min_points),
                                ("points_expiring_within_days", points_expiring_within_days)) if v is not None}
    picked = select_audience(table, min_churn_risk=min_churn_risk, max_churn_risk=max_churn_risk, tiers=tier,
                             segments=segment, lifecycle=lifecycle, min_clv=min_clv, consent=consent,
                             personal=False, **extra)
    doc = {"bundle": bundle.version, "customers": len(picked), "out": None,
           "filters": {"min_churn_risk": min_churn_risk, "max_churn_risk": max_churn_risk, "tier": tier,
                       "segment": segment, "lifecycle": lifecycle, "min_clv": min_clv, "consent": consent,
                       **extra},
           "columns": list(picked.columns)}
    if out:
        doc["out"] = write_table(picked, out)
    else:
        doc["first"] = picked.head(10).to_dict(orient="records")
    lines = [f"{len(picked):,} customers in bundle {bundle.version}"]
    if doc["out"]:
        lines.append(f"wrote {doc['out']}")
    emit(doc, json, "\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("audience")(audience_command)
