"""Meta-learners of the conditional treatment effect on LightGBM: :class:`SLearner`, :class:`TLearner`,
:class:`XLearner`, :class:`TransformedOutcomeLearner`.

All three answer the same question for a randomized (or propensity-known) campaign:
*how much does treatment arm ``a`` change this customer's outcome compared with
the control arm?* -- the uplift ``tau_a(x) = E[Y | x, T=a] - E[Y | x, T=control]``.
They differ in how they spend the data:

* **S-learner** -- one model ``mu(x, t)`` with the arm as a categorical feature;
  ``tau_a(x) = mu(x, a) - mu(x, control)``. Uses every row for the shared
  structure, but trees may ignore a weak treatment signal (the effect is then
  shrunk towards 0).
* **T-learner** -- one model per arm ``mu_a(x)`` on that arm's rows;
  ``tau_a(x) = mu_a(x) - mu_control(x)``. No shrinkage, but the difference of two
  independently fitted models is noisy where an arm has few rows.
* **X-learner** (Kuenzel et al. 2019) -- the T-learner's models, then imputed
  individual effects ``D1 = y - mu_control(x)`` on arm-``a`` rows and
  ``D0 = mu_a(x) - y`` on control rows, two effect models ``tau1_a`` and
  ``tau0_a`` fitted on them, combined as
  ``tau_a(x) = g_a(x) tau0_a(x) + (1 - g_a(x)) tau1_a(x)`` with the pairwise
  propensity ``g_a(x) = P(T=a | x, T in {control, a})``: the effect model fitted on
  the larger group gets the larger weight.
* **Transformed outcome** -- one model of the effect itself per arm: class
  transformation for a binary outcome (``Z = Y`` if treated, ``1 - Y`` if not,
  weighted so both arms weigh the same; ``tau = 2 P(Z=1 | x) - 1``),
  transformed-outcome regression for a continuous one. Every split is spent
  on the effect, none on the baseline; the label is noisy, so the defaults are
  shallow (see the class).

**Multi-treatment** as in causalml (``control_name`` / ``t_groups``): ``treatment``
holds arm names (strings or numbers), ``control_name`` names the control arm,
every other distinct value is a treatment; ``treatment_names_`` lists them in
sorted order and ``predict(X)`` returns an ``(n, len(treatment_names_))`` array,
column ``j`` being the uplift of ``treatment_names_[j]`` against control
(``predict_frame`` gives the same as a DataFrame with those column names).

**Outcomes**: binary (``visit``, ``conversion``: LightGBM ``binary``, the model
outputs probabilities, the uplift is a difference of probabilities) or continuous
(``spend``: ``regression``, l2). ``outcome="auto"`` picks binary when every value
is 0 or 1.

**Training of each LightGBM model**: a random ``validation_fraction`` of its rows
finds the number of rounds by early stopping (``early_stopping_rounds``); with
``refit=True`` the model is then retrained on all its rows for that many rounds
(costs a second fit; uses every row), otherwise the early-stopped model is kept.

**Persistence** without pickle: one LightGBM text model per booster
(``model_to_string``) and ``meta.json`` (format_version, kind, hyperparameters,
arm names, feature names and categories, per-model rounds, propensity), each
written atomically, ``meta.json`` last -- a directory with a ``meta.json`` is
complete. :func:`load_uplift_model` reads any of the three.

**Hot path**: ``predict`` encodes the input once into a float64 numpy matrix and
calls ``Booster.predict`` on it (STACK.md: the scikit-learn wrapper costs 15x
per row).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from personalize._atomic import atomic_write
from personalize._params import Params
from personalize._trees import predict_rows
from personalize.errors import BundleError, DataError, NotFittedError, PersonalizeError
from personalize.uplift._features import FeatureEncoder, check_rows, storable_scalar, parse_outcome, parse_treatment

__all__ = ["SLearner", "TLearner", "XLearner", "TransformedOutcomeLearner", "UpliftLearner", "UpliftEnsemble",
           "load_uplift_model", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_MIN_ROWS_PER_ARM = 10


def _encode_param(v: Any) -> Any:
    """Hyperparameters as JSON: a mapping (e.g. known arm shares) becomes a list of pairs, so
    numeric arm names survive (JSON object keys would turn them into strings)."""
    if isinstance(v, Mapping):
        return {"__mapping__": [[storable_scalar(k), _encode_param(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return [_encode_param(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _decode_param(v: Any) -> Any:
    if isinstance(v, dict) and "__mapping__" in v:
        return {k: _decode_param(x) for k, x in v["__mapping__"]}
    return v


class UpliftLearner(Params):
    """Shared machinery of the meta-learners (see the module docstring); not used directly.

    Hyperparameters (keyword-only, stored untouched, checked in ``fit``):

    ``control_name`` the control arm's name in ``treatment`` (default 0, for 0/1 indicators);
    ``outcome`` ``"auto"`` / ``"binary"`` / ``"continuous"``;
    ``categorical_features`` ``"auto"`` (non-numeric DataFrame columns) or a list of columns;
    the LightGBM ones (``learning_rate``, ``n_estimators`` = maximum rounds, ``num_leaves``,
    ``max_depth``, ``min_child_samples``, ``subsample``, ``colsample_bytree``, ``reg_lambda``,
    ``max_bin``); ``early_stopping_rounds`` (None: always ``n_estimators`` rounds on all rows),
    ``validation_fraction``, ``refit``; ``n_jobs`` (LightGBM threads, None = its default);
    ``random_state``.

    Fitted state: ``arm_names_`` (control first, then the treatments), ``treatment_names_``,
    ``outcome_``, ``feature_names_``, ``boosters_`` / ``best_iterations_`` (per model),
    ``n_rows_`` (per arm), ``fit_seconds_``.
    """

    kind: ClassVar[str] = "uplift"
    bundle_kind: ClassVar[str] = "uplift"
    _extra_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, control_name: Any = 0, outcome: str = "auto", categorical_features: Any = "auto",
                 learning_rate: float = 0.05, n_estimators: int = 500, num_leaves: int = 31, max_depth: int = -1,
                 min_child_samples: int = 50, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 5.0, max_bin: int = 255, early_stopping_rounds: int | None = 50,
                 validation_fraction: float = 0.2, refit: bool = True, n_jobs: int | None = None,
                 random_state: int = 0):
        self.control_name = control_name
        self.outcome = outcome
        self.categorical_features = categorical_features
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.refit = refit
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ params (personalize._params.Params)
    def __repr__(self) -> str:
        return f"{type(self).__name__}(control_name={self.control_name!r}, outcome={self.outcome!r})"

    def _check_params(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise PersonalizeError(f"{type(self).__name__}: {msg}")

        need(0 < float(self.learning_rate) <= 1, f"learning_rate must be in (0, 1], got {self.learning_rate!r}")
        need(int(self.n_estimators) >= 1, f"n_estimators must be >= 1, got {self.n_estimators!r}")
        need(int(self.num_leaves) >= 2, f"num_leaves must be >= 2, got {self.num_leaves!r}")
        need(int(self.min_child_samples) >= 1, f"min_child_samples must be >= 1, got {self.min_child_samples!r}")
        need(0 < float(self.subsample) <= 1, f"subsample must be in (0, 1], got {self.subsample!r}")
        need(0 < float(self.colsample_bytree) <= 1,
             f"colsample_bytree must be in (0, 1], got {self.colsample_bytree!r}")
        need(float(self.reg_lambda) >= 0, f"reg_lambda must be >= 0, got {self.reg_lambda!r}")
        need(self.early_stopping_rounds is None or int(self.early_stopping_rounds) >= 1,
             f"early_stopping_rounds must be None or >= 1, got {self.early_stopping_rounds!r}")
        need(0 < float(self.validation_fraction) < 1,
             f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        need(self.refit in (True, False), f"refit must be True or False, got {self.refit!r}")

    def _lgb_params(self, objective: str, **extra: Any) -> dict:
        p = {"objective": objective, "learning_rate": float(self.learning_rate), "num_leaves": int(self.num_leaves),
             "max_depth": int(self.max_depth), "min_data_in_leaf": int(self.min_child_samples),
             "bagging_fraction": float(self.subsample), "bagging_freq": 1 if float(self.subsample) < 1 else 0,
             "feature_fraction": float(self.colsample_bytree), "lambda_l2": float(self.reg_lambda),
             "max_bin": int(self.max_bin), "seed": int(self.random_state), "deterministic": True,
             "force_col_wise": True, "verbose": -1, "feature_pre_filter": False, **extra}
        if self.n_jobs is not None:
            p["num_threads"] = int(self.n_jobs)
        return p

    # ------------------------------------------------------------------ training helpers
    def _train(self, name: str, X: np.ndarray, y: np.ndarray, objective: str, categorical: list[int],
               seed: int, weight: np.ndarray | None = None, **extra: Any) -> None:
        """Fit one booster (early stopping on a random fold, optional refit) and store it as ``name``;
        ``weight``: per-row weights (the early-stopping fold is scored with them too)."""
        params = self._lgb_params(objective, **extra)
        params["seed"] = int(self.random_state) + seed
        names = [f"f{j}" for j in range(X.shape[1])]
        ds_kw = {"feature_name": names, "categorical_feature": categorical or "auto",
                 "params": {"max_bin": int(self.max_bin), "verbose": -1, "feature_pre_filter": False}}
        rounds = int(self.n_estimators)
        n = len(y)
        es = self.early_stopping_rounds
        n_va = int(round(n * float(self.validation_fraction))) if es is not None else 0
        info: dict[str, Any] = {"rows": int(n)}
        if es is not None and n_va >= 2 and n - n_va >= 2:
            rng = np.random.default_rng(int(self.random_state) + 7919 * (seed + 1))
            va = np.zeros(n, dtype=bool)
            va[rng.choice(n, n_va, replace=False)] = True
            full = lgb.Dataset(X, y, weight=weight, free_raw_data=False, **ds_kw).construct()
            dtr, dva = full.subset(np.flatnonzero(~va)), full.subset(np.flatnonzero(va))
            booster = lgb.train(params, dtr, num_boost_round=rounds, valid_sets=[dva], valid_names=["validation"],
                                callbacks=[lgb.early_stopping(int(es), first_metric_only=True, verbose=False)])
            best = int(booster.best_iteration) or booster.current_iteration()
            info.update(validation_rows=int(n_va), early_stopped_at=best)
            if self.refit:
                booster = lgb.train(params, full, num_boost_round=best)
            else:
                info["rows"] = int(n - n_va)
        else:
            booster = lgb.train(params, lgb.Dataset(X, y, weight=weight, **ds_kw), num_boost_round=rounds)
            best = rounds
        info["rounds"] = best
        self.boosters_[name] = booster
        self.best_iterations_[name] = best
        self.training_[name] = info

    def _predict_booster(self, name: str, X: np.ndarray) -> np.ndarray:
        return predict_rows(self.boosters_[name], X, num_iteration=self.best_iterations_[name],
                            num_threads=self.n_jobs if self.n_jobs is not None else 0)

    def _objective(self) -> str:
        return "binary" if self.outcome_ == "binary" else "regression"

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, treatment: Any, y: Any) -> "UpliftLearner":
        """Learn the uplift of every treatment arm against ``control_name``.

        ``X`` numpy matrix or DataFrame (``n`` rows), ``treatment`` arm name per row,
        ``y`` outcome per row. Returns ``self``.
        """
        t0 = time.perf_counter()
        self._check_params()
        self._check_extra_params()
        encoder = FeatureEncoder.fit(X, self.categorical_features)
        Xm = encoder.transform(X)
        codes, arms, treatments = parse_treatment(treatment, len(Xm), self.control_name)
        yv, kind = parse_outcome(y, len(Xm), self.outcome)
        check_rows(codes, yv, kind, arms, _MIN_ROWS_PER_ARM)
        self.encoder_ = encoder
        self.feature_names_ = list(encoder.names)
        self.arm_names_ = list(arms)
        self.treatment_names_ = list(treatments)
        self.outcome_ = kind
        self.n_rows_ = {str(a): int(c) for a, c in zip(arms, np.bincount(codes, minlength=len(arms)))}
        self.boosters_: dict[str, lgb.Booster] = {}
        self.best_iterations_: dict[str, int] = {}
        self.training_: dict[str, dict] = {}
        try:
            self._fit(Xm, codes, yv, encoder.categorical_positions)
        except BaseException:
            del self.boosters_  # never leave a half-fitted model looking fitted
            raise
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _check_extra_params(self) -> None:
        pass

    def _fit(self, X: np.ndarray, codes: np.ndarray, y: np.ndarray, categorical: list[int]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "boosters_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load_uplift_model() first")

    def predict(self, X: Any) -> np.ndarray:
        """Uplift per row and treatment: ``(n, len(treatment_names_))`` float64, column ``j`` =
        ``E[Y | x, treatment_names_[j]] - E[Y | x, control]``."""
        self._check_fitted()
        return self._uplift(self.encoder_.transform(X))

    def predict_frame(self, X: Any) -> pd.DataFrame:
        """:meth:`predict` as a DataFrame: one column per treatment arm (named by it), X's index."""
        u = self.predict(X)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(u, columns=pd.Index(self.treatment_names_, dtype=object), index=index)

    def predict_outcomes(self, X: Any) -> np.ndarray:
        """Expected outcome under every arm: ``(n, len(arm_names_))``, control first (for a binary
        outcome, P(y=1)); ``predict`` is ``outcomes[:, 1:] - outcomes[:, :1]`` for the S- and
        T-learner. The coupon decision needs the baseline (control) column: redemptions by
        customers who would have bought anyway are a cost."""
        self._check_fitted()
        return self._outcomes(self.encoder_.transform(X))

    def predict_uplift_and_baseline(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(uplift, baseline)``: :meth:`predict` and the control arm's expected outcome (n,), in one
        pass over the models -- the two inputs of the coupon economics
        (:func:`personalize.coupons.redemption_probability` needs the baseline)."""
        self._check_fitted()
        return self._uplift_and_baseline(self.encoder_.transform(X))

    def _uplift_and_baseline(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu = self._outcomes(X)
        return mu[:, 1:] - mu[:, :1], mu[:, 0].copy()

    def _uplift(self, X: np.ndarray) -> np.ndarray:
        mu = self._outcomes(X)
        return mu[:, 1:] - mu[:, :1]

    def _outcomes(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict:
        """Learner-specific JSON state (e.g. the X-learner's propensity)."""
        return {}

    def _set_state(self, state: dict) -> None:
        pass

    def save(self, directory: str | Path) -> Path:
        """Write one LightGBM text model per booster and ``meta.json`` (last) into ``directory``."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        models = {}
        for i, (name, booster) in enumerate(self.boosters_.items()):
            file = f"model_{i:02d}.txt"
            text = booster.model_to_string(num_iteration=self.best_iterations_[name])
            atomic_write(d / file, lambda fh, s=text: fh.write(s.encode()))
            models[name] = {"file": file, "best_iteration": self.best_iterations_[name],
                            "training": self.training_.get(name, {})}
        meta = {
            "format_version": FORMAT_VERSION, "kind": self.kind, "class": type(self).__name__,
            "params": {k: _encode_param(v) for k, v in self.get_params().items()},
            "arm_names": self.arm_names_, "control_name": self.arm_names_[0],
            "treatment_names": self.treatment_names_, "outcome": self.outcome_,
            "features": self.encoder_.to_dict(), "n_rows": self.n_rows_, "models": models,
            "state": self._state(), "fit_seconds": getattr(self, "fit_seconds_", None),
            "selection": getattr(self, "selection_", None), "lightgbm_version": lgb.__version__,
        }
        atomic_write(d / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2, default=str).encode()),
                     sync_dir=True)
        # model files of an earlier, larger save into the same directory are no longer referenced
        keep = {spec["file"] for spec in models.values()}
        for stale in d.glob("model_*.txt"):
            if stale.name not in keep:
                stale.unlink()
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "UpliftLearner":
        """Load a model saved by :meth:`save` (must be of this class)."""
        m = load_uplift_model(directory)
        if not isinstance(m, cls):
            raise BundleError(f"{directory} holds a {type(m).__name__}, not a {cls.__name__}")
        return m


class SLearner(UpliftLearner):
    """One LightGBM model with the arm as a categorical feature (see the module docstring)."""

    kind = "s_learner"

    def _fit(self, X, codes, y, categorical):
        Xs = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float64)
        Xs[:, :-1] = X
        Xs[:, -1] = codes
        self._train("mu", Xs, y, self._objective(), [*categorical, X.shape[1]], seed=0)

    def _outcomes(self, X):
        Xs = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float64)
        Xs[:, :-1] = X
        out = np.empty((X.shape[0], len(self.arm_names_)), dtype=np.float64)
        for a in range(len(self.arm_names_)):
            Xs[:, -1] = a
            out[:, a] = self._predict_booster("mu", Xs)
        return out


class TLearner(UpliftLearner):
    """One LightGBM model per arm on that arm's rows (see the module docstring)."""

    kind = "t_learner"

    def _fit(self, X, codes, y, categorical):
        for a in range(len(self.arm_names_)):
            rows = codes == a
            self._train(f"mu_{a}", X[rows], y[rows], self._objective(), categorical, seed=a)

    def _outcomes(self, X):
        return np.column_stack([self._predict_booster(f"mu_{a}", X) for a in range(len(self.arm_names_))])


class XLearner(UpliftLearner):
    """T-learner outcome models, imputed effects, two effect models per treatment, propensity weighting.

    ``propensity`` (hyperparameter) says where ``g_a(x) = P(T=a | x, T in {control, a})``
    comes from:

    * ``"estimate"`` (default) -- a LightGBM classifier of the arm on ``x`` (multiclass
      for several treatments), fitted with the same hyperparameters; for a randomized
      campaign it comes out nearly constant, for observational data it corrects the
      weighting;
    * ``"constant"`` -- each arm's share of the training rows (right for a randomized
      campaign with a fixed split; no extra model);
    * a mapping ``{arm name: probability}`` -- the known assignment probabilities of
      the design (normalised within each pair).

    ``predict(X, propensity=...)`` may also be given ``g`` per row: shape ``(n,)`` for
    one treatment or ``(n, len(treatment_names_))``. ``g`` is clipped to
    ``[propensity_clip, 1 - propensity_clip]``.

    ``predict_outcomes`` returns the first-stage (T-learner) outcome models; the
    X-learner's uplift is not their difference but the weighted effect models.
    """

    kind = "x_learner"
    _extra_params = ("propensity", "propensity_clip")

    def __init__(self, *, propensity: Any = "estimate", propensity_clip: float = 0.01, **kwargs: Any):
        super().__init__(**kwargs)
        self.propensity = propensity
        self.propensity_clip = propensity_clip

    def _check_extra_params(self) -> None:
        p = self.propensity
        if isinstance(p, str):
            if p not in ("estimate", "constant"):
                raise PersonalizeError(f"XLearner: propensity must be 'estimate', 'constant' or a mapping of arm "
                                       f"to probability, got {p!r}")
        elif not isinstance(p, Mapping):
            raise PersonalizeError(f"XLearner: propensity must be 'estimate', 'constant' or a mapping of arm to "
                                   f"probability, got {type(p).__name__}")
        if not 0 <= float(self.propensity_clip) < 0.5:
            raise PersonalizeError(f"XLearner: propensity_clip must be in [0, 0.5), got {self.propensity_clip!r}")

    def _fit(self, X, codes, y, categorical):
        k = len(self.arm_names_)
        for a in range(k):
            rows = codes == a
            self._train(f"mu_{a}", X[rows], y[rows], self._objective(), categorical, seed=a)
        ctrl = codes == 0
        X0, y0 = X[ctrl], y[ctrl]
        mu0_treated = {}
        for a in range(1, k):
            rows = codes == a
            Xa = X[rows]
            mu0_treated[a] = (Xa, y[rows] - self._predict_booster("mu_0", Xa))
        for a in range(1, k):
            Xa, d1 = mu0_treated[a]
            self._train(f"tau1_{a}", Xa, d1, "regression", categorical, seed=100 + a)
            d0 = self._predict_booster(f"mu_{a}", X0) - y0
            self._train(f"tau0_{a}", X0, d0, "regression", categorical, seed=200 + a)
        self._fit_propensity(X, codes, categorical)

    def _fit_propensity(self, X, codes, categorical) -> None:
        k = len(self.arm_names_)
        p = self.propensity
        if isinstance(p, Mapping):
            given = {storable_scalar(a): float(v) for a, v in p.items()}
            missing = [a for a in self.arm_names_ if a not in given]
            if missing:
                raise DataError(f"propensity mapping lacks arm(s) {missing[:5]}", column="propensity")
            shares = np.array([given[a] for a in self.arm_names_])
            if not (np.isfinite(shares).all() and (shares > 0).all()):
                raise DataError("propensity mapping values must be positive probabilities", column="propensity")
            self.propensity_ = {"kind": "given", "shares": shares.tolist()}
        elif p == "constant":
            self.propensity_ = {"kind": "constant", "shares": (np.bincount(codes, minlength=k) / len(codes)).tolist()}
        else:
            if k == 2:
                self._train("propensity", X, (codes == 1).astype(np.float64), "binary", categorical, seed=300)
            else:
                self._train("propensity", X, codes.astype(np.float64), "multiclass", categorical, seed=300,
                            num_class=k)
            self.propensity_ = {"kind": "estimated"}

    def _state(self) -> dict:
        return {"propensity": self.propensity_}

    def _set_state(self, state: dict) -> None:
        self.propensity_ = dict(state["propensity"])

    def _pairwise_propensity(self, X: np.ndarray) -> np.ndarray:
        """g[:, j] = P(T = treatment j | x, T in {control, treatment j}), shape (n, k-1)."""
        k = len(self.arm_names_)
        if self.propensity_["kind"] in ("given", "constant"):
            s = np.asarray(self.propensity_["shares"], dtype=np.float64)
            g = s[1:] / (s[1:] + s[0])
            return np.broadcast_to(g, (X.shape[0], k - 1))
        p = self._predict_booster("propensity", X)
        if k == 2:
            return p[:, None]
        return p[:, 1:] / np.maximum(p[:, 1:] + p[:, :1], 1e-12)

    def predict(self, X: Any, *, propensity: Any = None) -> np.ndarray:
        """Uplift per row and treatment, ``(n, len(treatment_names_))``; ``propensity`` optionally
        overrides the pairwise propensity ``g`` per row (see the class docstring)."""
        self._check_fitted()
        Xm = self.encoder_.transform(X)
        g = None
        if propensity is not None:
            g = np.asarray(propensity, dtype=np.float64)
            k = len(self.treatment_names_)
            if g.ndim == 1 and k == 1:
                g = g[:, None]
            if g.shape != (Xm.shape[0], k):
                raise DataError(f"propensity must have shape ({Xm.shape[0]}, {k}) (or ({Xm.shape[0]},) for one "
                                f"treatment), got {np.shape(propensity)}", column="propensity")
            if not (np.isfinite(g).all() and ((g > 0) & (g < 1)).all()):
                raise DataError("propensity values must lie strictly between 0 and 1", column="propensity")
        return self._uplift(Xm, g)

    def _uplift(self, X, g=None):
        if g is None:
            g = self._pairwise_propensity(X)
        c = float(self.propensity_clip)
        g = np.clip(g, c, 1 - c)
        out = np.empty((X.shape[0], len(self.treatment_names_)), dtype=np.float64)
        for j, a in enumerate(range(1, len(self.arm_names_))):
            tau0 = self._predict_booster(f"tau0_{a}", X)
            tau1 = self._predict_booster(f"tau1_{a}", X)
            out[:, j] = g[:, j] * tau0 + (1 - g[:, j]) * tau1
        return out

    def _outcomes(self, X):
        return np.column_stack([self._predict_booster(f"mu_{a}", X) for a in range(len(self.arm_names_))])

    def _uplift_and_baseline(self, X):
        return self._uplift(X), self._predict_booster("mu_0", X)


class TransformedOutcomeLearner(UpliftLearner):
    """One model of the effect itself, per treatment arm, fitted on a transformed outcome.

    For arm ``a`` against control, on the rows of those two arms, with ``p`` the pairwise
    assignment probability ``P(T=a | T in {control, a})`` (constant in a randomized design):

    * **binary outcome -- class transformation** (Jaszewski & Lenarcik 2012, with weights
      for unequal arms): the label ``Z = Y`` on treated rows and ``Z = 1 - Y`` on control
      rows, weight ``1 / (2p)`` on treated and ``1 / (2(1 - p))`` on control rows (the two
      arms then weigh the same). Under those weights ``P(Z=1 | x) = (1 + tau(x)) / 2``, so a
      LightGBM classifier of ``Z`` gives ``tau_a(x) = 2 P(Z=1 | x) - 1``, in [-1, 1];
    * **continuous outcome -- transformed-outcome regression** (Athey & Imbens 2015):
      ``Y* = Y / p`` on treated rows and ``-Y / (1 - p)`` on control rows, whose
      conditional mean is ``tau(x)``; a LightGBM l2 regression of ``Y*``.

    Why: the S- and T-learner model the *outcome* and get the effect as a difference, so
    their trees are shaped by whatever predicts visiting at all; this learner spends every
    split on what changes the response to the treatment. The transformed label is very
    noisy, hence the shallow defaults (``num_leaves=4``, ``min_child_samples=400``,
    ``learning_rate=0.02``, up to 1,000 rounds with early stopping) -- chosen on validation
    folds inside the Hillstrom training rows, see ``benchmarks/bench_offers.py``. On
    Hillstrom's visit target the weighted-classification form beat the regression form
    (inner cross-validation uplift@30 % 0.079 vs 0.072).

    ``propensity``: ``"constant"`` (default: the arms' shares of the training rows, right
    for a randomized campaign with a fixed split) or a mapping ``{arm: probability}`` (the
    design's assignment probabilities, normalised within each pair).

    A control-arm outcome model ``mu_0`` (same hyperparameters) gives the baseline the
    coupon economics need: ``predict_outcomes`` returns ``mu_0`` and ``mu_0 + tau_a``
    (clipped to [0, 1] for a binary outcome) and ``predict_uplift_and_baseline`` returns
    ``(tau, mu_0)``; ``predict`` is ``tau`` itself, never derived from the clipped outcomes.
    """

    kind = "transformed_outcome"
    _extra_params = ("propensity",)

    def __init__(self, *, propensity: Any = "constant", num_leaves: int = 4, min_child_samples: int = 400,
                 learning_rate: float = 0.02, n_estimators: int = 1000, **kwargs: Any):
        super().__init__(num_leaves=num_leaves, min_child_samples=min_child_samples, learning_rate=learning_rate,
                         n_estimators=n_estimators, **kwargs)
        self.propensity = propensity

    def _check_extra_params(self) -> None:
        p = self.propensity
        if isinstance(p, str):
            if p != "constant":
                raise PersonalizeError(f"TransformedOutcomeLearner: propensity must be 'constant' or a mapping of "
                                       f"arm to probability, got {p!r}")
        elif not isinstance(p, Mapping):
            raise PersonalizeError(f"TransformedOutcomeLearner: propensity must be 'constant' or a mapping of arm "
                                   f"to probability, got {type(p).__name__}")

    def _shares(self, codes: np.ndarray) -> np.ndarray:
        k = len(self.arm_names_)
        if isinstance(self.propensity, Mapping):
            given = {storable_scalar(a): v for a, v in self.propensity.items()}
            missing = [a for a in self.arm_names_ if a not in given]
            if missing:
                raise DataError(f"propensity mapping lacks arm(s) {missing[:5]}", column="propensity")
            try:
                shares = np.array([float(given[a]) for a in self.arm_names_])
            except (TypeError, ValueError):
                raise DataError("propensity mapping values must be numbers", column="propensity") from None
            if not (np.isfinite(shares).all() and (shares > 0).all()):
                raise DataError("propensity mapping values must be positive probabilities", column="propensity")
            return shares
        return np.bincount(codes, minlength=k) / len(codes)

    def _fit(self, X, codes, y, categorical):
        shares = self._shares(codes)
        self.propensity_ = {"kind": "given" if isinstance(self.propensity, Mapping) else "constant",
                            "shares": shares.tolist()}
        ctrl = codes == 0
        self._train("mu_0", X[ctrl], y[ctrl], self._objective(), categorical, seed=0)
        for a in range(1, len(self.arm_names_)):
            rows = ctrl | (codes == a)
            treated = codes[rows] == a
            p = shares[a] / (shares[a] + shares[0])
            ya = y[rows]
            if self.outcome_ == "binary":
                z = np.where(treated, ya, 1.0 - ya)
                w = np.where(treated, 0.5 / p, 0.5 / (1.0 - p))
                self._train(f"tau_{a}", X[rows], z, "binary", categorical, seed=a, weight=w)
            else:
                z = ya * np.where(treated, 1.0 / p, -1.0 / (1.0 - p))
                self._train(f"tau_{a}", X[rows], z, "regression", categorical, seed=a)

    def _state(self) -> dict:
        return {"propensity": self.propensity_}

    def _set_state(self, state: dict) -> None:
        self.propensity_ = dict(state["propensity"])

    def _uplift(self, X):
        out = np.empty((X.shape[0], len(self.treatment_names_)), dtype=np.float64)
        for j, a in enumerate(range(1, len(self.arm_names_))):
            raw = self._predict_booster(f"tau_{a}", X)
            out[:, j] = 2.0 * raw - 1.0 if self.outcome_ == "binary" else raw
        return out

    def _outcomes(self, X):
        mu0 = self._predict_booster("mu_0", X)
        treated = mu0[:, None] + self._uplift(X)
        if self.outcome_ == "binary":
            treated = np.clip(treated, 0.0, 1.0)
        return np.column_stack([mu0, treated])

    def _uplift_and_baseline(self, X):
        return self._uplift(X), self._predict_booster("mu_0", X)


class UpliftEnsemble:
    """The mean of several fitted learners' predictions (by default an S-, T- and X-learner).

    Why: the three meta-learners make different errors -- the S-learner shrinks the effect,
    the T-learner's difference of two models is noisy, the X-learner depends on its
    first stage -- and on a small, noisy effect (an e-mail's few points of visit rate) the
    ranking of any one of them varies a lot with the training sample. Averaging their
    uplift estimates cancels part of that variance; it costs the sum of their training
    and scoring time. :func:`personalize.uplift.select_uplift_model` scores it as one more
    candidate (from the candidates it fitted anyway) and keeps it only when the validation
    fold prefers it.

    Hyperparameters (keyword-only, stored untouched): ``members`` (name -> unfitted learner;
    None = S-, T- and X-learner built from ``learner_params``), ``learner_params``.
    Fitted: ``members_`` (name -> fitted learner), ``arm_names_``, ``treatment_names_``,
    ``outcome_``. Saved as one sub-directory per member plus ``meta.json``.
    """

    kind: ClassVar[str] = "ensemble"
    bundle_kind: ClassVar[str] = "uplift"

    def __init__(self, *, members: Mapping[str, UpliftLearner] | None = None,
                 learner_params: Mapping[str, Any] | None = None):
        self.members = members
        self.learner_params = learner_params

    def get_params(self, deep: bool = True) -> dict:
        return {"members": self.members, "learner_params": self.learner_params}

    def clone(self) -> "UpliftEnsemble":
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        names = list(self.members) if self.members else ["s_learner", "t_learner", "x_learner"]
        return f"UpliftEnsemble(members={names})"

    def _member_specs(self) -> dict[str, UpliftLearner]:
        if self.members is None:
            p = dict(self.learner_params or {})
            base = {k: v for k, v in p.items() if k not in XLearner._extra_params}
            return {"s_learner": SLearner(**base), "t_learner": TLearner(**base), "x_learner": XLearner(**p)}
        if self.learner_params:
            raise PersonalizeError("UpliftEnsemble: give either members or learner_params, not both")
        if not self.members:
            raise PersonalizeError("UpliftEnsemble: members is empty")
        for name, m in self.members.items():
            if not isinstance(m, UpliftLearner):
                raise PersonalizeError(f"UpliftEnsemble: member {name!r} is a {type(m).__name__}, "
                                       "not an uplift learner")
        return dict(self.members)

    def fit(self, X: Any, treatment: Any, y: Any) -> "UpliftEnsemble":
        """Fit every member on the same rows."""
        t0 = time.perf_counter()
        fitted = {name: m.clone().fit(X, treatment, y) for name, m in self._member_specs().items()}
        self._set_members(fitted)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    @classmethod
    def from_fitted(cls, members: Mapping[str, UpliftLearner]) -> "UpliftEnsemble":
        """An ensemble of already fitted learners (they must share arms and outcome kind)."""
        ens = cls(members={k: m.clone() for k, m in members.items()})
        ens._set_members(dict(members))
        return ens

    def _set_members(self, fitted: dict[str, UpliftLearner]) -> None:
        first = next(iter(fitted.values()))
        for name, m in fitted.items():
            m._check_fitted()
            if m.arm_names_ != first.arm_names_ or m.outcome_ != first.outcome_:
                raise PersonalizeError(f"UpliftEnsemble: member {name!r} has arms {m.arm_names_} / outcome "
                                       f"{m.outcome_}, others {first.arm_names_} / {first.outcome_}")
        self.members_ = fitted
        self.arm_names_ = list(first.arm_names_)
        self.treatment_names_ = list(first.treatment_names_)
        self.outcome_ = first.outcome_
        self.feature_names_ = list(first.feature_names_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise NotFittedError("UpliftEnsemble is not fitted: call fit() or load_uplift_model() first")

    def predict(self, X: Any) -> np.ndarray:
        """Mean of the members' uplift, ``(n, len(treatment_names_))``."""
        self._check_fitted()
        return np.mean([m.predict(X) for m in self.members_.values()], axis=0)

    def predict_frame(self, X: Any) -> pd.DataFrame:
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame(self.predict(X), columns=pd.Index(self.treatment_names_, dtype=object), index=index)

    def predict_outcomes(self, X: Any) -> np.ndarray:
        """Mean of the members' expected outcomes per arm, ``(n, len(arm_names_))``."""
        self._check_fitted()
        return np.mean([m.predict_outcomes(X) for m in self.members_.values()], axis=0)

    def predict_uplift_and_baseline(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        parts = [m.predict_uplift_and_baseline(X) for m in self.members_.values()]
        return np.mean([u for u, _ in parts], axis=0), np.mean([b for _, b in parts], axis=0)

    def save(self, directory: str | Path) -> Path:
        """Each member into ``member_NN/`` (its own text models and meta.json), then ``meta.json``."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        members = []
        for i, (name, m) in enumerate(self.members_.items()):
            sub = f"member_{i:02d}"
            m.save(d / sub)
            members.append({"name": name, "dir": sub})
        meta = {"format_version": FORMAT_VERSION, "kind": self.kind, "class": type(self).__name__,
                "members": members, "arm_names": self.arm_names_, "treatment_names": self.treatment_names_,
                "outcome": self.outcome_, "selection": getattr(self, "selection_", None),
                "fit_seconds": getattr(self, "fit_seconds_", None)}
        atomic_write(d / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2, default=str).encode()),
                     sync_dir=True)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "UpliftEnsemble":
        m = load_uplift_model(directory)
        if not isinstance(m, cls):
            raise BundleError(f"{directory} holds a {type(m).__name__}, not a {cls.__name__}")
        return m

    @classmethod
    def _from_meta(cls, meta: dict, d: Path) -> "UpliftEnsemble":
        try:
            specs = [(str(x["name"]), str(x["dir"])) for x in meta["members"]]
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{d}: meta.json lists no valid members ({exc})") from None
        fitted = {}
        for name, sub in specs:
            m = load_uplift_model(d / sub)
            if isinstance(m, UpliftEnsemble):
                raise BundleError(f"{d / sub}: an ensemble cannot contain an ensemble")
            fitted[name] = m
        if not fitted:
            raise BundleError(f"{d}: ensemble without members")
        ens = cls.from_fitted(fitted)
        if meta.get("selection") is not None:
            ens.selection_ = meta["selection"]
        ens.fit_seconds_ = meta.get("fit_seconds")
        return ens


_CLASSES: dict[str, type[UpliftLearner]] = {c.kind: c for c in (SLearner, TLearner, XLearner,
                                                                 TransformedOutcomeLearner)}


def load_uplift_model(directory: str | Path) -> UpliftLearner | UpliftEnsemble:
    """Load any learner (S, T, X, transformed outcome) or an ensemble written by ``save`` (the class is read
    from ``meta.json``)."""
    d = Path(directory)
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise BundleError(f"{d}: not a saved uplift model (meta.json missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: corrupted JSON ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{meta_path}: unknown format_version {meta.get('format_version')!r} "
                          f"(this library reads {FORMAT_VERSION})")
    if meta.get("kind") == UpliftEnsemble.kind:
        return UpliftEnsemble._from_meta(meta, d)
    cls = _CLASSES.get(meta.get("kind"))
    if cls is None:
        raise BundleError(f"{meta_path}: unknown uplift model kind {meta.get('kind')!r}")
    try:
        params = {k: _decode_param(v) for k, v in meta["params"].items()}
        m = cls(**{k: v for k, v in params.items() if k in cls().get_params()})
        m.encoder_ = FeatureEncoder.from_dict(meta["features"])
        m.feature_names_ = list(m.encoder_.names)
        m.arm_names_ = list(meta["arm_names"])
        m.treatment_names_ = list(meta["treatment_names"])
        m.outcome_ = meta["outcome"]
        m.n_rows_ = dict(meta.get("n_rows", {}))
        m.fit_seconds_ = meta.get("fit_seconds")
        if meta.get("selection") is not None:
            m.selection_ = meta["selection"]
        boosters, best, training = {}, {}, {}
        for name, spec in meta["models"].items():
            path = d / spec["file"]
            if not path.is_file():
                raise BundleError(f"{d}: model file {spec['file']} listed in meta.json is missing")
            boosters[name] = lgb.Booster(model_file=str(path))
            best[name] = int(spec["best_iteration"])
            training[name] = spec.get("training", {})
        m._set_state(meta.get("state", {}))
        m.best_iterations_, m.training_ = best, training
        m.boosters_ = boosters
    except (KeyError, TypeError, ValueError, lgb.basic.LightGBMError) as exc:
        raise BundleError(f"{d}: cannot load uplift model ({type(exc).__name__}: {exc})") from None
    return m
