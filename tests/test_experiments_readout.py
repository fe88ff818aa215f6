"""Campaign readout: Hillstrom reproduced, statistics equal statsmodels / scipy, CUPED and guards by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from personalize.data.adapters import load_hillstrom
from personalize.data.campaign import CampaignData
from personalize.errors import DataError
from personalize.experiments import Cuped, readout
from personalize.experiments.stats import holm

TOL = 1e-9


@pytest.fixture(scope="module")
def hill(shared_data):
    data = load_hillstrom(shared_data / "hillstrom" / "hillstrom.csv.gz")
    return data, readout(data, cuped="history", n_bootstrap=1000)


@pytest.mark.realdata
def test_hillstrom_rates_and_spend_reproduce_the_published_figures(hill):
    _, rd = hill
    assert [a.arm for a in rd.arms] == ["No E-Mail", "Mens E-Mail", "Womens E-Mail"]
    rates = {a.arm: round(a.rate.value, 4) for a in rd.arms}
    assert rates == {"Mens E-Mail": 0.1828, "Womens E-Mail": 0.1514, "No E-Mail": 0.1062}
    spend = {a.arm: round(a.revenue_per_customer.value, 4) for a in rd.arms}
    assert spend["Mens E-Mail"] == 1.4226 and spend["No E-Mail"] == 0.6528
    assert {a.arm: a.n for a in rd.arms} == {"No E-Mail": 21_306, "Mens E-Mail": 21_307, "Womens E-Mail": 21_387}
    assert {a.arm: a.conversions for a in rd.arms} == {"No E-Mail": 2_262, "Mens E-Mail": 3_894,
                                                       "Womens E-Mail": 3_238}


@pytest.mark.realdata
def test_hillstrom_intervals_and_p_values_equal_statsmodels_and_scipy(hill):
    data, rd = hill
    ctrl = rd.arm("No E-Mail")
    for a in rd.arms:
        lo, hi = proportion_confint(a.conversions, a.n, alpha=0.05, method="wilson")
        assert a.rate.low == pytest.approx(lo, abs=TOL) and a.rate.high == pytest.approx(hi, abs=TOL)
        x = data.exposures["revenue"].to_numpy()[(data.arms == a.arm).to_numpy()]
        lo, hi = DescrStatsW(x).tconfint_mean(alpha=0.05)
        assert a.revenue_per_customer.low == pytest.approx(lo, abs=TOL)
        assert a.revenue_per_customer.high == pytest.approx(hi, abs=TOL)
    raw_p = {}
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        t = rd.arm(arm)
        lf = rd.lift(arm, "conversion")
        lo, hi = confint_proportions_2indep(t.conversions, t.n, ctrl.conversions, ctrl.n, method="newcomb")
        assert (lf.absolute.low, lf.absolute.high) == pytest.approx((lo, hi), abs=TOL)
        _, p = proportions_ztest([t.conversions, ctrl.conversions], [t.n, ctrl.n])  # pooled z: another function
        assert lf.p_value == pytest.approx(p, rel=TOL, abs=1e-300)
        lo, hi = confint_proportions_2indep(t.conversions, t.n, ctrl.conversions, ctrl.n, method="log",
                                            compare="ratio")
        assert (lf.relative.low, lf.relative.high) == pytest.approx((lo - 1, hi - 1), abs=TOL)
        raw_p[arm] = lf.p_value
        rev = rd.lift(arm, "revenue")
        y = data.exposures["revenue"].to_numpy()
        x1, x0 = y[(data.arms == arm).to_numpy()], y[data.control_mask]
        cm = CompareMeans(DescrStatsW(x1), DescrStatsW(x0))
        lo, hi = cm.tconfint_diff(alpha=0.05, usevar="unequal")
        assert (rev.absolute.low, rev.absolute.high) == pytest.approx((lo, hi), abs=TOL)
        assert rev.p_value == pytest.approx(cm.ttest_ind(usevar="unequal")[1], rel=TOL)
        assert rev.absolute.value == pytest.approx(x1.mean() - x0.mean(), abs=TOL)
        b = rev.absolute_bootstrap
        assert b.low < rev.absolute.value < b.high
        assert abs((b.high - b.low) / (hi - lo) - 1) < 0.2  # bootstrap and Welch agree at this size
    adj = multipletests([raw_p["Mens E-Mail"], raw_p["Womens E-Mail"]], method="holm")[1]
    assert rd.lift("Mens E-Mail").p_holm == pytest.approx(adj[0], rel=TOL)
    assert rd.lift("Womens E-Mail").p_holm == pytest.approx(adj[1], rel=TOL)
    srm = sst.chisquare([21_306, 21_307, 21_387])
    assert rd.srm.p_value == pytest.approx(srm.pvalue, abs=TOL) and not rd.flagged


@pytest.mark.realdata
def test_hillstrom_verdicts_json_and_cuped(hill):
    data, rd = hill
    assert rd.causal
    assert rd.lift("Womens E-Mail").verdict.startswith("Womens E-Mail: +4.5 pp visits [3.9, 5.2], p < 0.001")
    assert rd.lift("Mens E-Mail").verdict.startswith("Mens E-Mail: +7.7 pp visits [7.0, 8.3], p < 0.001")
    assert all("significant increase" in v for v in rd.verdicts)
    doc = json.loads(json.dumps(rd.to_dict(), allow_nan=False))
    assert doc["guards"][0]["code"] == "srm" and doc["srm"]["mismatch"] is False
    assert [lf["arm"] for lf in doc["lifts"]] == ["Mens E-Mail", "Womens E-Mail"] * 2
    y = data.exposures["revenue"].to_numpy()
    x = data.features_for_exposures(["history"])["history"].to_numpy()
    r = np.corrcoef(y, x)[0, 1]
    assert rd.cuped["metrics"]["revenue"]["variance_reduction"] == pytest.approx(r ** 2, abs=TOL)
    text = str(rd)
    assert text.index("sample ratio OK") < text.index("No E-Mail ") < text.index("verdicts")


def _frame(arms: dict[str, tuple[int, int]], revenue_per_conversion: float = 10.0, randomized=True):
    """Exposures with (n, conversions) per arm; arm 'control' gets an empty offer id."""
    rows = []
    for arm, (n, c) in arms.items():
        for i in range(n):
            rows.append({"customer_id": f"{arm}-{i}", "exposed_at": "2024-05-01",
                         "offer_id": None if arm == "control" else arm, "converted": i < c,
                         "revenue": revenue_per_conversion * (1 + i % 3) if i < c else 0.0})
    df = pd.DataFrame(rows)
    if randomized is not None:
        df["randomized"] = randomized
    return df


def test_hand_counts_equal_statsmodels():
    rd = readout(CampaignData(_frame({"control": (1000, 100), "B": (1000, 130)})), n_bootstrap=0)
    lf = rd.lift("B")
    assert lf.absolute.value == pytest.approx(0.03, abs=1e-12)
    lo, hi = confint_proportions_2indep(130, 1000, 100, 1000, method="newcomb")
    assert (lf.absolute.low, lf.absolute.high) == pytest.approx((lo, hi), abs=TOL)
    assert lf.p_value == pytest.approx(proportions_ztest([130, 100], [1000, 1000])[1], rel=TOL)
    assert lf.relative.value == pytest.approx(0.3, abs=1e-12)
    assert lf.p_holm == pytest.approx(lf.p_value)  # one arm: nothing to adjust
    assert lf.verdict == "B: +3.0 pp conversions [0.2, 5.8], p = 0.035 - significant increase"
    assert rd.lift("B", "revenue").absolute_bootstrap is None


def test_holm_equals_statsmodels_and_skips_missing():
    p = [0.01, 0.04, None, 0.03, 0.2, 0.0]
    expected = multipletests([0.01, 0.04, 0.03, 0.2, 0.0], method="holm")[1]
    got = holm(p)
    assert got[2] is None
    assert [g for g in got if g is not None] == pytest.approx(list(expected), abs=1e-12)


def test_cuped_by_hand():
    # pooled x = 0 2 4 | 0 2 4, y = 1 3 3 | 3 5 5: theta = sum(dx dy) / sum(dx^2) = 8 / 16 = 0.5,
    # adjusted y = y - 0.5 (x - 2) = 2 3 2 | 4 5 4, lift 2, variance 102/45 -> 66/45 (reduction 6/17)
    x = np.array([0.0, 2, 4, 0, 2, 4])
    y = np.array([1.0, 3, 3, 3, 5, 5])
    est = Cuped().fit(y, x)
    assert est.theta_ == pytest.approx([0.5]) and est.mean_x_ == pytest.approx([2.0])
    assert est.variance_reduction_ == pytest.approx(6 / 17, abs=1e-12)
    assert est.transform(y, x) == pytest.approx([2, 3, 2, 4, 5, 4])
    exp = pd.DataFrame({"customer_id": list("abcdef"), "exposed_at": "2024-01-01",
                        "offer_id": [None, None, None, "T", "T", "T"], "revenue": y, "randomized": True})
    data = CampaignData(exp, features=pd.DataFrame({"customer_id": list("abcdef"), "x": x}))
    rd = readout(data, cuped="x", metrics=("revenue",), n_bootstrap=0, min_n=1)
    c = rd.lift("T", "revenue").cuped
    assert c.value == pytest.approx(2.0)
    ref = sst.ttest_ind([4, 5, 4], [2, 3, 2], equal_var=False)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert rd.cuped["metrics"]["revenue"]["variance_reduction"] == pytest.approx(6 / 17, abs=1e-12)
    assert rd.cuped["metrics"]["revenue"]["theta"] == pytest.approx([0.5])


def test_cuped_errors_name_the_covariate():
    exp = pd.DataFrame({"customer_id": list("abcd"), "exposed_at": "2024-01-01", "offer_id": [None, None, "T", "T"],
                        "revenue": [1.0, 2, 3, 4]})
    feats = pd.DataFrame({"customer_id": list("abc"), "x": [1.0, 2, 3], "k": [5.0, 5, 5]})
    data = CampaignData(exp, features=feats)
    with pytest.raises(DataError, match="covariate x is missing .* for 1 of 4 customers"):
        readout(data, cuped="x", n_bootstrap=0)
    data = CampaignData(exp, features=pd.concat([feats, pd.DataFrame({"customer_id": ["d"], "x": [4.0],
                                                                      "k": [5.0]})]))
    with pytest.raises(DataError, match="covariate k is constant"):
        readout(data, cuped="k", n_bootstrap=0)
    with pytest.raises(DataError, match="CUPED needs pre-period features"):
        readout(CampaignData(exp), cuped="x", n_bootstrap=0)


def test_srm_mismatch_is_shown_first_and_flags_every_verdict():
    data = CampaignData(_frame({"control": (4000, 400), "B": (4600, 500)}))
    rd = readout(data, planned_split={"control": 1, "B": 1}, n_bootstrap=0)
    assert rd.guards[0].code == "srm" and rd.guards[0].severity == "error" and rd.flagged
    assert rd.srm.p_value == pytest.approx(sst.chisquare([4000, 4600]).pvalue, rel=1e-12)
    assert all(v.startswith("NOT TRUSTWORTHY") for v in rd.verdicts)
    assert str(rd).splitlines()[1].startswith("[error] SAMPLE RATIO MISMATCH")
    ok = readout(data, planned_split={"control": 4000, "B": 4600}, n_bootstrap=0)
    assert not ok.flagged and ok.guards[0].message.startswith("sample ratio OK")


def test_srm_plan_must_name_every_arm_and_counts_absent_arms():
    data = CampaignData(_frame({"control": (500, 50), "B": (500, 60)}))
    with pytest.raises(DataError, match=r"arm\(s\) \['B'\] are in the data but not in the planned split"):
        readout(data, planned_split={"control": 1, "C": 1}, n_bootstrap=0)
    rd = readout(data, planned_split={"control": 1, "B": 1, "C": 1}, n_bootstrap=0)
    assert rd.srm.observed == {"control": 500, "B": 500, "C": 0} and rd.flagged


def test_no_control_and_no_treatment_are_messages_not_nans():
    rd = readout(CampaignData(_frame({"B": (300, 30), "C": (300, 40)})), n_bootstrap=0)
    assert rd.lifts == [] and rd.flagged
    assert [g.code for g in rd.guards if g.severity == "error"] == ["no_control"]
    assert rd.verdicts[0].startswith("no control group")
    assert [a.rate.value for a in rd.arms] == pytest.approx([0.1, 40 / 300])
    json.dumps(rd.to_dict(), allow_nan=False)
    rd = readout(CampaignData(_frame({"control": (300, 30)})), n_bootstrap=0)
    assert [g.code for g in rd.guards if g.severity == "error"] == ["no_treatment"]


def test_zero_conversions_and_no_variation():
    rd = readout(CampaignData(_frame({"control": (400, 20), "B": (400, 0)})), n_bootstrap=0)
    lf = rd.lift("B")
    assert lf.absolute.value == pytest.approx(-0.05) and lf.absolute.low is not None
    assert lf.relative.value is None and "no conversions in the treatment arm" in lf.relative.note
    assert any(g.code == "zero_conversions" and g.arm == "B" for g in rd.guards)
    rd = readout(CampaignData(_frame({"control": (400, 0), "B": (400, 0)})), n_bootstrap=0)
    lf = rd.lift("B")
    assert lf.absolute.value == 0.0 and lf.absolute.low is None and lf.p_value is None
    assert "no conversions in either arm" in lf.verdict
    assert rd.lift("B", "revenue").absolute.p_value is None
    doc = json.loads(json.dumps(rd.to_dict(), allow_nan=False))
    assert doc["lifts"][0]["absolute"]["low"] is None and doc["lifts"][0]["absolute"]["note"]


def test_small_arms_are_inconclusive():
    rd = readout(CampaignData(_frame({"control": (50, 5), "B": (60, 30)})), n_bootstrap=0, min_n=100)
    assert {g.arm for g in rd.guards if g.code == "min_sample"} == {"control", "B"}
    assert "too few customers to decide (B: only 60 customers < 100; control: only 50 customers < 100)" \
        in rd.lift("B").verdict


def test_not_randomized_is_an_association():
    for flag in (False, None):
        rd = readout(CampaignData(_frame({"control": (1000, 100), "B": (1000, 200)}, randomized=flag)),
                     n_bootstrap=0)
        assert not rd.causal and any(g.code == "not_randomized" for g in rd.guards)
        assert "not randomized: an association, not an effect" in rd.lift("B").verdict
        assert "significant increase" not in rd.lift("B").verdict


def test_repeated_customers_count_once_in_their_first_arm():
    df = _frame({"control": (200, 20), "B": (200, 40)})
    again = df.iloc[[0]].assign(exposed_at="2024-05-02", offer_id="B", converted=True)  # control-0 again, in B
    rd = readout(CampaignData(pd.concat([df, again], ignore_index=True)), n_bootstrap=0)
    assert rd.n == 400 and rd.arm("control").n == 200 and rd.arm("B").n == 200
    g = [g for g in rd.guards if g.code == "duplicates"][0]
    assert "1 repeated exposures" in g.message and "1 in more than one arm" in g.message


def test_missing_revenue_of_a_conversion_is_an_error_and_several_campaigns_need_an_id():
    df = _frame({"control": (10, 2), "B": (10, 3)})
    df.loc[0, "revenue"] = np.nan  # converted row
    with pytest.raises(DataError, match="revenue is missing for 1 exposures that converted"):
        readout(CampaignData(df), n_bootstrap=0)
    df = _frame({"control": (10, 2), "B": (10, 3)})
    df.loc[5, "revenue"] = np.nan  # did not convert: counts as 0
    assert readout(CampaignData(df), n_bootstrap=0).arm("control").revenue == pytest.approx(10 + 20)
    two = pd.concat([df.assign(campaign_id="c1"), df.assign(campaign_id="c2")], ignore_index=True)
    with pytest.raises(DataError, match="hold 2 campaigns"):
        readout(CampaignData(two), n_bootstrap=0)
    assert readout(CampaignData(two), campaign_id="c2", n_bootstrap=0).campaign_id == "c2"


def test_bad_options():
    data = CampaignData(_frame({"control": (10, 2), "B": (10, 3)}))
    with pytest.raises(DataError, match="metrics must be among"):
        readout(data, metrics=("clicks",))
    with pytest.raises(DataError, match="alpha must be between"):
        readout(data, alpha=0.7)
    with pytest.raises(DataError, match="expected CampaignData"):
        readout(_frame({"control": (10, 2)}))


def test_cuped_on_synthetic_pre_period_spend_reduces_variance():
    from personalize.datasets import make_retail

    ds, _ = make_retail(n_customers=1500, n_items=60, n_categories=6, seed=11, n_campaigns=1, campaign_share=1.0)
    data = CampaignData.from_dataset(ds)
    rd = readout(data, cuped="pre_spend", n_bootstrap=0, min_n=10)
    y = data.exposures["revenue"].to_numpy()
    x = data.features_for_exposures(["pre_spend"])["pre_spend"].to_numpy()
    vr = rd.cuped["metrics"]["revenue"]["variance_reduction"]
    assert vr == pytest.approx(np.corrcoef(y, x)[0, 1] ** 2, abs=1e-9) and vr > 0.05
    lifts = [lf for lf in rd.lifts if lf.metric == "revenue" and lf.cuped.low is not None]
    narrower = [lf.cuped.high - lf.cuped.low < lf.absolute.high - lf.absolute.low for lf in lifts]
    assert sum(narrower) >= 0.8 * len(lifts)
