"""Readout intervals cover the synthetic generator's true lift; the SRM check flags 49/51 and passes fair splits."""

from __future__ import annotations

import numpy as np
import pytest

from personalize.data.campaign import CampaignData
from personalize.datasets import make_retail
from personalize.experiments import readout, srm_check


def _coverage(seeds, **kwargs) -> tuple[int, int]:
    """(intervals covering the true lift, intervals) over every campaign and arm of each seeded dataset.

    The true lift of an arm is the mean of ``truth.exposure_truth["uplift"]`` over the customers the arm
    exposed: the exact effect of the offer on their probability to order within the response window.
    """
    hits = total = 0
    for seed in seeds:
        ds, truth = make_retail(seed=seed, **kwargs)
        data = CampaignData(ds.exposures)
        et = truth.exposure_truth
        true = et[et["offer_id"].notna()].groupby(["campaign_id", "offer_id"])["uplift"].mean()
        for cid in data.campaign_ids:
            rd = readout(data, campaign_id=cid, metrics=("conversion",), n_bootstrap=0)
            for lf in rd.lifts:
                total += 1
                hits += int(lf.absolute.low <= true[(cid, lf.arm)] <= lf.absolute.high)
    return hits, total


def test_lift_intervals_cover_the_true_lift_fast():
    hits, total = _coverage(range(30), n_customers=1000, n_items=60, n_categories=6, n_campaigns=2,
                            campaign_share=1.0, control_share=0.5)
    assert total == 30 * 2 * 10
    # nominal 95 %. The ten arms of a campaign share its control, so the 600 intervals are worth about
    # 200 independent ones (design effect up to 3): 0.95 - 3.09 * sqrt(0.95 * 0.05 / 200) = 0.902.
    assert hits / total >= 0.90, f"coverage {hits / total:.3f}"


@pytest.mark.slow
def test_lift_intervals_cover_the_true_lift_in_200_repetitions():
    hits, total = _coverage(range(200))  # make_retail's defaults: 4 campaigns x 10 offers, 20 % control
    assert total == 200 * 4 * 10
    assert hits / total >= 0.93, f"coverage {hits / total:.3f}"


def test_srm_flags_a_planted_49_51_split_and_passes_fair_ones():
    rng = np.random.default_rng(2024)
    n = 200_000
    flagged = 0
    for _ in range(20):
        a = int((rng.random(n) < 0.49).sum())  # assignment with a planted 49/51 imbalance
        flagged += srm_check({"control": a, "B": n - a}, {"control": 1, "B": 1}).mismatch
    assert flagged == 20
    passed = 0
    reps = 1000
    for k in range(reps):
        a = int(rng.binomial(n, 0.5))  # a fair coin per customer, summed
        passed += not srm_check({"control": a, "B": n - a}, {"control": 1, "B": 1}).mismatch
    assert passed / reps >= 0.95
    three = rng.multinomial(n, [0.2, 0.4, 0.4])
    res = srm_check({"c": int(three[0]), "x": int(three[1]), "y": int(three[2])}, {"c": 1, "x": 2, "y": 2})
    assert res.expected == pytest.approx({"c": n * 0.2, "x": n * 0.4, "y": n * 0.4})
