"""The recommender contract: one mixin of tests that every model passes.

Each ``Test<Model>`` class only says how to build its model (``make``) and
which quality track it must win; the tests live in :class:`RecommenderContract`
(the habit of implicit's ``recommender_base_test.py``). Data: the seeded
synthetic retailer of :func:`personalize.datasets.make_retail` with strong
planted latent-factor preferences, trained before 2023-10-01 and checked on
the later purchases.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from personalize.datasets import make_retail
from personalize.errors import NotFittedError, UnknownIdError
from personalize.recommenders import (ALS, BPR, EASE, BuyAgain, Filters, ItemKNN, LiveEvents, Popular, Repurchase,
                                      load_recommender)
from personalize.recommenders.fallback import FALLBACK_SOURCES

SPLIT = "2023-10-01"
COLUMNS = ["customer_id", "item_id", "score", "rank", "source"]


@lru_cache(maxsize=1)
def planted():
    ds, _truth = make_retail(n_customers=1500, n_items=120, seed=3, offers=False, exposures=False,
                             personalization=2.5)
    train = ds.until(SPLIT)
    test = ds.between(SPLIT, "2024-01-01")
    history = train.transactions.groupby("customer_id")["item_id"].agg(set)
    later = test.transactions.groupby("customer_id")["item_id"].agg(set)
    return ds, train, history, later


def recall_at_k(model, customers, history, later, *, discovery: bool, k: int = 10) -> float:
    rec = model.recommend(customers, k=k, exclude="purchased" if discovery else None)
    got = rec.groupby("customer_id")["item_id"].agg(set)
    vals = []
    for c in customers:
        truth = later[c] - history[c] if discovery else later[c]
        if truth:
            vals.append(len(got[c] & truth) / min(k, len(truth)))
    return float(np.mean(vals))


class RecommenderContract:
    """Tests shared by every recommender. Subclasses define ``make()`` and ``quality_track``."""

    #: "discovery" (items new to the customer, past items excluded) or "all" (any later purchase)
    quality_track = "discovery"
    #: required ratio of the model's recall@10 over the baseline's on that track
    quality_ratio = 1.5
    #: the baseline: "popular" (fitted on the same data) or "random" (a seeded random ranking, for Popular itself)
    baseline = "popular"
    #: whether the model's top item is always explained by at least one past item
    explains_history = True

    @classmethod
    def make(cls):  # pragma: no cover - overridden
        raise NotImplementedError

    # ---------------------------------------------------------------- fixtures
    @pytest.fixture(scope="class")
    @classmethod
    def data(cls):
        return planted()

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, data):
        _ds, train, _h, _l = data
        return cls.make().fit(train)

    @pytest.fixture
    def fresh(self, model, tmp_path):
        """An independent copy of the fitted model (via save/load) for tests that change it."""
        model.save(tmp_path / "copy")
        return load_recommender(tmp_path / "copy")

    @pytest.fixture(scope="class")
    @classmethod
    def customers(cls, data):
        _ds, _train, history, later = data
        return [c for c in later.index if c in history.index][:300]

    # ---------------------------------------------------------------- basics
    def test_unfitted_model_raises(self, tmp_path):
        m = self.make()
        for call in (lambda: m.recommend("C1"), lambda: m.similar_items("I1"), lambda: m.explain("C1", "I1"),
                     lambda: m.recommend_from_items(["I1"]), lambda: LiveEvents.for_model(m),
                     lambda: m.save(tmp_path / "x")):
            with pytest.raises(NotFittedError):
                call()

    def test_fit_returns_self_and_keeps_params(self, model):
        assert model.is_fitted
        assert model.get_params() == self.make().get_params()

    def test_ids_in_ids_out(self, model, customers):
        rec = model.recommend(customers[:5], k=7)
        assert list(rec.columns) == COLUMNS
        assert rec["customer_id"].tolist() == [c for c in customers[:5] for _ in range(7)]
        assert set(rec["item_id"]) <= set(model.item_ids_)
        assert rec["rank"].tolist() == list(range(1, 8)) * 5
        assert rec["score"].dtype == np.float64
        single = model.recommend(customers[0], k=3)
        assert single["customer_id"].tolist() == [customers[0]] * 3

    def test_exactly_k_distinct_items_and_ordered_scores(self, model, customers):
        rec = model.recommend(customers, k=10)
        assert (rec.groupby("customer_id").size() == 10).all()
        assert not rec.duplicated(["customer_id", "item_id"]).any()
        own = rec[rec["source"] == model.source]
        for _c, g in own.groupby("customer_id"):
            assert (np.diff(g["score"].to_numpy()) <= 1e-6).all()

    def test_exclude_purchased(self, model, data, customers):
        _ds, _train, history, _l = data
        rec = model.recommend(customers[:100], k=10, exclude="purchased")
        for c, g in rec.groupby("customer_id"):
            assert not (set(g["item_id"]) & history[c])
        assert (rec.groupby("customer_id").size() == 10).all()

    def test_exclude_non_repeatable_keeps_only_repeatable_past_items(self, model, data, customers):
        ds, _train, history, _l = data
        repeatable = set(ds.items.loc[ds.items["repeatable"].astype(bool), "item_id"])
        rec = model.recommend(customers[:100], k=10, exclude="non_repeatable")
        for c, g in rec.groupby("customer_id"):
            past = set(g["item_id"]) & history[c]
            assert past <= repeatable

    def test_invalid_arguments(self, model, customers):
        from personalize.errors import PersonalizeError
        for kwargs in ({"k": 0}, {"k": 2.5}, {"exclude": "everything"}, {"filters": {"colour": "red"}},
                       {"filters": {"min_price": "x"}}, {"filters": {"min_price": 5, "max_price": 1}}):
            with pytest.raises(PersonalizeError):
                model.recommend(customers[0], **kwargs)

    # ---------------------------------------------------------------- filters and candidates
    def test_filters(self, model, data, customers):
        ds, _train, _h, _l = data
        items = ds.items.set_index("item_id")
        cat = items["category"].value_counts().index[0]
        lo, hi = items["price"].quantile([0.2, 0.8]).tolist()
        deny = items.index[:30].tolist()
        f = Filters(categories=[cat], in_stock=True, deny=deny)
        rec = model.recommend(customers[:50], k=5, filters=f)
        eligible = items[(items["category"] == cat) & items["in_stock"].astype(bool) & ~items.index.isin(deny)]
        assert set(rec["item_id"]) <= set(eligible.index)
        assert (rec.groupby("customer_id").size() == min(5, len(eligible))).all()
        rec = model.recommend(customers[:50], k=10, filters={"min_price": lo, "max_price": hi})
        prices = items.loc[rec["item_id"], "price"]
        assert ((prices >= lo) & (prices <= hi)).all()
        assert (rec.groupby("customer_id").size() == 10).all()
        allow = items.index[-12:].tolist()
        rec = model.recommend(customers[:20], k=10, filters=Filters(allow=allow), exclude=None)
        assert set(rec["item_id"]) <= set(allow)
        assert (rec.groupby("customer_id").size() == 10).all()

    def test_candidate_items(self, model, data, customers):
        ds, _train, _h, _l = data
        cands = ds.items["item_id"].tolist()[10:25] + ["NOT-AN-ITEM"]
        rec = model.recommend(customers[:30], k=10, items=cands, exclude=None)
        assert set(rec["item_id"]) <= set(cands)
        assert (rec.groupby("customer_id").size() == 10).all()
        few = model.recommend(customers[:3], k=10, items=cands[:3], exclude=None)
        assert (few.groupby("customer_id").size() == 3).all()

    # ---------------------------------------------------------------- cold start
    def test_cold_start_uses_named_fallback_chain(self, model, fresh):
        rec = model.recommend(["NEVER-SEEN-1", "NEVER-SEEN-2"], k=10)
        assert (rec.groupby("customer_id").size() == 10).all()
        assert set(rec["source"]) <= set(FALLBACK_SOURCES)
        first = rec[rec["customer_id"] == "NEVER-SEEN-1"]
        assert first["source"].iloc[0] == "trending"  # no session items, no favourite category
        fresh.fallback = ("popular",)
        rec = fresh.recommend("NEVER-SEEN-1", k=10)
        assert set(rec["source"]) == {"popular"}
        expected = pd.Series(model.popularity_, index=model.item_ids_).sort_values(ascending=False, kind="stable")
        assert rec["score"].tolist() == expected.iloc[:10].tolist()

    def test_mixed_known_and_unknown(self, model, customers):
        ids = [customers[0], "NEVER-SEEN", customers[1]]
        rec = model.recommend(ids, k=4)
        assert rec["customer_id"].tolist() == [i for i in ids for _ in range(4)]

    def test_recommend_from_items(self, model, data):
        ds, _train, _h, _l = data
        session = ds.items["item_id"].tolist()[:3]
        rec = model.recommend_from_items(session + ["UNKNOWN-ITEM"], k=8)
        assert list(rec.columns) == ["item_id", "score", "rank", "source"]
        assert len(rec) == 8 and not (set(rec["item_id"]) & set(session))
        assert rec["rank"].tolist() == list(range(1, 9))
        empty = model.recommend_from_items([], k=5)
        assert len(empty) == 5 and set(empty["source"]) <= {"trending", "popular"}

    # ---------------------------------------------------------------- similar items / explain
    def test_similar_items(self, model, data):
        ds, _train, _h, _l = data
        q = ds.items["item_id"].tolist()[:2]
        sim = model.similar_items(q, k=6)
        assert list(sim.columns)[:4] == ["query_item_id", "item_id", "score", "rank"]
        assert (sim.groupby("query_item_id").size() == 6).all()
        for qi, g in sim.groupby("query_item_id"):
            assert qi not in set(g["item_id"])
        one = model.similar_items(q[0], k=3)
        assert one["query_item_id"].tolist() == [q[0]] * 3
        in_stock = set(ds.items.loc[ds.items["in_stock"].astype(bool), "item_id"])
        filtered = model.similar_items(q, k=4, filters={"in_stock": True})
        assert set(filtered["item_id"]) <= in_stock and len(filtered) == 8

    def test_unknown_item_raises(self, model, customers):
        with pytest.raises(UnknownIdError):
            model.similar_items(["NOT-AN-ITEM"], k=5)
        with pytest.raises(UnknownIdError):
            model.explain(customers[0], "NOT-AN-ITEM")
        live = LiveEvents.for_model(model)
        assert live.add(customers[0], ["NOT-AN-ITEM", model.item_ids_[0]]).tolist() == [False, True]

    def test_explain(self, model, data, customers):
        _ds, _train, history, _l = data
        c = customers[0]
        top = model.recommend(c, k=1, exclude=None)["item_id"].iloc[0]
        ex = model.explain(c, top, n=3)
        assert list(ex.columns) == ["item_id", "contribution"]
        assert (1 if self.explains_history else 0) <= len(ex) <= 3
        assert set(ex["item_id"]) <= history[c]
        assert (ex["contribution"] > 0).all() and ex["contribution"].is_monotonic_decreasing
        assert model.explain("NEVER-SEEN", top).empty

    # ---------------------------------------------------------------- consistency
    def test_batch_equals_single(self, model, customers):
        ids = customers[:15] + ["NEVER-SEEN"]
        batch = model.recommend(ids, k=10, exclude="purchased")
        singles = pd.concat([model.recommend(c, k=10, exclude="purchased") for c in ids], ignore_index=True)
        pd.testing.assert_frame_equal(batch.drop(columns="score"), singles.drop(columns="score"))
        np.testing.assert_allclose(batch["score"], singles["score"], rtol=1e-5)

    def test_score_matches_recommend(self, model, customers):
        rec = model.recommend(customers[:10], k=5, exclude=None)
        own = rec[rec["source"] == model.source]
        s = model.score(own["customer_id"].tolist(), own["item_id"].tolist())
        np.testing.assert_allclose(s, own["score"].to_numpy(), rtol=1e-5)
        assert np.isnan(model.score(["NEVER-SEEN"], [own["item_id"].iloc[0]])).all()

    def test_save_load_round_trip(self, model, data, customers, tmp_path):
        ds, _train, _h, _l = data
        model.save(tmp_path / "m")
        meta = json.loads((tmp_path / "m" / "meta.json").read_text())
        assert meta["kind"] == model.kind and meta["params"]
        with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
        loaded = load_recommender(tmp_path / "m")
        assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
        assert type(model).load(tmp_path / "m").kind == model.kind
        ids = customers[:40] + ["NEVER-SEEN"]
        f = Filters(in_stock=True)
        for kwargs in ({}, {"exclude": None}, {"filters": f}):
            pd.testing.assert_frame_equal(model.recommend(ids, k=10, **kwargs), loaded.recommend(ids, k=10, **kwargs))
        q = ds.items["item_id"].tolist()[:3]
        pd.testing.assert_frame_equal(model.similar_items(q, k=5), loaded.similar_items(q, k=5))
        pd.testing.assert_frame_equal(model.recommend_from_items(q, k=5), loaded.recommend_from_items(q, k=5))

    def test_live_events_change_next_recommendations_and_never_the_model(self, model, data, customers, tmp_path):
        ds, _train, _h, _l = data
        c = customers[0]
        before = model.recommend([c, "NEW-CUSTOMER"], k=10, exclude="purchased")
        bought = before[before["customer_id"] == c]["item_id"].iloc[:2].tolist()
        session = ds.items["item_id"].tolist()[:3]
        live = LiveEvents.for_model(model)
        live.add(c, bought, pd.Timestamp("2023-10-02"))
        live.add("NEW-CUSTOMER", session, pd.Timestamp("2023-10-02"))
        after = model.recommend(c, k=10, exclude="purchased", live=live)
        assert not (set(after["item_id"]) & set(bought))
        # a brand-new customer stops being cold after one event
        cold = model.recommend("NEVER-SEEN", k=10, exclude=None)
        new = model.recommend("NEW-CUSTOMER", k=10, exclude=None, live=live)
        assert not new["item_id"].equals(cold["item_id"])
        if model.source not in FALLBACK_SOURCES:
            assert set(new["source"]) - set(FALLBACK_SOURCES[2:])  # not only trending / popular
        # batch and single calls agree with live events too
        both = model.recommend([c, "NEW-CUSTOMER"], k=10, exclude="purchased", live=live)
        pd.testing.assert_frame_equal(both[both["customer_id"] == c].reset_index(drop=True), after)
        # the fitted model is untouched: the same answer without the overlay, and a save holds no event
        pd.testing.assert_frame_equal(model.recommend([c, "NEW-CUSTOMER"], k=10, exclude="purchased"), before)
        model.save(tmp_path / "after-live")
        again = load_recommender(tmp_path / "after-live")
        pd.testing.assert_frame_equal(again.recommend([c, "NEW-CUSTOMER"], k=10, exclude="purchased"), before)
        assert "NEW-CUSTOMER" not in set(again.customer_ids_)
        # an overlay for another vocabulary is refused, not misread
        from personalize.errors import ParameterError
        with pytest.raises(ParameterError, match="vocabulary"):
            model.recommend(c, k=3, live=LiveEvents(np.array(["x", "y"], dtype=object)))

    # ---------------------------------------------------------------- quality on planted preferences
    def test_beats_popularity_on_later_purchases(self, model, data, customers):
        _ds, train, history, later = data
        everyone = [c for c in later.index if c in history.index]
        discovery = self.quality_track == "discovery"
        mine = recall_at_k(model, everyone, history, later, discovery=discovery)
        base = (random_recall(model, everyone, history, later, discovery=discovery) if self.baseline == "random"
                else recall_at_k(_popular(train), everyone, history, later, discovery=discovery))
        assert mine >= self.quality_ratio * base, (mine, base)


def random_recall(model, customers, history, later, *, discovery: bool, k: int = 10, seed: int = 0) -> float:
    """recall@k of a seeded random ranking of the catalog (past items left out on the discovery track)."""
    rng = np.random.default_rng(seed)
    items = np.asarray(model.item_ids_, dtype=object)
    vals = []
    for c in customers:
        truth = later[c] - history[c] if discovery else later[c]
        if truth:
            pool = [i for i in rng.permutation(items) if not (discovery and i in history[c])]
            vals.append(len(set(pool[:k]) & truth) / min(k, len(truth)))
    return float(np.mean(vals))


@lru_cache(maxsize=1)
def _popular_cached():
    return Popular().fit(planted()[1])


def _popular(train):
    return _popular_cached()


class TestPopular(RecommenderContract):
    baseline = "random"   # Popular is the baseline of the others; it must itself beat chance clearly
    quality_track = "all"
    quality_ratio = 2.0
    explains_history = False

    @classmethod
    def make(cls):
        return Popular()


class TestTrending(RecommenderContract):
    baseline = "random"
    quality_track = "all"
    quality_ratio = 2.0
    explains_history = False

    @classmethod
    def make(cls):
        return Popular(window_days=30, by_category=True)

    def test_trending_source_and_category(self, model, data, customers):
        ds, _train, history, _l = data
        rec = model.recommend(customers[:30], k=10, exclude=None)
        cat = ds.items.set_index("item_id")["category"]
        for c, g in rec.groupby("customer_id"):
            own = g[g["source"] == "trending"]
            assert own["item_id"].map(cat).nunique() <= 1  # only the favourite category


class TestItemKNN(RecommenderContract):
    @classmethod
    def make(cls):
        return ItemKNN()


class TestItemKNNCosine(RecommenderContract):
    quality_track = "all"

    @classmethod
    def make(cls):
        return ItemKNN(similarity="cosine", neighbors=50)


class TestALS(RecommenderContract):
    @classmethod
    def make(cls):
        return ALS(factors=8, regularization=1.0, alpha=2.0, iterations=10)

    def test_fold_in_reproduces_trained_factors(self, model, customers):
        c = int(model.customer_map_.lookup(np.asarray(customers[:1], dtype=object))[0])
        hi, hw = model.histories_.row(c)
        v = model._fold_in(hi, hw)
        u = model.user_factors_[c]
        assert np.corrcoef(model.item_factors_ @ v, model.item_factors_ @ u)[0, 1] > 0.95


class TestBPR(RecommenderContract):
    @classmethod
    def make(cls):
        return BPR(factors=8, learning_rate=0.02, iterations=80)


class TestBuyAgain(RecommenderContract):
    quality_track = "all"

    @classmethod
    def make(cls):
        return BuyAgain()

    def test_only_past_items_from_the_model(self, model, data, customers):
        _ds, _train, history, _l = data
        rec = model.recommend(customers[:50], k=10)
        own = rec[rec["source"] == "buyagain"]
        assert len(own)
        for c, g in own.groupby("customer_id"):
            assert set(g["item_id"]) <= history[c]
        assert (rec["source"] != "buyagain").any()  # the fallback tops up
        assert (rec.groupby("customer_id").size() == 10).all()


class TestRepurchase(RecommenderContract):
    quality_track = "all"

    @classmethod
    def make(cls):
        return Repurchase()

    def test_most_often_bought_first_then_most_recent(self, model, data, customers):
        _ds, train, _h, _l = data
        tx = train.transactions.assign(day=train.transactions["timestamp"].dt.normalize())
        days = tx.groupby(["customer_id", "item_id"])["day"].agg(["nunique", "max"])
        rec = model.recommend(customers[:60], k=10)
        own = rec[rec["source"] == "repurchase"]
        assert len(own)
        for c, g in own.groupby("customer_id"):
            got = days.loc[c].loc[g["item_id"]]
            expected = days.loc[c].sort_values(["nunique", "max"], ascending=False, kind="stable")
            # the model's order is the (purchase days, last day) order, and its top items are the customer's top
            assert list(zip(got["nunique"], got["max"])) == list(zip(expected["nunique"], expected["max"]))[:len(g)]


class TestEASE(RecommenderContract):
    @classmethod
    def make(cls):
        return EASE()

    def test_weights_solve_the_constrained_ridge_problem(self, model, data):
        """B = argmin ||X - XB||^2 + lambda ||B||^2 with diag(B) = 0: the KKT conditions hold column by column."""
        _ds, train, _h, _l = data
        X = train.interaction_matrix().toarray()
        X = (X > 0).astype(np.float64)
        B = model.weights_.astype(np.float64)
        lam = model.regularization_
        assert np.allclose(np.diag(B), 0.0)
        # gradient of the objective: (X'X + lambda I) B - X'X must vanish off the diagonal (the diagonal
        # carries the constraint's multiplier)
        G = X.T @ X
        grad = (G + lam * np.eye(len(G))) @ B - G
        off = ~np.eye(len(G), dtype=bool)
        assert np.abs(grad[off]).max() < 1e-3 * max(1.0, np.abs(G).max())
        assert lam == pytest.approx(3.0 * np.diag(G)[np.diag(G) > 0].mean())

    def test_refuses_catalogs_above_max_items(self, data):
        from personalize.errors import DataError
        _ds, train, _h, _l = data
        with pytest.raises(DataError, match="max_items=100"):
            EASE(max_items=100).fit(train)

    def test_explanations_add_up_to_the_score(self, model, customers):
        c = customers[0]
        rec = model.recommend(c, k=3, exclude="purchased")
        item = rec["item_id"].iloc[0]
        ex = model.explain(c, item, n=1000)
        assert ex["contribution"].sum() <= rec["score"].iloc[0] + 1e-5  # positive contributions only
        row = int(model.customer_map_.lookup(np.asarray([c], dtype=object))[0])
        hi, _ = model.histories_.row(row)
        full = model.weights_[hi, int(model.item_map_.lookup(np.asarray([item], dtype=object))[0])].sum()
        assert full == pytest.approx(rec["score"].iloc[0], rel=1e-5)
