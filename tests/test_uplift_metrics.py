"""Uplift metrics against hand-computed values on tiny arrays (ties, continuous outcomes, bad input)."""

from __future__ import annotations

import numpy as np
import pytest

from personalize.errors import DataError, PersonalizeError
from personalize.uplift import (auuc, perfect_qini_curve, policy_value_ipw, qini_coefficient, qini_curve,
                                uplift_at_k, uplift_at_k_by_segment, uplift_curve)

# six rows already in score order; worked by hand in the comments
Y = np.array([1, 0, 1, 0, 1, 0], dtype=float)
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
T = np.array([1, 1, 0, 1, 0, 0], dtype=float)


def test_qini_curve_by_hand():
    # k=1: Yt=1 (no control yet) -> 1; k=2: 1; k=3: 1 - 1*2/1 = -1; k=4: 1 - 1*3/1 = -2;
    # k=5: 1 - 2*3/2 = -2; k=6: 1 - 2*3/3 = -1
    k, q = qini_curve(Y, S, T)
    assert k.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert q.tolist() == pytest.approx([0, 1, 1, -1, -2, -2, -1])


def test_uplift_curve_by_hand():
    # U(k) = (mean_t - mean_c) * k: 1, 1, (1/2 - 1)*3, (1/3 - 1)*4, (1/3 - 1)*5, (1/3 - 2/3)*6
    k, u = uplift_curve(Y, S, T)
    assert u.tolist() == pytest.approx([0, 1, 1, -1.5, -8 / 3, -10 / 3, -2])


def test_qini_coefficient_by_hand():
    # model area (x = k/6, y = Q/6): (1/36) * (0.5 + 1 + 0 - 1.5 - 2 - 1.5) = -3.5/36; random: Q(6)/6/2 = -3/36
    assert qini_coefficient(Y, S, T, normalize=False) == pytest.approx(-0.5 / 36)
    # perfect ordering: score y if treated else -y -> row 0, then the tie block {1, 3, 5} (score 0), then {2, 4}
    k, q = perfect_qini_curve(Y, T)
    assert k.tolist() == [0, 1, 4, 6]
    assert q.tolist() == pytest.approx([0, 1, 1, -1])
    # perfect area: 1/72 + 6/72 + 0 = 7/72, minus random -6/72 -> 13/72; normalised: (-1/72) / (13/72)
    assert qini_coefficient(Y, S, T) == pytest.approx(-1 / 13)


def test_auuc_by_hand():
    # model: (1/36) * (0.5 + 1 - 0.25 - 25/12 - 3 - 8/3) = -6.5/36; random: U(6)/6/2 = -2/12 = -6/36
    assert auuc(Y, S, T, normalize=False) == pytest.approx(-0.5 / 36)
    # perfect curve: U at k=1: 1; k=4: (1/3 - 0)*4 = 4/3; k=6: -2
    # area: (1/6)(1/6)/2 + (3/6)(1/6 + 4/18)/2 + (2/6)(4/18 - 2/6)/2 = 1/72 + 7/72 - 1/54
    perfect = 1 / 72 + 7 / 72 - 1 / 54 + 1 / 6
    assert auuc(Y, S, T) == pytest.approx((-0.5 / 36) / perfect)


def test_an_order_that_matches_the_truth_beats_random_and_the_reverse_loses():
    rng = np.random.default_rng(0)
    n = 4000
    tau = rng.uniform(0, 0.4, n)
    t = (rng.random(n) < 0.5).astype(float)
    y = (rng.random(n) < 0.1 + tau * t).astype(float)
    # the oracle ordering of *observed* outcomes is far above any score's, so even the true uplift
    # reaches about 0.17 (Qini) and 0.30 (AUUC) here; a random score stays near 0
    assert qini_coefficient(y, tau, t) > 0.1
    assert qini_coefficient(y, -tau, t) < -0.1
    assert abs(qini_coefficient(y, rng.random(n), t)) < 0.06
    assert auuc(y, tau, t) > 0.2
    assert auuc(y, -tau, t) < -0.2


