"""Data benchmark: load + validate speed and memory.

Targets (issue 2):
  * Online Retail (../shared/data) load + validate < 5 s;
  * synthetic 1,000,000 customers / ~20,000,000 lines generated and validated < 180 s,
    peak RSS < 8 GB, on 2 cores.

Writes benchmarks/results/data.json; exits 1 past a target.
Usage: python benchmarks/bench_data.py [--customers N]
"""

from __future__ import annotations

import argparse
import time

from _common import SHARED_DATA, finish, peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    args = ap.parse_args()

    from personalize.data import Dataset
    from personalize.data.adapters import load_online_retail
    from personalize.datasets import make_retail_frames

    result: dict = {}
    checks: dict[str, bool] = {}
    retail = SHARED_DATA / "online_retail" / "online_retail.parquet"
    if retail.exists():
        t = time.perf_counter()
        ds = load_online_retail(retail)
        secs = time.perf_counter() - t
        result["online_retail"] = {"seconds": round(secs, 3), "input_rows": ds.report.input_rows,
                                   "kept_rows": ds.report.kept_rows, "target_seconds": 5.0}
        checks["online_retail_under_5s"] = secs < 5.0
    else:
        result["online_retail"] = {"skipped": f"{retail} not found"}

    t = time.perf_counter()
    frames, truth = make_retail_frames(n_customers=args.customers, n_items=300, seed=1, offers=False,
                                       exposures=False)
    gen = time.perf_counter() - t
    n_lines = len(frames["transactions"])
    t = time.perf_counter()
    ds = Dataset.from_frames(frames["transactions"], items=frames["items"], customers=frames["customers"])
    val = time.perf_counter() - t
    rss = peak_rss_mb()
    result["synthetic"] = {"customers": args.customers, "lines": n_lines, "generate_seconds": round(gen, 2),
                           "validate_seconds": round(val, 2), "total_seconds": round(gen + val, 2),
                           "kept_rows": ds.report.kept_rows, "peak_rss_mb": round(rss, 1),
                           "target_seconds": 180.0, "target_peak_rss_mb": 8192.0}
    checks["synthetic_under_180s"] = gen + val < 180.0
    checks["synthetic_peak_rss_under_8gb"] = rss < 8192.0
    if args.customers >= 1_000_000:
        checks["synthetic_at_least_19M_lines"] = n_lines >= 19_000_000
    finish("data", result, checks)


if __name__ == "__main__":
    main()
