"""Input handling shared by the uplift learners: feature matrices, treatment arms, outcomes.

Why a module of its own: every learner (and the model selection) must turn the
same user input -- a numpy array or a pandas DataFrame with numeric and
categorical columns, a vector of arm names, an outcome -- into the float64
matrix LightGBM's ``Booster.predict`` takes on the hot path, and must do it
identically at ``fit``, at ``predict`` and after ``load``. The encoding is
therefore a small, JSON-serialisable object (:class:`FeatureEncoder`), not
pandas state hidden in a model.

Categorical columns are mapped to integer codes (their sorted distinct values
seen in ``fit``); a value not seen in ``fit`` or a missing value becomes NaN,
which LightGBM sends down the "missing / other" side of a categorical split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from personalize import _sets
from personalize.errors import DataError, PersonalizeError

__all__ = ["FeatureEncoder", "parse_treatment", "parse_outcome", "storable_scalar"]


def storable_scalar(v: Any) -> Any:
    """A numpy/pandas scalar as the plain Python value ``json`` writes (arm names, categories)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    raise DataError(f"value {v!r} of type {type(v).__name__} cannot be stored; use strings or numbers")


def _is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)) or isinstance(
        s.dtype, pd.CategoricalDtype)


class FeatureEncoder:
    """Column names, categorical columns and their categories, learned once in :meth:`fit`.

    ``categorical``: ``"auto"`` treats every non-numeric DataFrame column (``str``,
    ``object``, ``category``) as categorical; a list of column names (DataFrame) or
    positions (numpy or DataFrame) forces those columns to be categorical too (e.g.
    integer-coded store ids), the non-numeric ones are added automatically.
    """

    def __init__(self, names: list[str], categories: dict[int, list], from_frame: bool):
        self.names = names
        self.categories = categories  # column position -> sorted distinct values seen in fit
        self.from_frame = from_frame
        self._index = {j: pd.Index(v) for j, v in categories.items()}

    # ------------------------------------------------------------------ fit
    @classmethod
    def fit(cls, X: Any, categorical: Any = "auto") -> "FeatureEncoder":
        if isinstance(X, pd.DataFrame):
            if X.shape[1] == 0:
                raise DataError("X has no feature columns", table="features")
            names = [str(c) for c in X.columns]
            if len(set(names)) != len(names):
                dup = next(n for n in names if names.count(n) > 1)
                raise DataError("duplicate feature column name", table="features", column=dup)
            forced = cls._forced(categorical, names)
            cats: dict[int, list] = {}
            for j, name in enumerate(names):
                s = X.iloc[:, j]
                if j in forced or _is_categorical(s):
                    values = pd.unique(s.dropna())
                    try:
                        cats[j] = [storable_scalar(v) for v in sorted(values)]
                    except TypeError:
                        raise DataError("categorical column mixes strings and numbers", table="features",
                                        column=name) from None
            return cls(names, cats, True)
        arr = cls._numeric_array(X)
        names = [f"x{j}" for j in range(arr.shape[1])]
        forced = cls._forced(categorical, names)
        cats = {j: [storable_scalar(v) for v in _sets.unique(arr[:, j][~np.isnan(arr[:, j])])] for j in sorted(forced)}
        return cls(names, cats, False)

    @staticmethod
    def _forced(categorical: Any, names: list[str]) -> set[int]:
        if isinstance(categorical, str):
            if categorical != "auto":
                raise PersonalizeError(f"categorical_features must be 'auto' or a list of columns, got {categorical!r}")
            return set()
        if categorical is None:
            return set()
        out = set()
        for c in categorical:
            if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                if not 0 <= int(c) < len(names):
                    raise PersonalizeError(f"categorical_features: column position {c} is out of range "
                                           f"(X has {len(names)} columns)")
                out.add(int(c))
            elif str(c) in names:
                out.add(names.index(str(c)))
            else:
                raise PersonalizeError(f"categorical_features: column {c!r} is not in X")
        return out

    @staticmethod
    def _numeric_array(X: Any) -> np.ndarray:
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("a numpy feature matrix must be numeric; pass a pandas DataFrame for "
                            "string (categorical) columns", table="features") from None
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise DataError(f"X must be a 2-D matrix with at least one column, got shape {arr.shape}",
                            table="features")
        return arr

    # ------------------------------------------------------------------ transform
    @property
    def categorical_positions(self) -> list[int]:
        return sorted(self.categories)

    def transform(self, X: Any) -> np.ndarray:
        """The float64, C-contiguous matrix LightGBM predicts on (categoricals as codes, unknown -> NaN)."""
        if isinstance(X, pd.DataFrame):
            missing = [n for n in self.names if n not in X.columns.astype(str)]
            if missing:
                raise DataError(f"feature column(s) missing: {missing[:5]}", table="features", column=missing[0])
            cols = X.columns.astype(str)
            if not self.categories:
                part = X if list(cols) == self.names else X.iloc[:, cols.get_indexer(self.names)]
                try:
                    return self._finite_check(np.ascontiguousarray(part.to_numpy(dtype=np.float64)))
                except (TypeError, ValueError):
                    bad = next((c for c in part.columns if not (pd.api.types.is_numeric_dtype(part[c])
                                                               or pd.api.types.is_bool_dtype(part[c]))), None)
                    raise DataError("expected a numeric column (it was numeric in fit)", table="features",
                                    column=str(bad) if bad is not None else None) from None
            out = np.empty((len(X), len(self.names)), dtype=np.float64)
            for j, name in enumerate(self.names):
                s = X.iloc[:, cols.get_loc(name)]
                if j in self.categories:
                    out[:, j] = self._codes(j, s.to_numpy(dtype=object))
                else:
                    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                        raise DataError("expected a numeric column (it was numeric in fit)", table="features",
                                        column=name)
                    out[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            return self._finite_check(out)
        if self.from_frame and self.categories:
            raise DataError("this model was fitted on a DataFrame with categorical columns "
                            f"{[self.names[j] for j in self.categorical_positions][:5]}: pass a DataFrame",
                            table="features")
        arr = self._numeric_array(X)
        if arr.shape[1] != len(self.names):
            raise DataError(f"expected {len(self.names)} feature columns, got {arr.shape[1]}", table="features")
        if self.categories:
            arr = arr.copy()
            for j in self.categories:
                arr[:, j] = self._codes(j, arr[:, j])
        return self._finite_check(np.ascontiguousarray(arr))

    def _codes(self, j: int, values: np.ndarray) -> np.ndarray:
        codes = self._index[j].get_indexer(pd.Index(values)).astype(np.float64)
        codes[codes < 0] = np.nan
        return codes

    def _finite_check(self, arr: np.ndarray) -> np.ndarray:
        if np.isinf(arr).any():
            j = int(np.flatnonzero(np.isinf(arr).any(axis=0))[0])
            raise DataError("infinite feature value (use NaN for missing)", table="features", column=self.names[j],
                            rows=np.flatnonzero(np.isinf(arr[:, j]))[:5].tolist())
        return arr

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"names": self.names, "from_frame": self.from_frame,
                "categorical": {self.names[j]: v for j, v in sorted(self.categories.items())}}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureEncoder":
        names = [str(n) for n in d["names"]]
        cats = {names.index(n): list(v) for n, v in d.get("categorical", {}).items()}
        return cls(names, cats, bool(d.get("from_frame", True)))


