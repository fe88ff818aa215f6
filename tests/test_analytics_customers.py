"""The customer view a serving layer reads: one record per customer, audiences, plots."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.analytics import Personas, customer_record, customer_view
from personalize.customers import select_audience
from personalize.analytics.plots import plot_clv_holdout, plot_segments, plot_tiers
from personalize.data import CleaningOptions, Dataset
from personalize.errors import DataError, MissingComponentError, PersonalizeError, UnknownIdError

PNG = b"\x89PNG\r\n\x1a\n"


def _history(n_customers=150, seed=0):
    """Synthetic history with repeat buyers and drop-outs (so BG/NBD is identified)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        start = pd.Timestamp("2022-01-01") + pd.Timedelta(days=int(rng.integers(0, 200)))
        rate = rng.gamma(1.0, 1 / 30)  # purchases per day
        life = rng.exponential(300)
        t = 0.0
        k = 0
        while t < min(life, 700) and k < 40:
            rows.append((f"c{c:03d}", start + pd.Timedelta(days=float(t)), f"i{rng.integers(0, 5)}",
                         float(rng.integers(1, 3)), float(rng.uniform(5, 60))))
            t += rng.exponential(1 / max(rate, 1e-3))
            k += 1
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "item_id", "quantity", "price"])
    customers = pd.DataFrame({"customer_id": [f"c{c:03d}" for c in range(n_customers)],
                              "region": rng.choice(["north", "south"], n_customers),
                              "consent_email": rng.random(n_customers) < 0.7})
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(5)], "category": list("aabbc")})
    return Dataset.from_frames(tx, items=items, customers=customers,
                               options=CleaningOptions(now=pd.Timestamp("2030-01-01")))


@pytest.fixture(scope="module")
def view():
    return customer_view(_history(), "2023-06-01", personas=Personas(n_clusters=3))


def test_view_has_every_block(view):
    for col in ("recency_days", "orders", "monetary", "R", "F", "M", "segment", "lifecycle", "tier",
                "tier_since", "p_alive", "expected_purchases", "expected_spend", "clv", "clv_simple",
                "persona", "persona_description", "region", "consent_email", "share_cat__a"):
        assert col in view.columns, col
    assert view.index.is_unique and view.index.is_monotonic_increasing
    assert "clv_error" not in view.attrs
    assert view.attrs["clv_models"]["model"] in ("bgnbd", "mbgnbd")
    assert set(view.attrs["clv_models"]["purchase"]) == {"r", "alpha", "a", "b"}
    assert view.attrs["clv_status"] == "ok" and (view["clv_status"] == "ok").all()
    assert view.attrs["clv_selection"]["status"] == "ok"
    assert set(view.attrs["clv_selection"]["candidates"]) == {"bgnbd", "mbgnbd"}
    assert view["clv"].notna().all() and (view["clv"] >= 0).all()
    assert ((view["p_alive"] > 0) & (view["p_alive"] <= 1)).all()


def test_view_is_point_in_time():
    ds = _history()
    v1 = customer_view(ds, "2023-01-01", clv=False)
    v2 = customer_view(ds.until("2023-01-01"), "2023-01-01", clv=False)
    pd.testing.assert_frame_equal(v1, v2)


def test_customer_record_is_json_ready(view):
    cid = view.index[0]
    rec = customer_record(view, cid)
    text = json.dumps(rec, allow_nan=False)
    back = json.loads(text)
    assert back["customer_id"] == cid and back["segment"] == view.loc[cid, "segment"]
    assert back["as_of"] == "2023-06-01T00:00:00"
    assert isinstance(back["tier_since"], str) and isinstance(back["orders"], int)
    with pytest.raises(UnknownIdError, match="nobody"):
        customer_record(view, "nobody")


def test_audience_of_a_view_filters_and_honours_consent(view):
    table = view.reset_index()
    seg = view["segment"].iloc[0]
    got = select_audience(table, segments=seg)
    assert len(got) == int((view["segment"] == seg).sum())
    combo = select_audience(table, segments=list(view["segment"].unique()), min_clv=float(view["clv"].median()),
                            consent="email")
    assert (combo["clv"] >= view["clv"].median()).all()
    assert combo["consent_email"].all()
    assert len(combo) < len(view)
    assert combo["customer_id"].is_monotonic_increasing
    with pytest.raises(DataError, match="unknown tier value.*valid"):
        select_audience(table, tiers="no such tier")
    with pytest.raises(MissingComponentError, match="consent_sms"):
        select_audience(table, consent="sms")
    with pytest.raises(PersonalizeError, match="consent must be"):
        select_audience(table, consent="pigeon")


def test_view_survives_data_without_repeat_purchases():
    tx = pd.DataFrame({"customer_id": ["a", "b", "c"], "item_id": ["x"] * 3,
                       "timestamp": pd.to_datetime(["2023-01-01", "2023-02-01", "2023-03-01"]),
                       "quantity": [1.0] * 3, "price": [5.0] * 3})
    with pytest.warns(RuntimeWarning, match="CLV model not fitted"):
        v = customer_view(tx, "2023-06-01")
    assert "repeat purchases" in v.attrs["clv_error"]
    assert v["clv"].isna().all() and v["segment"].notna().all()


def test_plots_write_png(view, tmp_path):
    for p in (plot_segments(view, tmp_path / "s.png"), plot_tiers(view, tmp_path / "sub" / "t.png")):
        assert p.read_bytes()[:8] == PNG
    cum = pd.DataFrame({"time": [1.0, 2.0, 3.0], "date": pd.to_datetime(["2020-01-07", "2020-01-14", "2020-01-21"]),
                        "actual": [0.0, 2.0, 5.0], "predicted": [0.5, 2.2, 4.0]})
    out = plot_clv_holdout(cum, tmp_path / "c.png", calibration_end="2020-01-14")
    assert out.read_bytes()[:8] == PNG
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    with pytest.raises(DataError, match="segment"):
        plot_segments(view.drop(columns="segment"), tmp_path / "x.png")
