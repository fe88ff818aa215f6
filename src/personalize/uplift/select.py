"""Choosing the uplift learner per task by Qini on held-out validation rows (one fold, or k-fold cross-validation).

No meta-learner wins everywhere: the S-learner shrinks weak effects towards 0
but uses every row in one model (it led on Hillstrom visits), the T-learner is
unbiased but noisy on small arms, the X-learner helps when arms are unbalanced.
So the choice is made per task, on data the candidates did not train on:

1. a stratified split of the training data (by arm, and by outcome for a
   binary outcome) into a fit fold and a ``validation_fraction`` validation fold;
2. every candidate is fitted on the fit fold and scored on the validation fold:
   for each treatment arm, the metric on the validation rows of that arm and of
   the control, averaged over the arms weighted by those row counts;
3. with ``ensemble=True`` (default) the mean of all candidates' predictions
   (:class:`~personalize.uplift.learners.UpliftEnsemble`) is scored as one more
   candidate, from the models already fitted (no extra training): averaging
   cancels part of the learners' variance, which dominates on small effects;
4. the best-scoring candidate is refitted on all the rows (``refit=True``; for
   the ensemble, every member).

With ``cv=k`` the comparison uses k-fold cross-validation instead of one
validation fold (:func:`cross_validate_uplift`): the rows are dealt into ``k``
folds stratified like the split above, every candidate is fitted ``k`` times
on ``k - 1`` folds and scored on the remaining one, and its score is the mean
over the ``k`` folds -- every row validates once, so the choice is far less
at the mercy of one lucky fold (on Hillstrom a single 30 % fold of 9,000 rows
moved the candidates' uplift@30 % by +-0.01, more than they differ). It costs
``k`` fits per candidate instead of one.

:func:`candidate_grid` is a larger candidate set for that search: the three
meta-learners and the transformed-outcome learner at five settings of tree size
and leaf size (its label is noisy, so how shallow it must be is found on the
validation folds, not guessed).

On a large campaign, ``selection_rows`` compares the candidates on a
stratified random subsample of that many rows (split into fit and validation
folds as above) and refits only the chosen one on every row: ranking three
learners needs far fewer rows than the final model, and it is the candidates'
training that dominates the cost at a million rows.

Every candidate's scores are recorded (:attr:`UpliftSelection.scores`,
``AutoUplift.scores_``) -- the choice can always be audited. The metric
defaults to the normalised Qini coefficient
(:func:`personalize.uplift.metrics.qini_coefficient`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personalize import _sets
from personalize._params import Params
from personalize.errors import DataError, NotFittedError, PersonalizeError
from personalize.uplift import metrics as M
from personalize.uplift._features import parse_outcome, parse_treatment
from personalize.uplift.learners import (SLearner, TLearner, TransformedOutcomeLearner, UpliftEnsemble, UpliftLearner,
                                         XLearner, load_uplift_model)

__all__ = ["uplift_split", "uplift_folds", "default_candidates", "candidate_grid", "select_uplift_model",
           "score_uplift_model", "cross_validate_uplift", "best_candidate", "UpliftSelection", "AutoUplift",
           "METRICS", "TRANSFORMED_OUTCOME_GRID"]

#: metric name -> f(y, uplift, treatment01) for one arm against control; larger is better
METRICS = {
    "qini": lambda y, u, t: M.qini_coefficient(y, u, t),
    "auuc": lambda y, u, t: M.auuc(y, u, t),
    "uplift_at_30": lambda y, u, t: M.uplift_at_k(y, u, t, k=0.3, strategy="by_group"),
}


def _rows(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, (pd.DataFrame, pd.Series)) else np.asarray(X)[rows]


def uplift_split(treatment: Any, y: Any = None, *, test_fraction: float = 0.3,
                 random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random split: ``(train_rows, test_rows)`` positions, sorted.

    Strata are the arms and, when ``y`` is given and binary, the outcome within each arm, so
    both sides keep the arm shares and each arm's response rate (the split used for the
    Hillstrom benchmark). Each stratum sends ``round(test_fraction * size)`` rows to test.
    """
    if not 0 < float(test_fraction) < 1:
        raise PersonalizeError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    strata = _strata(treatment, y)
    rng = np.random.default_rng(random_state)
    test = np.zeros(len(strata), dtype=bool)
    for s in _sets.unique(strata):
        members = np.flatnonzero(strata == s)
        m = int(round(float(test_fraction) * len(members)))
        test[rng.choice(members, m, replace=False)] = True
    return np.flatnonzero(~test), np.flatnonzero(test)


