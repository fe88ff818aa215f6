"""Offers and coupons benchmark (issue 11): uplift quality on Hillstrom, uplift + coupon plan at 1M customers.

Sections (``--sections``, default all; each returns its figures and its targets, so
next-best-offer and route-throughput sections can be added to ``SECTIONS``):

``hillstrom`` -- the MineThatData e-mail experiment (``../shared/data/hillstrom``,
randomized), exactly what ``personalize uplift evaluate --format hillstrom`` runs:
:func:`personalize.uplift.campaign_training_set` on ``load_hillstrom`` (features recency,
history, mens, womens, zip_code, newbie, channel, history_segment; the strings as
categoricals), then :func:`personalize.uplift.evaluate_uplift` -- for each of 5 seeds a 30 %
test split stratified by arm x outcome; on the other 70 % only, 5-fold cross-validation of
every candidate of :func:`personalize.uplift.candidate_grid` (S-, T-, X-learner at their
defaults, the transformed-outcome learner at (leaves, min leaf) = (2, 400), (4, 100),
(4, 400), (8, 100), (8, 400), and the mean of all of them) and the *chosen* one = the best
mean validation Qini; every candidate refitted on the 70 % and scored on the 30 %. Problems:

* Womens E-Mail vs No E-Mail, target ``visit`` (the target: chosen model's mean uplift@30 %,
  ``by_group`` as in the scikit-uplift tutorial (0.0661), >= 0.072, and its Qini > 0);
* the same for ``spend`` (continuous) and both e-mails as a two-treatment problem (visit);
* IPW value (outcome per customer) of "e-mail if predicted uplift > 0" (two arms: the arm
  with the larger uplift, none if both <= 0), "e-mail the top 30 %", "e-mail everyone" (each
  arm) and "e-mail nobody", with the learned policy's gain over each and its paired error.

How the protocol was chosen, on validation folds inside the training rows only (5-fold
out-of-fold uplift@30 % on the 70 % of each of the 5 seeds, mean): S-learner 0.072 at the
defaults (31 leaves, min leaf 50), 0.071-0.073 at 15/7/4 leaves; T-learner 0.068-0.070;
X-learner 0.077 (31 leaves), 0.074-0.076 shallower; mean of S/T/X 0.071; bagging 5 seeds:
X 0.075, S 0.073 (no gain); history_segment as an ordinal or extra mens x womens / ordinal
columns: X 0.074-0.075, S 0.072-0.073 (no gain); transformed-outcome regression 0.072;
class transformation (weighted) by tree size: 31 leaves 0.062, 15 leaves 0.069, 7-8 leaves
0.073-0.076, 2-4 leaves 0.076-0.079. Hence the grid above, chosen per seed by CV.
Before this protocol the hyperparameter defaults had been picked from 6 settings after
seeing these seeds' test figures (see git history); the candidate grid and the selection
rule here were fixed before the test figures of this protocol were computed (one change after
seeing seed 0: a sixth grid point, (2, 100), was dropped -- with two leaves the leaf size does
not bind and its predictions equalled (2, 400)'s). The test
figures are noisy: one seed's uplift@30 % has a standard error of about 0.01, and a
learner's mean moves by up to 0.004 with the order of the feature columns alone (LightGBM's
column sampling), so read 0.072 against 0.0708 as "at least as good", not as a proven gain.

``scale`` -- 1,000,000 synthetic customers (numpy, generated here: 12 numeric
features, 2 categoricals; a randomized campaign with a control and four coupon
levels, 20 % each; known baseline purchase probability and per-level uplift that
depends on discount sensitivity, region and how reachable a spend-200 threshold
is). Times :class:`personalize.uplift.AutoUplift` (S/T/X compared on a stratified
200,000-row subsample -- 70 % fit, 30 % validation Qini -- then the chosen one refitted on
all rows; big-data settings below), scoring of every customer, and the coupon plan (economics + budgeted allocation
with :func:`personalize.coupons.allocate`, budget = 25 % of the unconstrained
plan's cost). The plan's *true* expected profit (from the generator's truth) is
compared with the oracle plan (the same allocation on the true uplift) and with
"biggest coupon to random customers" and "random level to random customers" at
the same budget. Targets: training <= 300 s, plan (economics + allocation) <= 60 s,
peak RSS <= 8 GB.

    .venv/bin/python benchmarks/bench_offers.py [--sections hillstrom,scale] [--seeds 5] [--cv 5]
        [--hillstrom-problems womens_vs_none_visit,womens_vs_none_spend,two_treatments_visit] [--customers 1000000]

Writes benchmarks/results/bench_offers.json (and each Hillstrom problem's Qini and uplift curves, first
seed, in bench_offers_<problem>/); exits 1 past a target, 2 when the Hillstrom data is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, finish, peak_rss_mb  # noqa: E402

NAME = "bench_offers"
HILLSTROM = SHARED_DATA / "hillstrom" / "hillstrom.csv.gz"
CONTROL, WOMENS, MENS = "No E-Mail", "Womens E-Mail", "Mens E-Mail"
UPLIFT30_TARGET = 0.072
REFERENCE = {"scikit-uplift tutorial (ClassTransformation + XGBoost)": 0.0661,
             "T-learner (measured before, other column order)": 0.0708,
             "S-learner (measured before, other column order)": 0.0720,
             "chosen among S/T/X/ensemble by one 30 % validation fold (before)": 0.0708}
PROBLEMS = {  # name -> (treatments, target of load_hillstrom, training-set target)
    "womens_vs_none_visit": ([WOMENS], "visit", "converted"),
    "womens_vs_none_spend": ([WOMENS], "visit", "revenue"),
    "two_treatments_visit": ([MENS, WOMENS], "visit", "converted"),
}


def _r(v: float, d: int = 5) -> float:
    return round(float(v), d)


# --------------------------------------------------------------------------- hillstrom
def _hillstrom_problem(name: str, args) -> dict:
    from personalize.data.adapters import load_hillstrom
    from personalize.uplift import campaign_training_set, candidate_grid, evaluate_uplift
    from personalize.uplift.plots import plot_evaluation

    treatments, loader_target, target = PROBLEMS[name]
    ts = campaign_training_set(load_hillstrom(HILLSTROM, target=loader_target), treatments=treatments,
                               target=target)
    t0 = time.perf_counter()
    ev = evaluate_uplift(ts.X, ts.treatment, ts.y, control_name=ts.control_name, seeds=args.seeds, cv=args.cv,
                         candidates=candidate_grid(control_name=ts.control_name, n_jobs=args.n_jobs),
                         progress=lambda line: print(f"{name}: {line}", file=sys.stderr))
    doc = ev.to_dict()
    doc["seconds"] = _r(time.perf_counter() - t0, 1)
    plots = plot_evaluation(ev, RESULTS / f"{NAME}_{name}",
                            outcome_label="spend" if target == "revenue" else "visits")
    doc["plots"] = {k: str(v) for k, v in plots.items()}
    return doc


def hillstrom_section(args) -> tuple[dict, dict]:
    if not HILLSTROM.is_file():
        print(f"Hillstrom data not found at {HILLSTROM}", file=sys.stderr)
        sys.exit(2)
    names = [p.strip() for p in args.hillstrom_problems.split(",") if p.strip()]
    unknown = [p for p in names if p not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown --hillstrom-problems {unknown}; known: {list(PROBLEMS)}")
    t0 = time.perf_counter()
    res: dict = {"seeds": args.seeds, "test_fraction": 0.3, "cv_folds": args.cv,
                 "reference_uplift_at_30": REFERENCE, "target_uplift_at_30": UPLIFT30_TARGET}
    checks = {}
    for name in names:
        res[name] = _hillstrom_problem(name, args)
        chosen = res[name]["chosen"]
        if name == "womens_vs_none_visit":
            checks["uplift_at_30_chosen_ge_0.072"] = chosen["uplift_at_30"]["mean"] >= UPLIFT30_TARGET
        checks[f"{name}.qini_chosen_above_random"] = chosen["qini"]["mean"] > 0
    res["seconds"] = _r(time.perf_counter() - t0, 1)
    return res, checks


# --------------------------------------------------------------------------- scale
LEVELS = ("pct5", "pct10", "s200g20", "s200g50")


def synthetic_campaign(n: int, seed: int):
    """Features, arm, purchase outcome and the truth (baseline, uplift per level) of a randomized
    coupon campaign; plus the basket value used for the economics."""
    rng = np.random.default_rng(seed)
    recency = rng.exponential(60, n)
    freq = 1 + rng.poisson(3, n)
    aov = rng.lognormal(np.log(80), 0.6, n)
    sens = rng.beta(2, 3, n)
    region = rng.choice(np.array(["north", "south", "east", "west", "central"]), n)
    channel = rng.choice(np.array(["web", "store", "app"]), n, p=[0.45, 0.4, 0.15])
    X = pd.DataFrame({
        "recency_days": recency, "frequency": freq.astype(np.float64), "aov": aov,
        "tenure_days": rng.uniform(30, 1500, n), "discount_share": np.clip(sens + rng.normal(0, 0.1, n), 0, 1),
        "email_opens": rng.poisson(1 + 4 * sens).astype(np.float64), "web_share": rng.uniform(0, 1, n),
        "age": rng.uniform(18, 80, n), **{f"noise{j}": rng.normal(0, 1, n) for j in range(4)},
        "region": pd.Categorical(region), "channel": pd.Categorical(channel)})
    baseline = 1 / (1 + np.exp(-(-1.5 + 0.5 * np.log(freq) - recency / 100 + 0.3 * (channel == "web"))))
    reach = 1 / (1 + np.exp(-(aov - 150) / 30))  # how reachable "spend 200" is for this basket
    incentive = np.column_stack([0.05 * aov, 0.10 * aov, 20 * reach, 50 * reach])
    s = sens * np.where(region == "north", 1.5, 1.0)
    uplift = (1 - baseline)[:, None] * (1 - np.exp(-0.08 * s[:, None] * incentive))
    arm_names = np.array(["none", *LEVELS], dtype=object)
    code = rng.integers(0, len(arm_names), n)
    p = baseline + np.where(code > 0, uplift[np.arange(n), np.maximum(code - 1, 0)], 0.0)
    y = (rng.random(n) < p).astype(np.float64)
    return X, arm_names[code], y, {"baseline": baseline, "uplift": uplift, "aov": aov, "reach": reach}


def coupon_economics(uplift: np.ndarray, baseline: np.ndarray, aov: np.ndarray, reach: np.ndarray):
    """Expected cost and incremental profit per customer and level (margin 35 % of the basket;
    percent levels cost their share of the basket, spend-200 levels their fixed amount; 80 % of the
    would-have-bought-anyway customers redeem a percent coupon, a spend-200 coupon only those who reach it)."""
    from personalize.coupons import expected_cost, expected_incremental_profit, redemption_probability

    margin = (0.35 * aov)[:, None]
    discount = np.column_stack([0.05 * aov, 0.10 * aov, np.full(len(aov), 20.0), np.full(len(aov), 50.0)])
    anyway = np.column_stack([np.full(len(aov), 0.8), np.full(len(aov), 0.8), reach, reach])
    r = redemption_probability(baseline[:, None], np.clip(uplift, -1, 1), anyway_redeem_rate=anyway)
    return expected_cost(r, discount), expected_incremental_profit(np.clip(uplift, -1, 1), margin, r, discount)


def _true_value(choice: np.ndarray, true_cost: np.ndarray, true_profit: np.ndarray) -> tuple[float, float]:
    rows = np.flatnonzero(choice >= 0)
    return float(true_profit[rows, choice[rows]].sum()), float(true_cost[rows, choice[rows]].sum())


def _random_plan(cost: np.ndarray, levels: np.ndarray, budget: float, rng) -> np.ndarray:
    """Customers in random order get ``levels[i]`` while the (expected) budget lasts."""
    n = len(cost)
    order = rng.permutation(n)
    c = cost[order, levels[order]]
    fits = np.cumsum(c) <= budget
    choice = np.full(n, -1, dtype=np.int64)
    choice[order[fits]] = levels[order[fits]]
    return choice


def scale_section(args) -> tuple[dict, dict]:
    from personalize.coupons import allocate
    from personalize.uplift import AutoUplift

    n = args.customers
    t0 = time.perf_counter()
    X, arm, y, truth = synthetic_campaign(n, seed=0)
    gen_s = time.perf_counter() - t0
    # big-data settings (as in bench_churn): at a million rows a higher learning rate, fewer bins and a
    # shorter patience keep the models small, a 10 % early-stopping fold is plenty and refitting on it
    # would double the cost; the campaign is randomized with fixed shares, so the X-learner uses the
    # arm shares as propensity instead of a 5-class model; the candidates are compared on 200,000 rows,
    # and the ensemble (the sum of three learners' cost, for a variance that is small at this size:
    # their validation Qini differed by 0.0001-0.003 in a full-size run) is left out
    params = {"control_name": "none", "learning_rate": 0.1, "max_bin": 63, "validation_fraction": 0.1,
              "early_stopping_rounds": 20, "refit": False, "propensity": "constant", "n_jobs": args.n_jobs}
    t0 = time.perf_counter()
    model = AutoUplift(learner_params=params, selection_rows=200_000, ensemble=False).fit(X, arm, y)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    u_hat, base_hat = model.predict_uplift_and_baseline(X)
    score_s = time.perf_counter() - t0
    # the model's columns follow its sorted arm names ("pct10" < "pct5"); put them in ladder order
    u_hat = u_hat[:, [model.treatment_names_.index(lv) for lv in LEVELS]]
    corr = [_r(np.corrcoef(u_hat[:, j], truth["uplift"][:, j])[0, 1], 4) for j in range(len(LEVELS))]

    t0 = time.perf_counter()
    cost, profit = coupon_economics(u_hat, base_hat, truth["aov"], truth["reach"])
    unlimited = allocate(cost, profit)
    budget = 0.25 * unlimited.total_cost
    plan = allocate(cost, profit, budget=budget)
    plan_s = time.perf_counter() - t0
    del cost

    true_cost, true_profit = coupon_economics(truth["uplift"], truth["baseline"], truth["aov"], truth["reach"])
    oracle = allocate(true_cost, true_profit, budget=budget)
    rng = np.random.default_rng(1)
    big = _random_plan(true_cost, np.full(n, len(LEVELS) - 1), budget, rng)
    rand = _random_plan(true_cost, rng.integers(0, len(LEVELS), n), budget, rng)
    value = {name: _true_value(ch, true_cost, true_profit) for name, ch in
             (("model plan", plan.choice), ("oracle plan", oracle.choice), ("biggest coupon, random customers", big),
              ("random level, random customers", rand))}
    value["nobody"] = (0.0, 0.0)
    mem = peak_rss_mb()
    res = {
        "customers": n, "generate_s": _r(gen_s, 1), "learner_params": params, "selection_rows": 200_000,
        "train_s": _r(train_s, 1), "chosen": model.best_name_,
        "selection": {k: {"qini": _r(v["mean"]["qini"], 4), "fit_s": v["fit_seconds"]}
                      for k, v in model.scores_.items()},
        "score_s": _r(score_s, 1), "uplift_correlation_with_truth_per_level": dict(zip(LEVELS, corr)),
        "plan_s": _r(plan_s, 2), "budget": _r(budget, 0), "plan": plan.summary(),
        "plan_levels": {lv: int((plan.choice == j).sum()) for j, lv in enumerate(LEVELS)},
        "true_profit_at_budget": {k: {"profit": _r(v[0], 0), "true_cost": _r(v[1], 0)} for k, v in value.items()},
        "model_vs_oracle_true_profit": _r(value["model plan"][0] / value["oracle plan"][0], 4),
        "peak_rss_mb": round(mem, 1),
    }
    checks = {"train_le_300s": train_s <= args.train_target_s, "plan_le_60s": plan_s <= args.plan_target_s,
              "peak_rss_le_8gb": mem <= args.rss_target_mb}
    return res, checks


SECTIONS = {"hillstrom": hillstrom_section, "scale": scale_section}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {list(SECTIONS)}")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--cv", type=int, default=5, help="hillstrom: folds of the model selection")
    ap.add_argument("--hillstrom-problems", default=",".join(PROBLEMS),
                    help=f"hillstrom: comma-separated, from {list(PROBLEMS)}")
    ap.add_argument("--train-target-s", type=float, default=300.0)
    ap.add_argument("--plan-target-s", type=float, default=60.0)
    ap.add_argument("--rss-target-mb", type=float, default=8192.0)
    args = ap.parse_args()
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {unknown}; known: {list(SECTIONS)}")
    result: dict = {"sections": names}
    checks: dict[str, bool] = {}
    for name in names:
        t0 = time.perf_counter()
        res, chk = SECTIONS[name](args)
        res["section_s"] = _r(time.perf_counter() - t0, 1)
        result[name] = res
        checks.update({f"{name}.{k}": bool(v) for k, v in chk.items()})
        print(f"{name}: done in {res['section_s']} s", file=sys.stderr)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    finish(NAME, result, checks)


if __name__ == "__main__":
    main()
