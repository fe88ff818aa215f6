"""``personalize demo``: the whole product on an embedded sample, end to end.

Generates a seeded synthetic purchase history (with realistic defects), writes
it as CSV files, loads and validates them like any retailer's export, trains
every model, publishes a bundle to the model store and serves it.
"""

from __future__ import annotations

import json as _json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from personalize._atomic import atomic_write
from personalize.commands.common import JsonOpt, emit
from personalize.commands.data import summary_text
from personalize.commands.serve import run_server

DEMO_KEYS = {"shop": ["recommend", "events"], "marketing": ["recommend", "profile", "audience"],
             "admin": ["recommend", "profile", "events", "audience", "admin"]}


def write_sample(data_dir: Path, *, customers: int, items: int, seed: int) -> dict[str, Path]:
    """Generate the synthetic sample and write one CSV per table (atomically)."""
    from personalize.datasets import make_retail_frames

    frames, _truth = make_retail_frames(n_customers=customers, n_items=items, seed=seed, defects=True, feedback=True,
                                        points=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in frames.items():
        if df is None:
            continue
        path = data_dir / f"{name}.csv"
        atomic_write(path, lambda fh, df=df: df.to_csv(fh, index=False, lineterminator="\n"), binary=False)
        paths[name] = path
    return paths


def demo(customers: Annotated[int, typer.Option(help="Customers in the generated sample.")] = 3000,
         items: Annotated[int, typer.Option(help="Items in the generated sample.")] = 400,
         seed: Annotated[int, typer.Option(help="Random seed of the sample.")] = 42,
         data_dir: Annotated[str, typer.Option(help="Where the sample CSV files are written.")] = ".demo/data",
         models: Annotated[str, typer.Option(help="Model store to publish to.")] = "models",
         serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the service at the end.")] = True,
         host: Annotated[str, typer.Option(help="Host to serve on.")] = "127.0.0.1",
         port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
         json: JsonOpt = False) -> None:
    """Generate a sample purchase history, validate it, train every model, publish a bundle and serve it."""
    from personalize.data import CleaningOptions, Dataset

    say = (lambda msg: None) if json else (lambda msg: typer.echo(msg, err=True))
    t0 = time.perf_counter()
    say(f"[1/4] generating a sample purchase history ({customers} customers, {items} items) in {data_dir}/")
    paths = write_sample(Path(data_dir), customers=customers, items=items, seed=seed)
    say("[2/4] loading and validating the CSV files")
    ds = Dataset.from_csv(paths["transactions"], items=paths.get("items"), customers=paths.get("customers"),
                          offers=paths.get("offers"), exposures=paths.get("exposures"),
                          feedback=paths.get("feedback"), points=paths.get("points"),
                          options=CleaningOptions(returns="net"))
    summary = ds.summary()
    if not json:
        typer.echo(summary_text(summary))
    say(f"[3/4] training every model and publishing a bundle to {models}/")
    from personalize.pipeline import train_bundle

    manifest = train_bundle(ds, store=models, progress=lambda m: say(f"      {m}"))
    result = {"data": summary, "bundle": {"version": manifest["version"], "store": models,
                                          "metrics": manifest.get("metrics", {})},
              "seconds": round(time.perf_counter() - t0, 2)}
    if json or not serve:
        emit(result, json, f"published model version {manifest['version']} to {models}/")
        if not serve:
            return
    keys = {f"demo-{name}-key": scopes for name, scopes in DEMO_KEYS.items()}
    os.environ["PERSONALIZE_API_KEYS"] = _json.dumps(keys)
    os.environ["PERSONALIZE_MODELS"] = str(Path(models).resolve())
    examples = demo_examples(ds, models, f"http://{host}:{port}")
    say("[4/4] serving; try (keys: " + ", ".join(f"{k} -> {','.join(v)}" for k, v in keys.items()) + "):")
    for ex in examples:
        typer.echo("  " + ex, err=True)
    if "feedback" in paths:
        typer.echo(f"  personalize feedback report {paths['transactions']} --feedback {paths['feedback']} "
                   f"--items {paths['items']} --plots .demo/plots   # NPS / CSAT tables and plots", err=True)
    if "points" in paths:
        typer.echo(f"  personalize points report {paths['transactions']} --points {paths['points']}   # balances, "
                   "expiring points, liability", err=True)
    typer.echo("  (Ctrl-C stops the service)", err=True)
    run_server(models=models, host=host, port=port, workers=1)


def demo_examples(ds, models: str, root: str) -> list[str]:
    """The curl requests the demo prints, on ids of the published bundle that show each feature (tests run
    every one against the service)."""
    from personalize.runtime import Runtime
    from personalize.store import load_bundle

    rt = Runtime(load_bundle(models))
    base = f"{root}/v1"
    customer = str(ds.transactions["customer_id"].iloc[-1])   # a customer with purchases (and a churn score)
    if rt.has_churn:
        scored = rt.customers.loc[rt.customers["churn_risk"].notna(), "customer_id"]
        customer = str(scored.iloc[0]) if len(scored) else customer
    item = str(ds.transactions["item_id"].iloc[-1])
    shop, mkt = "demo-shop-key", "demo-marketing-key"
    out = [
        f"curl -s -H 'Authorization: Bearer {shop}' '{base}/customers/{customer}/recommendations?k=5'",
        f"curl -s -H 'Authorization: Bearer {shop}' '{base}/customers/someone-new/recommendations?k=5'",
        f"curl -s -H 'Authorization: Bearer {shop}' '{base}/items/{item}/similar?k=5'",
        f"curl -s -H 'Authorization: Bearer {shop}' -H 'Content-Type: application/json' "
        f"-d '{{\"item_ids\": [\"{item}\"], \"k\": 5}}' '{base}/recommendations'",
        f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/customers/{customer}/profile'",
    ]
    if rt.has_churn:
        out += [f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/customers/{customer}/churn-risk'",
                f"curl -s -H 'Authorization: Bearer {mkt}' "
                f"'{base}/audiences?consent=email&min_churn_risk=0.7&format=jsonl&limit=5'"]
    out.append(f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/audiences?consent=email&format=csv&limit=10'")
    if rt.desk.offers is not None:
        target = next((c for c in rt.desk.offers.customer_ids[:2000]
                       if rt.next_best_offer(str(c), channel="email")["offers"]), customer)
        offer = (rt.next_best_offer(str(target), channel="email")["offers"] or [{"offer_id": None}])[0]["offer_id"]
        out += [f"curl -s -H 'Authorization: Bearer {shop}' '{base}/customers/{target}/next-best-offer?n=3"
                f"&channel=email'",
                f"curl -s -H 'Authorization: Bearer {shop}' '{base}/customers/{target}/coupon'"]
        if offer is not None:
            out.append(f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/audiences?consent=email&offer_id={offer}"
                       f"&limit=10'")
            out.append(f"curl -s -H 'Authorization: Bearer {shop}' -H 'Content-Type: application/json' -d "
                       f"'{{\"events\": [{{\"type\": \"exposure\", \"customer_id\": \"{target}\", "
                       f"\"offer_id\": \"{offer}\"}}]}}' '{base}/events'   # caps and cooldown count it at once")
        if rt.desk.coupons is not None:
            level = rt.desk.coupons.ladder.levels[0]
            out.append(f"curl -s -H 'Authorization: Bearer {mkt}' "
                       f"'{base}/audiences?consent=email&coupon_level={level}&budget=500&limit=10'")
    out += _loyalty_examples(rt, base, shop, mkt, customer)
    if rt.bundle.get("campaign_exposures") is not None:
        campaign = rt.campaigns()[-1]["campaign_id"]
        out += [f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/campaigns'",
                f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/campaigns/{campaign}/readout?cuped=pre_spend'"]
    out += [
        f"curl -s -H 'Authorization: Bearer {shop}' -H 'Content-Type: application/json' -d "
        f"'{{\"events\": [{{\"type\": \"purchase\", \"customer_id\": \"{customer}\", \"item_id\": \"{item}\"}}]}}' "
        f"'{base}/events'",
        f"curl -s -H 'X-API-Key: {shop}' '{base}/audiences'   # 403: a shop key cannot export customers",
        f"curl -s '{root}/healthz'",
    ]
    return out


def _loyalty_examples(rt, base: str, shop: str, mkt: str, customer: str) -> list[str]:
    """NPS, the service-recovery list, an expiring-points audience and a complaint event, when the bundle has
    feedback and points."""
    import numpy as np

    out = []
    table = rt.customers
    if rt.loyalty.has_feedback:
        out.append(f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/satisfaction?by=month'   # NPS and CSAT by "
                   "month, with 95 % intervals")
    if table is not None and {"detractor", "open_complaints", "clv"} <= set(table.columns):
        unhappy = (table["detractor"].astype("boolean").fillna(False).to_numpy(dtype=bool)
                   | (table["open_complaints"].to_numpy(np.float64, na_value=0.0) >= 1))
        ok = unhappy & table["consent_email"].fillna(False).to_numpy(dtype=bool) \
            if "consent_email" in table.columns else unhappy
        clv = table.loc[ok, "clv"].to_numpy(np.float64, na_value=np.nan)
        clv = clv[np.isfinite(clv)]
        if len(clv):
            floor = int(np.floor(np.quantile(clv, 0.8)))
            out.append(f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/audiences?consent=email&unhappy=true"
                       f"&min_clv={floor}&fields=clv,open_complaints,days_since_complaint,last_score,detractor"
                       f"&format=jsonl&limit=10'   # service recovery: unhappy high-value customers")
    if table is not None and "points_next_expiry_days" in table.columns:
        out.append(f"curl -s -H 'Authorization: Bearer {mkt}' '{base}/audiences?consent=email"
                   f"&points_expiring_within_days=30&min_points=100&fields=points_balance,points_expiring_30d"
                   f"&limit=10'   # points about to expire")
    if rt.loyalty.has_feedback:
        out.append(f"curl -s -H 'Authorization: Bearer {shop}' -H 'Content-Type: application/json' -d "
                   f"'{{\"events\": [{{\"type\": \"feedback\", \"customer_id\": \"{customer}\", \"kind\": "
                   f"\"complaint\", \"category\": \"delivery\"}}]}}' '{base}/events'   # an open complaint "
                   f"shows on the profile at once")
    return out


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
