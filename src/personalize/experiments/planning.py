"""Sample-size planning: customers per arm for a minimum detectable effect, and the inverse.

Both directions are statsmodels' ``NormalIndPower`` (two independent samples,
normal approximation, two-sided by default) on a standardised effect size:

* conversion rates: Cohen's h, ``proportion_effectsize(baseline + mde,
  baseline) = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0))`` (the arcsine transform
  makes the variance independent of the rate);
* means (revenue per customer): ``mde / sd`` with ``sd`` the per-customer
  standard deviation of the metric (zeros of non-buyers included).

``n_control`` is NormalIndPower's ``nobs1`` rounded up, ``n_treatment`` is
``ratio * nobs1`` rounded up (``ratio`` = treatment / control customers).
The inverse (:func:`mde_proportion`, :func:`mde_mean`) solves the effect size
for a given control size and maps it back to the metric's scale (for rates:
``p1 = sin(asin(sqrt(p0)) + h / 2) ** 2``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from personalize._json import json_scalar
from personalize.errors import DataError

__all__ = ["Plan", "sample_size_proportion", "sample_size_mean", "mde_proportion", "mde_mean"]

_ALTERNATIVES = ("two-sided", "larger", "smaller")


@dataclass(frozen=True)
class Plan:
    """A planning answer: customers per arm for an effect, or the effect detectable with n customers."""

    metric: str  # "proportion" or "mean"
    baseline: float | None
    sd: float | None
    mde: float  # absolute effect (rate points or currency per customer)
    effect_size: float  # Cohen's h (proportions) or d (means)
    alpha: float
    power: float
    ratio: float
    alternative: str
    nobs1: float  # NormalIndPower's exact control size
    n_control: int
    n_treatment: int

    @property
    def n_total(self) -> int:
        return self.n_control + self.n_treatment

    @property
    def relative_mde(self) -> float | None:
        return self.mde / self.baseline if self.baseline else None

    def to_dict(self) -> dict:
        d = {k: json_scalar(getattr(self, k)) for k in ("metric", "baseline", "sd", "mde", "effect_size", "alpha",
                                                         "power", "ratio", "alternative", "nobs1", "n_control",
                                                         "n_treatment")}
        d["n_total"] = self.n_total
        d["relative_mde"] = json_scalar(self.relative_mde)
        d["method"] = ("statsmodels NormalIndPower on Cohen's h (arcsine)" if self.metric == "proportion"
                       else "statsmodels NormalIndPower on d = mde / sd")
        d["summary"] = str(self)
        return d

    def __str__(self) -> str:
        if self.metric == "proportion":
            eff = f"{self.mde * 100:+.2f} pp (from {self.baseline:.2%} to {self.baseline + self.mde:.2%})"
        else:
            eff = f"{self.mde:+.4g} per customer (sd {self.sd:.4g})"
        return (f"{self.n_control:,} control + {self.n_treatment:,} treatment customers ({self.n_total:,} in all) "
                f"detect {eff} with power {self.power:.0%} at alpha {self.alpha:g} ({self.alternative})")


def _common(alpha: float, power: float, ratio: float, alternative: str) -> None:
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}")
    if not 0.0 < power < 1.0:
        raise DataError(f"power must be between 0 and 1, got {power}")
    if power <= alpha:
        raise DataError(f"power ({power}) must be larger than alpha ({alpha})")
    if not (math.isfinite(ratio) and ratio > 0):
        raise DataError(f"ratio (treatment / control customers) must be positive, got {ratio}")
    if alternative not in _ALTERNATIVES:
        raise DataError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")


def _rate(baseline: float, what: str = "baseline") -> float:
    b = float(baseline)
    if not 0.0 < b < 1.0:
        raise DataError(f"{what} conversion rate must be strictly between 0 and 1, got {baseline}")
    return b


def _solve_n(effect: float, alpha: float, power: float, ratio: float, alternative: str) -> float:
    from statsmodels.stats.power import NormalIndPower

    if alternative == "smaller":  # NormalIndPower wants the effect's sign to match a one-sided test
        effect = -abs(effect)
    else:
        effect = abs(effect)
    return float(NormalIndPower().solve_power(effect_size=effect, nobs1=None, alpha=alpha, power=power,
                                              ratio=ratio, alternative=alternative))


def _solve_effect(n: float, alpha: float, power: float, ratio: float, alternative: str) -> float:
    from statsmodels.stats.power import NormalIndPower

    if not (math.isfinite(n) and n >= 2):
        raise DataError(f"n (control customers) must be at least 2, got {n}")
    h = float(NormalIndPower().solve_power(effect_size=None, nobs1=float(n), alpha=alpha, power=power,
                                           ratio=ratio, alternative=alternative))
    return abs(h)


def _plan(metric, baseline, sd, mde, effect, alpha, power, ratio, alternative, nobs1) -> Plan:
    return Plan(metric=metric, baseline=baseline, sd=sd, mde=float(mde), effect_size=float(effect),
                alpha=float(alpha), power=float(power), ratio=float(ratio), alternative=alternative,
                nobs1=float(nobs1), n_control=int(math.ceil(nobs1 - 1e-9)),
                n_treatment=int(math.ceil(nobs1 * ratio - 1e-9)))


def sample_size_proportion(baseline: float, mde: float, *, alpha: float = 0.05, power: float = 0.8,
                           ratio: float = 1.0, alternative: str = "two-sided", relative: bool = False) -> Plan:
    """Customers per arm to detect a change ``mde`` of a conversion rate ``baseline``.

    ``mde`` is absolute (0.01 = one percentage point) unless ``relative``
    (0.1 = +10 % of the baseline).
    """
    from statsmodels.stats.proportion import proportion_effectsize

    _common(alpha, power, ratio, alternative)
    p0 = _rate(baseline)
    d = float(mde) * p0 if relative else float(mde)
    if not math.isfinite(d) or d == 0.0:
        raise DataError(f"mde must be a non-zero number, got {mde}")
    _rate(p0 + d, "baseline + mde")
    h = float(proportion_effectsize(p0 + d, p0))
    return _plan("proportion", p0, None, d, h, alpha, power, ratio, alternative,
                 _solve_n(h, alpha, power, ratio, alternative))


def sample_size_mean(sd: float, mde: float, *, baseline: float | None = None, alpha: float = 0.05,
                     power: float = 0.8, ratio: float = 1.0, alternative: str = "two-sided",
                     relative: bool = False) -> Plan:
    """Customers per arm to detect a change ``mde`` of a mean (e.g. revenue per customer) with std ``sd``.

    ``relative`` reads ``mde`` as a fraction of ``baseline`` (the control mean).
    """
    _common(alpha, power, ratio, alternative)
    sd = float(sd)
    if not (math.isfinite(sd) and sd > 0):
        raise DataError(f"sd must be a positive number, got {sd}")
    if relative:
        if baseline is None or not float(baseline) > 0:
            raise DataError("a relative mde needs a positive baseline mean")
        d = float(mde) * float(baseline)
    else:
        d = float(mde)
    if not math.isfinite(d) or d == 0.0:
        raise DataError(f"mde must be a non-zero number, got {mde}")
    eff = d / sd
    return _plan("mean", None if baseline is None else float(baseline), sd, d, eff, alpha, power, ratio,
                 alternative, _solve_n(eff, alpha, power, ratio, alternative))


def mde_proportion(baseline: float, n: float, *, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0,
                   alternative: str = "two-sided") -> Plan:
    """The smallest increase of a conversion rate ``baseline`` detectable with ``n`` control customers.

    (For ``alternative="smaller"`` the detectable decrease, returned as a negative ``mde``.)
    """
    _common(alpha, power, ratio, alternative)
    p0 = _rate(baseline)
    h = _solve_effect(n, alpha, power, ratio, alternative)
    phi0 = math.asin(math.sqrt(p0))
    sign = -1.0 if alternative == "smaller" else 1.0
    angle = phi0 + sign * h / 2.0
    if not 0.0 <= angle <= math.pi / 2:
        raise DataError(f"{n:g} customers per arm cannot detect any change of a {p0:.2%} rate with power {power}: "
                        "the detectable effect would leave the 0..1 range")
    p1 = math.sin(angle) ** 2
    return _plan("proportion", p0, None, p1 - p0, sign * h, alpha, power, ratio, alternative, float(n))


def mde_mean(sd: float, n: float, *, baseline: float | None = None, alpha: float = 0.05, power: float = 0.8,
             ratio: float = 1.0, alternative: str = "two-sided") -> Plan:
    """The smallest change of a mean with std ``sd`` detectable with ``n`` control customers."""
    _common(alpha, power, ratio, alternative)
    sd = float(sd)
    if not (math.isfinite(sd) and sd > 0):
        raise DataError(f"sd must be a positive number, got {sd}")
    d = _solve_effect(n, alpha, power, ratio, alternative)
    sign = -1.0 if alternative == "smaller" else 1.0
    return _plan("mean", None if baseline is None else float(baseline), sd, sign * d * sd, sign * d, alpha, power,
                 ratio, alternative, float(n))
