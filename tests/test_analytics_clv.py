"""CLV: calibration summary, BG/NBD, Gamma-Gamma, discounted and simple CLV.

The CDNOW numbers are the published results of Fader, Hardie & Lee (2005).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from personalize.errors import ConvergenceError
from personalize.analytics import (BGNBDModel, GammaGammaModel, MBGNBDModel, calibration_summary,
                                   compare_purchase_models, cumulative_repeat_purchases, discounted_clv, fit_clv,
                                   holdout_comparison, holdout_table, simple_clv)
from personalize.errors import DataError, NotFittedError, PersonalizeError

PAPER_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PAPER_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def tx_frame(rows):
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"]).assign(
        timestamp=lambda d: pd.to_datetime(d["timestamp"], format="ISO8601"))


def simulate_bgnbd(n, r, alpha, a, b, T_max, seed=0):
    """Draw (frequency, recency, T) from the BG/NBD process (first purchase at 0)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(T_max / 2, T_max, n)
    k = 200
    gaps = rng.exponential(1.0, (n, k)) / lam[:, None]
    times = np.cumsum(gaps, axis=1)
    # repeat purchases possible before drop-out: J ~ Geometric(p) on 1, 2, ... (drop-out after a purchase)
    J = rng.geometric(p)
    alive_upto = np.minimum(J, k)
    idx = np.arange(1, k + 1)[None, :]
    made = (times <= T[:, None]) & (idx <= alive_upto[:, None])
    x = made.sum(axis=1)
    tx = np.where(x > 0, times[np.arange(n), np.maximum(x - 1, 0)], 0.0)
    return x.astype(float), tx, T


# --------------------------------------------------------------------------- summary

def test_summary_definitions_by_hand():
    tx = tx_frame([
        ("a", "2020-01-01 09:00", 10.0),
        ("a", "2020-01-01 18:00", 5.0),   # same day: one purchase of 15
        ("a", "2020-01-08", 20.0),
        ("a", "2020-01-22", 40.0),
        ("a", "2020-02-05", 99.0),        # holdout
        ("b", "2020-01-15", 7.0),
        ("c", "2020-02-01", 3.0),         # first purchase after calibration end: not in summary
    ])
    s = calibration_summary(tx, calibration_end="2020-01-29", holdout_end="2020-02-12", time_unit="W")
    assert list(s.index) == ["a", "b"]
    a, b = s.loc["a"], s.loc["b"]
    assert a["frequency"] == 2                       # first purchase excluded, same-day merged
    assert a["recency"] == pytest.approx(21 / 7)
    assert a["T"] == pytest.approx(28 / 7)           # to the calibration end day
    assert a["monetary_value"] == pytest.approx(30.0)  # mean of the repeat purchases (20, 40)
    assert a["frequency_holdout"] == 1 and a["monetary_value_holdout"] == pytest.approx(99.0)
    assert a["duration_holdout"] == pytest.approx(14 / 7)
    assert (b["frequency"], b["recency"], b["monetary_value"]) == (0, 0.0, 0.0)
    assert b["T"] == pytest.approx(14 / 7)
    assert s.attrs["time_unit"] == "W" and s.attrs["calibration_end"] == "2020-01-29"
    d = calibration_summary(tx, calibration_end="2020-01-29", time_unit="D")
    assert d.loc["a", "T"] == pytest.approx(28.0)


def test_summary_accepts_quantity_price_and_rejects_bad_input():
    tx = pd.DataFrame({"customer_id": ["a", "a"], "timestamp": pd.to_datetime(["2020-01-01", "2020-01-05"]),
                       "quantity": [2.0, 1.0], "price": [5.0, 4.0]})
    s = calibration_summary(tx)
    assert s.loc["a", "monetary_value"] == pytest.approx(4.0)
    assert s.loc["a", "T"] == pytest.approx(4.0)   # default: calibration ends on the last day
    with pytest.raises(PersonalizeError, match="time_unit"):
        calibration_summary(tx, time_unit="fortnight")
    with pytest.raises(DataError, match="amount"):
        calibration_summary(tx.drop(columns="price"))
    with pytest.raises(DataError, match="holdout_end"):
        calibration_summary(tx, calibration_end="2020-01-05", holdout_end="2020-01-01")
    with pytest.raises(DataError, match="no transactions on or before"):
        calibration_summary(tx, calibration_end="2019-01-01")


