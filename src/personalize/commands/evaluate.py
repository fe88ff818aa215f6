"""``personalize evaluate``: compare recommenders on a time split of a purchase history."""

from __future__ import annotations

import math
import time
from typing import Annotated

import typer

from personalize.commands.common import (CustomerCol, Decimal, FormatOpt, ItemCol, JsonOpt, OrderCol, PathArg,
                                         PriceCol, QuantityCol, Query, Sep, TimeCol, TimeFormat, emit,
                                         dataset_from)
from personalize.errors import PersonalizeError

MODEL_NAMES = ("popular", "itemknn", "als", "bpr", "ease", "buyagain", "repurchase", "twostage")  # registry kinds, for --help
DEFAULT_MODELS = "popular,itemknn,als,bpr,buyagain,repurchase,twostage"
ROW_FIELDS = ("model", "track", "recall", "ndcg", "map", "precision", "hit_rate", "coverage", "novelty", "customers",
              "fit_seconds")


def build_models(names: str) -> dict:
    """``"popular,als"`` -> ``{"popular": Popular(), "als": ALS()}`` with default hyperparameters."""
    from personalize.recommenders import make

    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    if not wanted:
        raise PersonalizeError(f"--models is empty; choose from {','.join(MODEL_NAMES)}")
    return {n: make(n) for n in dict.fromkeys(wanted)}


def _clean(v):
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    return v


def _table(doc: dict) -> str:
    head = f"{'model':<10} {'track':<14} {'ndcg':>7} {'recall':>7} {'map':>7} {'prec':>7} {'hit':>7} {'cover':>7} " \
           f"{'fit_s':>7}"
    lines = [f"split: train < {doc['test_start']} <= test < {doc['test_end'] or 'end'}; k = {doc['k']}; "
             f"customers: " + ", ".join(f"{t} {n}" for t, n in doc["customers"].items()), head]
    fmt = (lambda v: "      -" if v is None else f"{v:7.4f}")
    for r in doc["rows"]:
        lines.append(f"{r['model']:<10} {r['track']:<14} {fmt(r['ndcg'])} {fmt(r['recall'])} {fmt(r['map'])} "
                     f"{fmt(r['precision'])} {fmt(r['hit_rate'])} {fmt(r['coverage'])} "
                     f"{'-' if r['fit_seconds'] is None else round(r['fit_seconds'], 1):>7}")
    return "\n".join(lines)


def evaluate_command(
    path: PathArg,
    test_start: Annotated[str, typer.Option("--test-start", help="First day of the test period (train is before).")],
    format: FormatOpt = "generic",
    test_end: Annotated[str | None, typer.Option("--test-end", help="End of the test period (exclusive).")] = None,
    k: Annotated[int, typer.Option("--k", help="Length of each recommendation list.")] = 10,
    models: Annotated[str, typer.Option("--models", help=f"Comma-separated: {','.join(MODEL_NAMES)} "
                                                         "(repurchase: the plain most-often-bought baseline; "
                                                         "ease: catalogs up to 30,000 items).")] = DEFAULT_MODELS,
    tracks: Annotated[str, typer.Option("--tracks", help="all,discovery (both by default)")] = "all,discovery",
    customer_col: CustomerCol = None, item_col: ItemCol = None, time_col: TimeCol = None,
    time_format: TimeFormat = None, quantity_col: QuantityCol = None, price_col: PriceCol = None,
    order_col: OrderCol = None, sep: Sep = None, decimal: Decimal = ".", query: Query = None,
    json: JsonOpt = False,
) -> None:
    """Fit recommenders on the data before --test-start and score them on the test period (both tracks)."""
    from threadpoolctl import threadpool_limits

    from personalize.evaluation import evaluate, time_split

    if k < 1:
        raise PersonalizeError(f"--k must be at least 1, got {k}")
    track_list = tuple(t.strip() for t in tracks.split(",") if t.strip())
    bad = [t for t in track_list if t not in ("all", "discovery")]
    if bad or not track_list:
        raise PersonalizeError(f"unknown --tracks {bad or tracks!r}; use all and/or discovery")
    built = build_models(models)
    t0 = time.perf_counter()
    ds = dataset_from(locals())
    split = time_split(ds, test_start, test_end)
    with threadpool_limits(1, "blas"):
        res = evaluate(built, split, k=k, tracks=track_list)
    summary = split.summary()
    doc = {
        "format": format, "path": path, "k": k, "test_start": summary["test_start"], "test_end": summary["test_end"],
        "train_transactions": summary["train_transactions"], "test_transactions": summary["test_transactions"],
        "customers": {t: n for t, n in summary["customers"].items() if t in track_list or t == "new_customers"},
        "rows": [{f: _clean(r[f]) for f in ROW_FIELDS} for r in res.to_dict("records")],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    emit(doc, json, _table(doc))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
