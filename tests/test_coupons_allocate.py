"""Coupon economics by hand; the budgeted allocation against exact solvers on small random cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from personalize.coupons import (NONE, allocate, allocate_exact, expected_cost, expected_incremental_profit,
                                 redemption_probability)
from personalize.errors import DataError, PersonalizeError


# --------------------------------------------------------------------------- economics
def test_expected_incremental_profit_by_hand():
    # 10 % off a 60-currency basket with 40 % margin: margin 24, discount 6 per redemption.
    # Baseline 30 %, uplift 5 points; all anyway-buyers redeem: P(redeem) = 0.05 + 0.30 = 0.35
    r = redemption_probability(0.30, 0.05)
    assert r == pytest.approx(0.35)
    # 0.05 * 24 - 0.35 * 6 = 1.2 - 2.1: the subsidy to the 30 % who would have bought anyway sinks it
    assert expected_incremental_profit(0.05, 24.0, r, 6.0) == pytest.approx(-0.9)
    assert expected_cost(r, 6.0) == pytest.approx(2.1)
    # a customer who rarely buys anyway (baseline 2 %) with the same uplift: 1.2 - 0.07 * 6 = 0.78
    assert expected_incremental_profit(0.05, 24.0, redemption_probability(0.02, 0.05), 6.0) == pytest.approx(0.78)
    # only half the anyway-buyers use the coupon: P(redeem) = 0.05 + 0.5 * 0.30 = 0.20 -> 1.2 - 1.2 = 0
    r_half = redemption_probability(0.30, 0.05, anyway_redeem_rate=0.5)
    assert expected_incremental_profit(0.05, 24.0, r_half, 6.0) == pytest.approx(0.0)
    # "spend 200 get 20 off": a fixed discount; negative uplift persuades nobody, anyway-buyers still redeem
    assert redemption_probability(0.4, -0.02) == pytest.approx(0.4)
    assert expected_incremental_profit(-0.02, 50.0, 0.4, 20.0) == pytest.approx(-1.0 - 8.0)


def test_profit_broadcasts_over_a_ladder():
    baseline = np.array([[0.1], [0.5]])  # (customers, 1)
    uplift = np.array([[0.02, 0.05], [0.01, 0.03]])  # (customers, levels)
    discount = np.array([3.0, 6.0])  # per level
    r = redemption_probability(baseline, uplift)
    p = expected_incremental_profit(uplift, np.array([[30.0], [30.0]]), r, discount)
    expect = uplift * 30.0 - (uplift + baseline) * discount
    np.testing.assert_allclose(p, expect)
    assert p.shape == (2, 2)


def test_economics_errors_name_the_argument():
    cases = [
        (lambda: expected_incremental_profit(0.1, 10, 1.2, 1), "redeem_prob"),
        (lambda: expected_incremental_profit(1.5, 10, 0.2, 1), "uplift_purchase_prob"),
        (lambda: expected_incremental_profit(0.1, 10, 0.2, -1), "discount_cost"),
        (lambda: expected_incremental_profit(0.1, np.nan, 0.2, 1), "expected_basket_margin"),
        (lambda: redemption_probability(1.2, 0.1), "baseline_prob"),
        (lambda: redemption_probability(0.2, 0.1, anyway_redeem_rate=2), "anyway_redeem_rate"),
        (lambda: expected_cost(0.2, -3), "discount_cost"),
    ]
    for call, column in cases:
        with pytest.raises(DataError) as e:
            call()
        assert e.value.column == column


# --------------------------------------------------------------------------- allocation by hand
def test_hand_case_hull_and_budget():
    # customer 0: levels (cost 1, profit 3), (2, 4), (4, 4.5); customer 1: (1, 1), (3, 6) -- (1, 1) is
    # below the hull from (0, 0) to (3, 6)
    c = np.array([[1.0, 2.0, 4.0], [1.0, 3.0, np.nan]])
    p = np.array([[3.0, 4.0, 4.5], [1.0, 6.0, np.nan]])
    # unlimited: each customer's most profitable option
    a = allocate(c, p)
    assert a.choice.tolist() == [2, 1] and a.total_profit == pytest.approx(10.5)
    # increments by efficiency: c0 0->1 (3/1), c1 0->(3,6) (2), c0 1->2 (1), c0 2->4 (0.25)
    # budget 4: c0 gets level 0 (cost 1), c1 gets (3, 6): 9 in all, exactly optimal
    a = allocate(c, p, budget=4)
    assert a.choice.tolist() == [0, 1] and a.total_cost == pytest.approx(4) and a.total_profit == pytest.approx(9)
    assert a.gap_bound == pytest.approx(0.0)
    assert a.reasons().tolist() == ["budget_downgraded", "best"]
    # budget 2: after c0's first increment (cost 1), c1's (cost 3) is the split; the LP bound takes
    # 1/3 of it (+2) and the fill pass then takes c0's next increment (1 -> 2, +1): 4 of an LP bound 5
    a = allocate(c, p, budget=2)
    assert a.choice.tolist() == [1, NONE]
    assert a.total_profit == pytest.approx(4.0) and a.upper_bound == pytest.approx(5.0)
    assert allocate_exact(c, p, budget=2).total_profit == pytest.approx(4.0)
    assert a.reasons().tolist() == ["budget_downgraded", "budget_excluded"]
    # budget 0: nothing costs nothing
    assert allocate(c, p, budget=0).choice.tolist() == [NONE, NONE]


def test_free_dominated_and_losing_options():
    c = np.array([[0.0, 1.0, 1.0, 2.0], [0.0, 5.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    p = np.array([[2.0, 1.0, 3.0, 3.0], [-1.0, 0.0, -2.0, np.nan], [-1.0, -3.0, 0.0, -0.5]])
    a = allocate(c, p, budget=0.5)
    # customer 0: the free option (profit 2) is taken whatever the budget; customers 1 and 2 have
    # nothing with positive profit
    assert a.choice.tolist() == [0, NONE, NONE]
    a = allocate(c, p, budget=10)
    # (1, 3) beats (2, 3) (same profit, cheaper) and (1, 1)
    assert a.choice.tolist() == [2, NONE, NONE]
    assert a.reasons().tolist() == ["best", "no_profitable_option", "no_profitable_option"]
    frame = a.to_frame(["C1", "C2", "C3"], ["5%", "10%", "s200g20", "s200g50"])
    assert frame["option"].tolist() == ["s200g20", None, None]
    assert frame.columns.tolist() == ["customer", "option", "expected_cost", "expected_incremental_profit", "reason"]


def test_allocation_errors():
    with pytest.raises(DataError) as e:
        allocate([[1.0, -1.0]], [[1.0, 2.0]], budget=3)
    assert e.value.column == "costs"
    with pytest.raises(DataError):
        allocate([[1.0, 2.0]], [[1.0]], budget=3)
    with pytest.raises(DataError) as e:
        allocate([[1.0, 2.0]], [[1.0, np.inf]], budget=3)
    assert e.value.column == "profits"
    for b in (-1, np.nan, "lots"):
        with pytest.raises(PersonalizeError, match="budget"):
            allocate([[1.0]], [[1.0]], budget=b)
    with pytest.raises(DataError, match="whole numbers"):
        allocate_exact([[1.5]], [[1.0]], budget=3)
    assert allocate_exact([[1.5]], [[1.0]], budget=3, scale=2).choice.tolist() == [0]


# --------------------------------------------------------------------------- greedy vs exact
def _brute_force(c, p, budget):
    n, m = c.shape
    best = 0.0
    for pick in itertools.product(range(-1, m), repeat=n):
        cost = sum(c[i, j] for i, j in enumerate(pick) if j >= 0 and not np.isnan(p[i, j]))
        if any(j >= 0 and np.isnan(p[i, j]) for i, j in enumerate(pick)) or cost > budget:
            continue
        best = max(best, sum(p[i, j] for i, j in enumerate(pick) if j >= 0))
    return best


def test_exact_dp_matches_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(60):
        n, m = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        c = rng.integers(0, 8, (n, m)).astype(float)
        p = rng.integers(-4, 12, (n, m)).astype(float)
        p[rng.random((n, m)) < 0.2] = np.nan
        budget = float(rng.integers(0, 20))
        ex = allocate_exact(c, p, budget=budget)
        assert ex.total_profit == pytest.approx(_brute_force(c, p, budget))
        assert ex.total_cost <= budget


def test_greedy_against_exact_on_random_cases():
    """The documented guarantee: z_greedy <= z* <= upper_bound <= z_greedy + gap_bound, gap_bound at most
    the largest single option profit; budget never exceeded; nothing with profit <= 0 chosen."""
    rng = np.random.default_rng(0)
    optimal = 0
    trials = 400
    for _ in range(trials):
        n, m = int(rng.integers(1, 9)), int(rng.integers(1, 6))
        c = rng.integers(0, 12, (n, m)).astype(float)
        p = np.round(rng.normal(3, 4, (n, m)), 1)
        p[rng.random((n, m)) < 0.15] = np.nan
        budget = float(rng.integers(0, 40))
        g = allocate(c, p, budget=budget)
        ex = allocate_exact(c, p, budget=budget)
        assert g.total_cost <= budget + 1e-9
        chosen = g.choice != NONE
        assert (g.profit[chosen] > 0).all()
        assert not np.isnan(p[np.flatnonzero(chosen), g.choice[chosen]]).any()
        assert g.total_profit <= ex.total_profit + 1e-9
        assert ex.total_profit <= g.upper_bound + 1e-9
        assert ex.total_profit - g.total_profit <= g.gap_bound + 1e-9
        assert g.gap_bound <= np.nanmax(np.r_[p.ravel(), 0.0]) + 1e-9
        optimal += abs(ex.total_profit - g.total_profit) < 1e-9
    assert optimal >= 0.7 * trials  # on these small cases the greedy is usually optimal outright


def test_greedy_with_many_customers_is_near_the_lp_bound():
    rng = np.random.default_rng(1)
    n, m = 20000, 5
    c = rng.gamma(2.0, 2.0, (n, m))
    p = rng.normal(1.0, 2.0, (n, m))
    unlimited = allocate(c, p)
    budget = 0.3 * unlimited.total_cost
    a = allocate(c, p, budget=budget)
    assert a.total_cost <= budget
    assert a.gap_bound <= p.max() and a.gap_bound / a.upper_bound < 1e-3
    # random targeting with the same budget: customers in random order get their best option
    has = unlimited.choice != NONE
    order = rng.permutation(np.flatnonzero(has))
    within = np.cumsum(unlimited.cost[order]) <= budget
    random_profit = unlimited.profit[order][within].sum()
    assert a.total_profit > 1.5 * random_profit
