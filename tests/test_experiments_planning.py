"""Sample-size planning equals statsmodels' NormalIndPower; the inverse (MDE for n) round-trips."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from personalize.errors import DataError
from personalize.experiments import mde_mean, mde_proportion, sample_size_mean, sample_size_proportion


@pytest.mark.parametrize("baseline,mde,alpha,power,ratio", [
    (0.106, 0.01, 0.05, 0.8, 1.0), (0.02, 0.005, 0.01, 0.9, 1.0), (0.5, -0.03, 0.05, 0.8, 2.0),
])
def test_proportion_sample_size_equals_normal_ind_power(baseline, mde, alpha, power, ratio):
    plan = sample_size_proportion(baseline, mde, alpha=alpha, power=power, ratio=ratio)
    h = proportion_effectsize(baseline + mde, baseline)
    n = NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power, ratio=ratio)
    assert plan.nobs1 == pytest.approx(n, rel=1e-12)
    assert plan.n_control == math.ceil(n) and plan.n_treatment == math.ceil(n * ratio)
    assert plan.effect_size == pytest.approx(h, rel=1e-12)


def test_the_issue_example_and_relative_mde():
    plan = sample_size_proportion(0.106, 0.01, power=0.8)
    assert plan.n_control == 15_484 == plan.n_treatment  # NormalIndPower on Cohen's h
    rel = sample_size_proportion(0.106, 0.1, relative=True)
    assert rel.mde == pytest.approx(0.0106) and rel.n_control < plan.n_control
    assert "15,484 control + 15,484 treatment" in str(plan)
    assert plan.to_dict()["n_total"] == 30_968


def test_mean_sample_size_equals_normal_ind_power():
    plan = sample_size_mean(15.9, 0.5, alpha=0.05, power=0.8)
    n = NormalIndPower().solve_power(effect_size=0.5 / 15.9, alpha=0.05, power=0.8)
    assert plan.nobs1 == pytest.approx(n, rel=1e-12) and plan.n_control == math.ceil(n)
    one_sided = sample_size_mean(15.9, 0.5, alternative="larger")
    assert one_sided.nobs1 == pytest.approx(
        NormalIndPower().solve_power(effect_size=0.5 / 15.9, alpha=0.05, power=0.8, alternative="larger"))


def test_mde_is_the_inverse_of_the_sample_size():
    plan = mde_proportion(0.106, 15_000, power=0.8)
    back = sample_size_proportion(0.106, plan.mde, power=0.8)
    assert back.nobs1 == pytest.approx(15_000, rel=1e-6)
    assert plan.mde > 0.01  # fewer customers than 15,484: a larger detectable effect
    m = mde_mean(15.9, 20_000, power=0.9)
    assert sample_size_mean(15.9, m.mde, power=0.9).nobs1 == pytest.approx(20_000, rel=1e-6)
    down = mde_proportion(0.106, 15_000, alternative="smaller")
    assert down.mde < 0


def test_planning_errors_are_messages():
    with pytest.raises(DataError, match="baseline conversion rate must be strictly between 0 and 1"):
        sample_size_proportion(1.5, 0.01)
    with pytest.raises(DataError, match="baseline \\+ mde conversion rate"):
        sample_size_proportion(0.995, 0.01)
    with pytest.raises(DataError, match="mde must be a non-zero number"):
        sample_size_proportion(0.1, 0.0)
    with pytest.raises(DataError, match="power"):
        sample_size_mean(10.0, 1.0, power=1.2)
    with pytest.raises(DataError, match="sd must be a positive number"):
        sample_size_mean(0.0, 1.0)
    with pytest.raises(DataError, match="cannot detect any change"):
        mde_proportion(0.999, 3)
