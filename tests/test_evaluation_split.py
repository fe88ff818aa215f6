"""Splits and the evaluate loop on a hand-made purchase history."""

import math

import pandas as pd
import pytest

from personalize.data import Dataset
from personalize.errors import DataError, PersonalizeError
from personalize.evaluation import evaluate, leave_last_basket_out, recommendations_matrix, time_split


def _ds() -> Dataset:
    rows = [  # customer, item, date, order
        ("c1", "a", "2020-01-01", "o1"), ("c1", "b", "2020-01-02", "o2"), ("c2", "a", "2020-01-03", "o3"),
        ("c3", "c", "2020-01-05", "o4"),
        ("c1", "a", "2020-02-02", "o5"), ("c1", "c", "2020-02-02", "o5"), ("c2", "a", "2020-02-03", "o6"),
        ("c4", "b", "2020-02-04", "o7"), ("c3", "a", "2020-03-10", "o8"),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "item_id", "timestamp", "order_id"])
    df["quantity"] = 1.0
    df["price"] = 2.0
    return Dataset.from_frames(df)


class Fixed:
    """Recommends one fixed list (minus the customer's training purchases when asked)."""

    def __init__(self, *, order=("c", "a", "b")):
        self.order = order

    def fit(self, dataset):
        self.bought_ = dataset.transactions.groupby("customer_id")["item_id"].agg(set).to_dict()
        self.fitted_on_ = dataset
        return self

    def recommend(self, customer_ids, k=10, *, exclude=None, items=None, filters=None):
        rows = []
        for c in ([customer_ids] if isinstance(customer_ids, str) else customer_ids):
            skip = self.bought_.get(c, set()) if exclude == "purchased" else set()
            lst = [i for i in self.order if i not in skip][:k]
            rows += [(c, i, 1.0 / (r + 1), r + 1, "fixed") for r, i in enumerate(lst)]
        return pd.DataFrame(rows, columns=["customer_id", "item_id", "score", "rank", "source"])


def test_time_split_tracks_and_new_customers():
    s = time_split(_ds(), "2020-02-01", "2020-03-01")
    assert s.train.last_timestamp < pd.Timestamp("2020-02-01")
    assert s.test["timestamp"].min() >= pd.Timestamp("2020-02-01")
    assert s.test["timestamp"].max() < pd.Timestamp("2020-03-01")
    assert s.customers("all").tolist() == ["c1", "c2"]
    assert s.customers("discovery").tolist() == ["c1"]
    assert s.customers("new_customers").tolist() == ["c4"]
    assert sorted(map(tuple, s.truth("all").to_numpy())) == [("c1", "a"), ("c1", "c"), ("c2", "a")]
    assert s.truth("discovery").to_numpy().tolist() == [["c1", "c"]]
    assert s.summary()["customers"] == {"all": 2, "discovery": 1, "new_customers": 1}
    open_ended = time_split(_ds(), "2020-02-01")
    assert open_ended.customers("all").tolist() == ["c1", "c2", "c3"]


def test_time_split_errors():
    with pytest.raises(DataError, match="no transactions before"):
        time_split(_ds(), "2019-01-01")
    with pytest.raises(DataError, match="test window"):
        time_split(_ds(), "2021-01-01")
    with pytest.raises(DataError, match="after test_start"):
        time_split(_ds(), "2020-02-01", "2020-01-01")
    with pytest.raises(DataError, match="unknown track"):
        time_split(_ds(), "2020-02-01").truth("nope")


def test_leave_last_basket_out():
    s = leave_last_basket_out(_ds())
    # c1's last basket o5 (a, c), c2's o6 (a), c3's o8 (a); c4 has one basket and stays in train
    assert sorted(s.test["order_id"].unique()) == ["o5", "o6", "o8"]
    assert set(s.train.transactions["order_id"]) == {"o1", "o2", "o3", "o4", "o7"}
    assert len(s.train.customer_vocab) == len(_ds().customer_vocab)
    assert s.customers("all").tolist() == ["c1", "c2", "c3"]
    assert s.customers("discovery").tolist() == ["c1", "c3"]
    assert s.n_customers("new_customers") == 0


def test_evaluate_hand_computed():
    s = time_split(_ds(), "2020-02-01", "2020-03-01")
    model = Fixed()
    res = evaluate({"fixed": model}, s, k=3)
    assert model.fitted_on_ is s.train  # fitted on the training data only
    assert list(res["track"]) == ["all", "discovery", "new_customers"]
    r = res.set_index("track")
    assert r.loc["all", "ndcg"] == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    assert r.loc["all", "recall"] == pytest.approx(1.0)
    assert r.loc["all", "precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert r.loc["all", "customers"] == 2
    # discovery: c1's past items a, b are excluded, so the list is [c], which is a hit
    assert r.loc["discovery", "ndcg"] == pytest.approx(1.0)
    assert r.loc["discovery", "precision"] == pytest.approx(1 / 3)
    assert r.loc["discovery", "customers"] == 1
    assert r.loc["new_customers", "ndcg"] == pytest.approx(0.5)  # hit at rank 3
    assert r.loc["all", "coverage"] == pytest.approx(1.0)  # 3 of the 3 training items
    assert r.loc["all", "fit_seconds"] >= 0


def test_evaluate_list_and_order_matters():
    s = time_split(_ds(), "2020-02-01", "2020-03-01")
    res = evaluate([Fixed(order=("c", "a", "b")), Fixed(order=("b", "c", "a"))], s, k=2, tracks=("all",),
                   include_new_customers=False)
    assert list(res["model"]) == ["fixed", "fixed_2"]
    assert res["ndcg"].iloc[0] > res["ndcg"].iloc[1]
    with pytest.raises(PersonalizeError):
        evaluate([Fixed()], s, k=0)
    with pytest.raises(PersonalizeError):
        evaluate([Fixed()], s, tracks=("bogus",))


def test_recommendations_matrix_orders_by_rank_and_drops_unknown():
    s = time_split(_ds(), "2020-02-01")
    recs = pd.DataFrame({"customer_id": ["c2", "c1", "c1", "c1"], "item_id": ["a", "zzz", "c", "b"],
                         "rank": [1, 1, 3, 2]})
    m = recommendations_matrix(recs, ["c1", "c2", "c9"], s.item_vocab, 3)
    ids = s.item_vocab.index(["a", "b", "c"])
    assert m.tolist() == [[ids[1], ids[2], -1], [ids[0], -1, -1], [-1, -1, -1]]