# --------------------------------------------------------------------------- BG/NBD

def test_bgnbd_gradient_matches_finite_differences():
    x, tx, T = simulate_bgnbd(500, 0.5, 5.0, 0.8, 2.5, 40, seed=3)
    m = BGNBDModel(penalizer=0.01)
    w = np.ones_like(x)
    for theta in (np.log([0.5, 5.0, 0.8, 2.5]), np.log([1.3, 0.7, 2.0, 0.4])):
        err = check_grad(lambda th: m._objective(th, x, tx, T, w, w.sum())[0],
                         lambda th: m._objective(th, x, tx, T, w, w.sum())[1], theta)
        assert err < 1e-5


def test_bgnbd_recovers_simulated_parameters():
    truth = {"r": 0.6, "alpha": 6.0, "a": 0.9, "b": 2.5}
    x, tx, T = simulate_bgnbd(20_000, **truth, T_max=52, seed=1)
    m = BGNBDModel().fit(frequency=x, recency=tx, T=T)
    for k, v in truth.items():
        assert m.params_[k] == pytest.approx(v, rel=0.2), (k, m.params_)
    # the optimum is at least as likely as the truth
    ll_truth = BGNBDModel.from_dict({"model": "bgnbd", "params": truth}).log_likelihood(
        frequency=x, recency=tx, T=T).sum()
    assert m.log_likelihood_ >= ll_truth - 1e-6


def test_bgnbd_predictions_behave():
    m = BGNBDModel.from_dict({"model": "bgnbd", "params": PAPER_BGNBD})
    assert m.p_alive(frequency=0, recency=0, T=30) == pytest.approx(1.0)
    pa = m.p_alive(frequency=3, recency=10, T=np.array([10.0, 20.0, 40.0]))
    assert pa[0] > pa[1] > pa[2] > 0
    assert m.expected_purchases(0, frequency=2, recency=30.43, T=38.86) == pytest.approx(0.0, abs=1e-12)
    e = m.expected_purchases(np.array([10.0, 39.0, 100.0]), frequency=2, recency=30.43, T=38.86)
    assert np.all(np.diff(e) > 0)
    # unconditional E[X(t)] equals the conditional expectation of a brand-new customer at T = 0
    assert m.expected_purchases_new(39.0) == pytest.approx(
        float(m.expected_purchases(39.0, frequency=0, recency=0, T=0)), rel=1e-9)
    # large counts stay finite (log-space likelihood)
    ll = m.log_likelihood(frequency=np.array([500.0]), recency=np.array([50.0]), T=np.array([52.0]))
    assert np.isfinite(ll).all()


def test_bgnbd_errors():
    with pytest.raises(NotFittedError):
        BGNBDModel().p_alive(frequency=1, recency=1, T=2)
    with pytest.raises(ConvergenceError, match="repeat purchases"):
        BGNBDModel().fit(frequency=[0, 0, 0], recency=[0, 0, 0], T=[5, 6, 7])
    with pytest.raises(DataError, match="T"):
        BGNBDModel().fit(frequency=[1, 2], recency=[5, 6], T=[4, 7])
    with pytest.raises(DataError, match="frequency"):
        BGNBDModel().fit(frequency=[1.5, 2], recency=[5, 6], T=[8, 7])
    with pytest.raises(DataError, match="recency"):
        BGNBDModel().fit(frequency=[0, 2], recency=[5, 6], T=[8, 7])


def test_bgnbd_state_round_trips_through_json():
    x, tx, T = simulate_bgnbd(2000, 0.5, 5.0, 0.8, 2.5, 40, seed=4)
    m = BGNBDModel().fit(frequency=x, recency=tx, T=T)
    m2 = BGNBDModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert m2.params_ == m.params_
    np.testing.assert_allclose(m2.expected_purchases(10, frequency=x, recency=tx, T=T),
                               m.expected_purchases(10, frequency=x, recency=tx, T=T))


# --------------------------------------------------------------------------- Gamma-Gamma

def simulate_gg(n, p, q, v, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 10, n).astype(float)
    nu = rng.gamma(q, 1.0 / v, n)
    m = np.array([rng.gamma(p, 1.0 / nu_i, int(k)).mean() for nu_i, k in zip(nu, x)])
    return x, m


