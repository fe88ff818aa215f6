"""Coupon economics and budgeted allocation: which coupon level (or none) each customer gets.

**Expected incremental profit of a coupon level** (:func:`expected_incremental_profit`)::

    profit = uplift_purchase_prob * expected_basket_margin - P(redeem | level) * discount_cost

``uplift_purchase_prob`` is the *increase* in purchase probability the level causes
(an uplift model's output), ``expected_basket_margin`` the margin of the basket
such a persuaded customer buys, before any discount, ``discount_cost`` what one
redemption costs the retailer (the discount on the expected basket, plus any
handling or points cost). ``P(redeem | level)`` counts **every** redemption:
the persuaded customers *and* those who would have bought anyway and now use
the coupon -- the latter bring no extra margin, so their discount is a pure
cost. :func:`redemption_probability` builds it from the uplift model's two
outputs: ``uplift + anyway_redeem_rate * baseline_prob`` (the persuaded always
redeem -- the coupon is why they bought; a share ``anyway_redeem_rate`` of the
would-have-bought-anyway customers redeem). The **expected cost** of a level
(what a budget limits) is ``P(redeem | level) * discount_cost``.

**Allocation** (:func:`allocate`): every customer has a few options (levels),
each with an expected cost ``c >= 0`` and an expected incremental profit ``p``,
plus "none" at ``(0, 0)``; choose at most one option per customer to maximise
total profit with total expected cost within ``budget``. That is the
multiple-choice knapsack problem (NP-hard); it is solved by the classic greedy
on its LP relaxation (Sinha & Zoltners 1979):

1. per customer, drop options that cannot be worth it (``p <= 0``, unavailable,
   or dominated: no more profit than a cheaper option), then keep the upper
   convex hull of the remaining ``(c, p)`` points starting at "none"; moving up
   the hull from one point to the next is an *increment* ``(dc, dp)`` with
   efficiency ``dp / dc``, decreasing along each customer's hull;
2. sort all customers' increments by efficiency, highest first, and take them
   while the budget lasts (a customer's increments come in hull order, so the
   taken ones always form a path from "none" to the option she gets). The LP
   optimum takes the first increment that does not fit (the *split* increment)
   fractionally; an integer plan cannot, so
3. the split increment is dropped, and a **fill pass** keeps scanning the
   increments after it in the same order, taking each that still fits and
   whose customer has taken all her earlier increments (a customer whose
   increment is skipped takes no later one).

**Guarantee** (tested against the exact solver): with ``z_LP`` the LP optimum,
``z*`` the best integer plan and ``z`` the greedy plan,
``z <= z* <= z_LP <= z + dp_split``: the greedy plan is at most one increment's
profit -- at most the largest single option profit of any customer -- below the
optimum. :attr:`Allocation.upper_bound` (``z_LP``) and :attr:`Allocation.gap_bound`
(``dp_split``, 0 when everything fits) report it per plan; for a million
customers it is one customer's coupon.

Without a budget (``budget=None``) every customer simply gets her most
profitable option if its profit is positive (cheapest among equal profits), else none.

:func:`allocate_exact` solves the same problem exactly by dynamic programming over
integer-scaled costs: for tests and small cases (cost ``n x options x budget units``).

Everything is vectorized numpy over ``(customers, options)`` arrays: 1,000,000
customers x 5 options take a few seconds and a few hundred MB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from personalize.errors import DataError, PersonalizeError

__all__ = ["expected_incremental_profit", "redemption_probability", "expected_cost", "allocate", "allocate_exact",
           "Allocation", "NONE"]

#: choice index meaning "no coupon"
NONE = -1


# --------------------------------------------------------------------------- economics
def _arr(v: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numeric", column=name) from None
    if np.isnan(a).any() or np.isinf(a).any():
        raise DataError(f"{name} has missing or infinite values", column=name,
                        rows=np.flatnonzero(~np.isfinite(a).ravel())[:5].tolist())
    return a


def redemption_probability(baseline_prob: Any, uplift: Any, *, anyway_redeem_rate: Any = 1.0) -> np.ndarray:
    """``P(redeem | level) = uplift + anyway_redeem_rate * baseline_prob``, clipped to [0, 1].

    ``baseline_prob``: P(purchase | no coupon); ``uplift``: the level's increase of it (a negative
    uplift persuades nobody and counts as 0 here); ``anyway_redeem_rate``: share of the customers
    who would have bought anyway that use the coupon (1.0 = all of them, the cautious default).
    Arrays broadcast (e.g. ``(n, 1)`` baseline against ``(n, levels)`` uplift).
    """
    b, u, r = _arr(baseline_prob, "baseline_prob"), _arr(uplift, "uplift"), _arr(anyway_redeem_rate,
                                                                                 "anyway_redeem_rate")
    if ((b < 0) | (b > 1)).any():
        raise DataError("baseline_prob must be a probability in [0, 1]", column="baseline_prob")
    if ((r < 0) | (r > 1)).any():
        raise DataError("anyway_redeem_rate must be in [0, 1]", column="anyway_redeem_rate")
    return np.clip(np.maximum(u, 0.0) + r * b, 0.0, 1.0)


def expected_incremental_profit(uplift_purchase_prob: Any, expected_basket_margin: Any, redeem_prob: Any,
                                discount_cost: Any) -> np.ndarray:
    """``uplift_purchase_prob * expected_basket_margin - redeem_prob * discount_cost`` (see module docstring).

    ``uplift_purchase_prob`` in [-1, 1]; ``expected_basket_margin`` currency (margin before discount);
    ``redeem_prob`` = P(redeem | level) in [0, 1], counting the would-have-bought-anyway redemptions
    (:func:`redemption_probability`); ``discount_cost`` >= 0, currency per redemption. Arrays
    broadcast against each other. Negative results are real: such a level loses money.
    """
    u = _arr(uplift_purchase_prob, "uplift_purchase_prob")
    m = _arr(expected_basket_margin, "expected_basket_margin")
    r = _arr(redeem_prob, "redeem_prob")
    d = _arr(discount_cost, "discount_cost")
    if ((u < -1) | (u > 1)).any():
        raise DataError("uplift_purchase_prob must be a probability difference in [-1, 1]",
                        column="uplift_purchase_prob")
    if ((r < 0) | (r > 1)).any():
        raise DataError("redeem_prob must be a probability in [0, 1]", column="redeem_prob")
    if (d < 0).any():
        raise DataError("discount_cost must be >= 0", column="discount_cost")
    return u * m - r * d


def expected_cost(redeem_prob: Any, discount_cost: Any) -> np.ndarray:
    """Expected spend of a level per customer: ``P(redeem | level) * discount_cost`` (what a budget limits)."""
    r, d = _arr(redeem_prob, "redeem_prob"), _arr(discount_cost, "discount_cost")
    if ((r < 0) | (r > 1)).any():
        raise DataError("redeem_prob must be a probability in [0, 1]", column="redeem_prob")
    if (d < 0).any():
        raise DataError("discount_cost must be >= 0", column="discount_cost")
    return r * d


# --------------------------------------------------------------------------- result
@dataclass
class Allocation:
    """A coupon plan: ``choice[i]`` is the option index of customer ``i`` or :data:`NONE` (-1).

    ``cost`` / ``profit`` per customer (0 for none); totals; ``budget`` (None = unlimited);
    ``upper_bound`` the LP-relaxation optimum (no integer plan beats it); ``gap_bound`` =
    ``upper_bound - total_profit`` bound on the distance to the optimum (0 = provably optimal);
    ``best_choice`` each customer's most profitable option regardless of budget (for reasons).
    """

    choice: np.ndarray
    cost: np.ndarray
    profit: np.ndarray
    budget: float | None
    upper_bound: float
    best_choice: np.ndarray
    method: str

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())

    @property
    def total_profit(self) -> float:
        return float(self.profit.sum())

    @property
    def gap_bound(self) -> float:
        return max(0.0, float(self.upper_bound) - self.total_profit)

    @property
    def n_assigned(self) -> int:
        return int((self.choice != NONE).sum())

    def reasons(self) -> np.ndarray:
        """Why each customer got what she got: ``best`` (her most profitable option),
        ``budget_downgraded`` (a cheaper option than her best, for the budget), ``budget_excluded``
        (a profitable option existed, the budget went to more efficient customers), ``no_profitable_option``."""
        has_best = self.best_choice != NONE
        out = np.full(len(self.choice), "no_profitable_option", dtype=object)
        out[has_best & (self.choice == self.best_choice)] = "best"
        out[has_best & (self.choice != self.best_choice) & (self.choice != NONE)] = "budget_downgraded"
        out[has_best & (self.choice == NONE)] = "budget_excluded"
        return out

    def to_frame(self, customer_ids: Any = None, option_names: Any = None) -> pd.DataFrame:
        """One row per customer: ``customer``, ``option`` (name or index; None = no coupon), ``expected_cost``,
        ``expected_incremental_profit``, ``reason``."""
        n = len(self.choice)
        ids = np.arange(n) if customer_ids is None else np.asarray(customer_ids, dtype=object)
        if len(ids) != n:
            raise DataError(f"{len(ids)} customer ids for {n} customers", column="customer_ids")
        if option_names is None:
            opt = np.where(self.choice == NONE, None, self.choice).astype(object)
        else:
            names = np.asarray([*option_names, None], dtype=object)
            if (self.choice >= len(names) - 1).any():
                raise DataError(f"{len(names) - 1} option names for {int(self.choice.max()) + 1} options",
                                column="option_names")
            opt = names[self.choice]  # NONE (-1) picks the trailing None
        return pd.DataFrame({"customer": ids, "option": pd.Series(opt, dtype=object), "expected_cost": self.cost,
                             "expected_incremental_profit": self.profit, "reason": self.reasons()})

    def summary(self) -> dict:
        return {"customers": int(len(self.choice)), "assigned": self.n_assigned, "total_cost": self.total_cost,
                "total_profit": self.total_profit, "budget": self.budget, "upper_bound": float(self.upper_bound),
                "gap_bound": self.gap_bound, "method": self.method}


# --------------------------------------------------------------------------- inputs
def _options(costs: Any, profits: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cost, profit, usable) as 2-D float arrays; NaN in either marks an option as unavailable."""
    try:
        c = np.array(costs, dtype=np.float64, copy=True)
        p = np.array(profits, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise DataError("costs and profits must be numeric", column="costs") from None
    if c.ndim == 1:
        c, p = c[:, None], p[:, None] if p.ndim == 1 else p
    if c.ndim != 2 or c.shape != p.shape:
        raise DataError(f"costs {c.shape} and profits {p.shape} must be (customers, options) arrays of one shape",
                        column="costs")
    avail = ~(np.isnan(c) | np.isnan(p))
    for name, a in (("costs", c), ("profits", p)):
        if np.isinf(a).any():
            raise DataError(f"{name} has infinite values (use NaN for an unavailable option)", column=name,
                            rows=np.flatnonzero(np.isinf(a).any(axis=1))[:5].tolist())
    neg = avail & (c < 0)
    if neg.any():
        raise DataError("costs must be >= 0", column="costs", rows=np.flatnonzero(neg.any(axis=1))[:5].tolist())
    usable = avail & (p > 0)
    return c, p, usable


def _check_budget(budget: Any) -> float | None:
    if budget is None:
        return None
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise PersonalizeError(f"budget must be a number >= 0 or None, got {budget!r}") from None
    if not (math.isfinite(b) and b >= 0):
        raise PersonalizeError(f"budget must be a finite number >= 0 or None, got {budget!r}")
    return b


def _best_options(c: np.ndarray, p: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Most profitable usable option per row (cheapest among equal profits), NONE if none is usable."""
    n, m = c.shape
    if m == 0:
        return np.full(n, NONE, dtype=np.int64)
    pp = np.where(usable, p, -np.inf)
    best_p = pp.max(axis=1)
    cc = np.where(usable & (pp == best_p[:, None]), c, np.inf)
    best = np.argmin(cc, axis=1).astype(np.int64)
    best[~usable.any(axis=1)] = NONE
    return best


# --------------------------------------------------------------------------- greedy
def _hulls(c: np.ndarray, p: np.ndarray, usable: np.ndarray):
    """Per-row upper convex hull from (0, 0) over the usable options, vectorized over rows.

    Returns ``(idx, hc, hp, size)``: hull option indices (NONE for the origin), their costs and
    profits, ``(n, m + 1)`` arrays of which the first ``size[i]`` entries of row ``i`` are used,
    with strictly increasing cost and profit and strictly decreasing slopes.
    """
    n, m = c.shape
    order = np.argsort(np.where(usable, c, np.inf), axis=1, kind="stable")
    rows = np.arange(n)
    idx = np.full((n, m + 1), NONE, dtype=np.int64)
    hc = np.zeros((n, m + 1))
    hp = np.zeros((n, m + 1))
    size = np.ones(n, dtype=np.int64)  # the origin "none" at position 0
    for j in range(m):
        o = order[:, j]
        qc, qp, ok = c[rows, o], p[rows, o], usable[rows, o]
        top = size - 1
        # dominated: no more profit than the current top (which costs no more)
        ok &= qp > hp[rows, top]
        # same cost as the top but more profit: replace the top
        same = ok & (qc == hc[rows, top])
        size[same] -= 1
        # pop while the top is not strictly above the segment from the point below it to q
        for _ in range(m):
            top = size - 1
            below = np.maximum(top - 1, 0)
            ac, ap, bc, bp = hc[rows, below], hp[rows, below], hc[rows, top], hp[rows, top]
            cross = (bc - ac) * (qp - ap) - (bp - ap) * (qc - ac)
            pop = ok & (size >= 2) & (cross >= 0)
            if not pop.any():
                break
            size[pop] -= 1
        r = rows[ok]
        s = size[ok]
        idx[r, s], hc[r, s], hp[r, s] = o[ok], qc[ok], qp[ok]
        size[ok] += 1
    return idx, hc, hp, size


def _greedy(c: np.ndarray, p: np.ndarray, usable: np.ndarray, budget: float):
    n, m = c.shape
    idx, hc, hp, size = _hulls(c, p, usable)
    # position 0 is the origin "none", or a cost-0 option that replaced it (free profit, always kept)
    base = idx[:, 0]
    k = np.arange(1, m + 1)
    has = k[None, :] < size[:, None]  # increments k = 1 .. size-1 (row-major: by customer, then k)
    r_inc, k_inc = np.nonzero(has)
    k_inc = k_inc + 1
    dc = hc[r_inc, k_inc] - hc[r_inc, k_inc - 1]
    dp = hp[r_inc, k_inc] - hp[r_inc, k_inc - 1]
    eff = dp / dc  # dc > 0 strictly on the hull
    # guard against rounding: efficiencies must not increase along a customer's hull
    E = np.full((n, m), np.inf)
    E[r_inc, k_inc - 1] = eff
    eff = np.minimum.accumulate(E, axis=1)[r_inc, k_inc - 1]
    # sort by efficiency (high first); ties by customer then hull position keep each customer's order
    order = np.lexsort((k_inc, r_inc, -eff))
    dco = dc[order]
    cum = np.cumsum(dco)
    fit = int(np.searchsorted(cum, budget, side="right"))
    level = np.zeros(n, dtype=np.int64)  # hull position reached per customer (0 = base)
    taken = order[:fit]
    np.maximum.at(level, r_inc[taken], k_inc[taken])
    spent = float(cum[fit - 1]) if fit else 0.0
    upper = float(dp[taken].sum()) + float(np.where(base != NONE, hp[:, 0], 0.0).sum())
    if fit < len(order):
        s = order[fit]
        upper += float(dp[s] * max(0.0, budget - spent) / dc[s])
        _fill(order[fit:], r_inc, k_inc, dc, level, budget - spent)
    choice = idx[np.arange(n), level]
    return choice, upper


def _fill(rest: np.ndarray, r_inc: np.ndarray, k_inc: np.ndarray, dc: np.ndarray, level: np.ndarray,
          room: float) -> None:
    """After the split increment ``rest[0]``: take, in efficiency order, every later increment that
    fits and continues its customer's path. A skipped increment caps its customer below it (her
    later increments would need it), but her earlier ones stay available."""
    cap = np.full(len(level), np.iinfo(np.int64).max, dtype=np.int64)  # customer may reach hull positions < cap
    cap[r_inc[rest[0]]] = k_inc[rest[0]]
    rest = rest[1:]
    while len(rest):  # each pass takes >= 1 increment, so it ends
        rest = rest[k_inc[rest] < cap[r_inc[rest]]]
        big = dc[rest] > room
        np.minimum.at(cap, r_inc[rest[big]], k_inc[rest[big]])
        rest = rest[k_inc[rest] < cap[r_inc[rest]]]
        if not len(rest):
            return
        cum = np.cumsum(dc[rest])
        m = int(np.searchsorted(cum, room, side="right"))
        take = rest[:m]
        np.maximum.at(level, r_inc[take], k_inc[take])
        room -= float(cum[m - 1]) if m else 0.0
        if m == len(rest):
            return
        skipped = rest[m]
        cap[r_inc[skipped]] = min(cap[r_inc[skipped]], k_inc[skipped])
        rest = rest[m + 1:]


def allocate(costs: Any, profits: Any, *, budget: float | None = None) -> Allocation:
    """Choose at most one option per customer maximising total profit, total cost <= ``budget``.

    ``costs``, ``profits``: ``(customers, options)`` arrays (expected cost and expected incremental
    profit of each option, e.g. coupon level); NaN marks an option unavailable to a customer (not
    eligible, no consent); "none" (0, 0) is always available and need not be listed. An option with
    profit <= 0 is never chosen. ``budget=None``: each customer's best option with profit > 0.
    Greedy on the convex hulls with a fill pass (module docstring); ``gap_bound`` on the result
    bounds its distance to the optimum.
    """
    c, p, usable = _options(costs, profits)
    b = _check_budget(budget)
    best = _best_options(c, p, usable)
    n = len(c)
    rows = np.arange(n)
    if b is None:
        choice = best
        method = "best_per_customer"
    else:
        choice, upper = _greedy(c, p, usable, b)
        method = "greedy_convex_hull"
    has = choice != NONE
    cost = np.where(has, c[rows, np.maximum(choice, 0)], 0.0) if c.shape[1] else np.zeros(n)
    profit = np.where(has, p[rows, np.maximum(choice, 0)], 0.0) if c.shape[1] else np.zeros(n)
    if b is None:
        upper = float(profit.sum())
    elif cost.sum() > b:  # pragma: no cover - rounding of summed increments; never seen, kept as a hard guarantee
        raise PersonalizeError(f"internal error: plan cost {cost.sum()} exceeds budget {b}")
    return Allocation(choice=choice, cost=cost, profit=profit, budget=b, upper_bound=max(upper, float(profit.sum())),
                      best_choice=best, method=method)


# --------------------------------------------------------------------------- exact
def allocate_exact(costs: Any, profits: Any, *, budget: float, scale: float = 1.0,
                   max_cells: int = 50_000_000) -> Allocation:
    """Optimal plan by dynamic programming over integer costs (for tests and small problems).

    Every available cost times ``scale`` must be a whole number (within 1e-9), e.g. costs in cents
    with ``scale=100``; the budget is ``floor(budget * scale)`` units. Time and memory grow as
    ``customers x (budget units + 1)``; larger problems than ``max_cells`` are refused.
    """
    c, p, usable = _options(costs, profits)
    b = _check_budget(budget)
    if b is None:
        raise PersonalizeError("allocate_exact needs a budget")
    n, m = c.shape
    units = np.round(np.where(usable, c, 0.0) * scale)
    if (np.abs(units - np.where(usable, c, 0.0) * scale) > 1e-9 * np.maximum(1.0, units)).any():
        raise DataError(f"allocate_exact needs costs that are whole numbers after scaling by {scale}",
                        column="costs")
    units = units.astype(np.int64)
    B = int(math.floor(b * scale + 1e-9))
    if n * (B + 1) > max_cells:
        raise PersonalizeError(f"allocate_exact: {n} customers x {B + 1} budget units exceeds max_cells={max_cells}")
    dp = np.zeros(B + 1)
    pick = np.full((n, B + 1), NONE, dtype=np.int16)
    for i in range(n):
        new = dp.copy()
        for j in range(m):
            if not usable[i, j]:
                continue
            u = units[i, j]
            if u > B:
                continue
            cand = np.full(B + 1, -np.inf)
            cand[u:] = dp[:B + 1 - u] + p[i, j]
            better = cand > new
            new[better] = cand[better]
            pick[i, better] = j
        dp = new
    # walk back from the best budget use
    choice = np.full(n, NONE, dtype=np.int64)
    rem = int(np.argmax(dp))
    for i in range(n - 1, -1, -1):
        j = int(pick[i, rem])
        choice[i] = j
        if j != NONE:
            rem -= int(units[i, j])
    rows = np.arange(n)
    has = choice != NONE
    cost = np.where(has, c[rows, np.maximum(choice, 0)], 0.0)
    profit = np.where(has, p[rows, np.maximum(choice, 0)], 0.0)
    return Allocation(choice=choice, cost=cost, profit=profit, budget=b, upper_bound=float(profit.sum()),
                      best_choice=_best_options(c, p, usable), method="exact_dp")
