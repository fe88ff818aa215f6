"""Peeking: mSPRT always-valid p-values keep the false-positive rate under daily looks; naive peeking does not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from personalize.data.campaign import CampaignData
from personalize.errors import DataError
from personalize.experiments import always_valid_p, msprt_pvalues, sequential_looks


def test_always_valid_p_by_hand():
    d, v, tau = 0.02, 0.0001, 0.03
    lam = math.sqrt(v / (v + tau ** 2)) * math.exp(tau ** 2 * d ** 2 / (2 * v * (v + tau ** 2)))
    assert always_valid_p(d, v, tau) == pytest.approx(min(1.0, 1 / lam), rel=1e-12)
    assert always_valid_p(0.0, v, tau) == 1.0
    p = msprt_pvalues([0.0, 0.05, 0.0], [v, v, v], tau)
    assert p[2] == p[1] < 1.0  # running minimum: once small, stays small


def _null_paths(reps: int, looks: int, per_look: int, seed: int):
    """Cumulative Bernoulli(0.1) arms with no effect, observed after every block of customers."""
    rng = np.random.default_rng(seed)
    a = rng.binomial(per_look, 0.1, size=(reps, looks)).cumsum(axis=1)
    b = rng.binomial(per_look, 0.1, size=(reps, looks)).cumsum(axis=1)
    n = per_look * np.arange(1, looks + 1)
    pa, pb = a / n, b / n
    var = pa * (1 - pa) / n + pb * (1 - pb) / n
    sd = np.sqrt((pa + pb) / 2 * (1 - (pa + pb) / 2))
    return pa - pb, np.maximum(var, 1e-12), sd


def test_peeking_every_day_keeps_alpha_with_msprt_but_not_with_the_fixed_test():
    diff, var, sd = _null_paths(reps=2000, looks=30, per_look=200, seed=7)
    p_seq = msprt_pvalues(diff, var, 0.1 * sd)
    false_seq = float((p_seq[:, -1] < 0.05).mean())
    z = np.abs(diff) / np.sqrt(var)
    false_naive = float((z > 1.959964).any(axis=1).mean())
    # 2000 paths: a binomial(2000, 0.05) count stays below 0.05 + 3 sd = 0.0646
    assert false_seq < 0.0646
    assert false_naive > 0.15  # stopping at the first fixed-horizon "p < 0.05" of 30 looks


def test_sequential_looks_by_day():
    rng = np.random.default_rng(3)
    n = 6000
    day = rng.integers(0, 10, n)
    arm = rng.random(n) < 0.5
    conv = rng.random(n) < np.where(arm, 0.16, 0.10)
    df = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)],
                       "exposed_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(day, unit="D")
                       + pd.to_timedelta(rng.integers(0, 80_000, n), unit="s"),
                       "offer_id": np.where(arm, "A", None), "converted": conv, "randomized": True})
    looks = sequential_looks(CampaignData(df), freq="D")
    assert len(looks) == 10 and (looks["arm"] == "A").all()
    assert looks["n_treatment"].is_monotonic_increasing and looks["p_always_valid"].is_monotonic_decreasing
    assert looks["n_treatment"].iloc[-1] + looks["n_control"].iloc[-1] == n
    assert looks["p_always_valid"].iloc[-1] < 0.001  # a 6 pp lift on 3,000 per arm
    assert (looks["p_always_valid"] >= looks["p_fixed"] - 1e-12).all()  # always-valid is the conservative one
    with pytest.raises(DataError, match="no control group"):
        sequential_looks(CampaignData(df.assign(offer_id="A")))
