"""Synthetic retail worlds where a model is known to be tested hard.

Each function returns a :class:`personalize.data.Dataset` (seeded, so every
run sees the same data) shaped like a kind of retailer the library must hold
on, and :func:`last_days_split` cuts the usual time split off its end:

* :func:`short_popular_world` -- four months of history where choice is
  popularity plus a little category taste (no personal factors): the
  discovery track is Popular's to lose, repeat buying rewards the
  repurchase models. TwoStage must match the best single model on both
  tracks here.
* :func:`grocery_world` -- four months of a consumable-heavy catalog
  bought every week or two, with planted personal taste.
* :func:`staples_world` -- shoppers of very different rhythms (weekly to
  monthly) with their own staples among items many others only try once:
  an item's population repeat rate says little about one customer's
  staple, the plain "most often bought" rule is strong.
* :func:`lapse_free_world` -- a customer base that never lapses (steady
  gamma-Poisson buyers), on which BG/NBD and MBG/NBD converge to "no
  drop-out" (a -> 0), as they do on Online Retail; with ``one_timers`` a
  share of customers buys once and is gone, which BG/NBD cannot express and
  MBG/NBD can.

The first two are :func:`personalize.datasets.make_retail` with documented
parameters; the last two are small generators of their own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize.data import CleaningOptions, Dataset
from personalize.datasets import make_retail
from personalize.evaluation.splits import Split, time_split

__all__ = ["short_popular_world", "grocery_world", "staples_world", "lapse_free_world", "last_days_split"]


def short_popular_world(*, n_customers: int = 3000, n_items: int = 300, days: int = 120, seed: int = 0) -> Dataset:
    """Short, popularity-dominated history: ``make_retail(personalization=0, category_spread=0.3,
    orders_per_year=12, n_categories=8, days=120)``."""
    ds, _ = make_retail(n_customers=n_customers, n_items=n_items, n_categories=8, days=days, seed=seed,
                        offers=False, exposures=False, personalization=0.0, category_spread=0.3, orders_per_year=12)
    return ds


def grocery_world(*, n_customers: int = 3000, n_items: int = 400, days: int = 120, seed: int = 0) -> Dataset:
    """Short grocery-like history: the six consumable categories of ``make_retail`` (grocery, beverages,
    household, personal care, baby, pet), 30 orders a year of 6 lines, planted taste (personalization 1)."""
    ds, _ = make_retail(n_customers=n_customers, n_items=n_items, n_categories=6, days=days, seed=seed,
                        offers=False, exposures=False, personalization=1.0, orders_per_year=30, lines_per_order=6)
    return ds


def staples_world(*, n_customers: int = 2000, n_items: int = 300, days: int = 120, seed: int = 0) -> Dataset:
    """Shoppers with their own staples and rhythms.

    Each customer visits as a Poisson process with a mean gap drawn
    lognormally around 9 days (sd 0.6 in logs: weekly to monthly shoppers),
    owns 3 to 8 staples (drawn by item appeal) bought on each visit with their
    own probability (0.3 to 0.9), and tries 1 to 3 items drawn by appeal on
    every visit. Popular items are staples of some and one-off trials of many,
    so their population repeat rate is low although their staple buyers
    rebuy them all the time.
    """
    rng = np.random.default_rng(seed)
    appeal = rng.lognormal(0.0, 1.0, n_items)
    appeal /= appeal.sum()
    gap = rng.lognormal(np.log(9.0), 0.6, n_customers)
    # visits: enough exponential gaps per customer to pass the end, then cut
    n_draw = int(np.ceil(days / gap.min())) + 10
    n_draw = min(n_draw, 400)
    t = rng.uniform(0, 1, n_customers)[:, None] * gap[:, None] + np.cumsum(
        rng.exponential(1.0, (n_customers, n_draw)) * gap[:, None], axis=1)
    vc, vpos = np.nonzero(t < days)
    vt = t[vc, vpos]
    k = rng.integers(3, 9, n_customers)
    kmax = int(k.max())
    staples = np.stack([rng.choice(n_items, kmax, replace=False, p=appeal) for _ in range(n_customers)])
    q = rng.uniform(0.3, 0.9, (n_customers, kmax))
    own = np.arange(kmax)[None, :] < k[:, None]
    # staple lines: each visit x each staple with its probability
    take = (rng.random((len(vc), kmax)) < q[vc]) & own[vc]
    sv, sk = np.nonzero(take)
    s_cust, s_item, s_time = vc[sv], staples[vc[sv], sk], vt[sv]
    # trial lines: 1-3 per visit drawn by appeal
    n_trial = rng.integers(1, 4, len(vc))
    tv = np.repeat(np.arange(len(vc)), n_trial)
    t_cust, t_item, t_time = vc[tv], rng.choice(n_items, len(tv), p=appeal), vt[tv]
    cust = np.concatenate([s_cust, t_cust])
    item = np.concatenate([s_item, t_item])
    when = np.concatenate([s_time, t_time])
    # one line per (visit, item)
    key = pd.DataFrame({"c": cust, "i": item, "t": when}).drop_duplicates()
    start = pd.Timestamp("2024-01-01")
    tx = pd.DataFrame({
        "customer_id": pd.array([f"C{c:05d}" for c in key["c"]], dtype="str"),
        "item_id": pd.array([f"I{i:04d}" for i in key["i"]], dtype="str"),
        "timestamp": start + pd.to_timedelta(key["t"].to_numpy(), unit="D"),
        "quantity": 1.0,
        "price": 5.0,
    })
    return Dataset.from_frames(tx, options=CleaningOptions(now=start + pd.Timedelta(days=days + 1)))


def lapse_free_world(*, n_customers: int = 2000, days: int = 365, one_timers: float = 0.0, seed: int = 0) -> Dataset:
    """Customers who never lapse: first purchase uniform over the first 80 % of ``days``, then Poisson
    purchases at a gamma-distributed rate (shape 1.5, mean one every 27 days) until the end.

    With ``one_timers`` that share of the customers buys once and never again (they lapse at once).
    """
    rng = np.random.default_rng(seed)
    first = rng.uniform(0.0, days * 0.8, n_customers)
    rate = rng.gamma(1.5, 1.0 / 40.0, n_customers)
    repeat = rng.random(n_customers) >= one_timers
    n_draw = 200
    gaps = rng.exponential(1.0, (n_customers, n_draw)) / rate[:, None]
    times = first[:, None] + np.cumsum(gaps, axis=1)
    ok = (times < days) & repeat[:, None]
    rc, rk = np.nonzero(ok)
    cust = np.concatenate([np.arange(n_customers), rc])
    when = np.concatenate([first, times[rc, rk]])
    start = pd.Timestamp("2023-01-01")
    tx = pd.DataFrame({
        "customer_id": pd.array([f"C{c:05d}" for c in cust], dtype="str"),
        "item_id": "I1",
        "timestamp": start + pd.to_timedelta(when, unit="D"),
        "quantity": 1.0,
        "price": rng.uniform(10.0, 50.0, len(cust)).round(2),
    })
    return Dataset.from_frames(tx, options=CleaningOptions(now=start + pd.Timedelta(days=days + 1)))


def last_days_split(ds: Dataset, days: float = 21.0) -> Split:
    """:func:`time_split` testing on the last ``days`` days (from midnight)."""
    return time_split(ds, ds.last_timestamp.normalize() - pd.Timedelta(days=days))
