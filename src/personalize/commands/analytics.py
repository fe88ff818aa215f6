"""``personalize segments`` and ``personalize clv``."""

from __future__ import annotations

import json as jsonlib
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from personalize.commands.common import (CustomerCol, Decimal, FormatOpt, ItemCol, JsonOpt, OrderCol, PathArg,
                                         PriceCol, QuantityCol, Query, Sep, TimeCol, TimeFormat, emit,
                                         dataset_from, write_table)
from personalize.errors import ConvergenceError, DataError, PersonalizeError


def _tier_config(path: str | None):
    from personalize.analytics import TierConfig

    if path is None:
        return None
    try:
        d = jsonlib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read tier config {path}: {exc}") from None
    try:
        return TierConfig.from_dict(d)
    except TypeError as exc:
        raise PersonalizeError(f"tier config {path}: {exc}") from None


def _counts(view: pd.DataFrame, col: str, order: list[str] | None = None) -> list[dict]:
    agg = {"customers": ("monetary", "size"), "monetary": ("monetary", "sum")}
    if "clv" in view.columns:
        agg["mean_clv"] = ("clv", "mean")
    g = view.groupby(col, sort=False, observed=True).agg(**agg)
    keys = ([k for k in order if k in g.index] + [k for k in g.index if k not in order]) if order \
        else g.sort_values("customers", ascending=False).index.tolist()
    n = len(view)
    rows = []
    for k in keys:
        r = g.loc[k]
        row = {col: str(k), "customers": int(r["customers"]),
               "share": round(float(r["customers"]) / n, 6), "monetary": round(float(r["monetary"]), 2)}
        if "mean_clv" in r:
            row["mean_clv"] = None if pd.isna(r["mean_clv"]) else round(float(r["mean_clv"]), 4)
        rows.append(row)
    return rows