def parse_treatment(treatment: Any, n: int, control_name: Any) -> tuple[np.ndarray, list, list]:
    """Arm index per row (0 = control, 1..k = treatments in sorted order), the arm names, the treatment names.

    Arm names may be strings or numbers (not a mix); ``control_name`` must be one of them
    and at least one other arm must be present.
    """
    t = np.asarray(treatment.to_numpy(dtype=object) if isinstance(treatment, pd.Series) else treatment, dtype=object)
    if t.ndim != 1:
        raise DataError(f"treatment must be 1-D, got shape {t.shape}", column="treatment")
    if len(t) != n:
        raise DataError(f"{n} feature rows but {len(t)} treatment values", column="treatment")
    miss = pd.isna(t)
    if miss.any():
        raise DataError("treatment has missing values", column="treatment", rows=np.flatnonzero(miss)[:5].tolist())
    try:
        arms = sorted({storable_scalar(v) for v in pd.unique(t)})
    except TypeError:
        raise DataError("treatment mixes strings and numbers; use one kind of arm name", column="treatment") from None
    control = storable_scalar(control_name)
    if control not in arms:
        raise DataError(f"control_name {control_name!r} is not among the treatment values {arms[:10]}",
                        column="treatment")
    treatments = [a for a in arms if a != control]
    if not treatments:
        raise DataError(f"treatment holds only the control arm {control_name!r}; need at least one treated arm",
                        column="treatment")
    order = [control, *treatments]
    first, uniques = pd.factorize(t)  # hashing, not a Python loop per row
    position = {a: i for i, a in enumerate(order)}
    remap = np.array([position[storable_scalar(u)] for u in uniques], dtype=np.int32)
    codes = remap[first]
    return codes, order, treatments


def parse_outcome(y: Any, n: int, outcome: str) -> tuple[np.ndarray, str]:
    """Outcome as float64 and its kind (``binary`` if every value is 0/1 under ``outcome="auto"``)."""
    if outcome not in ("auto", "binary", "continuous"):
        raise PersonalizeError(f"outcome must be 'auto', 'binary' or 'continuous', got {outcome!r}")
    try:
        arr = np.asarray(y.to_numpy() if isinstance(y, pd.Series) else y, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DataError("outcome must be numeric", column="y") from None
    if len(arr) != n:
        raise DataError(f"{n} feature rows but {len(arr)} outcome values", column="y")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError("outcome has missing or infinite values", column="y", rows=np.flatnonzero(bad)[:5].tolist())
    is01 = bool(_sets.isin(arr, (0.0, 1.0)).all())
    if outcome == "binary" and not is01:
        raise DataError("a binary outcome must be 0 or 1", column="y",
                        rows=np.flatnonzero(~_sets.isin(arr, (0.0, 1.0)))[:5].tolist())
    kind = outcome if outcome != "auto" else ("binary" if is01 else "continuous")
    return arr, kind


def check_rows(codes: np.ndarray, y: np.ndarray, kind: str, order: Sequence, min_rows: int) -> None:
    """Every arm needs ``min_rows`` rows and, for a binary outcome, both outcome values."""
    counts = np.bincount(codes, minlength=len(order))
    for i, arm in enumerate(order):
        if counts[i] < min_rows:
            raise DataError(f"arm {arm!r} has {int(counts[i])} rows; at least {min_rows} are needed",
                            column="treatment")
        if kind == "binary":
            pos = float(y[codes == i].sum())
            if pos == 0 or pos == counts[i]:
                raise DataError(f"binary outcome is constant ({int(pos > 0)}) in arm {arm!r}: its response "
                                "cannot be learned", column="y")
