"""The feedback table and the points ledger in the data contract: loading, mapping, validation, point in time, and
the synthetic generator's feedback and points with their planted truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from personalize.analytics import profiles
from personalize.churn.features import churn_features
from personalize.cli import main
from personalize.data import CleaningOptions, Dataset, DataError
from personalize.data.schema import TABLES
from personalize.datasets import make_retail, make_retail_frames

TX = pd.DataFrame({"customer_id": ["c1", "c1", "c2", "c3", "c2"],
                   "item_id": ["i1", "i2", "i1", "i3", "i2"],
                   "timestamp": pd.to_datetime(["2024-01-02", "2024-02-01", "2024-01-05", "2024-01-10",
                                                "2024-03-01"]),
                   "quantity": 1.0, "price": [10.0, 20.0, 10.0, 5.0, 20.0],
                   "order_id": ["o1", "o2", "o3", "o4", "o5"]})


def _fb(**cols) -> pd.DataFrame:
    base = {"customer_id": ["c1", "c2", "c1", "c3"],
            "timestamp": ["2024-01-03", "2024-01-06", "2024-02-03", "2024-01-12"],
            "kind": ["Survey", "rating", "complaint", "review"],
            "score": [9, 2, None, 5], "scale": ["NPS", None, None, None],
            "item_id": [None, "i1", None, "i3"],
            "resolved_at": [None, None, "2024-02-20", None]}
    base.update(cols)
    return pd.DataFrame(base)


def test_feedback_table_is_normalized():
    ds = Dataset.from_frames(TX, feedback=_fb())
    fb = ds.feedback
    assert fb["timestamp"].is_monotonic_increasing
    assert fb["kind"].tolist() == ["survey", "rating", "review", "complaint"]          # lower-cased, by time
    assert fb["scale"].tolist()[:3] == ["nps", "stars", "stars"]                       # ratings default to stars
    assert pd.isna(fb["scale"].iloc[3])                                                # a complaint has no score
    assert fb["resolved"].tolist() == [False, False, False, True]                     # resolved_at means resolved
    assert ds.summary()["tables"]["feedback"] == 4


def test_points_ledger_and_strict_policy():
    pts = pd.DataFrame({"customer_id": ["c1", "c1", "c1"], "timestamp": ["2024-01-02", "2024-01-05", "2024-01-09"],
                        "delta": [100, -60, -60], "reason": ["earn", "redeem", "Redeem"]})
    with pytest.raises(DataError, match="beyond the balance") as err:
        Dataset.from_frames(TX, points=pts)
    assert err.value.table == "points" and err.value.column == "delta" and err.value.rows == [2]
    ds = Dataset.from_frames(TX, points=pts, options=CleaningOptions(negative_points="allow"))
    assert ds.points["delta"].sum() == -20 and set(ds.points["reason"]) == {"earn", "redeem"}


def test_future_feedback_is_refused_like_transactions():
    fb = _fb(timestamp=["2024-01-03", "2024-01-06", "2024-02-03", "2031-01-12"])
    with pytest.raises(DataError, match="in the future") as err:
        Dataset.from_frames(TX, feedback=fb, options=CleaningOptions(now=pd.Timestamp("2024-06-01")))
    assert err.value.column == "timestamp" and err.value.rows == [3]


def test_generic_loader_mapping_and_cli(tmp_path):
    tx = tmp_path / "tx.csv"
    TX.to_csv(tx, index=False)
    fb = _fb().rename(columns={"score": "rating_value", "kind": "type"})
    fb.to_csv(tmp_path / "fb.csv", index=False)
    pd.DataFrame({"member": ["c1"], "when": ["2024-01-02"], "points": [40], "why": ["earn"]}).to_csv(
        tmp_path / "pts.csv", index=False)
    out = tmp_path / "summary.json"
    import contextlib
    import io
    import json

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as ok:
        main(["validate", str(tx), "--feedback", str(tmp_path / "fb.csv"), "--points", str(tmp_path / "pts.csv"),
              "--map", "feedback.score=rating_value", "--map", "feedback.kind=type", "--map",
              "points.customer_id=member", "--map", "points.timestamp=when", "--map", "points.delta=points",
              "--map", "points.reason=why", "--json"])
    assert not ok.value.code
    doc = json.loads(buf.getvalue())
    assert doc["tables"]["feedback"] == 4 and doc["tables"]["points"] == 1
    del out
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(tx), "--feedback", str(tmp_path / "fb.csv"), "--map", "feedback.stars=x"])
    assert exc.value.code == 2


def test_until_slices_feedback_and_undoes_later_resolutions():
    ds = Dataset.from_frames(TX, feedback=_fb())
    early = ds.until("2024-02-10")
    comp = early.feedback[early.feedback["kind"] == "complaint"]
    assert len(early.feedback) == 4 and not comp["resolved"].iloc[0] and pd.isna(comp["resolved_at"].iloc[0])
    assert len(ds.until("2024-01-06").feedback) == 1                  # strictly before the cutoff
    assert len(ds.between("2024-01-04", "2024-01-07").feedback) == 1
    late = ds.until("2024-02-21").feedback
    assert late.loc[late["kind"] == "complaint", "resolved"].iloc[0]


def test_profiles_and_churn_features_never_see_later_feedback():
    """Point in time: feedback given (or complaints resolved) at or after the cutoff changes nothing before it."""
    cut = "2024-02-10"
    fb = _fb()
    ds = Dataset.from_frames(TX, feedback=fb)
    later = pd.concat([fb, pd.DataFrame({"customer_id": ["c1", "c2"], "timestamp": ["2024-02-10", "2024-03-05"],
                                         "kind": ["survey", "complaint"], "score": [0, None],
                                         "scale": ["nps", None]})], ignore_index=True)
    later["resolved_at"] = [None, None, "2024-02-20", None, None, None]
    later.loc[2, "resolved_at"] = "2024-02-11"      # c1's complaint: resolved after the cutoff
    ds2 = Dataset.from_frames(TX, feedback=later)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = profiles(ds, cut), profiles(ds2, cut)
        pd.testing.assert_frame_equal(a, b)
        fa, fb_ = churn_features(ds, cut, bgnbd=False), churn_features(ds2, cut, bgnbd=False)
    pd.testing.assert_frame_equal(fa, fb_)
    assert a.loc["c1", "open_complaints"] == 1 and a.loc["c1", "last_score"] == 9
    assert fa.loc["c1", "open_complaints"] == 1
    # after the cutoff the new rows do count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = profiles(ds2, "2024-03-10")
    assert c.loc["c1", "last_score"] == 0 and bool(c.loc["c1", "detractor"])
    assert c.loc["c1", "open_complaints"] == 0 and c.loc["c2", "open_complaints"] == 1


def test_without_the_tables_features_are_the_old_ones():
    ds = Dataset.from_frames(TX)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = churn_features(ds, "2024-02-10", bgnbd=False)
        p = profiles(ds, "2024-02-10")
    assert not any(c.startswith(("points_", "feedback_")) or c in ("open_complaints", "detractor", "score_trend")
                   for c in list(f.columns) + list(p.columns))


def test_erasure_drops_feedback_and_points():
    pts = pd.DataFrame({"customer_id": ["c1", "c2"], "timestamp": ["2024-01-02", "2024-01-05"], "delta": [10, 20],
                        "reason": ["earn", "earn"]})
    ds = Dataset.from_frames(TX, feedback=_fb(), points=pts)
    out = ds.without_customers(lambda ids: np.asarray([c == "c1" for c in ids]))
    assert "c1" not in set(out.feedback["customer_id"]) and "c1" not in set(out.points["customer_id"])


def test_with_feedback_appends_once():
    ds = Dataset.from_frames(TX, feedback=_fb())
    rows = ds.feedback.iloc[[0]].copy()
    assert ds.with_feedback(rows) is ds                       # already there: counted once
    new = rows.assign(timestamp=pd.Timestamp("2024-03-02"), score=3.0)
    assert len(ds.with_feedback(new).feedback) == 5


# ----------------------------------------------------------------------------- the generator
@pytest.fixture(scope="module")
def generated():
    plain, _ = make_retail_frames(n_customers=2500, n_items=120, n_categories=8, seed=8)
    frames, truth = make_retail_frames(n_customers=2500, n_items=120, n_categories=8, seed=8, feedback=True,
                                       points=True)
    return plain, frames, truth


def test_other_tables_are_identical_with_feedback_and_points(generated):
    plain, frames, _ = generated
    assert set(frames) - set(plain) == {"feedback", "points"}
    for name in plain:
        pd.testing.assert_frame_equal(plain[name], frames[name])


def test_generated_tables_follow_the_contract(generated):
    _, frames, truth = generated
    kinds = {"id": "str", "str": "str", "time": "datetime64[ns]", "float": "float64", "bool": "bool"}
    for name in ("feedback", "points"):
        df = frames[name]
        assert list(df.columns) == list(TABLES[name].columns)
        for col, kind in TABLES[name].columns.items():
            assert str(df[col].dtype) == kinds[kind], (name, col)
        assert df["timestamp"].is_monotonic_increasing
    fb, pts = frames["feedback"], frames["points"]
    assert set(fb["kind"]) == {"survey", "rating", "review", "complaint"}
    assert fb["timestamp"].max() < truth.end and (fb["resolved_at"].dropna() < truth.end).all()
    assert set(pts["reason"]) == {"earn", "redeem", "expire", "adjust"}
    # strict policy holds: the generated ledger never takes a balance below zero
    assert (pts.groupby("customer_id")["delta"].cumsum() >= -1e-9).all()
    ds, _ = make_retail(n_customers=300, n_items=60, seed=8, feedback=True, points=True)
    assert ds.feedback is not None and ds.points is not None


def test_planted_truth_dissatisfaction_and_dropout(generated):
    _, frames, truth = generated
    # satisfaction falls as the dropout hazard rises
    assert np.corrcoef(truth.satisfaction, np.log(truth.churn_hazard))[0, 1] < -0.6
    # a bad experience precedes the dropout of many who left, and is mostly a complaint left open
    has = ~np.isnat(truth.dropout_trigger)
    assert has.sum() > 100 and (truth.dropout_trigger[has] < truth.dropout_time[has]).all()
    fb = frames["feedback"]
    trig = pd.Series(truth.dropout_trigger, index=truth.customer_ids)
    comp = fb[fb["kind"] == "complaint"]
    at_trigger = comp["timestamp"].to_numpy() == trig.reindex(comp["customer_id"]).to_numpy()
    assert at_trigger.sum() > 50 and comp.loc[at_trigger, "resolved"].mean() < 0.5 < comp.loc[~at_trigger,
                                                                                                "resolved"].mean()


def test_planted_truth_visits_before_points_expire(generated):
    _, frames, truth = generated
    tx = frames["transactions"]
    orders = tx.drop_duplicates("order_id")[["customer_id", "timestamp"]]
    exp = pd.Series(truth.opening_points_expiry, index=truth.customer_ids).dropna()
    o = orders[orders["customer_id"].isin(exp.index)]
    days_before = (exp.reindex(o["customer_id"]).to_numpy() - o["timestamp"].to_numpy()) / np.timedelta64(1, "D")
    window = ((days_before > 0) & (days_before <= 14)).sum() / (len(exp) * 14)
    overall = len(o) / (len(exp) * 365)
    assert window > 1.8 * overall        # planted: 3x the visit rate in the 14 days before points expire


def test_features_before_the_first_feedback_are_empty_not_an_error():
    """A survey programme younger than the cutoff (every feedback row after it), as churn's training cutoffs meet
    it: the feedback columns are there and empty (no score, no complaint), not an IndexError."""
    from personalize.analytics.satisfaction import feedback_columns

    fb = _fb(timestamp=["2024-02-12", "2024-02-15", "2024-02-20", "2024-02-25"])
    ds = Dataset.from_frames(TX, feedback=fb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = churn_features(ds, "2024-02-10", bgnbd=False)
        p = profiles(ds, "2024-02-10")
    cols = feedback_columns(ds.feedback, "2024-02-10", ["c1", "c2", "c3"])
    assert cols["last_score"].isna().all() and cols["last_score_scale"].isna().all()
    assert not cols["detractor"].any() and cols["detractor"].dtype == bool
    assert (cols["feedback_responses"] == 0).all() and (cols["open_complaints"] == 0).all()
    assert f.loc["c1", "open_complaints"] == 0 and np.isnan(p.loc["c1", "last_score"])
    later = feedback_columns(ds.feedback, "2024-03-01", ["c1", "c2", "c3"])  # the rows do count once before
    assert later.loc["c1", "last_score"] == 9 and later.loc["c1", "complaints"] == 1
