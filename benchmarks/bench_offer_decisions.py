"""Offer decisions against the truth, and the offer routes under load (issue 11, items 6, 7 and 10).

Sections (``--sections``):

truth   a synthetic retailer (``make_retail``, 30,000 customers, 8 randomized
        campaigns): the acceptance model's AUC on the later exposures as a share
        of the oracle's (the generator's true acceptance probabilities on the same
        rows; target >= 90%), and the coupon plan's true expected profit (the
        generator's true uplift, baseline and redemption behaviour on the plan the
        model chose) as a share of the oracle plan's at the same budget (target
        >= 90%) and against "the biggest coupon", random levels and nobody; the
        same plan fed the true uplift (model baseline and redeem rate) and the true
        uplift and baseline tells the uplift model's share of a gap from the
        decision's (``true_uplift_share_of_oracle``, ...), with the model's
        per-level correlation with the true uplift; and the feature ceiling
        (regressions of the true uplift on the training features: what any
        learner could reach from these features, ``feature_ceiling``).
routes  a 1,000,000-customer bundle with offers and coupons (``make_retail``,
        trained by ``train_bundle``), one uvicorn worker, concurrency 16: the
        next-best-offer and coupon routes against the no-op route, interleaved
        (target: each >= 50% of the no-op throughput, p99 <= 3 x p50, no errors).

What limits the coupon plan (this section at its defaults, 30,000 customers, 8
campaigns, seed 1: 4,971-5,206 randomized exposures per ladder level and 12,766
controls; the S-learner chosen, validation Qini 0.020 vs T 0.009, X 0.007,
ensemble 0.009; its per-level correlation with the true uplift 0.19-0.32; plan
58 / 56 / 59 % of the oracle at the three budgets). The decision is sound: fed
the true uplift and true baseline (the anyway-redeem rate left at the cautious
1.0) the same plan reaches 98 % of the oracle's; with the true uplift and the
model's baseline 87 / 88 / 91 %. The features are the limit: LightGBM
regressions of the *true* uplift and baseline on the training features
(``feature_ceiling``; noiseless labels no learner has) correlate 0.40-0.42
(uplift) and 0.78 (baseline) with the truth at the end and plan only
68 / 65 / 67 % of the oracle (62 / 78 / 81 % with the true baseline and rate).
The latent discount sensitivity shows only through earlier coupon orders:
11.5 % of the training exposures and 21.6 % of the customers at the end have
one (1.7 offers received per customer). Four times the exposures per customer
(16 campaigns reaching 60 %, seed 2, exploratory scripts) raised the ceiling's
uplift correlation to 0.59 and its plan only to 64-67 % (80-83 % with the true
baseline and rate). So the 90 % target is out of reach for any learner on these
features at this size; on seed 2 the S-learner reached 56-59 % and shrinking its
per-level uplift towards the level's mean (by 0.5 or 0.8) did not help
(55-59 %, 52-57 %).

Writes benchmarks/results/offer_decisions.json; exits 1 past a target.

    .venv/bin/python benchmarks/bench_offer_decisions.py [--sections truth,routes] [--store /tmp/offer-store]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, peak_rss_mb  # noqa: E402
from bench_serving import _summ, free_port, interleaved, load, server_side, start_server  # noqa: E402

SECTIONS = ("truth", "routes")


def truth_section(args) -> tuple[dict, dict]:
    from threadpoolctl import threadpool_limits

    from personalize.churn.training_sets import data_end
    from personalize.customers import customer_table
    from personalize.datasets import make_retail
    from personalize.offers import OfferCatalog, economics
    from personalize.offers.evaluate import coupon_feature_ceiling, coupon_plans_vs_truth, evaluate_offers
    from personalize.pipeline.offers import train_offers

    t = time.perf_counter()
    ds, truth = make_retail(n_customers=args.truth_customers, seed=args.truth_seed, n_campaigns=args.campaigns,
                            campaign_share=args.campaign_share)
    gen_s = time.perf_counter() - t
    parts = {p for p in args.truth_parts.split(",") if p}
    with threadpool_limits(1):
        t = time.perf_counter()
        nbo = evaluate_offers(ds, truth=truth, n_jobs=args.n_jobs) if "nbo" in parts else None
        nbo_s = time.perf_counter() - t
        t = time.perf_counter()
        comps, info, metrics = train_offers(ds, customer_table(ds), None, n_jobs=args.n_jobs)
        train_s = time.perf_counter() - t
    table = comps["coupons"]
    catalog = OfferCatalog.from_frame(ds.offers)
    econ = economics(ds, catalog, data_end(ds), customer_ids=table.customer_ids)
    full = float(table.cost[table.profit > 0].sum()) if (table.profit > 0).any() else 1.0
    budgets = [round(full * f, 2) for f in (0.05, 0.15, 0.4)]
    plans = coupon_plans_vs_truth(table, catalog, econ, truth, budgets=budgets)
    t = time.perf_counter()
    with threadpool_limits(1):
        ceiling = coupon_feature_ceiling(ds, catalog, table, econ, truth, budgets=budgets, n_jobs=args.n_jobs)
    ceiling["seconds"] = round(time.perf_counter() - t, 1)
    arms = ds.exposures["offer_id"].astype("object").fillna("control").value_counts()
    per_level = {str(k): int(arms.get(k, 0)) for k in ["control", *table.ladder.levels]}
    result = {"data": {"customers": args.truth_customers, "seed": args.truth_seed, "campaigns": args.campaigns,
                       "campaign_share": args.campaign_share, "exposures": len(ds.exposures),
                       "exposures_per_level": per_level, "generate_s": round(gen_s, 1)},
              "nbo": {k: nbo[k] for k in ("split", "train_exposures", "test_exposures", "model", "baselines",
                                          "policy", "oracle")} | {"seconds": round(nbo_s, 1)} if nbo else None,
              "coupons": {"model": info["coupons"].get("model"), "train_s": round(train_s, 1),
                          "selection": {k: {"qini": round(v["mean"]["qini"], 4)}
                                        for k, v in metrics.get("uplift", {}).get("validation", {}).items()},
                          **plans,
                          "feature_ceiling": ceiling}}
    checks = {"nbo_auc_ge_90pct_of_oracle": (nbo["oracle"].get("model_share_of_oracle") or 0) >= 0.90} if nbo else {}
    for p in plans["plans"]:
        b = p["budget"]
        checks[f"plan_{b:g}_ge_90pct_of_oracle"] = (p["share_of_oracle"] or 0) >= 0.90
        checks[f"plan_{b:g}_beats_biggest_random_nobody"] = p["model_true_profit"] > max(
            p["biggest_coupon_true_profit"], p["random_true_profit"], p["nobody_true_profit"])
    return result, checks


def build_offer_store(store: Path, customers: int) -> dict:
    from personalize.datasets import make_retail
    from personalize.pipeline import train_bundle
    from personalize.recommenders import ALS

    t = time.perf_counter()
    ds, _truth = make_retail(n_customers=customers, n_items=2000, orders_per_year=3.0, seed=5)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    m = train_bundle(ds, store=store, candidates=50, churn=False, validate=False,
                     recommender=ALS(factors=32, iterations=5, random_state=0),
                     progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    ids = sorted(ds.customers["customer_id"].astype(str).tolist())
    return {"version": m["version"], "customers": ids, "lines": len(ds), "generate_s": round(gen_s, 1),
            "train_s": round(time.perf_counter() - t, 1), "offers": m["extra"]["offers"],
            "coupons": m["extra"]["coupons"], "peak_rss_mb": round(peak_rss_mb(), 1)}


def routes_section(args) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory(prefix="bench-offers-") as tmp:
        store = Path(args.store) if args.store else Path(tmp) / "models"
        cache = store / "bench_info.json"
        if cache.is_file():
            info = json.loads(cache.read_text())
        else:
            info = build_offer_store(store, args.route_customers)
            if args.store:
                cache.write_text(json.dumps(info))
        port = free_port()
        proc = start_server(store, port, Path(tmp) / "events.sqlite")
        try:
            load("127.0.0.1", port, "nbo", 2.0, info["customers"], seed=9)   # warm-up
            load("127.0.0.1", port, "coupon", 2.0, info["customers"], seed=8)
            noop, nbo, coupon = (_summ(r) for r in interleaved("127.0.0.1", port, args.seconds, info["customers"],
                                                                 kinds=("noop", "nbo", "coupon")))
            nbo["server_side"] = server_side(port, "/v1/customers/{customer_id}/next-best-offer")
            coupon["server_side"] = server_side(port, "/v1/customers/{customer_id}/coupon")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    info = {k: v for k, v in info.items() if k != "customers"}
    result = {"bundle": info, "noop": noop, "next_best_offer": nbo, "coupon": coupon,
              "nbo_over_noop": nbo["throughput_rps"] / noop["throughput_rps"],
              "coupon_over_noop": coupon["throughput_rps"] / noop["throughput_rps"]}
    checks = {"nbo_throughput_ge_50pct_of_noop": result["nbo_over_noop"] >= 0.5,
              "coupon_throughput_ge_50pct_of_noop": result["coupon_over_noop"] >= 0.5,
              "nbo_p99_le_3x_p50": nbo["p99_over_p50"] <= 3.0, "coupon_p99_le_3x_p50": coupon["p99_over_p50"] <= 3.0,
              "routes_zero_errors": noop["errors"] == nbo["errors"] == coupon["errors"] == 0}
    return result, checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {list(SECTIONS)}")
    ap.add_argument("--truth-customers", type=int, default=30_000)
    ap.add_argument("--campaigns", type=int, default=8)
    ap.add_argument("--campaign-share", type=float, default=0.3, help="truth: share of customers in each campaign")
    ap.add_argument("--truth-seed", type=int, default=1)
    ap.add_argument("--truth-parts", default="nbo,coupons", help="truth: comma-separated, from nbo,coupons "
                    "(the coupon plans are always evaluated; without nbo the acceptance model is not)")
    ap.add_argument("--route-customers", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=15.0, help="load per route (interleaved in 3 rounds)")
    ap.add_argument("--store", help="reuse (or create) the 1M-customer offer bundle here")
    ap.add_argument("--n-jobs", type=int, default=2)
    args = ap.parse_args()
    wanted = [s for s in args.sections.split(",") if s]
    bad = [s for s in wanted if s not in SECTIONS]
    if bad:
        raise SystemExit(f"unknown section(s) {bad}; sections: {list(SECTIONS)}")
    result, checks = {"sections": wanted}, {}
    for name in wanted:
        r, c = (truth_section if name == "truth" else routes_section)(args)
        result[name] = r
        checks.update(c)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    finish("offer_decisions", result, checks)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