def test_gamma_gamma_gradient_and_recovery():
    truth = {"p": 6.0, "q": 4.0, "v": 15.0}
    x, mval = simulate_gg(5000, **truth, seed=2)
    gg = GammaGammaModel()
    w = np.ones_like(x)
    err = check_grad(lambda th: gg._objective(th, x, mval, w, w.sum())[0],
                     lambda th: gg._objective(th, x, mval, w, w.sum())[1], np.log([2.0, 3.0, 10.0]))
    assert err < 1e-5
    gg.fit(frequency=x, monetary_value=mval)
    for k, v in truth.items():
        assert gg.params_[k] == pytest.approx(v, rel=0.2), gg.params_
    # x = 0 -> population mean; many purchases -> close to the customer's own mean
    pm = gg.population_mean_spend_
    assert gg.expected_spend(frequency=0, monetary_value=123.0) == pytest.approx(pm)
    assert gg.expected_spend(frequency=1000, monetary_value=50.0) == pytest.approx(50.0, rel=0.01)


def test_gamma_gamma_with_equal_spend_rates_fits_the_limit_and_says_so():
    # every customer's purchases come from one Gamma(2, 0.1): the optimum is q, v -> infinity, where L-BFGS-B
    # loses precision (it stopped with ABNORMAL on SciPy 1.17); the limit model is fitted instead
    rng = np.random.default_rng(1)
    x = rng.integers(1, 8, 3000).astype(float)
    mval = np.array([rng.gamma(2.0, 10.0, int(k)).mean() for k in x])
    gg = GammaGammaModel().fit(frequency=x, monetary_value=mval)
    assert gg.homogeneous_ and gg.params_["p"] == pytest.approx(2.0, rel=0.1)
    assert gg.population_mean_spend_ == pytest.approx(20.0, rel=0.05)
    diag = gg.diagnostics_
    assert diag["status"] == "ok" and [w["code"] for w in diag["warnings"]] == ["equal_spend_rates"]
    # a customer's own mean barely moves their expected spend off the population mean
    spend = gg.expected_spend(frequency=x, monetary_value=mval)
    assert np.ptp(spend) < 1e-3 * gg.population_mean_spend_
    assert np.isfinite(gg.log_likelihood_)
    # a saved and reloaded model is still the limit model, with the same expected spends
    back = GammaGammaModel.from_dict(json.loads(json.dumps(gg.to_dict())))
    assert back.homogeneous_ and back.diagnostics_ == diag
    np.testing.assert_allclose(back.expected_spend(frequency=x, monetary_value=mval), spend, rtol=1e-12)
    # spend rates that do differ keep the open fit
    x2, m2 = simulate_gg(3000, p=2.0, q=4.0, v=40.0, seed=3)
    het = GammaGammaModel().fit(frequency=x2, monetary_value=m2)
    assert not het.homogeneous_ and het.params_["q"] == pytest.approx(4.0, rel=0.3)
    assert het.diagnostics_["warnings"] == []
    assert not GammaGammaModel.from_dict(het.to_dict()).homogeneous_


def test_gamma_gamma_rejects_non_positive_spend_and_ignores_one_timers():
    s = pd.DataFrame({"frequency": [0, 2, 3], "monetary_value": [0.0, -1.0, 5.0]}, index=["a", "b", "c"])
    with pytest.raises(DataError, match="monetary_value") as info:
        GammaGammaModel().fit(s)
    assert "b" in str(info.value)
    with pytest.raises(ConvergenceError, match="at least 2"):
        GammaGammaModel().fit(s.loc[["a", "c"]])
    with pytest.raises(NotFittedError):
        GammaGammaModel().expected_spend(s)
    # every purchase worth the same: no spread to identify p -> a clear convergence error
    with pytest.raises(ConvergenceError, match="did not converge: parameter"):
        GammaGammaModel().fit(frequency=np.array([1.0, 2.0, 3.0, 4.0]), monetary_value=np.full(4, 10.0))


# --------------------------------------------------------------------------- CLV

