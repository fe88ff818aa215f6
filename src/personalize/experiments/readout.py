"""Readout of a campaign run as an experiment: did the offer work, and by how much?

:func:`readout` reads one campaign of a :class:`~personalize.data.campaign.CampaignData`
(arms = offer ids, control = exposures without an offer id) and returns a
:class:`Readout`:

* per arm: customers, conversions, conversion rate with a Wilson interval,
  revenue per customer with a t (Welch, one sample) and a percentile
  bootstrap interval;
* per treatment arm and metric (``conversion``, ``revenue``): absolute lift
  vs control with its interval (Newcomb interval for rates, Welch for revenue,
  plus a bootstrap interval for revenue), relative lift with a delta-method
  interval on the log ratio, the two-sided p-value, its Holm adjustment across
  the treatment arms, an always-valid mSPRT p-value for teams that peek
  (:mod:`personalize.experiments.sequential`), and optionally the
  CUPED-adjusted lift with the variance reduction it achieved;
* guards (:mod:`personalize.experiments.guards`), the sample-ratio check
  first: a mismatch flags the readout and every verdict says so; exposures not
  flagged ``randomized`` are read out as associations, never as effects; arms
  below ``min_n`` customers, arms without conversions and a campaign without
  control (or without treatment) get a message instead of a number;
* verdicts in words, e.g. ``"Womens E-Mail: +4.5 pp visits [3.9, 5.2],
  p < 0.001 - significant increase"`` (the p of a verdict is Holm-adjusted
  when there are several treatment arms; the interval is the unadjusted one).

The unit is the customer: a customer exposed more than once in the campaign
counts once, in the arm of her first exposure (intention to treat), with a
warning. Revenue is revenue per exposed customer (zeros included); missing
revenue of a customer who did not convert counts as 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from personalize._json import json_scalar
from personalize.data.campaign import CampaignData
from personalize.errors import DataError
from personalize.experiments import stats as xs
from personalize.experiments.cuped import Cuped
from personalize.experiments.guards import Guard, SRMResult, srm_check
from personalize.experiments.sequential import always_valid_p
from personalize.experiments.stats import Estimate

__all__ = ["ArmResult", "Lift", "Readout", "readout", "METRICS"]

METRICS = ("conversion", "revenue")


def _est(e: Estimate | None) -> dict | None:
    if e is None:
        return None
    return {"value": json_scalar(e.value), "low": json_scalar(e.low), "high": json_scalar(e.high),
            "p_value": json_scalar(e.p_value), "note": e.note}


def fmt_p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


@dataclass
class ArmResult:
    """One arm: customers, conversions, rate (Wilson), revenue per customer (t and bootstrap intervals)."""

    arm: str
    offer_id: str | None
    control: bool
    n: int
    conversions: int | None = None
    rate: Estimate | None = None
    revenue: float | None = None  # total
    revenue_per_customer: Estimate | None = None  # t interval
    revenue_bootstrap: Estimate | None = None  # percentile bootstrap interval

    def to_dict(self) -> dict:
        return {"arm": self.arm, "offer_id": self.offer_id, "control": self.control, "n": self.n,
                "conversions": self.conversions, "rate": _est(self.rate), "revenue": json_scalar(self.revenue),
                "revenue_per_customer": _est(self.revenue_per_customer),
                "revenue_per_customer_bootstrap": _est(self.revenue_bootstrap)}


@dataclass
class Lift:
    """A treatment arm against control on one metric."""

    arm: str
    metric: str  # "conversion" or "revenue"
    control_value: float
    treatment_value: float
    absolute: Estimate  # lift, interval, two-sided p
    relative: Estimate  # ratio - 1 with its delta-method interval
    absolute_bootstrap: Estimate | None = None  # revenue only
    p_holm: float | None = None
    p_always_valid: float | None = None
    cuped: Estimate | None = None  # CUPED-adjusted absolute lift (Welch on the adjusted outcome)
    significant: bool | None = None
    verdict: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def p_value(self) -> float | None:
        return self.absolute.p_value

    def to_dict(self) -> dict:
        return {"arm": self.arm, "metric": self.metric, "control": json_scalar(self.control_value),
                "treatment": json_scalar(self.treatment_value), "absolute": _est(self.absolute),
                "absolute_bootstrap": _est(self.absolute_bootstrap), "relative": _est(self.relative),
                "p_value": json_scalar(self.p_value), "p_holm": json_scalar(self.p_holm),
                "p_always_valid": json_scalar(self.p_always_valid), "cuped": _est(self.cuped),
                "significant": self.significant, "verdict": self.verdict, "notes": list(self.notes)}


@dataclass
class Readout:
    """The readout of one campaign; ``str(readout)`` is the table a person reads, ``to_dict()`` is JSON-safe."""

    campaign_id: str | None
    control_name: str
    outcome_name: str
    alpha: float
    n: int
    randomized: bool | None
    arms: list[ArmResult]
    lifts: list[Lift]
    guards: list[Guard]
    srm: SRMResult | None = None
    cuped: dict | None = None
    mixture_sd: float = 0.1

    @property
    def causal(self) -> bool:
        """True when every exposure was randomized: differences are effects of the offers."""
        return self.randomized is True

    @property
    def flagged(self) -> bool:
        """True when an error guard (sample ratio mismatch, no control...) says not to act on the verdicts."""
        return any(g.severity == "error" for g in self.guards)

    @property
    def verdicts(self) -> list[str]:
        out = [lift.verdict for lift in self.lifts]
        if not self.lifts:
            out = [g.message for g in self.guards if g.severity == "error"]
        return out

    def arm(self, name: str) -> ArmResult:
        for a in self.arms:
            if a.arm == name:
                return a
        raise DataError(f"no arm {name!r}; arms: {[a.arm for a in self.arms]}")

    def lift(self, arm: str, metric: str = "conversion") -> Lift:
        for lf in self.lifts:
            if lf.arm == arm and lf.metric == metric:
                return lf
        raise DataError(f"no {metric} lift for arm {arm!r}; lifts: {[(x.arm, x.metric) for x in self.lifts]}")

    def arm_table(self) -> pd.DataFrame:
        """One row per arm (control first)."""
        rows = []
        for a in self.arms:
            r = {"arm": a.arm, "n": a.n, "conversions": a.conversions}
            for key, e in (("rate", a.rate), ("revenue_per_customer", a.revenue_per_customer)):
                r[key] = None if e is None else e.value
                r[f"{key}_low"] = None if e is None else e.low
                r[f"{key}_high"] = None if e is None else e.high
            b = a.revenue_bootstrap
            r["revenue_per_customer_boot_low"] = None if b is None else b.low
            r["revenue_per_customer_boot_high"] = None if b is None else b.high
            rows.append(r)
        return pd.DataFrame(rows)

    def lift_table(self) -> pd.DataFrame:
        """One row per treatment arm and metric."""
        rows = []
        for lf in self.lifts:
            rows.append({"arm": lf.arm, "metric": lf.metric, "control": lf.control_value,
                         "treatment": lf.treatment_value, "lift": lf.absolute.value, "lift_low": lf.absolute.low,
                         "lift_high": lf.absolute.high, "relative": lf.relative.value,
                         "relative_low": lf.relative.low, "relative_high": lf.relative.high,
                         "p_value": lf.p_value, "p_holm": lf.p_holm, "p_always_valid": lf.p_always_valid,
                         "cuped_lift": None if lf.cuped is None else lf.cuped.value,
                         "cuped_low": None if lf.cuped is None else lf.cuped.low,
                         "cuped_high": None if lf.cuped is None else lf.cuped.high,
                         "cuped_p": None if lf.cuped is None else lf.cuped.p_value})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return {
            "campaign_id": self.campaign_id, "control": self.control_name, "outcome": self.outcome_name,
            "alpha": self.alpha, "customers": self.n, "randomized": self.randomized, "causal": self.causal,
            "flagged": self.flagged, "guards": [g.to_dict() for g in self.guards],
            "srm": None if self.srm is None else self.srm.to_dict(),
            "arms": [a.to_dict() for a in self.arms], "lifts": [lf.to_dict() for lf in self.lifts],
            "cuped": self.cuped, "verdicts": self.verdicts, "methods": dict(METHODS, mixture_sd=self.mixture_sd),
        }

    def __str__(self) -> str:
        pct = lambda e: "-" if e is None or e.value is None else f"{e.value:.4f}"  # noqa: E731
        ci = lambda e: ("-" if e is None or e.low is None  # noqa: E731
                        else f"[{e.low:.4f}, {e.high:.4f}]" if max(abs(e.low), abs(e.high)) < 10
                        else f"[{e.low:.2f}, {e.high:.2f}]")
        lvl = f"{1 - self.alpha:.0%} CI"
        kind = "randomized" if self.causal else "NOT randomized: associations, not effects"
        lines = [f"campaign {self.campaign_id or '(unnamed)'} ({kind}): {self.n:,} customers, "
                 f"{len(self.arms)} arms, alpha {self.alpha:g}"]
        lines += [str(g) for g in self.guards if g.severity != "info" or g.code == "srm"]
        lines.append("")
        out = self.outcome_name
        lines.append(f"{'arm':<18}{'n':>9}{out:>12}{'rate':>9}  {lvl:<18}{'rev/cust':>9}  "
                     f"{'t CI':<19}{'bootstrap CI':<19}")
        for a in self.arms:
            lines.append(f"{a.arm[:17]:<18}{a.n:>9,}{'-' if a.conversions is None else f'{a.conversions:,}':>12}"
                         f"{pct(a.rate):>9}  {ci(a.rate):<18}{pct(a.revenue_per_customer):>9}  "
                         f"{ci(a.revenue_per_customer):<19}{ci(a.revenue_bootstrap):<19}")
        if self.lifts:
            lines.append("")
            lines.append(f"{'lift vs ' + self.control_name:<26}{'abs':>10}  {lvl:<20}{'rel':>8}  "
                         f"{lvl:<18}{'p':>8}{'p Holm':>8}{'p av':>8}")
            for lf in self.lifts:
                unit = 100.0 if lf.metric == "conversion" else 1.0
                a = lf.absolute
                sa = "-" if a.value is None else f"{a.value * unit:+.2f}{' pp' if unit == 100 else ''}"
                sci = "-" if a.low is None else f"[{a.low * unit:+.2f}, {a.high * unit:+.2f}]"
                r = lf.relative
                sr = "-" if r.value is None else f"{r.value:+.1%}"
                srci = "-" if r.low is None else f"[{r.low:+.1%}, {r.high:+.1%}]"
                p = lambda v: "-" if v is None else ("<0.001" if v < 0.001 else f"{v:.3f}")  # noqa: E731
                label = out if lf.metric == "conversion" else lf.metric
                lines.append(f"{(lf.arm[:16] + ' ' + label)[:25]:<26}{sa:>10}  {sci:<20}{sr:>8}  {srci:<18}"
                             f"{p(lf.p_value):>8}{p(lf.p_holm):>8}{p(lf.p_always_valid):>8}")
            if self.cuped:
                lines.append("")
                lines.append(f"CUPED on {', '.join(self.cuped['covariates'])}: variance reduction " + ", ".join(
                    f"{m} {v['variance_reduction']:.1%}" for m, v in self.cuped["metrics"].items()))
                for lf in self.lifts:
                    if lf.cuped is not None and lf.cuped.value is not None:
                        unit = 100.0 if lf.metric == "conversion" else 1.0
                        c = lf.cuped
                        rng = "-" if c.low is None else f"[{c.low * unit:+.2f}, {c.high * unit:+.2f}]"
                        pp = " pp" if unit == 100.0 else ""
                        lines.append(f"  {lf.arm} {lf.metric}: {c.value * unit:+.2f}{pp} {rng}, {fmt_p(c.p_value)}")
        lines.append("")
        lines.append("verdicts")
        lines += [f"  {v}" for v in self.verdicts]
        return "\n".join(lines)


METHODS = {
    "rate_interval": "Wilson score (statsmodels proportion_confint)",
    "rate_lift": "Newcomb hybrid score interval (statsmodels confint_proportions_2indep, method='newcomb') and "
                 "score test = pooled z test (test_proportions_2indep, method='score', correction=False)",
    "relative_lift": "delta method on the log ratio (rates: statsmodels method='log')",
    "revenue_interval": "t interval (scipy ttest_1samp) and percentile bootstrap (scipy bootstrap)",
    "revenue_lift": "Welch t interval and test (scipy ttest_ind equal_var=False) and percentile bootstrap",
    "multiple_arms": "Holm step-down across treatment arms, per metric (= statsmodels multipletests 'holm')",
    "peeking": "always-valid p-value of the mixture SPRT, normal mixture with sd mixture_sd x metric sd",
    "srm": "Pearson chi-square against the planned split (scipy chisquare)",
    "cuped": "theta = least-squares slope of the outcome on the pre-period covariate(s), pooled over arms; "
             "Welch on the adjusted outcome",
}


def _planned(split: Mapping[str, float], control_name: str) -> dict[str, float]:
    out = {}
    for k, w in split.items():
        key = control_name if str(k) == "control" else str(k)
        if key in out:
            raise DataError(f"planned split names the control twice ('control' and {control_name!r})")
        out[key] = w
    return out


def _outcomes(exp: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
    conv = exp["converted"].to_numpy(dtype=np.float64) if "converted" in exp.columns else None
    rev = None
    if "revenue" in exp.columns:
        rev = exp["revenue"].to_numpy(dtype=np.float64).copy()
        miss = np.isnan(rev)
        if miss.any():
            bad = miss & (conv > 0) if conv is not None else miss
            if bad.any():
                raise DataError(f"revenue is missing for {int(bad.sum())} exposures that converted (or without "
                                "a converted column); give their revenue", table="exposures", column="revenue",
                                rows=np.flatnonzero(bad)[:5].tolist())
            rev[miss] = 0.0
    if conv is None and rev is None:
        raise DataError("the exposures have neither a converted nor a revenue column: nothing to read out",
                        table="exposures")
    return conv, rev


def _fmt_interval(e: Estimate, unit: float, digits: int) -> str:
    return f"[{e.low * unit:.{digits}f}, {e.high * unit:.{digits}f}]"


def _verdict(lf: Lift, *, outcome: str, n_arms: int, small: str | None, causal: bool, flagged: bool,
             alpha: float) -> str:
    a = lf.absolute
    head = f"{lf.arm}: "
    if flagged:
        head = f"NOT TRUSTWORTHY (see the errors above) - {head}"
    if a.value is None or a.low is None:
        return head + f"no {lf.metric} readout: {a.note or lf.relative.note or 'undefined'}"
    if lf.metric == "conversion":
        unit, digits = 100.0, (1 if max(abs(a.low), abs(a.high)) >= 0.01 else 2)
        what = f"{a.value * unit:+.{digits}f} pp {outcome} {_fmt_interval(a, unit, digits)}"
    else:
        rel = "" if lf.relative.value is None else f" ({lf.relative.value:+.1%})"
        what = f"{a.value:+.2f} revenue per customer {_fmt_interval(a, 1.0, 2)}{rel}"
    p = lf.p_holm if n_arms > 1 and lf.p_holm is not None else a.p_value
    text = head + what + f", {fmt_p(p)}"
    if n_arms > 1:
        text += f" (Holm, {n_arms} arms)"
    sig = p is not None and p < alpha
    if not causal:
        text += (" - not randomized: an association, not an effect of the offer" if sig
                 else " - not randomized, and no significant difference")
    elif sig:
        text += " - significant increase" if a.value > 0 else " - significant decrease"
    else:
        text += " - no significant difference"
    if small:
        text = text.rsplit(" - ", 1)[0] + f" - too few customers to decide ({small})"
    return text


def readout(data: CampaignData, *, campaign_id: str | None = None, planned_split: Mapping[str, float] | None = None,
            cuped: str | Sequence[str] | None = None, metrics: Sequence[str] = METRICS, alpha: float = 0.05,
            min_n: int = 100, srm_alpha: float = 0.001, n_bootstrap: int = 2000, seed: int = 0,
            mixture_sd: float = 0.1) -> Readout:
    """Read out one campaign of ``data`` (see the module docstring).

    ``planned_split`` (arm -> weight; ``"control"`` may name the control arm)
    defaults to ``data.planned_split``; without one the sample ratio is not
    checked (an info guard says so). ``cuped``: feature column(s) of
    ``data.features`` measured before the exposure. ``metrics``: any of
    ``conversion`` and ``revenue`` (those the exposures have columns for).
    ``n_bootstrap=0`` skips the bootstrap intervals. ``mixture_sd``: the mSPRT
    mixture scale in standard deviations of the metric.
    """
    if not isinstance(data, CampaignData):
        raise DataError(f"expected CampaignData, got {type(data).__name__}")
    alpha = float(alpha)
    if not 0.0 < alpha < 0.5:
        raise DataError(f"alpha must be between 0 and 0.5, got {alpha}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise DataError(f"metrics must be among {list(METRICS)}, got {list(metrics)}")
    if int(min_n) < 1:
        raise DataError(f"min_n must be at least 1, got {min_n}")
    if not (math.isfinite(float(mixture_sd)) and float(mixture_sd) > 0):
        raise DataError(f"mixture_sd must be positive, got {mixture_sd}")
    camp = data.campaign(campaign_id)
    cid = campaign_id if campaign_id is not None else camp.campaign_ids[0]
    guards: list[Guard] = []
    exp = camp.exposures
    order = np.argsort(exp["exposed_at"].to_numpy(), kind="stable")
    dup = exp["customer_id"].iloc[order].duplicated().to_numpy()
    keep_rows = np.sort(order[~dup])
    if dup.any():
        arms_per = camp.arms.groupby(exp["customer_id"].to_numpy()).nunique()
        mixed = int((arms_per > 1).sum())
        guards.append(Guard("duplicates", "warning",
                            f"{int(dup.sum()):,} repeated exposures of the same customers (of whom {mixed:,} in "
                            "more than one arm): each customer counts once, in the arm of her first exposure"))
    exp = exp.iloc[keep_rows].reset_index(drop=True)
    arm_of = camp.arms.iloc[keep_rows].reset_index(drop=True).to_numpy(dtype=object)
    control = camp.control_name
    conv, rev = _outcomes(exp)
    use_conv = "conversion" in metrics and conv is not None
    use_rev = "revenue" in metrics and rev is not None
    if "conversion" in metrics and conv is None:
        guards.append(Guard("no_converted", "info", "no converted column: conversion metrics skipped"))
    if "revenue" in metrics and rev is None:
        guards.append(Guard("no_revenue", "info", "no revenue column: revenue metrics skipped"))
    treatments = sorted({a for a, c in zip(arm_of, (exp["offer_id"].isna()).to_numpy()) if not c})
    has_control = bool((exp["offer_id"].isna()).any())
    names = ([control] if has_control else []) + treatments
    counts = {a: int((arm_of == a).sum()) for a in names}

    # --- sample ratio first
    srm = None
    split = planned_split if planned_split is not None else camp.planned_split
    if split is not None:
        srm = srm_check(counts, _planned(split, control), alpha=srm_alpha)
        guards.insert(0, Guard("srm", "error" if srm.mismatch else "info", srm.message))
    else:
        guards.insert(0, Guard("srm", "info", "no planned split given: the sample ratio was not checked "
                                              "(pass the planned split, e.g. control=1,A=1)"))
    randomized = camp.randomized
    if randomized is not True:
        why = ("no randomized column" if randomized is None
               else f"{int((~exp['randomized']).sum()):,} of {len(exp):,} exposures not randomized")
        guards.append(Guard("not_randomized", "warning",
                            f"exposures not known to be randomized ({why}): differences between arms are "
                            "associations, not effects of the offers"))
    if not has_control:
        guards.append(Guard("no_control", "error", f"no control group (exposures with an empty offer_id) in "
                                                   f"{len(exp):,} exposures: lifts cannot be computed, only the "
                                                   "arms' own rates are shown"))
    if not treatments:
        guards.append(Guard("no_treatment", "error", "only control exposures (no offer id): nothing to compare"))
    small = {a: f"only {n:,} customers < {int(min_n):,}" for a, n in counts.items() if n < int(min_n)}  # per arm
    for a, msg in small.items():
        guards.append(Guard("min_sample", "warning", f"{a}: {msg} per arm; intervals are rough and no decision "
                                                     "should rest on them", arm=a))

    # --- per-arm numbers
    arms: list[ArmResult] = []
    for k, a in enumerate(names):
        m = arm_of == a
        r = ArmResult(arm=a, offer_id=None if a == control and has_control else a,
                      control=(a == control and has_control), n=counts[a])
        if conv is not None:
            c = int(conv[m].sum())
            r.conversions = c
            r.rate = xs.rate_interval(c, counts[a], alpha=alpha)
            if c == 0 and use_conv:
                guards.append(Guard("zero_conversions", "warning", f"{a}: no {camp.outcome_name} among "
                                                                   f"{counts[a]:,} customers; its relative lift "
                                                                   "is undefined", arm=a))
        if rev is not None:
            r.revenue = float(rev[m].sum())
            r.revenue_per_customer = xs.mean_interval(rev[m], alpha=alpha)
            if n_bootstrap and use_rev:
                r.revenue_bootstrap = xs.bootstrap_mean(rev[m], alpha=alpha, n_resamples=n_bootstrap,
                                                        seed=seed + k)
        arms.append(r)

    # --- CUPED
    adjusted: dict[str, np.ndarray] = {}
    cuped_info = None
    if cuped:
        cols = [cuped] if isinstance(cuped, str) else list(cuped)
        if camp.features is None:
            raise DataError("CUPED needs pre-period features, and this campaign data has none", table="features")
        x = camp.features_for_exposures(cols).iloc[keep_rows].to_numpy()
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"CUPED covariate(s) {cols} must be numbers", table="features", column=cols[0]) from None
        cuped_info = {"covariates": cols, "metrics": {}}
        for metric, y in (("conversion", conv if use_conv else None), ("revenue", rev if use_rev else None)):
            if y is None:
                continue
            est = Cuped(names=cols).fit(y, x)
            adjusted[metric] = est.transform(y, x)
            cuped_info["metrics"][metric] = {"theta": [float(t) for t in est.theta_],
                                             "variance_reduction": est.variance_reduction_}

    # --- lifts
    lifts: list[Lift] = []
    if has_control and treatments:
        m0 = arm_of == control
        for metric, y in (("conversion", conv if use_conv else None), ("revenue", rev if use_rev else None)):
            if y is None:
                continue
            for k, a in enumerate(treatments):
                m1 = arm_of == a
                y1, y0 = y[m1], y[m0]
                if metric == "conversion":
                    c1, c0 = int(y1.sum()), int(y0.sum())
                    absolute = xs.rate_difference(c1, len(y1), c0, len(y0), alpha=alpha)
                    relative = xs.rate_ratio(c1, len(y1), c0, len(y0), alpha=alpha)
                    boot = None
                else:
                    absolute = xs.mean_difference(y1, y0, alpha=alpha)
                    relative = xs.mean_ratio(y1, y0, alpha=alpha)
                    boot = (xs.bootstrap_difference(y1, y0, alpha=alpha, n_resamples=n_bootstrap,
                                                    seed=seed + 1000 + k) if n_bootstrap else None)
                lf = Lift(arm=a, metric=metric, control_value=float(y0.mean()), treatment_value=float(y1.mean()),
                          absolute=absolute, relative=relative, absolute_bootstrap=boot)
                v = (y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0)) if min(len(y1), len(y0)) > 1 else 0.0
                if v > 0:
                    sd = float(np.concatenate([y1, y0]).std(ddof=1))
                    lf.p_always_valid = always_valid_p(float(y1.mean() - y0.mean()), float(v), mixture_sd * sd)
                if metric in adjusted:
                    ya = adjusted[metric]
                    lf.cuped = xs.mean_difference(ya[m1], ya[m0], alpha=alpha)
                for e in (absolute, relative):
                    if e.note and e.note not in lf.notes:
                        lf.notes.append(e.note)
                lifts.append(lf)
        for metric in METRICS:
            group = [lf for lf in lifts if lf.metric == metric]
            for lf, p in zip(group, xs.holm([lf.p_value for lf in group])):
                lf.p_holm = p
                lf.significant = None if p is None else bool(p < alpha)
    rd = Readout(campaign_id=cid, control_name=control, outcome_name=camp.outcome_name, alpha=alpha, n=len(exp),
                 randomized=randomized, arms=arms, lifts=lifts, guards=guards, srm=srm, cuped=cuped_info,
                 mixture_sd=float(mixture_sd))
    flagged = rd.flagged
    for lf in lifts:
        lf.verdict = _verdict(lf, outcome=camp.outcome_name if lf.metric == "conversion" else "revenue",
                              n_arms=len(treatments),
                              small="; ".join(f"{a}: {small[a]}" for a in (lf.arm, control) if a in small) or None,
                              causal=rd.causal, flagged=flagged, alpha=alpha)
    return rd
