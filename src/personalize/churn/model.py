"""Calibrated LightGBM propensity models: :class:`PropensityModel` and :class:`ChurnModel`.

Training (``fit``):

1. a *time-respecting* validation fold: when the training rows come from
   several cutoffs, the rows of the latest cutoff validate and the earlier
   ones train (the model is checked on the most recent period, as it will be
   used); with a single cutoff, a random ``validation_fraction`` of customers
   validates (a customer is never on both sides);
2. LightGBM (small trees, strong ``min_child_samples``, low learning rate)
   with early stopping on the validation log loss;
3. probability calibration chosen on the validation fold: isotonic and Platt
   scaling are each fitted on one half of it and scored (log loss) on the
   other half, both ways; the better one is refitted on the whole fold
   (``calibration="auto"``; or force ``"isotonic"``, ``"platt"``, ``"none"``);
4. refit: the booster is retrained on every row for the early-stopped number
   of rounds, and the calibrator fitted in step 3 maps its raw scores.
   ``refit="auto"`` (default) does this when the validation fold is the
   latest cutoff (otherwise the most recent period would never be learned);
   with a random customer hold-out the training rows already represent the
   period, and the early-stopped model is kept. ``True`` / ``False`` force it.

Scoring calls ``booster.predict`` on a float64 numpy array and maps the raw
score through the calibrator (``np.interp`` for isotonic, a logistic for
Platt). Risk bands are half-open probability ranges from ``bands``.
Per-customer reasons come from ``pred_contrib`` (:mod:`personalize.churn.reasons`).

Saved as ``model.txt`` (LightGBM text), ``meta.json`` (hyperparameters,
features, bands, calibrator kind/params, metrics) and ``calibration.npz``
(isotonic thresholds; ``allow_pickle=False``). No pickle.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from personalize import _sets
from personalize._atomic import atomic_write
from personalize._trees import predict_rows
from personalize._json import to_jsonable
from personalize._params import Params
from personalize.churn.metrics import binary_metrics
from personalize.churn.reasons import top_reasons
from personalize.churn.training_sets import PurchaseTarget, TrainingSet
from personalize.errors import BundleError, DataError, NotFittedError, PersonalizeError

__all__ = ["PropensityModel", "ChurnModel", "load_model", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_EPS = 1e-6


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _fit_platt(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of y on the raw score s (Newton steps, tiny ridge)."""
    a, b = 1.0, 0.0
    for _ in range(50):
        z = np.clip(a * s + b, -35, 35)
        p = 1.0 / (1.0 + np.exp(-z))
        w = p * (1 - p) + 1e-12
        g = np.array([np.dot(p - y, s) + 1e-6 * a, np.sum(p - y)])
        H = np.array([[np.dot(w, s * s) + 1e-6, np.dot(w, s)], [np.dot(w, s), np.sum(w)]])
        try:
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(a), float(b)


def _fit_isotonic(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
    return (np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64))


class _Calibrator:
    def __init__(self, kind: str, params: dict | None = None, x: np.ndarray | None = None,
                 y: np.ndarray | None = None):
        self.kind, self.params, self.x, self.y = kind, params or {}, x, y

    @classmethod
    def fit(cls, kind: str, s: np.ndarray, y: np.ndarray) -> "_Calibrator":
        if kind == "platt":
            a, b = _fit_platt(s, y)
            return cls("platt", {"a": a, "b": b})
        if kind == "isotonic":
            xs, ys = _fit_isotonic(s, y)
            return cls("isotonic", x=xs, y=ys)
        return cls("none")

    def __call__(self, s: np.ndarray) -> np.ndarray:
        if self.kind == "platt":
            z = np.clip(self.params["a"] * s + self.params["b"], -35, 35)
            return 1.0 / (1.0 + np.exp(-z))
        if self.kind == "isotonic":
            return np.clip(np.interp(s, self.x, self.y), _EPS, 1 - _EPS)
        return 1.0 / (1.0 + np.exp(-np.clip(s, -35, 35)))


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


