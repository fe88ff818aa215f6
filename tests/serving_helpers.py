"""Shared fixtures for the registry and serving tests: a tiny dataset and a contract-conforming recommender.

``ContractRecommender`` is a small, exact co-occurrence recommender that
follows the personalize.recommenders contract (recommend / recommend_from_items
/ similar_items / update_customer / save / load, pickle-free). The tests use the
real ``personalize.recommenders`` models when they are importable (see
``make_models``), and this one otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from personalize.data import Dataset
from personalize.errors import UnknownIdError
from personalize.registry import register_loader

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


class ContractRecommender:
    """Item co-occurrence recommender following the recommender contract (for tests)."""

    bundle_kind = "contract_test_recommender"

    def __init__(self, *, popularity_weight: float = 1e-3) -> None:
        self.popularity_weight = popularity_weight

    def fit(self, dataset: Dataset) -> "ContractRecommender":
        m = dataset.interaction_matrix("count")
        m.data[:] = 1.0
        self.item_ids_ = np.asarray(dataset.item_vocab.ids, dtype=str)
        self.cooc_ = (m.T @ m).toarray().astype(np.float64)
        np.fill_diagonal(self.cooc_, 0.0)
        self.pop_ = np.asarray(m.sum(axis=0)).ravel().astype(np.float64)
        self.history_ = {str(c): sorted(set(np.asarray(m[i].indices).tolist()))
                         for i, c in enumerate(dataset.customer_vocab.ids) if m[i].nnz}
        self.category_ = {}
        self.in_stock_ = np.ones(len(self.item_ids_), dtype=bool)
        if dataset.items is not None:
            pos = {s: i for i, s in enumerate(self.item_ids_)}
            for iid, cat, st in zip(dataset.items["item_id"], dataset.items["category"], dataset.items["in_stock"]):
                if iid in pos:
                    self.category_[pos[iid]] = cat
                    self.in_stock_[pos[iid]] = bool(st)
        self._pos = {s: i for i, s in enumerate(self.item_ids_)}
        return self

    def _mask(self, filters) -> np.ndarray:
        ok = np.ones(len(self.item_ids_), dtype=bool)
        if filters is not None:
            if getattr(filters, "categories", None):
                ok &= np.array([self.category_.get(i) in filters.categories for i in range(len(ok))])
            if getattr(filters, "in_stock", None):
                ok &= self.in_stock_
        return ok

    def _top(self, scores: np.ndarray, ok: np.ndarray, k: int) -> np.ndarray:
        scores = np.where(ok, scores, -np.inf)
        order = np.lexsort((np.arange(len(scores)), -scores))
        order = order[np.isfinite(scores[order])]
        return order[:k]

    def recommend(self, customer_ids, k=10, *, exclude="purchased", items=None, filters=None) -> pd.DataFrame:
        single = isinstance(customer_ids, str)
        ids = [customer_ids] if single else list(customer_ids)
        rows = []
        for cid in ids:
            hist = self.history_.get(cid)
            ok = self._mask(filters)
            if hist:
                scores = self.cooc_[hist].sum(axis=0) + self.popularity_weight * self.pop_
                source = "cooc"
                if exclude in ("purchased", "non_repeatable"):
                    ok[hist] = False
            else:
                scores = self.pop_.copy()
                source = "popular"
            for r, i in enumerate(self._top(scores, ok, k)):
                rows.append((cid, self.item_ids_[i], float(scores[i]), r + 1, source))
        return pd.DataFrame(rows, columns=["customer_id", "item_id", "score", "rank", "source"])

    def recommend_from_items(self, item_ids, k=10, *, filters=None) -> pd.DataFrame:
        idx = [self._pos[i] for i in item_ids if i in self._pos]
        scores = self.cooc_[idx].sum(axis=0) + self.popularity_weight * self.pop_
        ok = self._mask(filters)
        ok[idx] = False
        top = self._top(scores, ok, k)
        return pd.DataFrame({"item_id": self.item_ids_[top], "score": scores[top], "rank": np.arange(1, len(top) + 1),
                             "source": "session"})

    def similar_items(self, item_ids, k=10, *, filters=None) -> pd.DataFrame:
        ids = [item_ids] if isinstance(item_ids, str) else list(item_ids)
        rows = []
        for q in ids:
            if q not in self._pos:
                raise UnknownIdError(f"unknown item_id {q!r}")
            ok = self._mask(filters)
            ok[self._pos[q]] = False
            s = self.cooc_[self._pos[q]]
            for r, i in enumerate(self._top(s, ok, k)):
                rows.append((q, self.item_ids_[i], float(s[i]), r + 1))
        return pd.DataFrame(rows, columns=["query_item_id", "item_id", "score", "rank"])

    def update_customer(self, customer_id, item_ids, timestamps=None) -> None:
        new = [self._pos[i] for i in item_ids if i in self._pos]
        self.history_[customer_id] = sorted(set(self.history_.get(customer_id, [])) | set(new))

    def save(self, directory) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / "arrays.npz", cooc=self.cooc_, pop=self.pop_, in_stock=self.in_stock_,
                 item_ids=self.item_ids_)
        (d / "meta.json").write_text(json.dumps({
            "kind": self.bundle_kind, "popularity_weight": self.popularity_weight,
            "history": self.history_, "category": {str(k): v for k, v in self.category_.items()}}))

    @classmethod
    def load(cls, directory) -> "ContractRecommender":
        d = Path(directory)
        meta = json.loads((d / "meta.json").read_text())
        self = cls(popularity_weight=meta["popularity_weight"])
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            self.cooc_, self.pop_, self.in_stock_ = z["cooc"], z["pop"], z["in_stock"]
            self.item_ids_ = z["item_ids"]
        self.history_ = {k: list(v) for k, v in meta["history"].items()}
        self.category_ = {int(k): v for k, v in meta["category"].items()}
        self._pos = {str(s): i for i, s in enumerate(self.item_ids_)}
        return self


register_loader(ContractRecommender.bundle_kind, ContractRecommender.load)


def real_recommenders_available() -> bool:
    try:
        from personalize.recommenders import ALS, Popular, load_recommender  # noqa: F401
    except ImportError:
        return False
    return True


def make_models(dataset: Dataset):
    """(recommender, popular) fitted on ``dataset``: real ALS + Popular when available, else the contract stub."""
    if real_recommenders_available():
        from threadpoolctl import threadpool_limits

        from personalize.recommenders import ALS, Popular

        with threadpool_limits(1, "blas"):
            return (ALS(factors=8, iterations=5, random_state=0).fit(dataset), Popular().fit(dataset))
    return ContractRecommender().fit(dataset), ContractRecommender(popularity_weight=1.0).fit(dataset)


def publish_tiny(store: Path, dataset: Dataset | None = None, *, candidates: int = 15) -> dict:
    from personalize.registry import CandidateTable, publish
    from personalize.registry.build import customer_table

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
    """``train_bundle`` with small models (ALS with 8 factors, or the contract recommender) for fast tests."""
    from personalize.registry import train_bundle

    rec, pop = make_models(dataset) if not real_recommenders_available() else (None, None)
    if rec is None:
        from personalize.recommenders import ALS

        rec = ALS(factors=8, iterations=5, random_state=0)
    return train_bundle(dataset, store=store, recommender=rec, popular=pop, candidates=candidates, churn=churn)
