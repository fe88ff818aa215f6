"""Spark path vs single-machine path on a synthetic 5M-line purchase history.

1. Generate ``make_retail`` frames with defects (about 5 million lines by
   default), write them as Parquet (not timed).
2. Single machine: ``Dataset.from_parquet`` (cleaning), ``customer_view`` as
   of the data's end, implicit ALS fitted before the last 28 days and scored
   (recall@10) on them.
3. Spark on ``local[2]``: the same steps (``SparkDataset.from_parquet``,
   ``personalize.spark.features.customer_view``, MLlib ALS exported as ``ALS``
   and scored by the same evaluation code), then the whole Spark pipeline
   (``personalize.spark.train_bundle``: ALS, candidates in partitions, churn
   snapshots and model, customer view, acceptance and uplift models on the
   driver from per-exposure-day Spark features, next-best-offers and coupon
   levels scored in partitions, bundle).
4. Offers on one machine: ``personalize.pipeline.offers.train_offers`` on the
   pandas Dataset with the Spark bundle's customer table and candidates (the
   same inputs), timed, and its bundle components compared with the Spark
   bundle's: top offer per customer and coupon level per customer.

Targets: cleaning report identical; customer view values identical (every
numeric column within 1e-9 relative, every other column equal); Spark ALS
recall@10 at least 95 % of implicit's (within 5 %, higher is fine); the Spark pipeline's own overhead (its
total minus MLlib's ALS fit) at most 2x MLlib's ALS time (reported with and without the offers stage, which
the issue's target predates; the target is checked on the pipeline the issue named, without it); next-best-offer
and coupon level of every customer equal to the single-machine path's. Time ratios Spark /
single machine are reported (on 2 cores Spark is expected to be slower: it
is for data that does not fit one machine).

Writes benchmarks/results/spark.json (also after every stage, with ``"partial": true``, so that a run
stopped by a time limit still says how long each finished stage took); exits 1 past a target.
Usage: python benchmarks/bench_spark.py [--customers N] [--items N] [--master local[2]]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, peak_rss_mb, write_result  # noqa: E402


def _compare(p: pd.DataFrame, q: pd.DataFrame) -> dict:
    q = q.set_index("customer_id").sort_index()
    out = {"rows_pandas": len(p), "rows_spark": len(q), "same_ids": list(p.index) == list(q.index),
           "same_columns": list(p.columns) == list(q.columns), "bad_columns": [], "bit_identical_columns": 0,
           "columns": len(p.columns), "max_rel_diff": 0.0}
    if not (out["same_ids"] and out["same_columns"]):
        return out
    for c in p.columns:
        a, b = p[c], q[c]
        if a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
            x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
            both_nan = np.isnan(x) & np.isnan(y)
            rel = np.where(both_nan, 0.0, np.abs(x - y) / np.maximum(1.0, np.abs(x)))
            rel = np.nan_to_num(rel, nan=1.0)
            out["max_rel_diff"] = max(out["max_rel_diff"], float(rel.max()) if len(rel) else 0.0)
            if (rel > 1e-9).any():
                out["bad_columns"].append(c)
            elif (both_nan | (x == y)).all():
                out["bit_identical_columns"] += 1
        else:
            def norm(s):
                return [None if pd.isna(v) else (pd.Timestamp(v).isoformat() if hasattr(v, "isoformat") else str(v))
                        for v in s]
            if norm(a) != norm(b):
                out["bad_columns"].append(c)
            else:
                out["bit_identical_columns"] += 1
    return out


def _offer_parity(single: dict, bundle) -> dict:
    """Share of customers whose top offer (highest EV > 0, e-mail channel's static policy) and best coupon
    level are equal between the single-machine components and the Spark bundle's; max |diff| of P(accept)."""
    out: dict = {"published_single": sorted(k for k in ("offers", "coupons") if k in single),
                 "published_spark": sorted(k for k in ("offers", "coupons") if k in bundle.components)}
    if "offers" not in single or "offers" not in bundle.components:
        out.update(top_offer_equal_share=0.0, coupon_level_equal_share=0.0)
        return out
    a, b = single["offers"], bundle["offers"]
    out["same_customers"] = bool(np.array_equal(a.customer_ids.astype(str), b.customer_ids.astype(str)))

    def top(s):
        ev = np.where(s.static[:, :, 0] == 0, s.p * s.value, -np.inf)
        best = ev.argmax(axis=1)
        return np.where(ev.max(axis=1) > 0, best, -1)
    out["top_offer_equal_share"] = float((top(a) == top(b)).mean())
    out["p_accept_max_abs_diff"] = float(np.abs(a.p - b.p).max())
    if "coupons" in single and "coupons" in bundle.components:
        def level(c):
            return np.where(c.profit.max(axis=1) > 0, c.profit.argmax(axis=1), -1)
        out["coupon_level_equal_share"] = float((level(single["coupons"]) == level(bundle["coupons"])).mean())
        out["coupon_profit_max_abs_diff"] = float(np.abs(single["coupons"].profit - bundle["coupons"].profit).max())
    else:
        out["coupon_level_equal_share"] = 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=250_000)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="10g")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--candidates", type=int, default=100)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from threadpoolctl import threadpool_limits

    from personalize.analytics import customer_view
    from personalize.data import CleaningOptions, Dataset
    from personalize.datasets import make_retail_frames
    from personalize.evaluation import time_split
    from personalize.evaluation.evaluate import score_track
    from personalize.recommenders import ALS
    from personalize.spark import features as SF
    from personalize.spark.als import SparkALS
    from personalize.spark.data import SparkDataset
    from personalize.spark.pipeline import train_bundle
    from personalize.spark.session import spark_session

    res: dict = {"params": vars(args)}
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        t = time.perf_counter()
        frames, truth = make_retail_frames(n_customers=args.customers, n_items=args.items, defects=True)
        paths = {}
        for name in ("transactions", "items", "customers", "offers", "exposures"):
            paths[name] = str(work / f"{name}.parquet")
            frames[name].to_parquet(paths[name], index=False)
        n_lines, n_exp = len(frames["transactions"]), len(frames["exposures"])
        del frames
        res["data"] = {"lines": n_lines, "exposures": n_exp, "generate_s": time.perf_counter() - t}
        print(f"{n_lines:,} lines generated", file=sys.stderr)
        opts = CleaningOptions(now=truth.end)

        # ---------------- single machine
        single: dict = {}
        t = time.perf_counter()
        ds = Dataset.from_parquet(paths["transactions"], items=paths["items"], customers=paths["customers"],
                                  offers=paths["offers"], exposures=paths["exposures"], options=opts)
        single["load_clean_s"] = time.perf_counter() - t
        end = ds.last_timestamp.normalize() + pd.Timedelta(days=1)
        t = time.perf_counter()
        view_p = customer_view(ds, end)
        single["customer_view_s"] = time.perf_counter() - t
        split_at = ds.last_timestamp - pd.Timedelta(days=28)
        split = time_split(ds, split_at)
        with threadpool_limits(1, "blas"):
            t = time.perf_counter()
            als_p = ALS(factors=args.factors, iterations=args.iterations, random_state=0).fit(split.train)
            single["als_fit_s"] = time.perf_counter() - t
            recall_p = score_track(als_p, split, "all", 10)["recall"]
        single["recall_at_10"] = recall_p
        res["single_machine"] = single
        print("single machine", single, file=sys.stderr)
        write_result("spark", {**res, "partial": True})

        # ---------------- Spark
        sp: dict = {}
        t = time.perf_counter()
        spark = spark_session(args.master, driver_memory=args.driver_memory)
        sp["session_start_s"] = time.perf_counter() - t
        t = time.perf_counter()
        sds = SparkDataset.from_parquet(spark, paths["transactions"], items=paths["items"],
                                        customers=paths["customers"], offers=paths["offers"],
                                        exposures=paths["exposures"], options=opts)
        sp["load_clean_s"] = time.perf_counter() - t
        res["cleaning_report_identical"] = sds.report.to_dict() == ds.report.to_dict()
        t = time.perf_counter()
        view_s, _ = SF.customer_view(sds, end)
        view_s = view_s.toPandas()
        sp["customer_view_s"] = time.perf_counter() - t
        res["view_parity"] = _compare(view_p, view_s)
        del view_s
        res["spark"] = sp
        write_result("spark", {**res, "partial": True})
        t = time.perf_counter()
        train = sds.until(split_at)
        als_s = SparkALS(factors=args.factors, iterations=args.iterations, random_state=0).fit(train)
        model_s = als_s.to_recommender()
        sp["als_total_s"] = time.perf_counter() - t
        sp["mllib_als_fit_s"] = als_s.fit_seconds_
        with threadpool_limits(1, "blas"):
            recall_s = score_track(model_s, split, "all", 10)["recall"]
        sp["recall_at_10"] = recall_s
        train.unpersist()
        write_result("spark", {**res, "partial": True})
        store = work / "models"
        t = time.perf_counter()
        t_pipe = time.perf_counter()

        def progress(m: str) -> None:
            print(f"  spark [{time.perf_counter() - t_pipe:7.1f}s]:", m, file=sys.stderr, flush=True)
        manifest = train_bundle(sds, store=store, factors=args.factors, iterations=args.iterations,
                                candidates=args.candidates, progress=progress)
        sp["pipeline_s"] = time.perf_counter() - t
        sp["pipeline_timings"] = manifest["metrics"]["timings"]
        res["spark"] = sp
        als_fit = sp["pipeline_timings"]["als_fit_s"]
        offers_s = sp["pipeline_timings"].get("offers_s", 0.0)
        res["pipeline_overhead_vs_mllib_als"] = (sp["pipeline_s"] - offers_s - als_fit) / als_fit
        res["pipeline_overhead_with_offers_vs_mllib_als"] = (sp["pipeline_s"] - als_fit) / als_fit
        res["offers_info"] = {k: manifest["extra"].get(k) for k in ("offers", "coupons")}
        write_result("spark", {**res, "partial": True})
        res["recall_ratio_spark_vs_implicit"] = recall_s / recall_p if recall_p else None
        res["time_ratio_spark_vs_single"] = {
            "load_clean": sp["load_clean_s"] / single["load_clean_s"],
            "customer_view": sp["customer_view_s"] / single["customer_view_s"],
            "als_fit": sp["mllib_als_fit_s"] / single["als_fit_s"]}
        res["peak_rss_mb_driver_python"] = peak_rss_mb()
        from personalize.runtime import Runtime
        from personalize.store import load_bundle
        rt = Runtime(load_bundle(store))
        res["bundle_serves"] = bool(rt.recommend(str(rt.cands.customer_ids[0]), k=10).items)
        spark.stop()
        # ---------------- offers on one machine, on the same customer table and candidates
        from personalize.pipeline.offers import train_offers
        bundle = load_bundle(store)
        t = time.perf_counter()
        comps, info, _ = train_offers(ds, bundle["customers"], bundle["candidates"], seed=0)
        single["offers_s"] = time.perf_counter() - t
        res["offers_parity"] = _offer_parity(comps, bundle)
        res["time_ratio_spark_vs_single"]["offers"] = offers_s / single["offers_s"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    checks = {
        "cleaning_report_identical": res["cleaning_report_identical"],
        "profile_values_identical": (res["view_parity"]["same_ids"] and res["view_parity"]["same_columns"]
                                     and not res["view_parity"]["bad_columns"]),
        # parity of quality: MLlib's recall may not fall more than 5 % below implicit's (above is fine)
        "recall_within_5pct": res["recall_ratio_spark_vs_implicit"] is not None
        and res["recall_ratio_spark_vs_implicit"] >= 0.95,
        "pipeline_overhead_le_2x_mllib_als": res["pipeline_overhead_vs_mllib_als"] <= 2.0,
        "bundle_serves": res["bundle_serves"],
        "offers_and_coupons_equal_single_machine": res["offers_parity"]["top_offer_equal_share"] == 1.0
        and res["offers_parity"]["coupon_level_equal_share"] == 1.0,
    }
    finish("spark", res, checks)


if __name__ == "__main__":
    main()
