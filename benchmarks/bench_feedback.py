"""Feedback and points: the churn gain on the synthetic truth, and the speed of the feedback and points columns.

Quality (issue 16): on ``make_retail(feedback=True, points=True)`` the churn
model (customer-level cross-validation at two cutoffs and several seeds) must
gain AUC from the satisfaction and points features over the same model on the
same customers without them. Reports AUC, PR-AUC and log loss with and without,
and the gain of feedback alone and points alone.

Speed: ``feedback_columns`` and ``points_columns`` (the per-customer columns of
the customer table and the churn features) for every customer of a large
synthetic shop; the points lots model over its ledger.

    .venv/bin/python benchmarks/bench_feedback.py [--customers 20000] [--speed-customers 200000] [--seeds 3]

Writes benchmarks/results/feedback.json; exits 1 past a target.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, peak_rss_mb  # noqa: E402

CUTOFFS = ("2023-07-01", "2023-09-01")


def quality(n: int, seeds: int) -> dict:
    from personalize.churn.evaluate import evaluate_churn
    from personalize.data import Dataset
    from personalize.datasets import make_retail

    runs = []
    for seed in range(seeds):
        ds, _ = make_retail(n_customers=n, n_items=300, seed=seed, feedback=True, points=True, exposures=False)
        tx = ds.transactions.drop(columns="amount")
        variants = {"without": Dataset.from_frames(tx, items=ds.items, customers=ds.customers),
                    "feedback": Dataset.from_frames(tx, items=ds.items, customers=ds.customers, feedback=ds.feedback),
                    "points": Dataset.from_frames(tx, items=ds.items, customers=ds.customers, points=ds.points),
                    "with": ds}
        for cut in CUTOFFS:
            row = {"seed": seed, "cutoff": cut}
            for name, d in variants.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ev = evaluate_churn(d, cutoff=cut, horizon_days=90, folds=3,
                                        model_params={"n_jobs": 1, "learning_rate": 0.05})
                row[name] = {k: round(float(ev.model[k]), 5) for k in ("auc", "pr_auc", "log_loss")}
                row["customers"] = int(len(ev.y))
            row["auc_gain"] = round(row["with"]["auc"] - row["without"]["auc"], 5)
            row["auc_gain_feedback_only"] = round(row["feedback"]["auc"] - row["without"]["auc"], 5)
            row["auc_gain_points_only"] = round(row["points"]["auc"] - row["without"]["auc"], 5)
            print(f"seed {seed} cutoff {cut}: AUC {row['without']['auc']:.4f} -> {row['with']['auc']:.4f} "
                  f"({row['auc_gain']:+.4f}; feedback alone {row['auc_gain_feedback_only']:+.4f}, points alone "
                  f"{row['auc_gain_points_only']:+.4f})", file=sys.stderr)
            runs.append(row)
    gains = np.array([r["auc_gain"] for r in runs])
    return {"customers": n, "runs": runs, "mean_auc_gain": float(gains.mean()), "min_auc_gain": float(gains.min()),
            "mean_pr_auc_gain": float(np.mean([r["with"]["pr_auc"] - r["without"]["pr_auc"] for r in runs]))}


def speed(n: int) -> dict:
    from personalize.analytics.points import points_columns, points_lots
    from personalize.analytics.satisfaction import feedback_columns
    from personalize.datasets import make_retail_frames

    t = time.perf_counter()
    frames, _ = make_retail_frames(n_customers=n, n_items=500, seed=1, feedback=True, points=True,
                                   exposures=False)
    gen = time.perf_counter() - t
    fb, pts = frames["feedback"], frames["points"]
    ids = frames["customers"]["customer_id"].to_numpy(dtype=object)
    as_of = "2024-01-01"
    t = time.perf_counter()
    f = feedback_columns(fb, as_of, ids)
    t_fb = time.perf_counter() - t
    t = time.perf_counter()
    lots = points_lots(pts, as_of)
    t_lots = time.perf_counter() - t
    t = time.perf_counter()
    p = points_columns(pts, as_of, ids)
    t_pts = time.perf_counter() - t
    return {"customers": n, "generate_s": round(gen, 2), "feedback_rows": int(len(fb)), "points_rows": int(len(pts)),
            "feedback_columns_s": round(t_fb, 3), "points_lots_s": round(t_lots, 3),
            "points_columns_s": round(t_pts, 3), "lots": int(len(lots.lot_left)),
            "customers_with_points": int((p["points_balance"] > 0).sum()),
            "detractors": int(f["detractor"].sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--speed-customers", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    q = quality(args.customers, args.seeds)
    s = speed(args.speed_customers)
    result = {"quality": q, "speed": s, "peak_rss_mb": round(peak_rss_mb(), 1)}
    per_million = 1e6 / max(s["points_rows"], 1)
    checks = {"churn gains AUC in every run": q["min_auc_gain"] > 0,
              "mean churn AUC gain >= 0.005": q["mean_auc_gain"] >= 0.005,
              "points lots model <= 10 s per million ledger rows": s["points_lots_s"] * per_million <= 10.0,
              "feedback columns <= 10 s per million rows": s["feedback_columns_s"] * 1e6 / max(s["feedback_rows"], 1)
              <= 10.0}
    finish("feedback", result, checks)


if __name__ == "__main__":
    main()