#: kind -> class of every propensity model defined (subclasses register themselves: see __init_subclass__)
_KINDS: dict[str, type] = {}


class PropensityModel(Params):
    """Calibrated LightGBM classifier of a binary event in the next horizon (see module docstring).

    Fit on a :class:`~personalize.churn.training_sets.TrainingSet` (or a
    feature frame plus labels). Hyperparameters are keyword-only and stored
    untouched; fitted state ends with ``_``.

    ``bands``: sequence of ``(name, lower_bound)`` pairs with increasing
    bounds, the first being 0; a probability p gets the last band whose lower
    bound is <= p.
    """

    kind = "propensity"
    #: component kind when stored in a model bundle (personalize.store.publish)
    bundle_kind = "propensity"
    default_monotone: dict = {}
    default_bands: tuple[tuple[str, float], ...] = (("low", 0.0), ("medium", 0.3), ("high", 0.7))

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _KINDS[cls.kind] = cls

    def __init__(self, *, learning_rate: float = 0.02, n_estimators: int = 3000, num_leaves: int = 7,
                 max_depth: int = 3, min_child_samples: int = 200, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 5.0, max_bin: int = 255,
                 early_stopping_rounds: int = 300, validation_fraction: float = 0.2,
                 calibration: str = "auto", bands: Any = None, monotone: Any = None,
                 refit: bool | str = "auto", n_jobs: int | None = None, random_state: int = 0, verbose: bool = False):
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
        self.calibration = calibration
        self.bands = bands
        self.monotone = monotone
        self.refit = refit
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ params
    def _lgb_params(self) -> dict:
        p = {
            "objective": "binary", "metric": "binary_logloss", "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves), "max_depth": int(self.max_depth),
            "min_child_samples": int(self.min_child_samples), "bagging_fraction": float(self.subsample),
            "bagging_freq": 1 if self.subsample < 1 else 0, "feature_fraction": float(self.colsample_bytree),
            "lambda_l2": float(self.reg_lambda), "max_bin": int(self.max_bin), "seed": int(self.random_state),
            "deterministic": True, "force_col_wise": True, "verbose": -1, "feature_pre_filter": False,
        }
        if self.n_jobs is not None:
            p["num_threads"] = int(self.n_jobs)
        mono = self._monotone_map()
        if mono and hasattr(self, "feature_names_"):
            cons = [int(mono.get(f, 0)) for f in self.feature_names_]
            if any(cons):
                p["monotone_constraints"] = cons
                p["monotone_constraints_method"] = "advanced"
        return p

    def _monotone_map(self) -> dict:
        """Feature -> +1 (prediction rises with it) / -1 (falls) / 0; ``monotone="auto"`` uses
        the model's defaults, a dict gives them explicitly, None means no constraints."""
        m = self.monotone
        if m is None:
            return {}
        if isinstance(m, str):
            if m != "auto":
                raise PersonalizeError(f"monotone must be 'auto', a dict or None, got {m!r}")
            return dict(self.default_monotone)
        if not isinstance(m, dict) or any(v not in (-1, 0, 1) for v in m.values()):
            raise PersonalizeError(f"monotone must map feature names to -1, 0 or 1, got {m!r}")
        return dict(m)

    def _check_params(self) -> list[tuple[str, float]]:
        if not (0 < self.learning_rate <= 1):
            raise PersonalizeError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        if int(self.n_estimators) < 1:
            raise PersonalizeError(f"n_estimators must be >= 1, got {self.n_estimators}")
        if self.refit not in (True, False, "auto"):
            raise PersonalizeError(f"refit must be True, False or 'auto', got {self.refit!r}")
        if not (0 < self.validation_fraction < 1):
            raise PersonalizeError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.calibration not in ("auto", "isotonic", "platt", "none"):
            raise PersonalizeError(f"calibration must be auto, isotonic, platt or none, got {self.calibration!r}")
        return self._parse_bands(self.bands)

    def _parse_bands(self, bands) -> list[tuple[str, float]]:
        if bands is None:
            bands = self.default_bands
        if isinstance(bands, dict):
            bands = list(bands.items())
        try:
            parsed = [(str(n), float(lo)) for n, lo in bands]
        except (TypeError, ValueError):
            raise PersonalizeError(f"bands must be (name, lower_bound) pairs, got {bands!r}") from None
        los = [lo for _, lo in parsed]
        if not parsed or los[0] != 0.0 or any(b <= a for a, b in zip(los, los[1:])) or los[-1] >= 1.0:
            raise PersonalizeError(f"band lower bounds must start at 0 and increase below 1, got {los}")
        return parsed

    # ------------------------------------------------------------------ data
    @staticmethod
    def _unpack(X, y, cutoff, customer_id):
        if isinstance(X, TrainingSet):
            ts = X
            return ts.X, (ts.y if y is None else y), ts.cutoff, ts.customer_id, ts
        if not isinstance(X, pd.DataFrame):
            raise DataError("X must be a TrainingSet or a pandas DataFrame of features")
        return X, y, cutoff, customer_id, None

    def _matrix(self, X) -> np.ndarray:
        if isinstance(X, TrainingSet):
            X = X.X
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.feature_names_ if c not in X.columns]
            if missing:
                raise DataError(f"feature column(s) missing: {missing[:5]}", table="features", column=missing[0])
            X = X[self.feature_names_].to_numpy(dtype=np.float64)
        else:
            X = np.asarray(X, dtype=np.float64)
            if X.ndim == 1:
                X = X[None, :]
            if X.shape[1] != len(self.feature_names_):
                raise DataError(f"expected {len(self.feature_names_)} features, got {X.shape[1]}", table="features")
        return np.ascontiguousarray(X)

    def _split(self, n: int, cutoff, customer_id) -> tuple[np.ndarray, np.ndarray, str]:
        if cutoff is not None:
            cutoff = np.asarray(cutoff)
            uc = _sets.unique(cutoff)
            if len(uc) >= 2:
                va = cutoff == uc[-1]
                return np.flatnonzero(~va), np.flatnonzero(va), f"latest cutoff {pd.Timestamp(uc[-1]).date()}"
        rng = np.random.default_rng(self.random_state)
        if customer_id is not None:
            _, inv = np.unique(np.asarray(customer_id, dtype=object).astype(str), return_inverse=True)
            pick = rng.random(int(inv.max()) + 1) < self.validation_fraction
            va = pick[inv]
        else:
            va = rng.random(n) < self.validation_fraction
        return np.flatnonzero(~va), np.flatnonzero(va), f"random {self.validation_fraction:.0%} of customers"

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, *, cutoff=None, customer_id=None) -> "PropensityModel":
        """Fit on a TrainingSet, or a feature DataFrame ``X`` with labels ``y`` (and optional
        per-row ``cutoff`` / ``customer_id`` for the time-respecting / customer-level validation)."""
        t0 = time.perf_counter()
        bands = self._check_params()
        frame, y, cutoff, customer_id, ts = self._unpack(X, y, cutoff, customer_id)
        if y is None:
            raise DataError("labels are required to fit (the training set has none)", column="y")
        y = np.asarray(y).astype(np.float64).ravel()
        if len(y) != len(frame):
            raise DataError(f"{len(frame)} feature rows but {len(y)} labels", column="y")
        if not _sets.isin(y, (0.0, 1.0)).all():
            raise DataError("labels must be 0 or 1", column="y", rows=np.flatnonzero(~_sets.isin(y, (0, 1)))[:5].tolist())
        non_num = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_num:
            raise DataError("feature columns must be numeric", table="features", column=non_num[0])
        self.feature_names_ = [str(c) for c in frame.columns]
        Xm = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
        tr, va, how = self._split(len(y), cutoff, customer_id)
        for part, rows in (("training", tr), ("validation", va)):
            if len(rows) == 0 or _sets.unique(y[rows]).size < 2:
                raise DataError(f"the {part} fold ({how}) needs both classes; got "
                                f"{int(y[rows].sum()) if len(rows) else 0} positives in {len(rows)} rows")
        params = self._lgb_params()
        # bin once (feature values only, no labels) and train / validate on subsets of it; the refit
        # reuses the same binned data
        dall = lgb.Dataset(Xm, y, feature_name=self.feature_names_, free_raw_data=False,
                           params={"max_bin": int(self.max_bin), "feature_pre_filter": False, "verbose": -1})
        dall.construct()
        dtr, dva = dall.subset(tr), dall.subset(va)
        callbacks = [lgb.early_stopping(int(self.early_stopping_rounds), first_metric_only=True,
                                        verbose=bool(self.verbose))]
        booster = lgb.train(params, dtr, num_boost_round=int(self.n_estimators), valid_sets=[dva],
                            valid_names=["validation"], callbacks=callbacks)
        best = int(booster.best_iteration) or booster.current_iteration()
        s_va = booster.predict(Xm[va], num_iteration=best, raw_score=True)
        y_va = y[va]
        choice, scores = self._choose_calibration(s_va, y_va, customer_id, va)
        refitted = self.refit is True or (self.refit == "auto" and how.startswith("latest cutoff"))
        if refitted:
            # same number of rounds on every row (the latest cutoff included); the calibrator stays the
            # one fitted on the held-out scores of the early-stopped model
            booster = lgb.train(params, dall, num_boost_round=best)
        self.booster_ = booster
        self.best_iteration_ = best
        self.calibrator_ = _Calibrator.fit(choice, s_va, y_va)
        self.bands_ = bands
        p_va = self.calibrator_(s_va)
        self.validation_ = {"rows": int(len(va)), "split": how, "positive_rate": float(y_va.mean()),
                            "calibration_log_loss": scores, **binary_metrics(y_va, p_va)}
        self.n_train_ = int(len(y) if refitted else len(tr))
        self.refitted_ = bool(refitted)
        self.horizon_days_ = float(ts.horizon_days) if ts is not None else None
        self.target_ = ts.target if ts is not None else ("churn" if self.kind == "churn" else None)
        self.training_meta_ = {"cutoffs": [pd.Timestamp(c).isoformat() for c in _sets.unique(cutoff)]
                               if cutoff is not None else None,
                               "target": (ts.meta.get("target") if ts is not None else None),
                               "bgnbd_params": (ts.meta.get("bgnbd_params") if ts is not None else None)}
        self.fit_seconds_ = time.perf_counter() - t0
        self.trained_at_ = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return self

    def _choose_calibration(self, s, y, customer_id, va) -> tuple[str, dict]:
        if self.calibration != "auto":
            return self.calibration, {}
        rng = np.random.default_rng(self.random_state + 1)
        half = rng.random(len(s)) < 0.5
        scores = {"isotonic": 0.0, "platt": 0.0}
        ok = True
        for a, b in ((half, ~half), (~half, half)):
            if _sets.unique(y[a]).size < 2 or b.sum() == 0:
                ok = False
                break
            for kind in scores:
                cal = _Calibrator.fit(kind, s[a], y[a])
                scores[kind] += _logloss(y[b], cal(s[b])) / 2
        if not ok:
            return "platt", {}
        return min(scores, key=scores.get), {k: round(v, 6) for k, v in scores.items()}

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load_model() first")

    def decision_function(self, X) -> np.ndarray:
        """Raw LightGBM score (log-odds before calibration)."""
        self._check_fitted()
        return predict_rows(self.booster_, self._matrix(X), num_iteration=self.best_iteration_, raw_score=True,
                            num_threads=self.n_jobs if self.n_jobs is not None else 0)

    def predict_probability(self, X) -> np.ndarray:
        """Calibrated P(event) per row (1-D); the hot path."""
        raw = self.decision_function(X)
        return self.calibrator_(raw)

    def predict_proba(self, X) -> np.ndarray:
        """scikit-learn style (n, 2) array: P(no event), P(event)."""
        p = self.predict_probability(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X, threshold: float = 0.5) -> np.ndarray:
        return (self.predict_probability(X) >= threshold).astype(np.int8)

    def band(self, probability) -> np.ndarray:
        """Band name of each probability."""
        self._check_fitted()
        p = np.asarray(probability, dtype=np.float64)
        names = np.array([n for n, _ in self.bands_], dtype=object)
        los = np.array([lo for _, lo in self.bands_])
        return names[np.clip(np.searchsorted(los, p, side="right") - 1, 0, len(los) - 1)]

    def contributions(self, X) -> pd.DataFrame:
        """Per-row feature contributions to the raw score (``pred_contrib``), plus ``bias``."""
        self._check_fitted()
        c = self.booster_.predict(self._matrix(X), num_iteration=self.best_iteration_, pred_contrib=True)
        return pd.DataFrame(c, columns=[*self.feature_names_, "bias"])

    def explain(self, X, n: int = 3, *, currency: str = "$", positive_only: bool = True,
                direction: str = "predicted") -> list[list[dict]]:
        """Top ``n`` reasons per row, in marketer words: by default those pushing the probability the way it
        went from the average (a low-risk customer gets what keeps her risk low, "lowers it: ...");
        ``direction="up"`` lists only what raises it (:func:`personalize.churn.reasons.top_reasons`)."""
        self._check_fitted()
        Xm = self._matrix(X)
        c = self.booster_.predict(Xm, num_iteration=self.best_iteration_, pred_contrib=True)
        label = self._target_label()
        return top_reasons(c, Xm, self.feature_names_, n=n, positive_only=positive_only,
                           horizon_days=self.horizon_days_ or 90.0, currency=currency, target_label=label,
                           direction=direction)

    def _target_label(self) -> str:
        t = PurchaseTarget.from_dict((getattr(self, "training_meta_", {}) or {}).get("target"))
        if t is None:
            return "the target"
        if t.category is not None:
            return f"category {t.category}"
        return "these items" if t.items and len(t.items) > 1 else f"item {t.items[0]}"

    def score(self, data: TrainingSet | pd.DataFrame, *, reasons: int = 0, currency: str = "$") -> pd.DataFrame:
        """Frame of ``customer_id`` (for a TrainingSet), ``probability``, ``band`` and optional ``reasons``."""
        p = self.predict_probability(data)
        out = pd.DataFrame({"probability": p, "band": self.band(p)})
        if isinstance(data, TrainingSet):
            out.insert(0, "customer_id", pd.array(data.customer_id, dtype="str"))
        if reasons:
            out["reasons"] = [[r["reason"] for r in rs] for rs in self.explain(data, n=reasons, currency=currency)]
        return out

    def feature_importance(self, kind: str = "gain") -> pd.DataFrame:
        """Global importance per feature (``gain`` share and ``split`` count), largest first."""
        self._check_fitted()
        gain = self.booster_.feature_importance("gain", iteration=self.best_iteration_)
        split = self.booster_.feature_importance("split", iteration=self.best_iteration_)
        tot = gain.sum() or 1.0
        df = pd.DataFrame({"feature": self.feature_names_, "gain": gain / tot, "split": split.astype(np.int64)})
        if kind not in ("gain", "split"):
            raise PersonalizeError(f"kind must be gain or split, got {kind!r}")
        return df.sort_values(kind, ascending=False, kind="stable").reset_index(drop=True)

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict:
        params = self.get_params()  # as given (the resolved bands are saved as "bands")
        return {
            "kind": self.kind, "format_version": FORMAT_VERSION, "hyperparameters": params,
            "feature_names": self.feature_names_, "best_iteration": self.best_iteration_,
            "bands": [list(b) for b in self.bands_], "calibrator": {"kind": self.calibrator_.kind,
                                                                      "params": self.calibrator_.params},
            "validation": self.validation_, "n_train": self.n_train_, "refitted": self.refitted_,
            "horizon_days": self.horizon_days_,
            "target": self.target_, "training": self.training_meta_, "trained_at": self.trained_at_,
            "fit_seconds": self.fit_seconds_, "lightgbm_version": lgb.__version__,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``model.txt``, ``calibration.npz`` and ``meta.json`` (each atomically) into ``directory``."""
        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write(d / "model.txt", self.booster_.model_to_string(num_iteration=self.best_iteration_).encode())
        buf = io.BytesIO()
        cal = self.calibrator_
        np.savez(buf, x=cal.x if cal.x is not None else np.zeros(0), y=cal.y if cal.y is not None else np.zeros(0))
        _atomic_write(d / "calibration.npz", buf.getvalue())
        _atomic_write(d / "meta.json", json.dumps(to_jsonable(self._meta()), indent=2, allow_nan=False).encode())
        return d

    @classmethod
    def _from_meta(cls, meta: dict, d: Path) -> "PropensityModel":
        hp = dict(meta.get("hyperparameters", {}))
        if isinstance(hp.get("bands"), list):
            hp["bands"] = tuple(tuple(b) for b in hp["bands"])
        m = cls(**{k: v for k, v in hp.items() if k in cls().get_params()})
        m.booster_ = lgb.Booster(model_file=str(d / "model.txt"))
        m.feature_names_ = list(meta["feature_names"])
        if m.booster_.feature_name() != m.feature_names_:
            raise BundleError(f"{d}: model.txt features do not match meta.json")
        m.best_iteration_ = int(meta["best_iteration"])
        with np.load(d / "calibration.npz", allow_pickle=False) as z:
            xs, ys = z["x"], z["y"]
        c = meta["calibrator"]
        m.calibrator_ = _Calibrator(c["kind"], c.get("params"), xs if len(xs) else None, ys if len(ys) else None)
        m.bands_ = [(str(n), float(lo)) for n, lo in meta["bands"]]
        m.validation_ = meta.get("validation")
        m.n_train_ = meta.get("n_train")
        m.refitted_ = bool(meta.get("refitted", False))
        m.horizon_days_ = meta.get("horizon_days")
        m.target_ = meta.get("target")
        m.training_meta_ = meta.get("training") or {}
        m.trained_at_ = meta.get("trained_at")
        m.fit_seconds_ = meta.get("fit_seconds")
        return m

    @classmethod
    def load(cls, directory: str | Path) -> "PropensityModel":
        m = load_model(directory)
        if not isinstance(m, cls):
            raise BundleError(f"{directory} holds a {type(m).__name__}, not a {cls.__name__}")
        return m


class ChurnModel(PropensityModel):
    """P(no purchase in the next horizon), calibrated, with risk bands and reasons.

    Same machinery as :class:`PropensityModel`; ``predict_risk`` is
    ``predict_probability``. Default bands: low < 0.3 <= medium < 0.7 <= high.
    """

    kind = "churn"
    bundle_kind = "churn"
    #: churn rises with time since the last purchase and falls with expected purchases (BG/NBD)
    default_monotone = {"recency_days": 1, "bgnbd_expected": -1, "bgnbd_p_none": 1, "purchases": -1}

    def predict_risk(self, X) -> np.ndarray:
        """Calibrated churn probability per row."""
        return self.predict_probability(X)




_KINDS[PropensityModel.kind] = PropensityModel


def load_model(directory: str | Path) -> PropensityModel:
    """Load a model written by ``save`` (the kind is read from ``meta.json``)."""
    d = Path(directory)
    meta_path = d / "meta.json"
    if not meta_path.exists() or not (d / "model.txt").exists():
        raise BundleError(f"{d}: not a saved churn/propensity model (meta.json or model.txt missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{meta_path}: corrupted JSON ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{meta_path}: unknown format_version {meta.get('format_version')!r}")
    cls = _KINDS.get(meta.get("kind"))
    if cls is None:
        raise BundleError(f"{meta_path}: unknown model kind {meta.get('kind')!r}")
    try:
        return cls._from_meta(meta, d)
    except (KeyError, ValueError, lgb.basic.LightGBMError) as exc:
        raise BundleError(f"{d}: cannot load model ({exc})") from None