def _strata(treatment: Any, y: Any) -> np.ndarray:
    t = np.asarray(treatment.to_numpy(dtype=object) if isinstance(treatment, pd.Series) else treatment, dtype=object)
    strata, _ = pd.factorize(t)
    if y is not None:
        yv = np.asarray(y, dtype=np.float64)
        if len(yv) != len(t):
            raise DataError(f"{len(t)} treatment values but {len(yv)} outcomes", column="y")
        if _sets.isin(yv, (0.0, 1.0)).all():
            strata = strata * 2 + yv.astype(np.int64)
    return strata


def uplift_folds(treatment: Any, y: Any = None, *, n_folds: int = 5, random_state: int = 0) -> np.ndarray:
    """Fold number (``0 .. n_folds - 1``) of every row, stratified like :func:`uplift_split`.

    Each stratum (arm, and outcome within the arm when ``y`` is binary) is shuffled and dealt
    round-robin over the folds, so fold sizes per stratum differ by at most one row.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise PersonalizeError(f"n_folds (cv) must be an integer >= 2, got {n_folds!r}")
    strata = _strata(treatment, y)
    if len(strata) < n_folds:
        raise DataError(f"{len(strata)} rows cannot make {n_folds} folds", column="treatment")
    rng = np.random.default_rng(random_state)
    fold = np.empty(len(strata), dtype=np.int64)
    offset = 0
    for s in _sets.unique(strata):
        members = np.flatnonzero(strata == s)
        rng.shuffle(members)
        fold[members] = (np.arange(len(members)) + offset) % n_folds  # offset: small strata spread out
        offset += len(members)
    return fold


def default_candidates(**params: Any) -> dict[str, UpliftLearner]:
    """S-, T- and X-learner with the same hyperparameters (``params`` go to each; the X-learner's
    ``propensity`` too)."""
    base = {k: v for k, v in params.items() if k not in ("propensity", "propensity_clip")}
    xs = {k: v for k, v in params.items() if k in ("propensity", "propensity_clip")}
    return {"s_learner": SLearner(**base), "t_learner": TLearner(**base), "x_learner": XLearner(**base, **xs)}


#: (num_leaves, min_child_samples) of the transformed-outcome learners in :func:`candidate_grid` (with two
#: leaves the leaf size hardly binds, so one setting)
TRANSFORMED_OUTCOME_GRID: tuple[tuple[int, int], ...] = ((2, 400), (4, 100), (4, 400), (8, 100), (8, 400))


def candidate_grid(**params: Any) -> dict[str, UpliftLearner]:
    """:func:`default_candidates` plus :class:`TransformedOutcomeLearner` at every
    ``(num_leaves, min_child_samples)`` of :data:`TRANSFORMED_OUTCOME_GRID` (learning rate 0.02), named
    ``transformed_outcome_l{leaves}_m{min_child_samples}``.

    ``params`` go to every candidate (``control_name``, ``n_jobs``, ``random_state``, ...); tree-shape
    keywords given here override the meta-learners' defaults but not the grid's own settings;
    ``propensity`` / ``propensity_clip`` go to the X-learner, and ``propensity`` also to the
    transformed-outcome learners when it is ``"constant"`` or a mapping.
    """
    out = default_candidates(**params)
    base = {k: v for k, v in params.items()
            if k not in ("propensity", "propensity_clip", "num_leaves", "min_child_samples", "learning_rate")}
    p = params.get("propensity")
    if p == "constant" or isinstance(p, Mapping):
        base["propensity"] = p
    for leaves, mcs in TRANSFORMED_OUTCOME_GRID:
        out[f"transformed_outcome_l{leaves}_m{mcs}"] = TransformedOutcomeLearner(
            **base, num_leaves=leaves, min_child_samples=mcs, learning_rate=0.02)
    return out


def score_uplift_model(model: UpliftLearner | UpliftEnsemble, X: Any, treatment: Any, y: Any, *,
                       metrics: tuple[str, ...] = ("qini", "auuc", "uplift_at_30")) -> dict:
    """Score a fitted learner on (held-out) rows: every metric per treatment arm (on that arm's and
    the control's rows) and their row-weighted mean over arms (``"mean"``)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise PersonalizeError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    codes, arms, _ = parse_treatment(treatment, len(X), model.arm_names_[0])
    if arms[1:] != list(model.treatment_names_):
        missing = sorted(set(map(str, model.treatment_names_)) - set(map(str, arms)))
        raise PersonalizeError(f"scoring rows must hold every treatment arm of the model; missing {missing}")
    yv, _ = parse_outcome(y, len(X), "auto")
    u = model.predict(X)
    per_arm: dict[str, dict] = {}
    weights = []
    for j, arm in enumerate(model.treatment_names_):
        rows = (codes == 0) | (codes == j + 1)
        t01 = (codes[rows] == j + 1).astype(np.float64)
        per_arm[str(arm)] = {m: float(METRICS[m](yv[rows], u[rows, j], t01)) for m in metrics}
        per_arm[str(arm)]["rows"] = int(rows.sum())
        weights.append(int(rows.sum()))
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    mean = {m: float(sum(wi * per_arm[str(a)][m] for wi, a in zip(w, model.treatment_names_))) for m in metrics}
    return {"mean": mean, "per_arm": per_arm}


def _check_candidates(candidates: Mapping[str, UpliftLearner], ensemble: bool) -> None:
    if not candidates:
        raise PersonalizeError("candidates is empty")
    if ensemble and "ensemble" in candidates:
        raise PersonalizeError("a candidate is named 'ensemble': rename it or pass ensemble=False")
    for name, cand in candidates.items():
        if not isinstance(cand, UpliftLearner):
            raise PersonalizeError(f"candidate {name!r} is a {type(cand).__name__}, not an uplift learner")


def _arrays(X: Any, treatment: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    t_all = (treatment.to_numpy(dtype=object) if isinstance(treatment, pd.Series)
             else np.asarray(treatment, dtype=object))
    y_all = y.to_numpy() if isinstance(y, pd.Series) else np.asarray(y)
    if not (len(X) == len(t_all) == len(y_all)):
        raise DataError(f"lengths differ: X {len(X)}, treatment {len(t_all)}, y {len(y_all)}",
                        column="y" if len(X) == len(t_all) else "treatment")
    return t_all, y_all


def _mean_scores(per_fold: list[dict]) -> dict:
    """Mean over folds of :func:`score_uplift_model` results (overall and per arm)."""
    metrics = list(per_fold[0]["mean"])
    mean = {m: float(np.mean([f["mean"][m] for f in per_fold])) for m in metrics}
    per_arm = {arm: {m: float(np.mean([f["per_arm"][arm][m] for f in per_fold])) for m in metrics}
               for arm in per_fold[0]["per_arm"]}
    for arm in per_arm:
        per_arm[arm]["rows"] = int(sum(f["per_arm"][arm]["rows"] for f in per_fold))
    return {"mean": mean, "per_arm": per_arm, "folds": [f["mean"] for f in per_fold]}


def cross_validate_uplift(X: Any, treatment: Any, y: Any, *, candidates: Mapping[str, UpliftLearner],
                          n_folds: int = 5, ensemble: bool = True, random_state: int = 0,
                          metrics: tuple[str, ...] = ("qini", "auuc", "uplift_at_30")) -> dict[str, dict]:
    """k-fold cross-validated scores of every candidate (and of their mean, ``"ensemble"``).

    Folds from :func:`uplift_folds`; in fold ``f`` every candidate is fitted on the other folds
    and scored on fold ``f`` with :func:`score_uplift_model`; the ensemble is the mean of that
    fold's fitted candidates (the same models, no extra training). Returns name ->
    ``{"mean": {metric: mean over folds}, "per_arm": {arm: {metric: mean over folds, "rows"}},
    "folds": [each fold's mean over arms], "fit_seconds": total, "learner": class name}``.
    """
    _check_candidates(candidates, ensemble)
    t_all, y_all = _arrays(X, treatment, y)
    fold = uplift_folds(t_all, y_all, n_folds=n_folds, random_state=random_state)
    per_fold: dict[str, list] = {}
    seconds: dict[str, float] = {}
    for f in range(n_folds):
        fit, va = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        Xf, Xv = _rows(X, fit), _rows(X, va)
        fitted: dict[str, UpliftLearner] = {}
        for name, cand in candidates.items():
            t0 = time.perf_counter()
            fitted[name] = cand.clone().fit(Xf, t_all[fit], y_all[fit])
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
            per_fold.setdefault(name, []).append(score_uplift_model(fitted[name], Xv, t_all[va], y_all[va],
                                                                    metrics=metrics))
        if ensemble and len(fitted) >= 2:
            per_fold.setdefault("ensemble", []).append(
                score_uplift_model(UpliftEnsemble.from_fitted(fitted), Xv, t_all[va], y_all[va], metrics=metrics))
    out = {}
    for name, folds in per_fold.items():
        if name == "ensemble":
            info = {"fit_seconds": round(sum(seconds.values()), 3), "learner": "UpliftEnsemble",
                    "members": list(candidates)}
        else:
            info = {"fit_seconds": round(seconds[name], 3), "learner": type(candidates[name]).__name__}
        out[name] = {**_mean_scores(folds), **info}
    return out


@dataclass
class UpliftSelection:
    """Outcome of :func:`select_uplift_model`."""

    best_name: str
    model: UpliftLearner | UpliftEnsemble  # refitted on all rows when refit=True, else fitted on the fit fold
    metric: str
    scores: dict[str, dict] = field(default_factory=dict)  # candidate -> {"mean", "per_arm", "fit_seconds"}
    fit_rows: int = 0
    validation_rows: int = 0
    refitted: bool = False
    rows: int = 0  # rows given; fit_rows + validation_rows < rows when selection_rows subsampled them
    cv: int | None = None  # folds of the cross-validation (None: one validation fold)

    def to_dict(self) -> dict:
        return {"best": self.best_name, "metric": self.metric, "scores": self.scores, "fit_rows": self.fit_rows,
                "validation_rows": self.validation_rows, "refitted": self.refitted, "rows": self.rows,
                "cv": self.cv}


def select_uplift_model(X: Any, treatment: Any, y: Any, *, candidates: Mapping[str, UpliftLearner] | None = None,
                        metric: str = "qini", validation_fraction: float = 0.3, cv: int | None = None,
                        refit: bool = True, ensemble: bool = True, selection_rows: int | None = None,
                        random_state: int = 0, **params: Any) -> UpliftSelection:
    """Fit every candidate on a fit fold, score it on a stratified validation fold, keep the best.

    ``candidates``: name -> unfitted learner (default :func:`default_candidates` built from
    ``params``, e.g. ``control_name="No E-Mail"``); ``metric``: ``"qini"`` (default),
    ``"auuc"`` or ``"uplift_at_30"``; ``cv``: None (one ``validation_fraction`` fold) or a number
    of folds for k-fold cross-validation (:func:`cross_validate_uplift`; needs ``refit=True``);
    ``ensemble``: also score the mean of all candidates (named ``"ensemble"``);
    ``selection_rows``: compare the candidates on a stratified subsample of about this many rows
    (per-stratum rounding) when there are more (the chosen one is still refitted on all rows when
    ``refit=True``). Each candidate's validation scores (mean over arms and per arm, for all three
    metrics; with ``cv`` also per fold) and fit time are in ``scores``; the chosen one also carries
    them as ``model.selection_`` (saved in its ``meta.json``).
    """
    if metric not in METRICS:
        raise PersonalizeError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if candidates is None:
        candidates = default_candidates(**params)
    elif params:
        raise PersonalizeError(f"pass hyperparameters either in the candidates or as keywords, not both "
                               f"(got {sorted(params)})")
    _check_candidates(candidates, ensemble)
    if cv is not None and not refit:
        raise PersonalizeError("cv fits every candidate once per fold, so there is no single fitted model to "
                               "keep: use refit=True with cv")
    t_all, y_all = _arrays(X, treatment, y)
    pool = np.arange(len(t_all))
    if selection_rows is not None:
        if (isinstance(selection_rows, bool) or not isinstance(selection_rows, (int, np.integer))
                or selection_rows < 20):
            raise PersonalizeError(f"selection_rows must be None or an integer >= 20, got {selection_rows!r}")
        if len(t_all) > selection_rows:
            _, pool = uplift_split(t_all, y_all, test_fraction=selection_rows / len(t_all),
                                   random_state=random_state + 1)
    fitted: dict[str, UpliftLearner] = {}
    if cv is not None:
        scores = cross_validate_uplift(_rows(X, pool), t_all[pool], y_all[pool], candidates=candidates,
                                       n_folds=cv, ensemble=ensemble, random_state=random_state)
        n_fit = n_va = len(pool)  # every row is fitted on k - 1 times and validates once
    else:
        fit_rows, va_rows = uplift_split(t_all[pool], y_all[pool], test_fraction=validation_fraction,
                                         random_state=random_state)
        fit_rows, va_rows = pool[fit_rows], pool[va_rows]
        n_fit, n_va = len(fit_rows), len(va_rows)
        Xf, Xv = _rows(X, fit_rows), _rows(X, va_rows)
        scores = {}
        for name, cand in candidates.items():
            t0 = time.perf_counter()
            m = cand.clone().fit(Xf, t_all[fit_rows], y_all[fit_rows])
            fit_s = time.perf_counter() - t0
            sc = score_uplift_model(m, Xv, t_all[va_rows], y_all[va_rows])
            scores[name] = {**sc, "fit_seconds": round(fit_s, 3), "learner": type(m).__name__}
            fitted[name] = m
        if ensemble and len(fitted) >= 2:
            ens = UpliftEnsemble.from_fitted(fitted)
            scores["ensemble"] = {**score_uplift_model(ens, Xv, t_all[va_rows], y_all[va_rows]),
                                  "fit_seconds": round(sum(v["fit_seconds"] for v in scores.values()), 3),
                                  "learner": "UpliftEnsemble", "members": list(fitted)}
    best = best_candidate(scores, metric)
    if best == "ensemble":
        model = UpliftEnsemble(members=dict(candidates)).fit(X, t_all, y_all) if refit else ens
    else:
        model = candidates[best].clone().fit(X, t_all, y_all) if refit else fitted[best]
    sel = UpliftSelection(best_name=best, model=model, metric=metric, scores=scores, fit_rows=n_fit,
                          validation_rows=n_va, refitted=bool(refit), rows=len(t_all), cv=cv)
    model.selection_ = sel.to_dict()
    return sel


def best_candidate(scores: Mapping[str, dict], metric: str) -> str:
    """The name with the highest ``scores[name]["mean"][metric]`` (the first listed wins a tie)."""
    names = list(scores)
    return max(names, key=lambda k: (scores[k]["mean"][metric], -names.index(k)))


class AutoUplift(Params):
    """Estimator wrapper of :func:`select_uplift_model`: ``fit`` chooses and refits, ``predict`` delegates.

    Hyperparameters (keyword-only, stored untouched): ``candidates`` (None = S-, T- and
    X-learner built from ``learner_params``), ``learner_params`` (a dict, e.g.
    ``{"control_name": "No E-Mail", "n_jobs": 2}``), ``metric``, ``validation_fraction``, ``cv``
    (k-fold cross-validation instead of one fold), ``refit``, ``ensemble``, ``selection_rows``,
    ``random_state``. Fitted: ``model_``, ``best_name_``, ``scores_``,
    ``selection_``; ``arm_names_`` / ``treatment_names_`` / ``outcome_`` of the chosen model.
    ``save`` writes the chosen learner (its ``meta.json`` records the selection);
    ``AutoUplift.load`` / :func:`personalize.uplift.load_uplift_model` read it back.
    """

    bundle_kind = "uplift"

    def __init__(self, *, candidates: Mapping[str, UpliftLearner] | None = None,
                 learner_params: Mapping[str, Any] | None = None, metric: str = "qini",
                 validation_fraction: float = 0.3, cv: int | None = None, refit: bool = True,
                 ensemble: bool = True, selection_rows: int | None = None, random_state: int = 0):
        self.candidates = candidates
        self.learner_params = learner_params
        self.metric = metric
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.refit = refit
        self.ensemble = ensemble
        self.selection_rows = selection_rows
        self.random_state = random_state

    def fit(self, X: Any, treatment: Any, y: Any) -> "AutoUplift":
        cands = self.candidates
        if cands is None:
            cands = default_candidates(**dict(self.learner_params or {}))
        elif self.learner_params:
            raise PersonalizeError("AutoUplift: give either candidates or learner_params, not both")
        sel = select_uplift_model(X, treatment, y, candidates=cands, metric=self.metric,
                                  validation_fraction=self.validation_fraction, cv=self.cv, refit=self.refit,
                                  ensemble=self.ensemble, selection_rows=self.selection_rows,
                                  random_state=self.random_state)
        self.model_ = sel.model
        self.best_name_ = sel.best_name
        self.scores_ = sel.scores
        self.selection_ = sel.to_dict()
        return self

    def _check_fitted(self) -> UpliftLearner | UpliftEnsemble:
        if not hasattr(self, "model_"):
            raise NotFittedError("AutoUplift is not fitted: call fit() or AutoUplift.load() first")
        return self.model_

    @property
    def arm_names_(self) -> list:
        return self._check_fitted().arm_names_

    @property
    def treatment_names_(self) -> list:
        return self._check_fitted().treatment_names_

    @property
    def outcome_(self) -> str:
        return self._check_fitted().outcome_

    def predict(self, X: Any) -> np.ndarray:
        """Uplift per row and treatment arm of the chosen learner, ``(n, len(treatment_names_))``."""
        return self._check_fitted().predict(X)

    def predict_frame(self, X: Any) -> pd.DataFrame:
        return self._check_fitted().predict_frame(X)

    def predict_outcomes(self, X: Any) -> np.ndarray:
        return self._check_fitted().predict_outcomes(X)

    def predict_uplift_and_baseline(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._check_fitted().predict_uplift_and_baseline(X)

    def save(self, directory: str | Path) -> Path:
        return self._check_fitted().save(directory)

    @classmethod
    def load(cls, directory: str | Path) -> "AutoUplift":
        model = load_uplift_model(directory)
        sel = getattr(model, "selection_", None) or {}
        auto = cls(metric=sel.get("metric", "qini"))
        auto.model_ = model
        auto.best_name_ = sel.get("best", model.kind)
        auto.scores_ = sel.get("scores", {})
        auto.selection_ = sel
        return auto
