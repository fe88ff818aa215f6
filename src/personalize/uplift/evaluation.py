"""Held-out evaluation of uplift models on randomized campaign data, over several random splits.

:func:`evaluate_uplift` answers "how well would the learner we pick target this campaign's
treatment?" without ever scoring a model on rows it, or its selection, has seen. For each seed:

1. a stratified split (:func:`~personalize.uplift.select.uplift_split`, by arm and outcome):
   ``test_fraction`` of the rows (default 30 %) are set aside;
2. on the **training rows only**, every candidate (default
   :func:`~personalize.uplift.select.candidate_grid`: S-, T-, X-learner and the
   transformed-outcome learner at five tree settings) is cross-validated
   (:func:`~personalize.uplift.select.cross_validate_uplift`, ``cv`` folds, plus the mean of all
   candidates as ``"ensemble"``), and the one with the best mean validation ``metric``
   (default the normalised Qini coefficient) is *chosen*;
3. every candidate is refitted on all training rows and scored on the test rows -- the
   per-learner figures -- and ``"chosen"`` is, per seed, the test score of the candidate step 2
   picked (so its figure includes the cost of picking: it is not the best per-learner figure);
4. the chosen model's targeting policies are valued on the test rows by inverse propensity
   weighting (:func:`~personalize.uplift.metrics.policy_value_ipw`): "treat if predicted uplift
   > 0" (several arms: the arm with the largest predicted uplift, none if all <= 0), "treat the
   top k" and, as baselines, "treat everyone" (each arm) and "treat nobody", with the gain of
   the learned policy over each baseline and its paired standard error
   (:func:`~personalize.uplift.metrics.policy_gain_ipw`).

Test metrics per learner, arm and seed (:mod:`personalize.uplift.metrics`): ``uplift_at_{k}``
(uplift@k, ``by_group``: the top k of the treated and of the control rows separately, as in
scikit-uplift's Hillstrom tutorial), ``uplift_at_{k}_overall``, ``qini`` (normalised: 0 =
random, 1 = the oracle ordering), ``qini_raw`` (area over the random line, outcome per customer
of the population), ``auuc`` (normalised like ``qini``). With several arms the learner's
figure is the row-weighted mean over the arms (``per_arm`` has each).

The result keeps the first seed's test rows and every learner's predictions on them, for the
Qini and uplift curves (:func:`personalize.uplift.plots.plot_evaluation`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from personalize.errors import PersonalizeError
from personalize.uplift import metrics as M
from personalize.uplift._features import parse_outcome, parse_treatment
from personalize.uplift.learners import UpliftLearner
from personalize.uplift.select import (METRICS, _rows, best_candidate, candidate_grid, cross_validate_uplift,
                                       uplift_split)

__all__ = ["UpliftEvaluation", "evaluate_uplift", "holdout_metrics"]


def _k_name(k: float) -> str:
    return f"uplift_at_{round(100 * k):d}"


def holdout_metrics(y: np.ndarray, uplift: np.ndarray, treated: np.ndarray, *, k: float = 0.3) -> dict[str, float]:
    """The evaluation's metrics of one arm's predicted ``uplift`` on held-out rows (``treated``: 1/0)."""
    name = _k_name(k)
    return {name: M.uplift_at_k(y, uplift, treated, k=k, strategy="by_group"),
            f"{name}_overall": M.uplift_at_k(y, uplift, treated, k=k, strategy="overall"),
            "qini": M.qini_coefficient(y, uplift, treated),
            "qini_raw": M.qini_coefficient(y, uplift, treated, normalize=False),
            "auuc": M.auuc(y, uplift, treated)}


def _summary(values: Sequence[float], digits: int = 5) -> dict:
    a = np.asarray(values, dtype=np.float64)
    sd = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {"mean": round(float(a.mean()), digits), "sd": round(sd, digits),
            "per_seed": [round(float(v), digits) for v in a]}


@dataclass
class UpliftEvaluation:
    """Result of :func:`evaluate_uplift`; :meth:`to_dict` is the JSON report (means, sds, per-seed values)."""

    control_name: Any
    treatment_names: list
    outcome: str
    rows: int
    seeds: list[int]
    test_fraction: float
    cv: int
    metric: str
    k: float
    candidates: list[str]
    scores: dict[str, dict[str, list[float]]]           # learner -> metric -> per seed (mean over arms)
    scores_per_arm: dict[str, dict[str, dict[str, list[float]]]]  # learner -> arm -> metric -> per seed
    chosen: list[str]                                    # per seed
    selection: list[dict[str, float]]                    # per seed: candidate -> mean validation metric
    policies: dict[str, dict[str, list[float]]]          # policy -> value / std_error / share_treated per seed
    gains: dict[str, dict[str, list[float]]]             # "learned vs <baseline>" -> gain / std_error per seed
    observed_effect: dict[str, float]                    # arm -> treated mean - control mean over all rows
    fit_seconds: dict[str, list[float]]
    seconds: float = 0.0
    curves: dict = field(default_factory=dict, repr=False)  # first seed's test rows and predictions

    @property
    def headline(self) -> str:
        return _k_name(self.k)

    def mean(self, learner: str = "chosen", metric: str | None = None) -> float:
        """Mean over seeds of a learner's test metric (default: the chosen model's uplift@k)."""
        if learner not in self.scores:
            raise PersonalizeError(f"no learner {learner!r}; evaluated: {sorted(self.scores)}")
        m = metric or self.headline
        if m not in self.scores[learner]:
            raise PersonalizeError(f"no metric {m!r}; metrics: {sorted(self.scores[learner])}")
        return float(np.mean(self.scores[learner][m]))

    def to_dict(self) -> dict:
        learners = {}
        for name, ms in self.scores.items():
            entry = {m: _summary(v) for m, v in ms.items()}
            if len(self.treatment_names) > 1:
                entry["per_arm"] = {arm: {m: _summary(v) for m, v in am.items()}
                                    for arm, am in self.scores_per_arm[name].items()}
            if name in self.fit_seconds:
                entry["fit_seconds_mean"] = round(float(np.mean(self.fit_seconds[name])), 3)
            learners[name] = entry
        chosen_counts = pd.Series(self.chosen).value_counts()
        return {
            "control": self.control_name, "treatments": list(self.treatment_names), "outcome": self.outcome,
            "rows": self.rows, "seeds": list(self.seeds), "test_fraction": self.test_fraction,
            "cv_folds": self.cv, "selection_metric": self.metric, "k": self.k, "headline_metric": self.headline,
            "observed_effect": {a: round(v, 6) for a, v in self.observed_effect.items()},
            "chosen": {"per_seed": list(self.chosen), "counts": {str(k): int(v) for k, v in chosen_counts.items()},
                       **{m: _summary(v) for m, v in self.scores["chosen"].items()}},
            "learners": learners,
            "candidates": list(self.candidates),
            "validation_per_seed": [{k: round(v, 5) for k, v in s.items()} for s in self.selection],
            "ipw_policy_value": {name: {"value": _summary(p["value"]), "std_error_mean":
                                        round(float(np.mean(p["std_error"])), 5),
                                        "share_treated": round(float(np.mean(p["share_treated"])), 4)}
                                 for name, p in self.policies.items()},
            "ipw_gain": {name: {"gain": _summary(g["gain"]), "std_error_mean": round(float(np.mean(g["std_error"])), 5)}
                         for name, g in self.gains.items()},
            "seconds": round(self.seconds, 1),
        }

    def __str__(self) -> str:
        h = self.headline
        lines = [f"uplift evaluation: {', '.join(map(str, self.treatment_names))} vs {self.control_name} "
                 f"({self.outcome} outcome, {self.rows:,} rows, {len(self.seeds)} seeds, "
                 f"{round(100 * self.test_fraction)} % test, {self.cv}-fold selection by {self.metric})",
                 f"{'learner':34s} {h:>13s} {'qini':>8s} {'auuc':>8s}"]
        order = ["chosen"] + [n for n in self.scores if n != "chosen"]
        for name in order:
            s = self.scores[name]
            lines.append(f"{name:34s} {np.mean(s[h]):13.4f} {np.mean(s['qini']):8.4f} {np.mean(s['auuc']):8.4f}")
        lines.append(f"chosen per seed: {', '.join(self.chosen)}")
        for name, p in self.policies.items():
            lines.append(f"IPW value {name}: {np.mean(p['value']):.4f} per customer "
                         f"(treats {100 * np.mean(p['share_treated']):.1f} %)")
        return "\n".join(lines)


def _with_seed(cand: UpliftLearner, seed: int) -> UpliftLearner:
    c = cand.clone()
    if "random_state" in c.get_params():
        c.set_params(random_state=int(c.get_params()["random_state"]) + int(seed))
    return c


def evaluate_uplift(X: Any, treatment: Any, y: Any, *, control_name: Any, seeds: int | Sequence[int] = 5,
                    test_fraction: float = 0.3, candidates: Mapping[str, UpliftLearner] | None = None,
                    cv: int = 5, metric: str = "qini", ensemble: bool = True, k: float = 0.3,
                    propensity: Mapping[Any, float] | None = None, n_jobs: int | None = None,
                    keep_curves: bool = True, progress: Any = None) -> UpliftEvaluation:
    """Evaluate uplift learners on held-out rows over several random splits (see the module docstring).

    ``X``, ``treatment`` (arm names), ``y`` (0/1 or an amount): the campaign's rows.
    ``control_name``: the control arm; every other arm is a treatment. ``seeds``: a number of
    splits (seeds ``0 .. n-1``) or the seeds. ``candidates``: name -> unfitted learner
    (default :func:`~personalize.uplift.select.candidate_grid` with ``control_name`` and
    ``n_jobs``); each candidate's ``random_state`` is offset by the seed. ``cv``: folds of the
    selection inside the training rows; ``metric``: ``"qini"``, ``"auuc"`` or ``"uplift_at_30"``.
    ``k``: the top share of uplift@k and of the "treat the top k" policy. ``propensity``: arm ->
    assignment probability for the IPW values (default: each arm's share of the test rows).
    ``progress``: optional callable receiving one line per finished seed.
    """
    if metric not in METRICS:
        raise PersonalizeError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if not 0 < float(k) < 1:
        raise PersonalizeError(f"k must be a share in (0, 1), got {k!r}")
    if isinstance(seeds, bool):
        raise PersonalizeError(f"seeds must be a number of splits or a list of seeds, got {seeds!r}")
    seed_list = list(range(int(seeds))) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_list:
        raise PersonalizeError("seeds: give at least one seed")
    if candidates is None:
        candidates = candidate_grid(control_name=control_name, n_jobs=n_jobs)
    codes, arms, treatments = parse_treatment(treatment, len(X), control_name)
    yv, kind = parse_outcome(y, len(X), "auto")
    t_all = np.asarray(arms, dtype=object)[codes]
    observed = {str(a): float(yv[codes == j + 1].mean() - yv[codes == 0].mean()) for j, a in enumerate(treatments)}
    t0 = time.perf_counter()
    scores: dict[str, dict[str, list]] = {}
    per_arm: dict[str, dict[str, dict[str, list]]] = {}
    chosen, selection, fit_s = [], [], {}
    policies: dict[str, dict[str, list]] = {}
    gains: dict[str, dict[str, list]] = {}
    curves: dict = {}

    def record(name: str, u: np.ndarray, te: np.ndarray) -> None:
        ct = codes[te]
        weights, vals = [], []
        for j, arm in enumerate(treatments):
            rows = (ct == 0) | (ct == j + 1)
            m = holdout_metrics(yv[te][rows], u[rows, j], (ct[rows] == j + 1).astype(np.float64), k=k)
            for mk, v in m.items():
                per_arm.setdefault(name, {}).setdefault(str(arm), {}).setdefault(mk, []).append(v)
            weights.append(rows.sum())
            vals.append(m)
        w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        for mk in vals[0]:
            scores.setdefault(name, {}).setdefault(mk, []).append(float(sum(wi * v[mk] for wi, v in zip(w, vals))))

    for seed in seed_list:
        tr, te = uplift_split(t_all, yv, test_fraction=test_fraction, random_state=seed)
        cands = {name: _with_seed(c, seed) for name, c in candidates.items()}
        Xtr, Xte = _rows(X, tr), _rows(X, te)
        cvs = cross_validate_uplift(Xtr, t_all[tr], yv[tr], candidates=cands, n_folds=cv, ensemble=ensemble,
                                    random_state=seed)
        best = best_candidate(cvs, metric)
        chosen.append(best)
        selection.append({name: sc["mean"][metric] for name, sc in cvs.items()})
        preds = {}
        for name, cand in cands.items():
            s0 = time.perf_counter()
            model = cand.fit(Xtr, t_all[tr], yv[tr])
            fit_s.setdefault(name, []).append(time.perf_counter() - s0)
            preds[name] = model.predict(Xte)
        if ensemble and len(cands) >= 2:
            preds["ensemble"] = np.mean([preds[n] for n in cands], axis=0)  # = UpliftEnsemble of the candidates
        preds["chosen"] = preds[best]
        for name, u in preds.items():
            record(name, u, te)
        _policies(yv[te], t_all[te], preds["chosen"], control_name, treatments, k, propensity, policies, gains)
        if keep_curves and not curves:
            curves = {"seed": seed, "y": yv[te], "treatment": t_all[te], "predictions": preds,
                      "chosen": best, "treatment_names": list(treatments), "control_name": control_name}
        if progress is not None:
            progress(f"seed {seed}: chosen {best}, test {_k_name(k)} {scores['chosen'][_k_name(k)][-1]:.4f}, "
                     f"qini {scores['chosen']['qini'][-1]:.4f}")
    return UpliftEvaluation(
        control_name=control_name, treatment_names=list(treatments), outcome=kind, rows=len(yv), seeds=seed_list,
        test_fraction=float(test_fraction), cv=int(cv), metric=metric, k=float(k), candidates=list(candidates),
        scores=scores, scores_per_arm=per_arm, chosen=chosen, selection=selection, policies=policies, gains=gains,
        observed_effect=observed, fit_seconds=fit_s, seconds=time.perf_counter() - t0, curves=curves)


def _policies(y: np.ndarray, t: np.ndarray, u: np.ndarray, control: Any, treatments: list, k: float,
              propensity: Mapping | None, policies: dict, gains: dict) -> None:
    """IPW values of the learned policies and the baselines on one seed's test rows."""
    n = len(y)
    arms = np.asarray(treatments, dtype=object)
    best = u.max(axis=1)
    best_arm = arms[np.argmax(u, axis=1)]
    learned = np.where(best > 0, best_arm, control).astype(object)
    top = np.zeros(n, dtype=bool)
    m = int(math.floor(k * n + 1e-9))
    top[np.argsort(-best, kind="stable")[:m]] = True
    top_k = np.where(top, best_arm, control).astype(object)
    pct = round(100 * k)
    one = len(treatments) == 1
    pols = {"learned: treat if predicted uplift > 0" if one else "learned: best arm if its predicted uplift > 0":
            learned,
            f"learned: treat the top {pct} %" if one else f"learned: top {pct} %, best arm": top_k}
    baselines = {}
    for a in treatments:
        baselines[f"treat everyone ({a})"] = np.full(n, a, dtype=object)
    baselines["treat nobody"] = np.full(n, control, dtype=object)
    pols.update(baselines)
    prop = {str(a): v for a, v in propensity.items()} if propensity is not None else None
    for name, p in pols.items():
        r = M.policy_value_ipw(y, t, p, propensity=prop)
        entry = policies.setdefault(name, {"value": [], "std_error": [], "share_treated": []})
        entry["value"].append(r["value"])
        entry["std_error"].append(r["std_error"])
        entry["share_treated"].append(float(np.mean(p != control)))
    for name, b in baselines.items():
        g = M.policy_gain_ipw(y, t, learned, b, propensity=prop)
        entry = gains.setdefault(f"learned vs {name}", {"gain": [], "std_error": []})
        entry["gain"].append(g["gain"])
        entry["std_error"].append(g["std_error"])