def segments_command(
    path: PathArg,
    format: FormatOpt = "generic",
    as_of: Annotated[str | None, typer.Option("--as-of", help="Cutoff date: only purchases strictly before it "
                                                              "(default: the day after the last purchase).")] = None,
    out: Annotated[str | None, typer.Option("--out", help="Write every customer's row (.csv or .parquet).")] = None,
    plots: Annotated[str | None, typer.Option("--plots", help="Directory for segments.png and tiers.png.")] = None,
    tier_config: Annotated[str | None, typer.Option("--tier-config", help="JSON file: {\"tiers\": [{\"name\", "
                                                                          "\"min_spend\", \"min_orders\"}], "
                                                                          "\"window_days\", \"mode\"}.")] = None,
    clv: Annotated[bool, typer.Option("--clv/--no-clv", help="Add BG/NBD + Gamma-Gamma CLV columns.")] = True,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """RFM segments, lifecycle stages, membership tiers and CLV of every customer as of a date."""
    import warnings

    from personalize.analytics import LIFECYCLE_STAGES, SEGMENT_NAMES, customer_view

    t0 = time.perf_counter()
    tiers = _tier_config(tier_config)
    ds = dataset_from(locals())
    if as_of is None:
        cutoff = ds.last_timestamp.normalize() + pd.Timedelta(days=1)
    else:
        try:
            cutoff = pd.Timestamp(as_of)
        except (TypeError, ValueError):
            raise DataError(f"--as-of {as_of!r} is not a date") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        view = customer_view(ds, cutoff, tiers=tiers, clv=clv)
    tier_order = (view[["tier", "tier_level"]].dropna().drop_duplicates().sort_values("tier_level")["tier"]
                  .astype(str).tolist())
    doc = {
        "format": format, "path": path, "as_of": view.attrs.get("as_of"), "customers": len(view),
        "segments": _counts(view, "segment", list(SEGMENT_NAMES)),
        "lifecycle": _counts(view, "lifecycle", list(LIFECYCLE_STAGES)),
        "tiers": _counts(view, "tier", tier_order),
        "default_gap_days": view.attrs.get("default_gap_days"),
        "clv_status": view.attrs.get("clv_status"),
        "clv_notes": view.attrs.get("clv_notes"),
        "clv_models": view.attrs.get("clv_models"),
        "clv_selection": view.attrs.get("clv_selection"),
        "clv_diagnostics": view.attrs.get("clv_diagnostics"),
        "clv_simple": view.attrs.get("clv_simple"),
        "clv_error": view.attrs.get("clv_error"),
        "clv_simple_error": view.attrs.get("clv_simple_error"),
        "out": None, "plots": None,
    }
    if out:
        doc["out"] = write_table(view, out, index=True, date_format="%Y-%m-%dT%H:%M:%S")
    if plots:
        from personalize.analytics.plots import plot_segments, plot_tiers

        d = Path(plots)
        doc["plots"] = [str(plot_segments(view, d / "segments.png")), str(plot_tiers(view, d / "tiers.png"))]
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    lines = [f"{doc['customers']:,} customers as of {doc['as_of']}", "segment              customers    share"]
    lines += [f"  {r['segment']:<20}{r['customers']:>9,}  {r['share']:6.1%}" for r in doc["segments"]]
    lines += ["lifecycle"] + [f"  {r['lifecycle']:<20}{r['customers']:>9,}  {r['share']:6.1%}"
                              for r in doc["lifecycle"]]
    lines += ["tier"] + [f"  {r['tier']:<20}{r['customers']:>9,}  {r['share']:6.1%}" for r in doc["tiers"]]
    if doc["clv_status"] is not None:
        lines.append(f"CLV: {doc['clv_status']}" + (f" ({doc['clv_models']['model']})" if doc["clv_models"] else ""))
        lines += [f"  note: {n}" for n in doc["clv_notes"] or []]
    if doc["out"]:
        lines.append(f"wrote {doc['out']}")
    emit(doc, json, "\n".join(lines))


def clv_command(
    path: PathArg,
    calibration_end: Annotated[str, typer.Option("--calibration-end", help="Last day of the calibration "
                                                                           "period (inclusive).")],
    format: FormatOpt = "generic",
    holdout_end: Annotated[str | None, typer.Option("--holdout-end", help="Last day of the holdout period "
                                                                          "(default: last purchase day).")] = None,
    time_unit: Annotated[str, typer.Option("--time-unit", help="D, W, M or Y.")] = "W",
    model: Annotated[str, typer.Option("--model", help="Purchase model: auto (the better of bgnbd and mbgnbd on "
                                                       "the holdout, degenerate fits last), bgnbd or "
                                                       "mbgnbd.")] = "auto",
    plot: Annotated[str | None, typer.Option("--plot", help="PNG: cumulative repeat purchases and holdout purchases "
                                                            "by calibration frequency, actual vs predicted.")] = None,
    table: Annotated[str | None, typer.Option("--table", help="Write the holdout table by calibration frequency "
                                                              "(.csv, .parquet or .jsonl).")] = None,
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """Fit the purchase models (BG/NBD, MBG/NBD) and Gamma-Gamma on a calibration period, check them on the
    holdout period and say whether the fits are degenerate."""
    from personalize.analytics import (PURCHASE_MODELS, calibration_summary, compare_purchase_models,
                                       cumulative_repeat_purchases, fit_clv, holdout_comparison, holdout_table)

    t0 = time.perf_counter()
    names = list(PURCHASE_MODELS) if model == "auto" else [model]
    if model != "auto" and model not in PURCHASE_MODELS:
        raise PersonalizeError(f"--model must be auto or one of {', '.join(PURCHASE_MODELS)}, got {model!r}")
    ds = dataset_from(locals())
    last_day = ds.last_timestamp.normalize()
    try:
        cal_end = pd.Timestamp(calibration_end).normalize()
        hold_end = pd.Timestamp(holdout_end).normalize() if holdout_end else last_day
    except (TypeError, ValueError):
        raise DataError(f"--calibration-end / --holdout-end must be dates, got {calibration_end!r} / "
                        f"{holdout_end!r}") from None
    if hold_end <= cal_end:
        hold_end = None  # no holdout period left
    summary = calibration_summary(ds, calibration_end=cal_end, holdout_end=hold_end, time_unit=time_unit)
    t_fit = time.perf_counter()
    if hold_end is not None:
        selection, fitted = compare_purchase_models(summary, names)
        chosen = selection["chosen"]
    else:  # no holdout: the first model that fits, flagged if degenerate
        selection, fitted, chosen = {"status": "skipped", "reason": "no holdout period after --calibration-end"}, \
            {}, None
        for name in names:
            try:
                fitted[name] = fit_clv(summary, model=name)[0]
            except ConvergenceError as exc:
                selection.setdefault("failed", {})[name] = str(exc)
                continue
            chosen = chosen or name
        if chosen is None:
            raise ConvergenceError("; ".join(selection["failed"].values()))
        selection["chosen"] = chosen
    bg = fitted[chosen]
    gg, left_out = fit_clv(summary, model=chosen)[1:]
    fit_seconds = time.perf_counter() - t_fit
    holdout = holdout_comparison(bg, summary) if hold_end is not None else None
    status = "ok" if bg.diagnostics_["status"] == "ok" and gg.diagnostics_["status"] == "ok" else "degenerate"
    doc = {
        "format": format, "path": path, "time_unit": summary.attrs["time_unit"],
        "calibration_end": summary.attrs["calibration_end"], "holdout_end": summary.attrs.get("holdout_end"),
        "customers": len(summary), "repeat_buyers": int((summary["frequency"] > 0).sum()),
        "status": status,
        "warnings": [i["message"] for d in (bg.diagnostics_, gg.diagnostics_) for i in d["issues"]],
        "model": chosen, "params": bg.params_, "log_likelihood": bg.log_likelihood_,
        "diagnostics": {"purchase": bg.diagnostics_, "spend": gg.diagnostics_},
        "models": {name: {"params": m.params_, "log_likelihood": m.log_likelihood_,
                          "status": m.diagnostics_["status"], "diagnostics": m.diagnostics_}
                   for name, m in fitted.items()},
        "selection": selection,
        "bgnbd": fitted["bgnbd"].params_ if "bgnbd" in fitted else None,
        "bgnbd_log_likelihood": fitted["bgnbd"].log_likelihood_ if "bgnbd" in fitted else None,
        "gamma_gamma": gg.params_, "gamma_gamma_log_likelihood": gg.log_likelihood_,
        "gamma_gamma_customers": gg.n_customers_, "gamma_gamma_left_out": left_out,
        "holdout": holdout, "plot": None, "table": None, "fit_seconds": round(fit_seconds, 4),
    }
    if table and holdout is not None:
        doc["table"] = write_table(holdout_table(holdout), table)
    if plot:
        from personalize.analytics.plots import plot_clv_validation

        cum = cumulative_repeat_purchases(ds, summary, bg, end=hold_end)
        doc["plot"] = str(plot_clv_validation(cum, holdout, plot, calibration_end=cal_end,
                                              time_unit=doc["time_unit"], model=chosen))
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    p, g = bg.params_, gg.params_
    lines = [f"{doc['customers']:,} customers, {doc['repeat_buyers']:,} repeat buyers; calibration to "
             f"{doc['calibration_end']} in {doc['time_unit']}",
             f"{chosen:<12} r={p['r']:.4f} alpha={p['alpha']:.4f} a={p['a']:.4g} b={p['b']:.4g}  "
             f"LL={bg.log_likelihood_:.2f}  [{bg.diagnostics_['status']}]",
             f"Gamma-Gamma  p={g['p']:.4f} q={g['q']:.4f} v={g['v']:.4f}  LL={gg.log_likelihood_:.2f}  "
             f"[{gg.diagnostics_['status']}]"]
    lines += [f"WARNING: {w}" for w in doc["warnings"]]
    if selection.get("reason"):
        lines.append(f"model choice: {selection['reason']}")
    if holdout:
        lines.append(f"holdout to {doc['holdout_end']}: predicted {holdout['predicted_total']:.1f} vs actual "
                     f"{holdout['actual_total']:.0f} repeat purchases")
        lines.append("  frequency  customers  actual  predicted   (mean holdout purchases)")
        lines += [f"  {r['frequency']:>9}  {r['customers']:>9,}  {r['actual_mean']:6.3f}  {r['predicted_mean']:9.3f}"
                  for r in holdout["by_frequency"]]
    emit(doc, json, "\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("segments")(segments_command)
    app.command("clv")(clv_command)
