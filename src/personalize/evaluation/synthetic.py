"""A synthetic retail purchase history with planted preferences (known truth).

Each customer has one favourite *taste group* (a set of items, which is also
the item's category). Purchases mix three behaviours, like real retail:

* discovery within the taste group (Zipf-popular inside the group),
* background purchases from the whole catalog (global Zipf popularity),
* repeat purchases of a few personal staples at a personal cycle.

``planted_truth`` lists, per customer, every item of the taste group: a good
collaborative-filtering model finds them from co-purchases, a popularity
baseline cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize.data import Dataset


@dataclass(frozen=True)
class SyntheticRetail:
    dataset: Dataset
    planted: pd.DataFrame  # customer_id, item_id: the items of each customer's taste group
    groups: pd.DataFrame  # customer_id, group

    def planted_truth(self) -> pd.DataFrame:
        return self.planted


def make_synthetic_retail(*, n_customers: int = 600, n_items: int = 300, n_groups: int = 12,
                          days: int = 360, lines_per_customer: float = 24.0, taste_share: float = 0.6,
                          repeat_share: float = 0.25, start: str = "2023-01-01", seed: int = 0) -> SyntheticRetail:
    """Generate the history (see module doc). Deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    item_group = np.arange(n_items) % n_groups
    rng.shuffle(item_group)
    # popularity: global Zipf, and Zipf inside each group
    global_w = 1.0 / np.arange(1, n_items + 1) ** 0.9
    rng.shuffle(global_w)
    global_p = global_w / global_w.sum()
    group_items = [np.flatnonzero(item_group == g) for g in range(n_groups)]
    group_p = []
    for items in group_items:
        w = 1.0 / np.arange(1, items.size + 1) ** 0.7
        rng.shuffle(w)
        group_p.append(w / w.sum())
    price = np.round(rng.lognormal(1.5, 0.6, n_items), 2)
    cust_group = rng.integers(0, n_groups, n_customers)
    start_ts = pd.Timestamp(start)
    rows_c, rows_i, rows_t = [], [], []
    for c in range(n_customers):
        n_lines = max(2, rng.poisson(lines_per_customer * rng.lognormal(0, 0.5)))
        first = rng.uniform(0, days * 0.5)
        g = cust_group[c]
        n_rep = int(round(n_lines * repeat_share))
        n_taste = int(round((n_lines - n_rep) * taste_share))
        n_bg = n_lines - n_rep - n_taste
        taste = rng.choice(group_items[g], size=n_taste, p=group_p[g])
        bg = rng.choice(n_items, size=n_bg, p=global_p)
        t_once = rng.uniform(first, days, size=n_taste + n_bg)
        items = [taste, bg]
        times = [t_once]
        if n_rep:
            staples = rng.choice(group_items[g], size=min(2, group_items[g].size), replace=False, p=group_p[g])
            cycle = rng.uniform(10, 40)
            for j, s in enumerate(staples):
                t = first + rng.uniform(0, cycle) + cycle * np.arange(n_rep)
                t = t + rng.normal(0, cycle * 0.1, t.size)
                t = t[(t >= first) & (t < days)][: max(1, n_rep // len(staples))]
                items.append(np.full(t.size, s))
                times.append(t)
        it = np.concatenate(items)
        tt = np.concatenate(times)
        rows_c.append(np.full(it.size, c))
        rows_i.append(it)
        rows_t.append(tt)
    c = np.concatenate(rows_c)
    i = np.concatenate(rows_i).astype(np.int64)
    t = np.concatenate(rows_t)
    width = len(str(max(n_customers, n_items)))
    cid = np.array([f"C{x:0{width}d}" for x in range(n_customers)], dtype=object)
    iid = np.array([f"I{x:0{width}d}" for x in range(n_items)], dtype=object)
    tx = pd.DataFrame({
        "customer_id": cid[c], "item_id": iid[i],
        "timestamp": start_ts + pd.to_timedelta(np.round(t * 86400), unit="s"),
        "quantity": rng.integers(1, 4, c.size).astype(float), "price": price[i],
    })
    items = pd.DataFrame({"item_id": iid, "category": np.array([f"G{g:02d}" for g in item_group], dtype=object),
                          "price": price})
    ds = Dataset.from_frames(tx, items=items)
    planted = pd.DataFrame({"customer_id": np.repeat(cid, [group_items[g].size for g in cust_group]),
                            "item_id": iid[np.concatenate([group_items[g] for g in cust_group])]})
    groups = pd.DataFrame({"customer_id": cid, "group": cust_group})
    return SyntheticRetail(dataset=ds, planted=planted, groups=groups)