def test_ties_are_order_independent_and_evaluated_at_block_ends():
    y = np.array([1, 0, 0, 1, 0, 1], dtype=float)
    s = np.array([0.5, 0.5, 0.5, 0.1, 0.1, 0.0])
    t = np.array([1, 0, 1, 1, 0, 0], dtype=float)
    k, q = qini_curve(y, s, t)
    # block {0,1,2}: Yt=1, nt=2, Yc=0 -> 1; block {3,4}: Yt=2, nt=3, nc=2, Yc=0 -> 2; all: Yc=1, nc=3 -> 2 - 1 = 1
    assert k.tolist() == [0, 3, 5, 6]
    assert q.tolist() == pytest.approx([0, 1, 2, 1])
    perm = np.array([4, 2, 0, 5, 1, 3])
    for f in (qini_coefficient, auuc):
        assert f(y[perm], s[perm], t[perm]) == pytest.approx(f(y, s, t))
    assert uplift_at_k(y[perm], s[perm], t[perm], k=2) == pytest.approx(uplift_at_k(y, s, t, k=2))


def test_uplift_at_k_overall_and_by_group_by_hand():
    # overall, top half = rows 0-2: treated {1, 0} -> 0.5, control {1} -> 1
    assert uplift_at_k(Y, S, T, k=0.5) == pytest.approx(-0.5)
    # by group: top floor(0.5*3) = 1 treated row (row 0, y=1) and 1 control row (row 2, y=1)
    assert uplift_at_k(Y, S, T, k=0.5, strategy="by_group") == pytest.approx(0.0)
    # k as a count: top 2 rows are both treated -> no control rows: a clear error
    with pytest.raises(DataError, match="control"):
        uplift_at_k(Y, S, T, k=2)
    # k = everything: the plain difference of means 1/3 - 2/3
    assert uplift_at_k(Y, S, T, k=1.0) == pytest.approx(-1 / 3)


def test_uplift_at_k_splits_a_tie_at_the_cut_evenly():
    # three rows tied at the top, k = 2 rows: each tied row counts 2/3
    y = np.array([1, 0, 0, 0], dtype=float)
    s = np.array([1.0, 1.0, 1.0, 0.0])
    t = np.array([1, 0, 1, 0], dtype=float)
    # treated: (2/3*1 + 2/3*0) / (4/3) = 0.5; control: row 1 -> 0
    assert uplift_at_k(y, s, t, k=2) == pytest.approx(0.5)


def test_continuous_outcome_by_hand():
    y = np.array([10.0, 0.0, 5.0, 2.0])
    s = np.array([0.4, 0.3, 0.2, 0.1])
    t = np.array([1, 0, 1, 0], dtype=float)
    k, q = qini_curve(y, s, t)
    assert q.tolist() == pytest.approx([0, 10, 10, 15, 13])  # k=4: 15 - 2 * 2/2
    k, u = uplift_curve(y, s, t)
    assert u.tolist() == pytest.approx([0, 10, 20, 22.5, 26])  # k=4: (7.5 - 1) * 4
    assert uplift_at_k(y, s, t, k=0.5) == pytest.approx(10.0)
    assert uplift_at_k(y, s, t, k=0.5, strategy="by_group") == pytest.approx(10.0)
    # raw Qini area: (1/16) * (5 + 10 + 12.5 + 14) = 41.5/16, random 13/4/2 = 26/16
    assert qini_coefficient(y, s, t, normalize=False) == pytest.approx(15.5 / 16)