def test_discounted_clv_matches_expected_purchases_without_discount():
    x, tx, T = simulate_bgnbd(300, 0.5, 5.0, 0.8, 2.5, 40, seed=5)
    s = pd.DataFrame({"frequency": x, "recency": tx, "T": T, "monetary_value": np.where(x > 0, 20.0, 0.0)})
    bg = BGNBDModel.from_dict({"model": "bgnbd", "params": PAPER_BGNBD})
    gg = GammaGammaModel.from_dict({"model": "gamma_gamma", "params": PAPER_GG})
    plain = discounted_clv(bg, gg, s, horizon=52, step=4.33)
    expect = bg.expected_purchases(52, s) * gg.expected_spend(s)
    np.testing.assert_allclose(plain.to_numpy(), expect, rtol=1e-9)
    disc = discounted_clv(bg, gg, s, horizon=52, step=4.33, discount_rate=0.01)
    assert np.all(disc.to_numpy() < plain.to_numpy())
    assert np.all(disc.to_numpy() > 0)
    with pytest.raises(PersonalizeError):
        discounted_clv(bg, gg, s, horizon=0)


def test_simple_clv_by_hand():
    tx = tx_frame([
        ("a", "2020-01-10", 10.0), ("a", "2021-03-01", 30.0), ("a", "2021-06-01", 50.0),
        ("b", "2020-05-01", 20.0),
        ("c", "2021-02-01", 8.0),
        ("d", "2019-12-20", 4.0),
    ])
    out = simple_clv(tx, as_of="2022-01-01", period_days=365)
    # the history (2019-12-20 .. 2022-01-01) holds two 365-day periods: nothing is shortened
    assert out.attrs["period_days"] == 365.0 and "note" not in out.attrs
    # retention: of {a, b} who bought in the period before last, only a bought again in the last 365 days
    assert out["retention"].iloc[0] == pytest.approx(0.5)
    assert out.loc["a", "frequency"] == 2 and out.loc["a", "aov"] == pytest.approx(40.0)
    assert out.loc["a", "clv"] == pytest.approx(2 * 40.0 * 0.5)
    assert out.loc["b", "clv"] == 0.0
    two = simple_clv(tx, as_of="2022-01-01", period_days=365, horizon_periods=2, discount_rate=0.1)
    assert two.loc["a", "clv"] == pytest.approx(80.0 * (0.5 / 1.1 + (0.5 / 1.1) ** 2))


def test_simple_clv_shortens_its_period_to_fit_two_and_explains_itself():
    tx = tx_frame([
        ("a", "2021-07-01", 10.0), ("a", "2021-11-01", 30.0), ("a", "2021-12-01", 50.0),
        ("b", "2021-08-01", 20.0),
        ("c", "2021-10-15", 8.0),
    ])
    # 184 days of history: a 365-day period cannot be had twice, so the period is 92 days
    out = simple_clv(tx, as_of="2022-01-01", period_days=365)
    assert out.attrs["period_days"] == pytest.approx(92.0)
    assert "shortened from 365 to 92.0 days" in out.attrs["note"]
    # before last: 2021-07-01 .. 2021-10-01 holds a and b; a bought again after, b did not
    assert out.attrs["retention"] == pytest.approx(0.5) and out.attrs["retained_of"] == 2
    # the horizon is still 365 days: 365 / 92 = 3.97 periods of 92 days, the last one in part
    steps = 365.0 / 92.0
    g = 0.5
    factor = g + g ** 2 + g ** 3 + (steps - 3) * g ** 4
    assert out.loc["a", "frequency"] == 2 and out.loc["a", "clv"] == pytest.approx(2 * 40.0 * factor)
    assert out.loc["c", "clv"] == pytest.approx(1 * 8.0 * factor)
    # a discount rate per 365 days is one per 92-day period after conversion
    disc = simple_clv(tx, as_of="2022-01-01", period_days=365, discount_rate=0.1)
    d = 1.1 ** (92.0 / 365.0) - 1.0
    gd = 0.5 / (1 + d)
    assert disc.loc["a", "clv"] == pytest.approx(80.0 * (gd + gd ** 2 + gd ** 3 + (steps - 3) * gd ** 4))
    # shorter than two 7-day periods: a clear reason
    with pytest.raises(DataError, match="two periods of history.*10.0 days"):
        simple_clv(tx, as_of="2021-07-11", period_days=365)
    # nobody in the period before last
    gap = tx_frame([("a", "2021-01-01", 5.0), ("a", "2021-01-01", 5.0), ("b", "2021-12-30", 5.0)])
    with pytest.raises(DataError, match="nobody bought in the period before last"):
        simple_clv(gap, as_of="2022-01-01", period_days=100)


# --------------------------------------------------------------------------- CDNOW (published results)

