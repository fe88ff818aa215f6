"""The whole training pipeline at retail scale (issue 13, item 6).

Generates a synthetic retailer (``make_retail_frames``: 1,000,000 customers,
about 20M purchase lines, items, customers with consent, offers and
randomized campaigns) as Parquet files in a separate process, then runs
``personalize train`` on them -- load, validate, the automatic recommender
choice, every model, candidates for every customer, churn, the customer
table, offers and coupons, publish -- in this process, with every raw
``implicit`` and LightGBM fit timed where it happens.

Targets: wall time <= 15 minutes on 2 cores, peak RSS <= 8 GB, and wall
time <= 1.5 x the sum of the raw implicit and LightGBM fits it contains (the
rest -- loading, features, candidates, tables, publishing -- is our overhead).

Writes benchmarks/results/train.json; exits 1 past a target.

    .venv/bin/python benchmarks/bench_train.py [--customers 1000000] [--orders-per-year 4] [--data /tmp/train-data]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, peak_rss_mb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_GENERATE = """
import sys, time, json
from pathlib import Path
from personalize.datasets import make_retail_frames
out = Path(sys.argv[1]); n = int(sys.argv[2]); opy = float(sys.argv[3]); items = int(sys.argv[4])
t = time.perf_counter()
frames, truth = make_retail_frames(n_customers=n, n_items=items, orders_per_year=opy, seed=7)
out.mkdir(parents=True, exist_ok=True)
for name, df in frames.items():
    if df is not None:
        df.to_parquet(out / f"{name}.parquet", index=False)
print(json.dumps({"seconds": time.perf_counter() - t, "lines": int(len(frames["transactions"]))}))
"""


class _Timer:
    """Accumulates the time spent in wrapped functions (raw library fits)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, owner, attr: str, name: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
                self.calls[name] = self.calls.get(name, 0) + 1

        setattr(owner, attr, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders-per-year", type=float, default=4.0, help="about 20 lines per customer at 4 (39 at 8)")
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--data", help="reuse (or create) the generated Parquet files here")
    ap.add_argument("--wall-target-s", type=float, default=900.0)
    ap.add_argument("--rss-target-mb", type=float, default=8192.0)
    ap.add_argument("--overhead-target", type=float, default=1.5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "data"
        gen = {"reused": True}
        if not (data / "transactions.parquet").is_file():
            r = subprocess.run([sys.executable, "-c", _GENERATE, str(data), str(args.customers),
                                str(args.orders_per_year), str(args.items)], capture_output=True, text=True,
                               cwd=ROOT, check=False)
            if r.returncode:
                raise SystemExit(f"generation failed: {r.stderr[-2000:]}")
            gen = json.loads(r.stdout.strip().splitlines()[-1])
        import implicit.cpu.als
        import implicit.cpu.bpr
        import lightgbm

        timer = _Timer()
        timer.wrap(lightgbm, "train", "lightgbm")
        timer.wrap(implicit.cpu.als.AlternatingLeastSquares, "fit", "implicit_als")
        timer.wrap(implicit.cpu.bpr.BayesianPersonalizedRanking, "fit", "implicit_bpr")
        from personalize.cli import main as cli

        store = Path(tmp) / "models"
        argv = ["train", str(data / "transactions.parquet"), "--items", str(data / "items.parquet"),
                "--customers", str(data / "customers.parquet"), "--offers", str(data / "offers.parquet"),
                "--exposures", str(data / "exposures.parquet"), "--out", str(store)]
        t = time.perf_counter()
        code = 0
        try:  # its progress lines (stage by stage, with times) go to stderr
            cli(argv)
        except SystemExit as exc:
            code = exc.code or 0
        wall = time.perf_counter() - t
        if code:
            raise SystemExit(f"personalize train exited {code}")
        from personalize.store.bundles import current_version

        manifest = json.loads((store / current_version(store) / "manifest.json").read_text())
    raw = sum(timer.seconds.values())
    result = {"data": {"customers": args.customers, "orders_per_year": args.orders_per_year, "items": args.items,
                       "generate": gen},
              "wall_s": round(wall, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
              "raw_fits_s": {k: round(v, 1) for k, v in timer.seconds.items()}, "raw_fit_calls": timer.calls,
              "raw_fits_total_s": round(raw, 1), "wall_over_raw": round(wall / raw, 2) if raw else None,
              "pipeline_timings_s": {k: round(v, 1) for k, v in (manifest.get("metrics", {}).get("timings") or {}
                                                                 ).items()},
              "served": (manifest.get("metrics", {}).get("recommender") or {}).get("served"),
              "recommender_selection": manifest.get("metrics", {}).get("recommender"),
              "components": manifest.get("components"), "compiled_trees": _compiled_trees()}
    checks = {"wall_le_15min": wall <= args.wall_target_s,
              "peak_rss_le_8gb": result["peak_rss_mb"] <= args.rss_target_mb,
              "wall_le_1.5x_raw_fits": raw > 0 and wall <= args.overhead_target * raw}
    finish("train", result, checks)


def _compiled_trees() -> dict:
    """Whether batch scoring ran on lleaves-compiled trees (the personalize[fast] extra) or LightGBM's predict."""
    from personalize import _trees

    try:
        import lleaves  # noqa: F401
        from importlib.metadata import version
        have = version("lleaves")
    except ImportError:
        have = None
    return {"lleaves": have, "enabled": _trees.compiling_enabled(), "min_rows": _trees.COMPILE_MIN_ROWS,
            "compiled_models": _trees.STATS["compiled"], "compile_s": round(_trees.STATS["compile_seconds"], 1),
            "warnings": sorted(_trees._WARNED)}


if __name__ == "__main__":
    main()