def test_segments_report_undefined_groups_as_nan():
    seg = np.array(["a", "a", "a", "b", "b", "c"])
    y = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    s = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.4])
    t = np.array([1, 0, 0, 1, 1, 1], dtype=float)  # segment b and c are all treated
    df = uplift_at_k_by_segment(y, s, t, seg, k=1.0)
    assert df["segment"].tolist() == ["a", "b", "c"]
    a = df.iloc[0]
    assert (a["rows"], a["treated"], a["control"]) == (3, 1, 2)
    assert a["observed_uplift"] == pytest.approx(1 - 0.5)
    assert a["uplift_at_k"] == pytest.approx(0.5)
    assert np.isnan(df.iloc[1]["uplift_at_k"]) and np.isnan(df.iloc[1]["observed_uplift"])
    assert df.iloc[2]["control"] == 0


@pytest.mark.parametrize("f", [qini_coefficient, auuc, qini_curve, uplift_curve, uplift_at_k])
def test_bad_inputs_name_the_field(f):
    with pytest.raises(DataError, match="treated and control"):
        f(Y, S, np.ones(6))  # all treated
    with pytest.raises(DataError, match="no rows"):
        f([], [], [])
    with pytest.raises(DataError) as e:
        f(Y, S[:5], T)
    assert "lengths differ" in str(e.value)
    with pytest.raises(DataError) as e:
        f(Y, S, np.array([1, 2, 0, 1, 0, 0]))
    assert e.value.column == "treatment"
    with pytest.raises(DataError) as e:
        f(Y, np.r_[S[:5], np.nan], T)
    assert e.value.column == "uplift"


def test_normalised_coefficient_of_a_constant_outcome_is_an_error():
    with pytest.raises(DataError, match="undefined"):
        qini_coefficient(np.zeros(6), S, T)
    assert qini_coefficient(np.zeros(6), S, T, normalize=False) == 0.0


def test_bad_k_and_strategy():
    for k in (0, 0.0, 1.5, -1, True, "30%"):
        with pytest.raises(PersonalizeError):
            uplift_at_k(Y, S, T, k=k)
    with pytest.raises(PersonalizeError, match="strategy"):
        uplift_at_k(Y, S, T, strategy="top")
    with pytest.raises(DataError, match="empty"):
        uplift_at_k(Y, S, T, k=0.1)  # floor(0.6) = 0 rows


def test_policy_value_ipw_by_hand():
    t = np.array(["a", "a", "b", "b"], dtype=object)
    pi = np.array(["a", "b", "b", "a"], dtype=object)
    # shares a = b = 0.5; rows 0 and 2 follow the policy: (1/0.5 + 1/0.5) / 4
    r = policy_value_ipw([1, 0, 1, 1], t, pi)
    assert r["value"] == pytest.approx(1.0) and r["matched_rows"] == 2 and r["rows"] == 4
    assert policy_value_ipw([1, 0, 0, 1], t, pi)["value"] == pytest.approx(0.5)
    # known design shares: a 0.25, b 0.75 -> (1/0.25 + 1/0.75) / 4
    assert policy_value_ipw([1, 0, 1, 1], t, pi, propensity={"a": 0.25, "b": 0.75})["value"] == \
        pytest.approx((4 + 4 / 3) / 4)
    # self-normalised: sum(terms) / sum(weights) = (2 + 2) / (2 + 2)
    assert policy_value_ipw([1, 0, 1, 1], t, pi, self_normalized=True)["value"] == pytest.approx(1.0)
    # "everyone gets a" is estimated by arm a's mean outcome (1 + 0) / 2, "everyone gets b" by b's
    assert policy_value_ipw([1, 0, 1, 1], t, np.array(["a"] * 4, dtype=object))["value"] == pytest.approx(0.5)
    assert policy_value_ipw([1, 0, 1, 1], t, np.array(["b"] * 4, dtype=object))["value"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="no row received"):
        policy_value_ipw([1, 0, 1, 1], t, np.array(["a", "c", "b", "a"], dtype=object))
    with pytest.raises(DataError) as e:
        policy_value_ipw([1, 0, 1, 1], t, pi, propensity={"a": 0.5})
    assert e.value.column == "propensity"