def _cdnow_sample_frame(path):
    raw = pd.read_csv(path, sep=r"\s+", header=None, names=["master_id", "sample_id", "date", "cds", "dollars"],
                      dtype={"master_id": str, "sample_id": str, "date": str})
    return pd.DataFrame({"customer_id": raw["master_id"], "timestamp": pd.to_datetime(raw["date"], format="%Y%m%d"),
                         "amount": raw["dollars"].astype(float)})


@pytest.fixture(scope="module")
def cdnow_sample(request):
    shared = request.getfixturevalue("shared_data")
    path = shared / "cdnow" / "CDNOW_sample.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.realdata
@pytest.mark.parametrize("via", ["adapter", "frame"])
def test_cdnow_sample_matches_paper(cdnow_sample, via):
    if via == "adapter":
        from personalize.data.adapters import load_cdnow_sample
        data = load_cdnow_sample(cdnow_sample)
    else:
        data = _cdnow_sample_frame(cdnow_sample)
    s = calibration_summary(data, calibration_end="1997-09-30", holdout_end="1998-06-30", time_unit="W")
    assert len(s) == 2357 and int((s["frequency"] > 0).sum()) == 946
    bg, gg, left_out = fit_clv(s)
    for k, v in PAPER_BGNBD.items():
        assert bg.params_[k] == pytest.approx(v, rel=0.01), (k, bg.params_)
    assert bg.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
    e = bg.expected_purchases(39, frequency=2, recency=30.43, T=38.86)
    assert float(e) == pytest.approx(1.226, abs=0.002)
    assert left_out == 0 and gg.n_customers_ == 946
    for k, v in PAPER_GG.items():
        assert gg.params_[k] == pytest.approx(v, rel=0.01), (k, gg.params_)
    h = holdout_comparison(bg, s)
    # table 2 of the paper: customers with x = 0 made 0.236 purchases in the holdout, 0.225 predicted
    row0 = h["by_frequency"][0]
    assert row0["customers"] == 1411
    assert row0["actual_mean"] == pytest.approx(0.236, abs=0.001)
    assert row0["predicted_mean"] == pytest.approx(0.225, abs=0.001)
    cum = cumulative_repeat_purchases(data, s, bg, end="1998-06-30")
    assert len(cum) == 78
    # cumulative tracking: within 5% at the end of calibration (week 39)
    wk39 = cum.iloc[38]
    assert wk39["predicted"] == pytest.approx(wk39["actual"], rel=0.05)


# --------------------------------------------------------------------------- MBG/NBD

