"""Unit tests of the recommender building blocks on tiny hand-made data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from personalize.data import Dataset
from personalize.errors import BundleError, PersonalizeError, UnknownIdError
from personalize.errors import ParameterError
from personalize.recommenders import ALS, BuyAgain, Filters, ItemKNN, LiveEvents, Popular, load_recommender
from personalize.recommenders.catalog import ItemCatalog
from personalize.recommenders.topk import csr_gather, padded_width, topk_rows


# ---------------------------------------------------------------------- top-k and sparse helpers
@pytest.mark.parametrize("ncols", [5, 300, 20_000, 20_011])
def test_topk_rows_is_exact(ncols):
    rng = np.random.default_rng(ncols)
    width = padded_width(ncols)
    out = np.full((7, width), -np.inf, dtype=np.float32)
    out[:, :ncols] = rng.integers(0, 50, size=(7, ncols)).astype(np.float32)  # many ties
    out[3, :ncols] = -np.inf
    out[3, [4, 2]] = [1.0, 2.0]  # a row with only two finite scores
    k = 10
    top, vals = topk_rows(out, ncols, k)
    for r in range(7):
        order = np.lexsort((np.arange(ncols), -out[r, :ncols]))[: min(k, ncols)]
        # same multiset of scores, sorted descending, ties broken by column
        np.testing.assert_array_equal(vals[r], out[r, order])
        fin = vals[r][np.isfinite(vals[r])]
        assert (np.diff(fin) <= 0).all()
        for v in np.unique(vals[r][np.isfinite(vals[r])]):
            cols = top[r][vals[r] == v]
            assert (np.diff(cols) > 0).all()
    assert top[3][:2].tolist() == [2, 4] and np.isneginf(vals[3][2:]).all()


def test_csr_gather():
    m = sp.csr_matrix(np.array([[0, 1, 2], [0, 0, 0], [3, 0, 4]], dtype=np.float32))
    r, pos = csr_gather(m.indptr, np.array([2, 1, 0, 2]))
    assert r.tolist() == [0, 0, 2, 2, 3, 3]
    assert m.data[pos].tolist() == [3, 4, 1, 2, 3, 4]


# ---------------------------------------------------------------------- filters
def _catalog():
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "category": ["x", "y", None, "x"],
                          "price": [1.0, 5.0, np.nan, 10.0], "in_stock": [True, False, True, True]})
    return ItemCatalog.from_items(np.array(["a", "b", "c", "d", "e"], dtype=object), items)


def test_filters_mask():
    cat = _catalog()
    assert Filters(categories="x").mask(cat).tolist() == [True, False, False, True, False]
    assert Filters(categories=["x", "nope"]).mask(cat).tolist() == [True, False, False, True, False]
    assert Filters(min_price=2, max_price=10).mask(cat).tolist() == [False, True, False, True, False]
    # "e" is not in the items table: no category, no price, counted as in stock
    assert Filters(in_stock=True).mask(cat).tolist() == [True, False, True, True, True]
    assert Filters(in_stock=False).mask(cat).tolist() == [False, True, False, False, False]
    assert Filters(allow=["a", "zzz", "d"], deny=["d"]).mask(cat).tolist() == [True, False, False, False, False]
    assert Filters.coerce({"categories": ["y"]}) == Filters(categories=("y",))


@pytest.mark.parametrize("kwargs", [{"min_price": 3, "max_price": 1}, {"min_price": "cheap"},
                                    {"max_price": float("inf")}, {"in_stock": "yes"}, {"categories": 3}])
def test_filters_reject_bad_values(kwargs):
    with pytest.raises(ParameterError):
        Filters(**kwargs)


def test_filters_coerce_rejects_unknown_fields():
    with pytest.raises(ParameterError, match="colour"):
        Filters.coerce({"colour": "red"})


# ---------------------------------------------------------------------- a tiny shop
@pytest.fixture(scope="module")
def shop() -> Dataset:
    day = pd.Timestamp("2024-01-01")
    rows = []
    # customer A: milk every 7 days (repeatable), one chair; B and C: milk + bread; D: bread, cheese
    for k in range(4):
        rows.append(("A", "milk", day + pd.Timedelta(days=7 * k)))
    rows.append(("A", "chair", day + pd.Timedelta(days=3)))
    for c in ("B", "C"):
        rows += [(c, "milk", day + pd.Timedelta(days=10)), (c, "bread", day + pd.Timedelta(days=11))]
    rows += [("D", "bread", day + pd.Timedelta(days=20)), ("D", "cheese", day + pd.Timedelta(days=21))]
    rows += [("E", "lamp", day + pd.Timedelta(days=1))]
    tx = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp"])
    tx["quantity"] = 1.0
    tx["price"] = 2.0
    items = pd.DataFrame({
        "item_id": ["milk", "bread", "cheese", "chair", "lamp", "sofa"],
        "category": ["food", "food", "food", "furniture", "furniture", "furniture"],
        "price": [1.0, 2.0, 5.0, 50.0, 30.0, 400.0],
        "in_stock": [True, True, True, True, True, True],
        "repeatable": [True, True, True, False, False, False],
    })
    return Dataset.from_frames(tx, items=items)


def test_new_item_reachable_through_category_popularity(shop):
    m = Popular(session_neighbors=0).fit(shop)
    # "sofa" has no history at all; it is reachable when its category is asked for
    rec = m.recommend("NOBODY", k=3, filters=Filters(categories=["furniture"]))
    assert set(rec["item_id"]) == {"chair", "lamp", "sofa"}
    assert rec["item_id"].iloc[-1] == "sofa" and rec["score"].iloc[-1] == 0.0
    sim = m.similar_items("sofa", k=2)
    assert sim["source"].tolist() == ["category_popular", "category_popular"]
    assert set(sim["item_id"]) == {"chair", "lamp"}


def test_fallback_chain_order_and_sources(shop):
    # A's only non-repeatable purchase is the chair; BuyAgain ranks A's past items, then the chain
    m = BuyAgain(fallback=("category_popular", "popular"), session_neighbors=0).fit(shop)
    rec = m.recommend("A", k=6, exclude=None)
    assert rec["source"].tolist()[:2] == ["buyagain", "buyagain"]
    assert rec["item_id"].tolist()[:2] == ["milk", "chair"]
    # favourite category of A is food (4 milk lines): bread and cheese come next, then popular
    assert rec["source"].tolist()[2:4] == ["category_popular", "category_popular"]
    assert rec["item_id"].tolist()[2:4] == ["bread", "cheese"]
    assert rec["source"].tolist()[4:] == ["popular", "popular"]
    assert len(rec) == 6 and rec["item_id"].is_unique


def test_exclusion_modes(shop):
    m = Popular(session_neighbors=0).fit(shop)
    top = lambda **kw: m.recommend("A", k=6, **kw)["item_id"].tolist()  # noqa: E731
    assert "milk" in top(exclude="non_repeatable") and "chair" not in top(exclude="non_repeatable")
    assert "milk" not in top(exclude="purchased") and len(top(exclude="purchased")) == 4
    assert {"milk", "chair"} <= set(top(exclude=None))
    assert top() == top(exclude="non_repeatable")  # Popular's default
    assert BuyAgain().fit(shop).recommend("A", k=2)["item_id"].tolist() == ["milk", "chair"]  # default None
    # without a repeatable column nothing counts as repeatable
    plain = Dataset.from_frames(shop.transactions.drop(columns="amount"))
    p = Popular(session_neighbors=0).fit(plain)
    assert (p.recommend("A", k=3, exclude="non_repeatable")["item_id"].tolist()
            == p.recommend("A", k=3, exclude="purchased")["item_id"].tolist())


def test_fewer_eligible_than_k(shop):
    m = Popular().fit(shop)
    rec = m.recommend("A", k=10, exclude="purchased")
    assert len(rec) == 4  # 6 items, 2 bought
    assert len(m.recommend("A", k=10, filters={"deny": ["milk", "bread", "cheese", "chair", "lamp", "sofa"]})) == 0


def test_buyagain_score_by_hand(shop):
    m = BuyAgain(frequency_power=1.0, repeat_rate_power=1.0, cycle_multiplier=2.0, min_scale_days=5.0,
                 prior_strength=1.0).fit(shop)
    # milk: buyers A (4 days, 7 days apart), B, C (1 day each) -> 1 repeater of 3 buyers
    # 9 (customer, item) pairs: A-milk (the only repeat), A-chair, B-milk, B-bread, C-milk, C-bread, D-bread,
    # D-cheese, E-lamp; the only repeat interval is A's 7 days
    glob_rate = 1 / 9
    glob_cycle = 7.0
    cycle = (1 * 7.0 + 1.0 * glob_cycle) / (1 + 1.0)
    rate = (1 + 1.0 * glob_rate) / (3 + 1.0)
    now = shop.last_timestamp.normalize()
    d = (now - pd.Timestamp("2024-01-22")).days  # A's last milk day
    expected = 4 * rate * np.exp(-d / max(2.0 * cycle, 5.0))
    got = m.score(["A"], ["milk"])[0]
    assert got == pytest.approx(expected, rel=1e-5)
    assert np.isnan(m.score(["A"], ["bread"])[0])  # never bought: no opinion


def test_buyagain_live_purchase_moves_recency(shop):
    m = BuyAgain().fit(shop)
    before = m.score(["D"], ["bread"])[0]
    live = LiveEvents.for_model(m)
    live.add("D", ["bread"], shop.last_timestamp + pd.Timedelta(days=1))
    after = m.score(["D"], ["bread"], live=live)[0]
    assert after > before  # bought again: one more purchase day, and more recent
    assert m.score(["D"], ["bread"])[0] == before  # the fitted model is unchanged


def test_als_explain_contributions_sum_to_the_folded_in_score(shop):
    m = ALS(factors=3, iterations=5, regularization=0.1, session_neighbors=0).fit(shop)
    hi, hw = m.histories_.row(int(m.customer_map_.lookup(np.array(["A"], dtype=object))[0]))
    i = int(m.item_map_.lookup_strict(["bread"])[0])
    contrib = m._explain_contrib(None, i, hi, hw)
    assert contrib.sum() == pytest.approx(float(m._fold_in(hi, hw) @ m.item_factors_[i]), rel=1e-4)
    ex = m.explain("A", "bread", n=5)
    assert ex["contribution"].sum() == pytest.approx(contrib[contrib > 0].sum(), rel=1e-5)


def test_recommend_from_items_excludes_the_session(shop):
    m = ItemKNN(neighbors=5).fit(shop)
    rec = m.recommend_from_items(["cheese"], k=3)
    assert "cheese" not in set(rec["item_id"]) and len(rec) == 3
    assert rec["item_id"].iloc[0] == "bread" and rec["source"].iloc[0] == "itemknn"


# ---------------------------------------------------------------------- parameters and persistence
@pytest.mark.parametrize("model", [Popular(fallback=("bogus",)), Popular(fallback="popular"),
                                   Popular(window_days=-1), ALS(factors=0), ALS(confidence="cubic"),
                                   ItemKNN(similarity="jaccard"), BuyAgain(cycle_multiplier=0)])
def test_invalid_hyperparameters_raise_at_fit(shop, model):
    with pytest.raises(ParameterError):
        model.fit(shop)


def test_params_are_stored_untouched():
    m = ALS(factors=7, alpha=3.5, fallback=["popular"])
    assert m.factors == 7 and m.alpha == 3.5 and m.fallback == ["popular"]
    assert not hasattr(m, "user_factors_")


def test_load_errors(shop, tmp_path):
    with pytest.raises(BundleError):
        load_recommender(tmp_path / "missing")
    m = Popular().fit(shop)
    m.save(tmp_path / "p")
    with pytest.raises(BundleError):
        ALS.load(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    (tmp_path / "p" / "meta.json").write_text(json.dumps({**meta, "kind": "martian"}))
    with pytest.raises(BundleError, match="martian"):
        load_recommender(tmp_path / "p")
    (tmp_path / "p" / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(BundleError, match="format_version"):
        load_recommender(tmp_path / "p")
    assert not list(tmp_path.glob("p/*.tmp"))


def test_errors_are_personalize_errors(shop):
    m = Popular().fit(shop)
    with pytest.raises(UnknownIdError):
        m.similar_items(["milk", "caviar"])
    with pytest.raises(PersonalizeError):
        m.recommend("A", k=-1)
    with pytest.raises(PersonalizeError):
        m.score(["A", "B"], ["milk"])


def test_customer_without_training_history_gets_the_fallback_chain():
    """A customer who first buys after the split is in the vocabulary but has no history: fallback, not zeros."""
    import pandas as pd

    from personalize.data import Dataset
    from personalize.recommenders import ALS, ItemKNN

    rows = []
    for c in range(30):
        for i in range(5):
            rows.append((f"c{c}", f"i{(c + i) % 12}", f"2024-01-{1 + i:02d}"))
    rows.append(("late", "i1", "2024-03-01"))
    df = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp"]).assign(quantity=1.0, price=2.0)
    ds = Dataset.from_frames(df)
    train = ds.until("2024-02-01")
    for model in (ALS(factors=4, iterations=3), ItemKNN()):
        recs = model.fit(train).recommend("late", k=5)
        assert len(recs) == 5
        assert (recs["source"] != model.source).all(), recs
        assert (recs["score"] != 0).any()


def test_keyed_sort_orders_as_lexsort_with_ties_zeros_infinities_and_nan():
    """topk_rows orders a row's candidates by one sort of 64-bit keys: the same order as lexsort((col, -score)),
    ties by column, -0.0 equal to 0.0, -inf after every finite score and NaN last."""
    from personalize.recommenders.topk import sort_by_score_then_column, topk_rows

    rng = np.random.default_rng(5)
    pool = np.array([0.0, -0.0, 1.0, 0.5, -1.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 3.0], np.float32)
    for _ in range(50):
        b, w = int(rng.integers(1, 30)), int(rng.integers(1, 300))
        vals = rng.choice(pool, size=(b, w)).astype(np.float32)
        cols = np.argsort(rng.random((b, w)), axis=1)
        ref = np.take_along_axis(cols, np.lexsort((cols, -vals)), axis=1)
        np.testing.assert_array_equal(sort_by_score_then_column(vals, cols), ref)
    out = np.array([[0.5, 2.0, 2.0, -np.inf, 1.0]], np.float32)
    top, val = topk_rows(out, 5, 3)
    assert top.tolist() == [[1, 2, 4]] and val.tolist() == [[2.0, 2.0, 1.0]]
