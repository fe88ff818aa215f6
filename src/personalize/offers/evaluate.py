"""How good are the offer decisions? Acceptance on later exposures, the learned policy's value, coupon plans
against the truth.

:func:`evaluate_offers` (``personalize offers evaluate``) splits the exposures
in time: the acceptance model learns from the exposures before the split and
is scored on those after it (features as of each exposure, nothing later),
against three baselines that need no model: the overall acceptance rate, the
offer kind's rate and the offer's own rate, all measured on the training
exposures. When the later exposures were randomized (each customer of a
campaign got a random arm), the value of the learned policy "show each
customer the offer she is most likely to accept" is estimated by inverse
propensity weighting::

    V(policy) = 1/n * sum_i  y_i * [a_i == policy(x_i)] / q(a_i | campaign_i)

(``a_i`` the offer shown, ``y_i`` whether it was accepted, ``q`` the share of
the campaign's treated customers shown ``a_i``), against showing random
offers (the observed rate) and showing everyone the offer that did best in
training. With a synthetic generator's truth, the oracle's AUC (true
acceptance probabilities on the same rows) says how much of the attainable
ranking quality the model reaches.

:func:`coupon_plans_vs_truth` scores budgeted coupon plans with the
generator's true uplift, baseline purchase probability and redemption
behaviour (the basket economics are the same as the model's): the model's
plan, the oracle's plan (the truth's own optimum at the same budget), "the
biggest coupon to as many customers as the budget allows", random levels to
random customers, and nobody. Where the model's plan falls short of the
oracle's, two more plans tell the uplift model from the decision apart: the
same economics and allocation fed the *true* uplift but the model's baseline
and anyway-redeem rate (``true_uplift_share_of_oracle``: what a perfect uplift
model would reach with everything else as the model has it), and fed the true
uplift and the true baseline (``true_uplift_baseline_share_of_oracle``: only
the anyway-redeem rate is the model's). The model's per-level correlation with
the true uplift is reported alongside (``uplift_correlation``).

:func:`coupon_feature_ceiling` asks whether the features can carry the truth
at all: LightGBM regressions of the generator's *true* uplift (per level) and
true baseline at each training exposure on that exposure's features -- labels
no uplift model ever sees, without noise -- applied to every customer as of the
table's date and planned like the model. A learner fitted on outcomes cannot
be expected to beat this ceiling; when the ceiling's plan is far from the
oracle's, the information is missing from the features (a diagnostic, never a
model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.churn.metrics import binary_metrics
from personalize.coupons.allocate import allocate
from personalize.errors import DataError
from personalize.offers.acceptance import AcceptanceModel, acceptance_training_set
from personalize.offers.catalog import OfferCatalog

if TYPE_CHECKING:
    from personalize.data import Dataset

__all__ = ["evaluate_offers", "coupon_plans_vs_truth", "coupon_feature_ceiling", "split_time"]


def split_time(exposed_at: pd.Series, holdout_fraction: float) -> pd.Timestamp:
    """The start of the latest whole days that hold at least ``holdout_fraction`` of the exposures."""
    if not 0.0 < holdout_fraction < 1.0:
        raise DataError(f"holdout_fraction must be between 0 and 1, got {holdout_fraction}")
    days = np.sort(exposed_at.dt.normalize().to_numpy(dtype="datetime64[ns]"))
    if len(_sets.unique(days)) < 2:
        raise DataError("every exposure is on one day: a time split needs exposures on at least two days",
                        table="exposures", column="exposed_at")
    split = days[min(len(days) - 1, int(np.floor((1.0 - holdout_fraction) * len(days))))]
    if split == days[0]:
        split = _sets.unique(days)[1]
    return pd.Timestamp(split)


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    return binary_metrics(y, p)["auc"] if 0 < y.sum() < len(y) else None


def evaluate_offers(ds: Dataset, *, holdout_fraction: float = 0.2, seed: int = 0, n_jobs: int | None = 1,
                    truth: Any = None, model_params: dict | None = None) -> dict:
    """Acceptance quality on the later exposures and the IPW value of the learned policy (module docstring)."""
    catalog = OfferCatalog.from_frame(ds.offers)
    exp = ds.exposures
    if exp is None or not len(exp):
        raise DataError("no exposures to evaluate offers on (--exposures)", table="exposures")
    shown = exp[exp["offer_id"].notna()]
    split = split_time(shown["exposed_at"], holdout_fraction)
    train = acceptance_training_set(ds, catalog, end=split)
    later = shown[shown["exposed_at"] >= split]
    test = acceptance_training_set(ds, catalog, exposures=later)
    model = AcceptanceModel(random_state=seed, n_jobs=n_jobs, **(model_params or {})).fit_exposures(train, catalog)
    p, fallback = model.predict_pairs(test.X, test.offer, catalog)
    y = test.y.astype(np.int64)
    overall = float(train.y.mean())
    offer_rate = np.bincount(train.offer, weights=train.y, minlength=len(catalog)) / np.maximum(
        np.bincount(train.offer, minlength=len(catalog)), 1)
    seen = np.bincount(train.offer, minlength=len(catalog)) > 0
    offer_rate = np.where(seen, offer_rate, overall)
    kind_rate = np.array([model.kind_rates_.get(str(k), overall) for k in catalog.kinds])
    doc: dict[str, Any] = {
        "split": split.isoformat(), "train_exposures": len(train), "test_exposures": len(test),
        "test_acceptance_rate": float(y.mean()), "fallback_offers": model.fallback_offers_,
        "model": binary_metrics(y, p),
        "baselines": {"overall_rate": binary_metrics(y, np.full(len(y), overall)),
                      "kind_rate": binary_metrics(y, kind_rate[test.offer]),
                      "offer_rate": binary_metrics(y, offer_rate[test.offer])},
        "per_offer": {str(catalog.offer_ids[j]): {"rows": int((test.offer == j).sum()),
                                                  "rate": float(y[test.offer == j].mean()),
                                                  "auc": _auc(y[test.offer == j], p[test.offer == j])}
                      for j in _sets.unique(test.offer)},
    }
    doc["policy"] = _policy_value(ds, catalog, model, later, test, offer_rate)
    if truth is not None and getattr(truth, "exposure_truth", None) is not None:
        doc["oracle"] = _oracle(truth, later, y, doc["model"]["auc"])
    return doc


def _arm_groups(frame: pd.DataFrame) -> pd.Series:
    if "campaign_id" in frame.columns and frame["campaign_id"].notna().all():
        return frame["campaign_id"].astype(str)
    return frame["exposed_at"].dt.normalize().astype(str)


def _policy_value(ds, catalog, model, later, test, offer_rate) -> dict:
    if "randomized" not in later.columns or not later["randomized"].fillna(False).astype(bool).all():
        return {"status": "not estimated", "reason": "the later exposures are not all randomized: a policy's "
                                                      "value cannot be told from who was targeted"}
    later = later.reset_index(drop=True)
    group = _arm_groups(later).to_numpy()
    offer = test.offer
    # each test row against every offer its campaign used, with features as of its exposure
    arms = {g: _sets.unique(offer[group == g]) for g in _sets.unique(group)}
    reps = [np.repeat(np.flatnonzero(group == g), len(a)) for g, a in arms.items()]
    cand = [np.tile(a, int((group == g).sum())) for g, a in arms.items()]
    rows, cand = np.concatenate(reps), np.concatenate(cand)
    # acceptance_training_set returns rows grouped by day: order the pairs by day first so they come back as given
    day = later["exposed_at"].dt.normalize().to_numpy(dtype="datetime64[ns]")[rows]
    by_day = np.argsort(day, kind="stable")
    rows, cand = rows[by_day], cand[by_day]
    pairs = later.iloc[rows].assign(offer_id=catalog.offer_ids[cand].astype(str)).reset_index(drop=True)
    X = acceptance_training_set(ds, catalog, exposures=pairs)
    if not (np.array_equal(X.offer, cand) and np.array_equal(X.customer_id, pairs["customer_id"].astype(str))):
        raise AssertionError("policy pairs came back in another order")  # pragma: no cover
    score = model.predict_pairs(X.X, X.offer, catalog)[0]
    best = np.full(len(later), -1)
    top = np.full(len(later), -np.inf)
    for r, o, s in zip(rows, cand, score):
        if s > top[r]:
            top[r], best[r] = s, o
    y = test.y.astype(np.float64)
    q = np.empty(len(later))
    for g, a in arms.items():
        sel = group == g
        share = pd.Series(offer[sel]).value_counts(normalize=True)
        q[sel] = share.reindex(offer[sel]).to_numpy()
    v_model = float(np.mean(y * (offer == best) / q))
    favourite = np.array([a[np.argmax(offer_rate[a])] for a in (arms[g] for g in group)])
    v_best = float(np.mean(y * (offer == favourite) / q))
    return {"status": "estimated", "method": "inverse propensity weighting over randomized arms",
            "model_policy": v_model, "best_training_offer": v_best, "random_offer": float(y.mean()),
            "lift_vs_random": v_model / y.mean() if y.mean() > 0 else None,
            "matched_rows": int((offer == best).sum())}


def _oracle(truth, later, y, auc) -> dict:
    et = truth.exposure_truth
    key = ["customer_id", "campaign_id", "offer_id"]
    if "campaign_id" not in later.columns:
        return {"status": "not estimated", "reason": "exposures without campaign_id cannot be matched to the truth"}
    t = et.assign(p_true=et["base_rate"] + et["uplift"].fillna(0.0)).drop_duplicates(key)
    merged = later[key].astype(str).merge(t[[*key, "p_true"]].astype({k: str for k in key}), on=key, how="left")
    if merged["p_true"].isna().any():
        return {"status": "not estimated", "reason": "some exposures are missing from the truth"}
    oracle = binary_metrics(y, merged["p_true"].to_numpy())["auc"]
    return {"status": "estimated", "auc": oracle, "model_share_of_oracle": auc / oracle if oracle else None}


def _share(value: float, oracle: float) -> float | None:
    return float(value / oracle) if oracle > 0 else None


def coupon_plans_vs_truth(table, catalog: OfferCatalog, econ, truth, *, budgets, at=None, seed: int = 0) -> dict:
    """True expected profit of budgeted plans (module docstring). ``table``: a fitted
    :class:`~personalize.coupons.plan.CouponTable`; ``econ``: the :class:`~personalize.offers.Economics` of
    its customers (same order)."""
    from personalize.coupons.plan import coupon_economics

    ids = np.asarray(table.customer_ids, dtype=object)
    levels = list(table.ladder.levels)
    true = coupon_economics(truth.true_uplift(at, customer_ids=ids, offer_ids=levels),
                            truth.true_baseline(at, customer_ids=ids), econ, catalog, table.ladder,
                            anyway_redeem_rate=truth.anyway_redeem_rate(ids))
    tc, tp = true["cost"], true["profit"]
    rate = table.anyway_redeem_rate
    with_true_u = coupon_economics(true["uplift"], table.baseline, econ, catalog, table.ladder,
                                   anyway_redeem_rate=rate)
    with_true_ub = coupon_economics(true["uplift"], true["baseline"], econ, catalog, table.ladder,
                                    anyway_redeem_rate=rate)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = {lv: (float(np.corrcoef(table.uplift[:, j], true["uplift"][:, j])[0, 1])
                     if np.std(table.uplift[:, j]) > 0 and np.std(true["uplift"][:, j]) > 0 else None)
                for j, lv in enumerate(levels)}

    def true_profit(cost, profit, budget):
        a = allocate(cost, profit, budget=budget)
        rows = np.flatnonzero(a.choice >= 0)
        return float(tp[rows, a.choice[rows]].sum())

    rng = np.random.default_rng(seed)
    biggest = int(np.argmax(tc.mean(axis=0)))
    n = len(ids)
    out = []
    for budget in budgets:
        model = allocate(table.cost.astype(np.float64), table.profit.astype(np.float64), budget=float(budget))
        chose = model.choice >= 0
        rows = np.flatnonzero(chose)
        m_profit = float(tp[rows, model.choice[rows]].sum())
        m_cost = float(tc[rows, model.choice[rows]].sum())
        oracle = allocate(tc, tp, budget=float(budget))
        order = rng.permutation(n)
        fits = np.cumsum(tc[order, biggest]) <= budget
        big_profit = float(tp[order[fits], biggest].sum())
        lv = rng.integers(0, len(levels), n)
        fits_r = np.cumsum(tc[order, lv[order]]) <= budget
        rand_profit = float(tp[order[fits_r], lv[order][fits_r]].sum())
        tu_profit = true_profit(with_true_u["cost"], with_true_u["profit"], float(budget))
        tub_profit = true_profit(with_true_ub["cost"], with_true_ub["profit"], float(budget))
        out.append({"budget": float(budget), "model_true_profit": m_profit, "model_true_cost": m_cost,
                    "model_expected_cost": float(model.total_cost), "model_customers": int(chose.sum()),
                    "oracle_true_profit": float(oracle.total_profit),
                    "share_of_oracle": _share(m_profit, oracle.total_profit),
                    "true_uplift_true_profit": tu_profit, "true_uplift_share_of_oracle": _share(tu_profit, oracle.total_profit),
                    "true_uplift_baseline_share_of_oracle": _share(tub_profit, oracle.total_profit),
                    "biggest_coupon_true_profit": big_profit, "biggest_level": levels[biggest],
                    "random_true_profit": rand_profit, "nobody_true_profit": 0.0})
    return {"levels": levels, "customers": n, "uplift_correlation": corr, "plans": out}


def coupon_feature_ceiling(ds: Dataset, catalog: OfferCatalog, table, econ, truth, *, budgets, features=None,
                           n_jobs: int | None = 1, seed: int = 0) -> dict:
    """The feature ceiling of the module docstring: per level the correlation of the regression on the true
    uplift with the true uplift, and per budget the true profit of its plan as a share of the oracle's, with
    the model's anyway-redeem rate (``share_of_oracle``) and with the true baseline and rate
    (``true_baseline_rate_share_of_oracle``)."""
    import lightgbm as lgb

    from personalize.coupons.plan import _customer_features, coupon_economics, coupon_exposures, coupon_training_set

    levels = list(table.ladder.levels)
    exp = coupon_exposures(ds, table.ladder)
    X, _t, _y, cut = coupon_training_set(ds, catalog, table.ladder, features=features)
    rows_ids = exp["customer_id"].astype(str).to_numpy(dtype=object)
    tu_rows = np.zeros((len(X), len(levels)))
    tb_rows = np.zeros(len(X))
    for d in _sets.unique(cut):
        m = cut == d
        tu_rows[m] = truth.true_uplift(pd.Timestamp(d), customer_ids=rows_ids[m], offer_ids=levels)
        tb_rows[m] = truth.true_baseline(pd.Timestamp(d), customer_ids=rows_ids[m])
    ids = np.asarray(table.customer_ids, dtype=object)
    at = pd.Timestamp(table.as_of)
    F = _customer_features(ds, at, econ)[list(X.columns)]
    params = dict(n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=50, subsample=0.8,
                  subsample_freq=1, colsample_bytree=0.8, random_state=seed, n_jobs=n_jobs, verbose=-1)
    Xa, Fa = X.to_numpy(np.float64), F.to_numpy(np.float64)

    def fit(label):
        return lgb.LGBMRegressor(**params).fit(Xa, label).predict(Fa)

    u_hat = np.column_stack([fit(tu_rows[:, j]) for j in range(len(levels))])
    b_hat = np.clip(fit(tb_rows), 0.0, 1.0)
    tu = truth.true_uplift(at, customer_ids=ids, offer_ids=levels)
    tb = truth.true_baseline(at, customer_ids=ids)
    tr = truth.anyway_redeem_rate(ids)
    true = coupon_economics(tu, tb, econ, catalog, table.ladder, anyway_redeem_rate=tr)
    ceil = coupon_economics(u_hat, b_hat, econ, catalog, table.ladder, anyway_redeem_rate=table.anyway_redeem_rate)
    ceil_t = coupon_economics(u_hat, tb, econ, catalog, table.ladder, anyway_redeem_rate=tr)
    tp = true["profit"]

    def true_profit(e, budget):
        a = allocate(e["cost"], e["profit"], budget=budget)
        r = np.flatnonzero(a.choice >= 0)
        return float(tp[r, a.choice[r]].sum())

    plans = []
    for budget in budgets:
        o = float(allocate(true["cost"], tp, budget=float(budget)).total_profit)
        plans.append({"budget": float(budget), "oracle_true_profit": o,
                      "share_of_oracle": _share(true_profit(ceil, float(budget)), o),
                      "true_baseline_rate_share_of_oracle": _share(true_profit(ceil_t, float(budget)), o)})
    return {"training_rows": int(len(X)),
            "uplift_correlation": {lv: float(np.corrcoef(u_hat[:, j], tu[:, j])[0, 1]) for j, lv in enumerate(levels)},
            "baseline_correlation": float(np.corrcoef(b_hat, tb)[0, 1]), "plans": plans}
