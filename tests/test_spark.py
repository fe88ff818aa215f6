"""The Spark path against the pandas path, on local[2] (marked ``spark``; skipped without Java or pyspark).

One small synthetic history with every defect (duplicates, guests, returns
netted against purchases, zero prices) is written as Parquet and read by
both paths; every comparison is value by value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from personalize.data import CleaningOptions, Dataset
from personalize.errors import DataError

pytestmark = pytest.mark.spark

END = pd.Timestamp("2024-01-01")


@pytest.fixture(scope="module")
def spark():
    from personalize.spark.session import SparkUnavailableError, check_spark, spark_session

    try:
        check_spark()
    except SparkUnavailableError as exc:
        pytest.skip(f"Spark tests need Java 17+ and pyspark: {exc}")
    return spark_session("local[2]", driver_memory="2g", shuffle_partitions=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from personalize.datasets import make_retail_frames

    frames, _ = make_retail_frames(n_customers=400, n_items=80, defects=True, seed=5, offers=False, exposures=False)
    d = tmp_path_factory.mktemp("spark_data")
    paths = {}
    for name in ("transactions", "items", "customers"):
        paths[name] = str(d / f"{name}.parquet")
        frames[name].to_parquet(paths[name], index=False)  # pandas keeps nanoseconds: read as integers by Spark
    return paths


@pytest.fixture(scope="module")
def both(spark, files):
    from personalize.spark.data import SparkDataset

    opts = CleaningOptions(now=END)
    ds = Dataset.from_parquet(files["transactions"], items=files["items"], customers=files["customers"], options=opts)
    sds = SparkDataset.from_parquet(spark, files["transactions"], items=files["items"], customers=files["customers"],
                                    options=opts)
    return ds, sds


def _norm(values) -> list:
    return [None if pd.isna(v) else (pd.Timestamp(v).isoformat() if hasattr(v, "isoformat") else str(v))
            for v in values]


def assert_same_frame(p: pd.DataFrame, q: pd.DataFrame) -> None:
    """Same index, columns, dtypes and values (numbers bit for bit, NaN where NaN); ``q`` is indexed by
    customer id (:func:`personalize.spark.features.collect_view`) or has a ``customer_id`` column."""
    if "customer_id" in q.columns:
        q = q.set_index("customer_id").sort_index()
    assert list(p.index) == list(q.index)
    assert list(p.columns) == list(q.columns)
    for c in p.columns:
        a, b = p[c], q[c]
        assert a.dtype == b.dtype, (c, a.dtype, b.dtype)
        if a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
            x, y = a.to_numpy(np.float64), b.to_numpy(np.float64)
            same = (np.isnan(x) & np.isnan(y)) | (x == y)
            assert same.all(), (c, x[~same][:3], y[~same][:3])
        else:
            assert _norm(a) == _norm(b), c


def test_cleaning_report_lines_and_vocabularies_match_pandas(both):
    ds, sds = both
    assert sds.report.to_dict() == ds.report.to_dict()
    assert sds.report.kept_rows + sum(sds.report.dropped.values()) == sds.report.input_rows
    assert {"exact_duplicate", "guest", "return", "returned_purchase", "zero_price"} <= set(sds.report.dropped)
    key = ["customer_id", "item_id", "timestamp", "quantity"]
    a = ds.transactions.sort_values(key).reset_index(drop=True)
    b = sds.transactions.drop("_pos").toPandas().sort_values(key).reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        if a[c].dtype.kind == "f":
            np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy(), err_msg=c)
        else:
            assert _norm(a[c]) == _norm(b[c]), c
    cust, items = sds.vocabularies()
    assert cust == list(ds.customer_vocab.ids) and items == list(ds.item_vocab.ids)


@pytest.mark.parametrize("cutoff", ["2023-05-01", "2023-09-15"])
def test_point_in_time_slices_restore_later_returns_like_pandas(both, cutoff):
    ds, sds = both
    key = ["customer_id", "item_id", "timestamp", "quantity"]
    p = ds.until(cutoff).transactions.sort_values(key).reset_index(drop=True)
    q = sds.known_at(cutoff).toPandas().sort_values(key).reset_index(drop=True)
    assert len(p) == len(q)
    np.testing.assert_array_equal(p["quantity"].to_numpy(), q["quantity"].to_numpy())
    assert q["_restored"].sum() == (0 if ds.until(cutoff).restored_mask is None
                                    else int(ds.until(cutoff).restored_mask.sum()))


def test_customer_view_profiles_rfm_lifecycle_tiers_clv_match_pandas(both):
    from personalize.analytics import customer_view
    from personalize.spark import features as SF

    ds, sds = both
    as_of = "2023-10-01"  # a slice with purchases restored (returned after it)
    assert ds.until(as_of).restored_mask is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = customer_view(ds, as_of)
        view, attrs = SF.customer_view(sds, as_of)
    assert_same_frame(p, SF.collect_view(view))
    assert attrs["default_gap_days"] == p.attrs["default_gap_days"]
    assert_same_clv_attrs(p.attrs, attrs)
    assert attrs["clv_selection"]["status"] == "ok" and attrs["clv_simple"]["note"]
    assert {"share_cat__other", "top_category", "share_channel__web", "days_to_birthday", "tier_since",
            "segment", "lifecycle", "clv", "clv_status", "clv_note"} <= set(p.columns)


def assert_same_clv_attrs(p: dict, q: dict) -> None:
    from personalize._json import to_jsonable

    keys = ("clv_status", "clv_notes", "clv_models", "clv_selection", "clv_diagnostics", "clv_simple", "clv_error",
            "clv_simple_error")
    assert {k for k in keys if k in p} == {k for k in keys if k in q}
    for k in keys:
        assert to_jsonable(p.get(k)) == to_jsonable(q.get(k)), k


@pytest.mark.parametrize("as_of, sample, status", [("2023-03-01", None, "degenerate"),
                                                   ("2023-01-04", None, "unavailable"),
                                                   ("2023-10-01", 100, "ok")])
def test_customer_view_clv_degenerate_unavailable_and_sampled_selection_match_pandas(both, monkeypatch, as_of,
                                                                                       sample, status):
    """p_alive withheld on a degenerate fit, no model at all, the holdout ranked on a sample of customers."""
    import personalize.analytics.customers as C
    from personalize.analytics import customer_view
    from personalize.spark import features as SF

    ds, sds = both
    if sample:
        monkeypatch.setattr(C, "SELECTION_CUSTOMERS", sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = customer_view(ds, as_of)
        view, attrs = SF.customer_view(sds, as_of)
    assert p.attrs["clv_status"] == status
    assert_same_frame(p, SF.collect_view(view))
    assert_same_clv_attrs(p.attrs, attrs)
    if sample:
        assert attrs["clv_selection"]["customers"] <= sample


def test_ordered_sums_add_in_order_across_arrow_batches(spark):
    """Sums that floating point makes order-dependent come out as numpy's sequential sum in the given order,
    also for groups split between Arrow batches (3 rows a batch here) and keys that repeat in another group."""
    from personalize.spark.features import ordered_sums

    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"customer_id": rng.choice(["a", "b", "c", "d"], n), "day": rng.integers(0, 3, n),
                          "t": rng.permutation(n).astype(np.int64),
                          "v": rng.choice([1e16, 1.0, -1e16, 0.1, np.nan], n), "w": rng.normal(size=n)})
    df = spark.createDataFrame(frame.astype({"v": object}).where(frame.notna(), None),
                               "customer_id string, day long, t long, v double, w double")
    old = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "3")
    try:
        got = ordered_sums(df, ["customer_id", "day"], [df["t"]], {"sv": df["v"], "sw": df["w"] * 2},
                           firsts=["t"], count="n").toPandas()
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", old)
    got = got.set_index(["customer_id", "day"]).sort_index()
    want = {}
    for key, g in frame.sort_values("t").groupby(["customer_id", "day"]):
        sv = sw = 0.0
        for v, w in zip(g["v"].fillna(0.0), g["w"]):
            sv += v
            sw += w * 2
        want[key] = (int(g["t"].iloc[0]), len(g), sv, sw)
    assert list(got.index) == sorted(want)
    assert [tuple(r) for r in got[["t", "n", "sv", "sw"]].itertuples(index=False)] == [want[k] for k in sorted(want)]
    # the order matters for these values: a different order gives other sums
    assert any(sum(g["v"].fillna(0.0)) != want[k][2] for k, g in frame.groupby(["customer_id", "day"]))


def test_ordered_sums_top_code_is_the_largest_total_in_order_with_ties_to_the_smallest(spark):
    """The top category of each customer: the code whose weights, added in the given order, are largest
    (the smallest code on a tie; -1 without a code), also across Arrow batches."""
    from personalize.spark.features import ordered_sums

    rng = np.random.default_rng(5)
    n = 600
    frame = pd.DataFrame({"customer_id": rng.choice([f"c{i}" for i in range(12)] + ["none"], n),
                          "t": rng.permutation(n).astype(np.int64), "code": rng.choice([0, 1, 2, 3, -1, -9], n),
                          "w": rng.choice([0.1, 0.2, 0.3, 0.6], n)})
    frame.loc[frame["customer_id"] == "none", "code"] = -1
    # "tie": codes 1 and 3 both add up to exactly 0.6; "order": 0.1 + 0.2 + 0.3 > 0.3 + 0.2 + 0.1
    extra = pd.DataFrame({"customer_id": ["tie"] * 3 + ["order"] * 6, "t": np.arange(n, n + 9),
                          "code": [3, 1, 1, 0, 2, 0, 2, 0, 2], "w": [0.6, 0.3, 0.3, 0.3, 0.1, 0.2, 0.2, 0.1, 0.3]})
    frame = pd.concat([frame, extra], ignore_index=True)
    df = spark.createDataFrame(frame, "customer_id string, t long, code long, w double")
    old = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    try:
        got = ordered_sums(df, ["customer_id"], [df["t"]], {"s": df["w"]},
                           top=("best", df["code"], df["w"])).toPandas().set_index("customer_id")["best"]
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", old)
    want, ties = {}, 0
    for cid, g in frame.sort_values("t").groupby("customer_id"):
        tot: dict[int, float] = {}
        for c, w in zip(g["code"], g["w"]):
            if c >= 0:
                tot[c] = tot.get(c, 0.0) + w
        best = max(tot.values()) if tot else None
        ties += sum(v == best for v in tot.values()) > 1
        want[cid] = min(c for c, v in tot.items() if v == best) if tot else -1
    assert got.sort_index().to_dict() == want
    assert (want["none"], want["tie"], want["order"]) == (-1, 1, 2) and ties >= 1

def test_churn_training_set_matches_pandas(both):
    from personalize.churn import training_set
    from personalize.spark import features as SF

    ds, sds = both
    cuts = ["2023-08-01", "2023-09-01"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = training_set(ds, cuts, horizon_days=90)
        b = SF.training_set(sds, cuts, horizon_days=90)
    assert list(a.X.columns) == list(b.X.columns)
    np.testing.assert_array_equal(a.customer_id.astype(str), b.customer_id.astype(str))
    np.testing.assert_array_equal(a.cutoff, b.cutoff)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.X.to_numpy(), b.X.to_numpy())
    assert a.meta == b.meta
    with pytest.raises(DataError, match="label window"):
        SF.snapshot(sds, "2023-12-01", horizon_days=90)


def test_contract_errors_name_table_column_and_rows(spark):
    from personalize.spark.data import SparkDataset

    df = spark.createDataFrame(pd.DataFrame({"cust": ["a", "b", "c"], "item_id": ["i", "j", "k"],
                                             "timestamp": ["2023-01-01", "not a date", "2023-01-03"],
                                             "quantity": [1.0, 1.0, 1.0], "price": [1.0, 2.0, 3.0]}))
    with pytest.raises(DataError, match="missing required columns") as e:
        SparkDataset.from_frames(spark, df)
    assert e.value.table == "transactions"
    with pytest.raises(DataError, match="unparseable timestamps") as e:
        SparkDataset.from_frames(spark, df, mapping={"customer_id": "cust"})
    assert (e.value.column, e.value.rows) == ("timestamp", [1])
    neg = spark.createDataFrame(pd.DataFrame({"customer_id": ["a", "b", "c"], "item_id": ["i", "j", "k"],
                                              "timestamp": pd.to_datetime(["2023-01-01"] * 3),
                                              "quantity": [1.0, 1.0, 1.0], "price": [1.0, -2.0, 3.0]}))
    with pytest.raises(DataError, match="negative prices") as e:
        SparkDataset.from_frames(spark, neg, options=CleaningOptions(now=END))
    assert (e.value.column, e.value.rows) == ("price", [1])


def test_mllib_als_export_round_trip_is_served(both, tmp_path):
    from personalize.recommenders import ALS, LiveEvents, load_recommender
    from personalize.spark.als import SparkALS

    ds, sds = both
    sals = SparkALS(factors=8, iterations=4, random_state=0).fit(sds)
    model = sals.to_recommender()
    assert isinstance(model, ALS)
    # ids mapped back: each customer's factors are MLlib's factors of that customer's integer id
    uf = sals.model_.userFactors.toPandas().set_index("id")
    row = int(np.flatnonzero(model.customer_ids_ == ds.transactions["customer_id"].iloc[0])[0])
    np.testing.assert_array_equal(model.user_factors_[row], np.asarray(uf.loc[row, "features"], dtype=np.float32))
    np.testing.assert_array_equal(model.customer_ids_, ds.customer_vocab.ids)
    # the same history the pandas path fits on (line counts)
    assert (model.user_items_ != ds.interaction_matrix("count")).nnz == 0
    model.save(tmp_path / "als")
    back = load_recommender(tmp_path / "als")
    warm = model.customer_ids_[model.histories_.has_history(np.arange(len(model.customer_ids_)))]
    cust = list(warm[:5])
    a, b = model.recommend(cust, k=10), back.recommend(cust, k=10)
    pd.testing.assert_frame_equal(a, b)
    assert (a["source"] == "als").all()
    scores = model.user_factors_[row] @ model.item_factors_.T
    top = model.recommend(model.customer_ids_[row], k=5, exclude="none")
    np.testing.assert_array_equal(top["item_id"].to_numpy(dtype=object),
                                  model.item_ids_[np.argsort(-scores, kind="stable")[:5]])
    # the live overlay folds new purchases in with the same confidence as the fit
    live = LiveEvents.for_model(back)
    live.add(cust[0], [str(model.item_ids_[0])] * 3, "2024-01-02")
    assert not back.recommend(cust[0], k=10, live=live).equals(a[a["customer_id"] == cust[0]].reset_index(drop=True))


def test_spark_train_cli_publishes_a_bundle_the_runtime_serves(offers_store):
    from personalize.runtime import Runtime
    from personalize.store import load_bundle

    store, ds, output, err = offers_store
    assert "fitting Spark MLlib ALS" in err and "scoring next-best-offers and coupon levels" in err
    bundle = load_bundle(store)
    assert set(bundle.components) == {"recommender", "popular", "candidates", "customers", "churn", "acceptance",
                                      "offers", "uplift", "coupons"}
    rt = Runtime(bundle)
    known = str(ds.transactions["customer_id"].iloc[-1])
    rec = rt.recommend(known, k=10)
    assert not rec.fallback and len(rec.items) == 10
    assert rt.recommend("never-seen", k=5).fallback
    prof = rt.profile(known)
    assert prof["segment"] and prof["lifecycle"] and prof["tier"]
    assert 0.0 <= rt.churn_risk(known)["probability"] <= 1.0
    # candidates are the recommender's own top lists; customers and CLV as the pandas path computes them
    cand = bundle["candidates"]
    model = bundle["recommender"]
    pos = cand.customer_pos[known]
    top = model.recommend(known, k=20, exclude="none")
    np.testing.assert_array_equal(cand.item_ids[cand.items[pos]], top["item_id"].to_numpy(dtype=str))
    from personalize.customers import customer_table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = customer_table(ds)
    table = bundle["customers"]
    assert list(table["customer_id"]) == list(p["customer_id"])
    for col in ("monetary", "R", "segment", "lifecycle", "tier", "clv", "consent_email", "suppressed"):
        assert _norm(table[col]) == _norm(p[col]), col
    for col in ("clv_status", "clv_note", "segment", "consent_email", "suppressed"):
        assert table[col].dtype == p[col].dtype, (col, table[col].dtype, p[col].dtype)
    assert table["churn_risk"].notna().sum() == ds.transactions["customer_id"].nunique()
    assert (output / "customers").is_dir() and (output / "candidates").is_dir()
    manifest = bundle.manifest
    assert manifest["data"]["cleaning"] == ds.report.to_dict()
    assert manifest["metrics"]["timings"]["als_fit_s"] > 0


# ---------------------------------------------------------------------------- offers and coupons
@pytest.fixture(scope="module")
def offer_files(tmp_path_factory):
    """A history with two randomized campaigns over every customer (enough exposures per offer to learn
    acceptance), a suppression list and the offer catalog, as Parquet."""
    from personalize.datasets import make_retail_frames

    frames, _ = make_retail_frames(n_customers=700, n_items=60, defects=True, seed=5, n_campaigns=2,
                                   campaign_share=1.0)
    frames["customers"]["suppressed"] = np.arange(len(frames["customers"])) % 7 == 3
    d = tmp_path_factory.mktemp("spark_offers")
    paths = {}
    for name in ("transactions", "items", "customers", "offers", "exposures"):
        paths[name] = str(d / f"{name}.parquet")
        frames[name].to_parquet(paths[name], index=False)
    return paths


@pytest.fixture(scope="module")
def offers_store(spark, offer_files, tmp_path_factory):
    """(store, pandas Dataset, --output folder, progress on stderr): `personalize spark train` with churn,
    offers and exposures, once for the module."""
    import contextlib
    import io

    from personalize.cli import main

    d = tmp_path_factory.mktemp("spark_offers_models")
    store, output = d / "models", d / "scored"
    f = offer_files
    err = io.StringIO()
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(err):
        main(["spark", "train", f["transactions"], "--items", f["items"], "--customers", f["customers"],
              "--offers", f["offers"], "--exposures", f["exposures"], "--out", str(store), "--output", str(output),
              "--factors", "4", "--iterations", "2", "--candidates", "20", "--driver-memory", "2g"])
    assert e.value.code in (0, None), err.getvalue()[-2000:]
    ds = Dataset.from_parquet(f["transactions"], items=f["items"], customers=f["customers"], offers=f["offers"],
                              exposures=f["exposures"], options=CleaningOptions(now=END))
    return store, ds, output, err.getvalue()


def _top_offers(scores, channel: int = 0) -> np.ndarray:
    ev = np.where(scores.static[:, :, channel] == 0, scores.p * scores.value, -np.inf)
    return np.where(ev.max(axis=1) > 0, ev.argmax(axis=1), -1)


def _coupon_levels(table) -> np.ndarray:
    return np.where(table.profit.max(axis=1) > 0, table.profit.argmax(axis=1), -1)


def test_spark_offers_and_coupon_levels_equal_the_single_machine_path_and_are_served(offers_store, tmp_path):
    from fastapi.testclient import TestClient

    from personalize.pipeline.offers import train_offers
    from personalize.store import load_bundle, publish
    from serving.app import create_app
    from serving.settings import Settings

    store, ds, _output, _err = offers_store
    bundle = load_bundle(store)
    assert {"acceptance", "offers", "uplift", "coupons"} <= set(bundle.components)
    extra = bundle.manifest["extra"]
    assert extra["offers"]["status"] == "published" and extra["coupons"]["status"] == "published"
    assert bundle.manifest["metrics"]["timings"]["offers_s"] > 0
    # the single-machine path on the same data, customer table and candidates: the models learn from the same
    # rows (features as of each exposure day), so every score is bit-identical
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single, info, _ = train_offers(ds, bundle["customers"], bundle["candidates"], seed=0)
    assert info["coupons"]["status"] == "published"
    a, b = single["offers"], bundle["offers"]
    np.testing.assert_array_equal(a.customer_ids.astype(str), b.customer_ids.astype(str))
    for k in ("p", "value", "static", "exposures", "last_contact_ns", "fallback", "cold_p", "cold_value",
              "cold_static"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    c, d = single["coupons"], bundle["coupons"]
    assert c.ladder == d.ladder and c.model_name == d.model_name
    for k in ("cost", "profit", "uplift", "baseline", "cold_cost", "cold_profit"):
        np.testing.assert_array_equal(getattr(c, k), getattr(d, k), err_msg=k)
    np.testing.assert_array_equal(_top_offers(a), _top_offers(b))
    levels = _coupon_levels(d)
    np.testing.assert_array_equal(_coupon_levels(c), levels)
    assert (levels >= 0).any() and (levels == -1).any()  # some customers get a coupon, some do not
    assert (b.static == 2).any()  # the suppression list reached the contact policy
    # the service answers /coupon and /next-best-offer from the Spark bundle as it does from the single machine's
    other = tmp_path / "single"
    publish({**{k: bundle[k] for k in ("recommender", "popular", "candidates", "customers")}, **single}, None,
            store=other)
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    from serving_helpers import KEYS

    shop = {"Authorization": "Bearer shop-key-0001"}
    paying = b.customer_ids[levels >= 0][:6].tolist()
    with_offer = b.customer_ids[_top_offers(b) >= 0][:6].tolist()
    asked = [*paying, *with_offer, str(b.customer_ids[np.flatnonzero(b.static[:, 0, 0] == 2)[0]]), "NEVER-SEEN"]
    answers = []
    for s, name in ((store, "spark"), (other, "single")):
        st = Settings(models=s, events_db=tmp_path / f"{name}.sqlite", api_keys=KEYS, poll_interval=0)
        got = {}
        with TestClient(create_app(st)) as client:
            for cid in asked:
                for channel in ("email", "web"):
                    nbo = client.get(f"/v1/customers/{cid}/next-best-offer?n=3&channel={channel}", headers=shop)
                    cp = client.get(f"/v1/customers/{cid}/coupon?channel={channel}", headers=shop)
                    assert nbo.status_code == 200 and cp.status_code == 200, (nbo.text, cp.text)
                    got[cid, channel] = ([o["offer_id"] for o in nbo.json()["offers"]], nbo.json()["not_shown"],
                                         cp.json()["level"])
        answers.append(got)
    assert answers[0] == answers[1]
    assert any(level is not None for _, _, level in answers[0].values())
    assert any(offers for offers, _, _ in answers[0].values())
    offers, not_shown, level = answers[0][asked[-2], "email"]
    assert offers == [] and set(not_shown) == {"suppressed"} and level is None


def test_spark_score_rescores_offers_and_coupons_with_the_published_models(offers_store, offer_files, tmp_path):
    import shutil

    from personalize.cli import main
    from personalize.store import list_versions, load_bundle

    src = offers_store[0]
    store = tmp_path / "models"
    shutil.copytree(src, store)
    first = load_bundle(store)
    f = offer_files
    with pytest.raises(SystemExit) as e:
        main(["spark", "score", f["transactions"], "--items", f["items"], "--customers", f["customers"],
              "--offers", f["offers"], "--exposures", f["exposures"], "--models", str(store), "--json"])
    assert e.value.code in (0, None)
    assert len(list_versions(store)) == 2
    again = load_bundle(store)
    assert again.manifest["extra"]["scored_from"] == first.version
    assert again.manifest["extra"]["offers"]["rescored_with"] == first.version
    np.testing.assert_array_equal(again["candidates"].items, first["candidates"].items)
    # the same data and models: the same scores
    np.testing.assert_array_equal(again["offers"].p, first["offers"].p)
    np.testing.assert_array_equal(again["coupons"].profit, first["coupons"].profit)