def simulate_mbgnbd(n, r, alpha, a, b, T_max, seed=0, horizon=None):
    """Draw (frequency, recency, T) from MBG/NBD: drop-out checks right after the first purchase and after
    every repeat purchase. With ``horizon`` also the repeat purchases in (0, horizon] of a new customer."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(T_max / 2, T_max, n) if horizon is None else np.full(n, float(horizon))
    k = 300
    times = np.cumsum(rng.exponential(1.0, (n, k)) / lam[:, None], axis=1)
    # J = number of repeat purchases made before dropping out: P(J >= j) = (1 - p)^j, the check at time 0 included
    J = rng.geometric(p) - 1
    idx = np.arange(1, k + 1)[None, :]
    made = (times <= T[:, None]) & (idx <= J[:, None])
    x = made.sum(axis=1)
    tx = np.where(x > 0, times[np.arange(n), np.maximum(x - 1, 0)], 0.0)
    return x.astype(float), tx, T


def test_mbgnbd_gradient_matches_finite_differences():
    x, tx, T = simulate_mbgnbd(500, 0.5, 5.0, 0.8, 2.5, 40, seed=3)
    m = MBGNBDModel(penalizer=0.01)
    w = np.ones_like(x)
    for theta in (np.log([0.5, 5.0, 0.8, 2.5]), np.log([1.3, 0.7, 2.0, 0.4])):
        err = check_grad(lambda th: m._objective(th, x, tx, T, w, w.sum())[0],
                         lambda th: m._objective(th, x, tx, T, w, w.sum())[1], theta)
        assert err < 1e-5


def test_mbgnbd_recovers_simulated_parameters_and_bgnbd_cannot():
    truth = {"r": 0.6, "alpha": 6.0, "a": 0.9, "b": 2.5}
    x, tx, T = simulate_mbgnbd(20_000, **truth, T_max=52, seed=1)
    m = MBGNBDModel().fit(frequency=x, recency=tx, T=T)
    for k, v in truth.items():
        assert m.params_[k] == pytest.approx(v, rel=0.2), (k, m.params_)
    bg = BGNBDModel().fit(frequency=x, recency=tx, T=T)
    assert m.log_likelihood_ > bg.log_likelihood_ + 10  # the data were made by MBG/NBD
    assert m.diagnostics_["status"] == "ok" and m.to_dict()["model"] == "mbgnbd"


def test_mbgnbd_expectations_match_a_simulation():
    params = {"r": 0.8, "alpha": 4.0, "a": 1.6, "b": 3.0}
    m = MBGNBDModel.from_dict({"model": "mbgnbd", "params": params})
    # E[X(t)] of a new customer, by closed form and by simulation
    x, _tx, _T = simulate_mbgnbd(200_000, **params, T_max=0, seed=5, horizon=20.0)
    assert float(m.expected_purchases_new(20.0)) == pytest.approx(x.mean(), rel=0.02)
    # a new customer's conditional expectation at T = 0 is the unconditional one
    assert float(m.expected_purchases(20.0, frequency=0, recency=0, T=0)) == pytest.approx(
        float(m.expected_purchases_new(20.0)), rel=1e-9)
    # a one-time buyer may be gone: P(alive) falls with silence (BG/NBD keeps it at 1)
    pa = m.p_alive(frequency=0, recency=0, T=np.array([0.0, 10.0, 40.0]))
    assert pa[0] == pytest.approx(1.0 / (1.0 + params["a"] / params["b"])) and pa[0] > pa[1] > pa[2]
    bg = BGNBDModel.from_dict({"model": "bgnbd", "params": params})
    assert (bg.p_alive(frequency=0, recency=0, T=np.array([10.0, 40.0])) == 1.0).all()


def test_diagnostics_flag_a_fit_with_no_drop_out_and_pass_a_healthy_one():
    from personalize.evaluation.scenarios import lapse_free_world
    s = calibration_summary(lapse_free_world(seed=3), time_unit="W")
    for cls in (BGNBDModel, MBGNBDModel):
        m = cls().fit(s)
        d = m.diagnostics_
        assert d["status"] == "degenerate", (cls, m.params_)
        assert [i["code"] for i in d["issues"]][0] == "no_dropout" and d["mean_dropout"] < 1e-3
        assert "does not tell active from lapsed" in d["issues"][0]["message"]
        assert m.to_dict()["diagnostics"]["status"] == "degenerate"
        assert BGNBDModel.from_dict(json.loads(json.dumps(BGNBDModel().fit(s).to_dict()))).diagnostics_ == \
            BGNBDModel().fit(s).diagnostics_
    # data with drop-out: nothing to report
    x, tx, T = simulate_bgnbd(5000, 0.5, 5.0, 0.8, 2.5, 40, seed=6)
    ok = BGNBDModel().fit(frequency=x, recency=tx, T=T).diagnostics_
    assert ok["status"] == "ok" and not ok["issues"] and 0.1 < ok["mean_dropout"] < 0.5


def test_compare_purchase_models_picks_mbgnbd_where_one_time_buyers_vanish():
    from personalize.evaluation.scenarios import lapse_free_world
    ds = lapse_free_world(one_timers=0.4, seed=1)
    s = calibration_summary(ds, calibration_end="2023-09-30", holdout_end="2023-12-31", time_unit="W")
    record, fitted = compare_purchase_models(s)
    assert set(fitted) == {"bgnbd", "mbgnbd"} and record["ranking"][0] == "mbgnbd"
    assert record["chosen"] == "mbgnbd" and not record["degenerate"]
    assert record["candidates"]["bgnbd"]["status"] == "degenerate"  # BG/NBD cannot let a one-time buyer go
    h = record["candidates"]["mbgnbd"]["holdout"]
    table = holdout_table(h)
    groups = table[table["frequency"] != "total"]
    assert h["group_error"] == pytest.approx(float((groups["predicted_total"] - groups["actual_total"]).abs().sum()))
    assert table.iloc[-1]["actual_total"] == pytest.approx(h["actual_total"])
    # P(alive) at the calibration end separates who bought in the holdout from who did not
    assert h["p_alive_auc"] > 0.75
    assert record["candidates"]["bgnbd"]["holdout"]["group_error"] > h["group_error"]
    with pytest.raises(PersonalizeError, match="unknown purchase model"):
        compare_purchase_models(s, ["pareto"])
