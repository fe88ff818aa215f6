"""Personalized coupons: the economics of a coupon level and the budgeted choice of one level per customer.

    from personalize.coupons import redemption_probability, expected_incremental_profit, expected_cost, allocate
    r = redemption_probability(baseline, uplift, anyway_redeem_rate=0.6)       # (n, levels)
    profit = expected_incremental_profit(uplift, margin[:, None], r, discount)  # (n, levels)
    plan = allocate(expected_cost(r, discount), profit, budget=5000)            # one level or none each
    plan.to_frame(customer_ids, level_names)                                    # customer, option, cost, profit, reason
"""

from personalize.coupons.allocate import (NONE, Allocation, allocate, allocate_exact, expected_cost,
                                          expected_incremental_profit, redemption_probability)

__all__ = ["NONE", "Allocation", "allocate", "allocate_exact", "expected_cost", "expected_incremental_profit",
           "redemption_probability"]
