"""The statistics behind a readout, as thin wrappers over statsmodels and scipy.

Every interval is two-sided at level ``1 - alpha``. Functions return plain
floats (or ``None`` with a reason where a quantity is undefined: never NaN).

* conversion rate: Wilson score interval
  (``statsmodels.stats.proportion.proportion_confint(method="wilson")``);
* difference of two rates: Newcomb's hybrid score interval (method 10 of
  Newcomb 1998, built from the two Wilson intervals; closed form, good
  coverage down to small arms), ``confint_proportions_2indep(method="newcomb")``,
  and the score test ``test_proportions_2indep(method="score",
  correction=False)``, which at difference 0 is the pooled two-sample z test
  (``proportions_ztest``). (statsmodels' inverted score interval would match
  that test exactly, but its root bracketing fails on about a third of
  small-arm count tables, so it is not used.);
* ratio of two rates: delta method on the log of the ratio (Katz),
  ``confint_proportions_2indep(compare="ratio", method="log")``; the relative
  lift is ratio - 1;
* mean revenue per customer: t interval (``scipy.stats.ttest_1samp``) and
  percentile bootstrap (``scipy.stats.bootstrap``);
* difference of two means: Welch's t interval and test
  (``scipy.stats.ttest_ind(equal_var=False)``) and percentile bootstrap;
* ratio of two means: delta method on the log of the ratio,
  ``var(log m1 - log m0) ~ s1^2 / (n1 m1^2) + s0^2 / (n0 m0^2)``;
* several arms: Holm's step-down adjustment (equal to
  ``statsmodels.stats.multitest.multipletests(method="holm")``, see :func:`holm`).

The bootstrap is the percentile method: BCa needs a jackknife over every
customer (quadratic in the arm size), which costs minutes at 20,000 per arm.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sst

from personalize.errors import DataError

__all__ = ["Estimate", "rate_interval", "rate_difference", "rate_ratio", "mean_interval", "mean_difference",
           "mean_ratio", "bootstrap_mean", "bootstrap_difference", "holm"]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval and (for comparisons) a two-sided p-value.

    ``value``/``low``/``high``/``p_value`` are None exactly when ``note`` says why.
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    note: str | None = None

    @property
    def defined(self) -> bool:
        return self.value is not None

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)


def _undefined(note: str) -> Estimate:
    return Estimate(None, None, None, None, note)


def _f(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}")
    return alpha


def rate_interval(count: int, n: int, *, alpha: float = 0.05) -> Estimate:
    """Conversion rate ``count / n`` with the Wilson score interval."""
    from statsmodels.stats.proportion import proportion_confint

    alpha = _check_alpha(alpha)
    if n <= 0:
        return _undefined("no customers")
    lo, hi = proportion_confint(int(count), int(n), alpha=alpha, method="wilson")
    return Estimate(count / n, float(lo), float(hi))


def rate_difference(c1: int, n1: int, c0: int, n0: int, *, alpha: float = 0.05) -> Estimate:
    """Treatment rate minus control rate: Newcomb interval and score test (= pooled z test)."""
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    alpha = _check_alpha(alpha)
    if n1 <= 0 or n0 <= 0:
        return _undefined("an arm has no customers")
    diff = c1 / n1 - c0 / n0
    pooled = (c1 + c0) / (n1 + n0)
    if pooled in (0.0, 1.0):
        what = "no conversions" if pooled == 0.0 else "every customer converted"
        return Estimate(diff, note=f"{what} in either arm: the difference has no variance, no interval or test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = confint_proportions_2indep(c1, n1, c0, n0, method="newcomb", compare="diff", alpha=alpha)
        p = test_proportions_2indep(c1, n1, c0, n0, method="score", compare="diff", correction=False).pvalue
    return Estimate(diff, _f(lo), _f(hi), _f(p))


def rate_ratio(c1: int, n1: int, c0: int, n0: int, *, alpha: float = 0.05) -> Estimate:
    """Relative lift ``p1 / p0 - 1`` with the delta-method interval on the log ratio."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    alpha = _check_alpha(alpha)
    if n1 <= 0 or n0 <= 0:
        return _undefined("an arm has no customers")
    if c0 == 0:
        return _undefined("no conversions in the control arm: a relative lift is undefined")
    if c1 == 0:
        return _undefined("no conversions in the treatment arm: the log-ratio interval is undefined")
    lo, hi = confint_proportions_2indep(c1, n1, c0, n0, method="log", compare="ratio", alpha=alpha)
    return Estimate((c1 / n1) / (c0 / n0) - 1.0, float(lo) - 1.0, float(hi) - 1.0)


