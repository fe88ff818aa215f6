"""Guards of a readout: the checks that decide whether its numbers can be trusted.

Each problem becomes a :class:`Guard` with a code, a severity and a sentence
for people. ``error`` guards flag the readout (its verdicts say not to act on
them); ``warning`` guards qualify it; ``info`` guards record what was checked.

The sample-ratio-mismatch check (:func:`srm_check`) compares the customers
per arm with the planned split by Pearson's chi-square test
(``scipy.stats.chisquare``). A mismatch at p < ``alpha`` (default 0.001, the
usual threshold: an SRM check runs on every experiment, so it must rarely
fire by chance, and real assignment bugs give p-values far below it) means the
assignment or the logging is broken, so no difference between the arms can be
read as an effect of the offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as sst

from personalize._json import json_scalar
from personalize.errors import DataError

__all__ = ["Guard", "SRMResult", "srm_check", "SEVERITIES"]

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Guard:
    """One finding: ``code`` (e.g. ``"srm"``), ``severity`` (error / warning / info), ``message``, ``arm``."""

    code: str
    severity: str
    message: str
    arm: str | None = None

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message, "arm": self.arm}

    def __str__(self) -> str:
        return f"[{self.severity}] {self.message}"


@dataclass(frozen=True)
class SRMResult:
    """Outcome of a sample-ratio check: observed and expected customers per arm, chi-square and p."""

    observed: dict[str, int]
    expected: dict[str, float]
    planned: dict[str, float]
    statistic: float
    p_value: float
    alpha: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.alpha

    @property
    def message(self) -> str:
        obs = " / ".join(f"{a} {n:,}" for a, n in self.observed.items())
        plan = " / ".join(f"{w:.3g}" for w in self.planned.values())
        p = _fmt_p(self.p_value)
        if self.mismatch:
            return (f"SAMPLE RATIO MISMATCH: customers per arm {obs} do not match the planned split {plan} "
                    f"(chi-square {self.statistic:.1f}, {p}); the assignment or its logging is broken, so the "
                    f"differences below are not effects of the offer. Find the cause before reading them.")
        return f"sample ratio OK: {obs} vs planned {plan} (chi-square {self.statistic:.2f}, {p})"

    def to_dict(self) -> dict:
        return {"observed": dict(self.observed), "expected": {k: json_scalar(v) for k, v in self.expected.items()},
                "planned": {k: json_scalar(v) for k, v in self.planned.items()},
                "statistic": json_scalar(self.statistic), "p_value": json_scalar(self.p_value),
                "alpha": self.alpha, "mismatch": self.mismatch, "message": self.message}


def _fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def srm_check(observed: Mapping[str, int], planned: Mapping[str, float], *, alpha: float = 0.001) -> SRMResult:
    """Chi-square test of the customers per arm against the planned split (weights, normalised here).

    Every arm of the plan is tested (an arm planned but absent counts 0
    customers); an observed arm missing from the plan is an error.
    """
    if not 0.0 < float(alpha) < 1.0:
        raise DataError(f"srm alpha must be between 0 and 1, got {alpha}")
    if not planned:
        raise DataError("planned split is empty")
    extra = [a for a, n in observed.items() if n > 0 and a not in planned]
    if extra:
        raise DataError(f"arm(s) {extra} are in the data but not in the planned split {sorted(planned)}; "
                        "give every arm a weight")
    weights = {}
    for a, w in planned.items():
        w = float(w)
        if not np.isfinite(w) or w <= 0:
            raise DataError(f"planned split weight of {a!r} must be positive, got {w}")
        weights[str(a)] = w
    if len(weights) < 2:
        raise DataError("a sample-ratio check needs at least two arms in the planned split")
    total_w = sum(weights.values())
    arms = list(weights)
    obs = np.array([int(observed.get(a, 0)) for a in arms], dtype=np.float64)
    if obs.sum() <= 0:
        raise DataError("no customers to check the sample ratio of")
    share = np.array([weights[a] / total_w for a in arms])
    exp = obs.sum() * share
    stat, p = sst.chisquare(obs, exp)
    return SRMResult(observed={a: int(o) for a, o in zip(arms, obs)},
                     expected={a: float(e) for a, e in zip(arms, exp)},
                     planned={a: float(s) for a, s in zip(arms, share)},
                     statistic=float(stat), p_value=float(p), alpha=float(alpha))
