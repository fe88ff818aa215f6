"""Shared fixtures for the store, runtime and serving tests: tiny datasets and small real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from personalize.customers import customer_table
from personalize.data import Dataset
from personalize.pipeline import train_bundle
from personalize.recommenders import ALS, CandidateTable, Popular
from personalize.store import publish

KEYS = {
    "shop-key-0001": ["recommend"],
    "crm-key-00002": ["recommend", "profile", "audience"],
    "evt-key-00003": ["events"],
    "adm-key-00004": ["admin", "recommend"],
    "all-key-00005": ["recommend", "profile", "events", "audience", "admin"],
}


def tiny_dataset(n_customers: int = 30, n_items: int = 40, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2024-01-01")
    for c in range(n_customers):
        group = c % 2  # two taste groups: even customers buy items 0..19, odd 20..39
        for j in range(6):
            item = int(rng.integers(0, n_items // 2)) + group * (n_items // 2)
            rows.append((f"C{c:03d}", f"I{item:03d}", t0 + pd.Timedelta(days=int(rng.integers(0, 90))),
                         float(rng.integers(1, 3)), float(rng.integers(1, 50))))
    tx = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp", "quantity", "price"])
    tx["order_id"] = tx["customer_id"] + "-" + tx["timestamp"].dt.strftime("%Y%m%d")
    items = pd.DataFrame({"item_id": [f"I{i:03d}" for i in range(n_items)],
                          "category": ["even" if i < n_items // 2 else "odd" for i in range(n_items)],
                          "price": [10.0] * n_items,
                          "in_stock": [i % 5 != 0 for i in range(n_items)],
                          "repeatable": [i % 3 == 0 for i in range(n_items)]})
    customers = pd.DataFrame({"customer_id": [f"C{c:03d}" for c in range(n_customers + 2)],
                              "signup_date": pd.Timestamp("2023-01-01"),
                              "region": ["north" if c % 3 else "south" for c in range(n_customers + 2)],
                              "consent_email": [c % 4 != 0 for c in range(n_customers + 2)],
                              "consent_sms": [c % 2 == 0 for c in range(n_customers + 2)],
                              "consent_personalization": [True] * (n_customers + 2)})
    return Dataset.from_frames(tx, items=items, customers=customers)


def make_models(dataset: Dataset):
    """(recommender, popular) fitted on ``dataset``: a small ALS and Popular."""
    with threadpool_limits(1, "blas"):
        return ALS(factors=8, iterations=5, random_state=0).fit(dataset), Popular().fit(dataset)


def publish_tiny(store: Path, dataset: Dataset | None = None, *, candidates: int = 15) -> dict:
    ds = dataset or tiny_dataset()
    rec, pop = make_models(ds)
    table = CandidateTable.build(rec, ds, n=candidates, cold=pop)
    return publish({"recommender": rec, "popular": pop, "candidates": table, "customers": customer_table(ds)}, ds,
                   store=store, params={"test": True})


def churn_dataset(n_customers: int = 80, n_items: int = 40, seed: int = 0) -> Dataset:
    """15 months of purchases where about half the customers stop buying at some point (a closed 90-day churn
    label window exists); same id conventions, categories and consent pattern as :func:`tiny_dataset`."""
    rng = np.random.default_rng(seed)
    start, end = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-03-31")
    span = (end - start).days
    rows = []
    for c in range(n_customers):
        group = c % 2
        day = float(rng.integers(0, 150))
        gap = float(rng.uniform(10, 40))
        stop = float(rng.uniform(120, span + 60)) if rng.random() < 0.6 else span + 1.0
        while day < min(stop, span):
            item = int(rng.integers(0, n_items // 2)) + group * (n_items // 2)
            rows.append((f"C{c:03d}", f"I{item:03d}", start + pd.Timedelta(days=int(day)),
                         float(rng.integers(1, 3)), float(rng.integers(1, 50))))
            day += float(rng.exponential(gap)) + 1.0
    tx = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp", "quantity", "price"])
    tx["order_id"] = tx["customer_id"] + "-" + tx["timestamp"].dt.strftime("%Y%m%d")
    items = pd.DataFrame({"item_id": [f"I{i:03d}" for i in range(n_items)],
                          "category": ["even" if i < n_items // 2 else "odd" for i in range(n_items)],
                          "price": [10.0] * n_items,
                          "in_stock": [i % 5 != 0 for i in range(n_items)],
                          "repeatable": [i % 3 == 0 for i in range(n_items)]})
    customers = pd.DataFrame({"customer_id": [f"C{c:03d}" for c in range(n_customers + 2)],
                              "signup_date": pd.Timestamp("2022-06-01"),
                              "region": ["north" if c % 3 else "south" for c in range(n_customers + 2)],
                              "consent_email": [c % 4 != 0 for c in range(n_customers + 2)],
                              "consent_sms": [c % 2 == 0 for c in range(n_customers + 2)],
                              "consent_personalization": [True] * (n_customers + 2)})
    return Dataset.from_frames(tx, items=items, customers=customers)


def train_tiny(store: Path, dataset: Dataset, *, churn=True, candidates: int = 15) -> dict:
    """``train_bundle`` with a small ALS (8 factors) for fast tests."""
    return train_bundle(dataset, store=store, recommender=ALS(factors=8, iterations=5, random_state=0),
                        candidates=candidates, churn=churn)
