"""CUPED: variance reduction with pre-period covariates (Deng, Xu, Kohavi & Walker, 2013).

The outcome ``y`` of every customer is adjusted by her pre-period covariates
``x`` (measured before the exposure, so the treatment cannot change them):
``y_cuped = y - (x - mean(x)) @ theta`` with ``theta`` the least-squares slope
of ``y`` on ``x`` over all arms pooled (for one covariate ``cov(y, x) /
var(x)``). Arm means keep their expectation, so the lift is unbiased, and its
variance shrinks by the share of variance the covariates explain:
``variance_reduction_ = 1 - var(y_cuped) / var(y)`` (= corr(y, x)^2 for one
covariate).
"""

from __future__ import annotations

import numpy as np

from personalize.errors import DataError, NotFittedError

__all__ = ["Cuped"]


class Cuped:
    """Fit ``theta`` on pooled arms, then ``transform`` outcomes to their CUPED-adjusted values.

    Learned state: ``theta_`` (one slope per covariate), ``mean_x_``,
    ``variance_reduction_`` (fraction of the outcome's variance removed, 0..1)
    and ``n_`` (customers fitted on).
    """

    def __init__(self, *, names: list[str] | None = None) -> None:
        self.names = names  # covariate names, used in messages only

    def _xy(self, y, x) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y, dtype=np.float64).ravel()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] != len(y):
            raise DataError(f"CUPED covariates must have one row per customer: {x.shape[0]} rows for {len(y)} "
                            "outcomes")
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise DataError(f"CUPED covariate {self._name()} is missing (or not a number) for {int(bad.sum())} of "
                            f"{len(y)} customers; fill it (e.g. 0 spend for no purchases) or pick another",
                            table="features", column=self._name(), rows=np.flatnonzero(bad)[:5].tolist())
        if not np.isfinite(y).all():
            raise DataError("CUPED outcomes must be finite numbers")
        return y, x

    def _name(self) -> str:
        return ", ".join(self.names) if self.names else "x"

    def fit(self, y, x) -> "Cuped":
        y, x = self._xy(y, x)
        if len(y) < 3:
            raise DataError(f"CUPED needs at least 3 customers, got {len(y)}")
        xc = x - x.mean(axis=0)
        if (xc.var(axis=0) == 0).any():
            raise DataError(f"CUPED covariate {self._name()} is constant across customers: nothing to adjust with",
                            table="features", column=self._name())
        yc = y - y.mean()
        theta, *_ = np.linalg.lstsq(xc, yc, rcond=None)
        self.theta_ = theta
        self.mean_x_ = x.mean(axis=0)
        var_y = float(yc.var(ddof=1))
        adj = yc - xc @ theta
        self.variance_reduction_ = 0.0 if var_y == 0.0 else float(max(0.0, 1.0 - adj.var(ddof=1) / var_y))
        self.n_ = len(y)
        return self

    def transform(self, y, x) -> np.ndarray:
        if not hasattr(self, "theta_"):
            raise NotFittedError("Cuped is not fitted; call fit(y, x) first")
        y, x = self._xy(y, x)
        if x.shape[1] != len(self.theta_):
            raise DataError(f"CUPED was fitted on {len(self.theta_)} covariate(s), got {x.shape[1]}")
        return y - (x - self.mean_x_) @ self.theta_

    def fit_transform(self, y, x) -> np.ndarray:
        return self.fit(y, x).transform(y, x)