def _arr(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.isfinite(a).all():
        raise DataError("revenue values must be finite numbers", column="revenue")
    return a


def mean_interval(x, *, alpha: float = 0.05) -> Estimate:
    """Mean with the t interval (n - 1 degrees of freedom)."""
    alpha = _check_alpha(alpha)
    x = _arr(x)
    if len(x) == 0:
        return _undefined("no customers")
    m = float(x.mean())
    if len(x) < 2 or float(x.var(ddof=1)) == 0.0:
        return Estimate(m, None, None, None, "every value is the same: no interval")
    ci = sst.ttest_1samp(x, 0.0).confidence_interval(1.0 - alpha)
    return Estimate(m, float(ci.low), float(ci.high))


def mean_difference(x1, x0, *, alpha: float = 0.05) -> Estimate:
    """Mean of ``x1`` minus mean of ``x0``: Welch's t interval and two-sided Welch test."""
    alpha = _check_alpha(alpha)
    x1, x0 = _arr(x1), _arr(x0)
    if len(x1) < 2 or len(x0) < 2:
        return _undefined("an arm has fewer than 2 customers")
    diff = float(x1.mean() - x0.mean())
    if float(x1.var(ddof=1)) == 0.0 and float(x0.var(ddof=1)) == 0.0:
        return Estimate(diff, None, None, None, "no variation in either arm: no interval or test")
    res = sst.ttest_ind(x1, x0, equal_var=False)
    ci = res.confidence_interval(1.0 - alpha)
    return Estimate(diff, float(ci.low), float(ci.high), _f(res.pvalue))


def mean_ratio(x1, x0, *, alpha: float = 0.05) -> Estimate:
    """Relative lift ``mean(x1) / mean(x0) - 1``, delta-method interval on the log ratio (normal quantile)."""
    alpha = _check_alpha(alpha)
    x1, x0 = _arr(x1), _arr(x0)
    if len(x1) < 2 or len(x0) < 2:
        return _undefined("an arm has fewer than 2 customers")
    m1, m0 = float(x1.mean()), float(x0.mean())
    if m0 <= 0:
        return _undefined("control mean is not positive: a relative lift is undefined")
    if m1 <= 0:
        return _undefined("treatment mean is not positive: the log-ratio interval is undefined")
    se = math.sqrt(x1.var(ddof=1) / (len(x1) * m1 ** 2) + x0.var(ddof=1) / (len(x0) * m0 ** 2))
    z = float(sst.norm.ppf(1.0 - alpha / 2.0))
    log_r = math.log(m1 / m0)
    return Estimate(m1 / m0 - 1.0, math.exp(log_r - z * se) - 1.0, math.exp(log_r + z * se) - 1.0)


def _batch(n: int) -> int:
    return max(1, min(1000, 4_000_000 // max(n, 1)))  # resamples per batch: about 32 MB of float64


def bootstrap_mean(x, *, alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap interval (``scipy.stats.bootstrap``)."""
    alpha = _check_alpha(alpha)
    x = _arr(x)
    if len(x) < 2:
        return _undefined("fewer than 2 customers")
    if float(x.var()) == 0.0:
        return Estimate(float(x.mean()), None, None, None, "every value is the same: no interval")
    res = sst.bootstrap((x,), lambda a, axis: a.mean(axis=axis), n_resamples=int(n_resamples), vectorized=True,
                        method="percentile", confidence_level=1.0 - alpha, rng=np.random.default_rng(seed),
                        batch=_batch(len(x)))
    return Estimate(float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high))


def bootstrap_difference(x1, x0, *, alpha: float = 0.05, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """Difference of means with a percentile bootstrap interval (each arm resampled on its own)."""
    alpha = _check_alpha(alpha)
    x1, x0 = _arr(x1), _arr(x0)
    if len(x1) < 2 or len(x0) < 2:
        return _undefined("an arm has fewer than 2 customers")
    diff = float(x1.mean() - x0.mean())
    if float(x1.var()) == 0.0 and float(x0.var()) == 0.0:
        return Estimate(diff, None, None, None, "no variation in either arm: no interval")
    res = sst.bootstrap((x1, x0), lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
                        n_resamples=int(n_resamples), vectorized=True, method="percentile",
                        confidence_level=1.0 - alpha, rng=np.random.default_rng(seed),
                        batch=_batch(len(x1) + len(x0)))
    return Estimate(diff, float(res.confidence_interval.low), float(res.confidence_interval.high))


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-adjusted p-values; None entries stay None and are not counted.

    Equal to ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``
    (the tests check it), computed here because statsmodels runs a full
    ``gc.collect()`` on every Holm call, which costs tens to hundreds of
    milliseconds in a process holding large models.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not idx:
        return out
    p = np.asarray([p_values[i] for i in idx], dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.maximum.accumulate(p[order] * np.arange(m, 0, -1))
    adj = np.empty(m)
    adj[order] = np.minimum(stepped, 1.0)
    for i, a in zip(idx, adj):
        out[i] = float(a)
    return out
