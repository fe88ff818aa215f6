"""NPS, CSAT, ratings, complaints and drivers against hand-computed cases; the feedback report CLI."""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from personalize.analytics.satisfaction import (complaint_table, csat, drivers, feedback_columns, nps,
                                                satisfaction_report, satisfaction_table, star_rating)
from personalize.cli import main
from personalize.data import Dataset


def test_nps_hand_computed():
    # 5 promoters (9-10), 2 passives (7-8), 3 detractors (0-6): NPS = 50 % - 30 % = 20
    r = nps([10, 9, 9, 10, 9, 7, 8, 0, 6, 3])
    assert (r["n"], r["promoters"], r["passives"], r["detractors"]) == (10, 5, 2, 3)
    assert r["nps"] == pytest.approx(20.0)
    # adjusted Wald (Rocks 2016) by hand: n' = 13, p' = 5.75/13 = 0.442308, d' = 3.75/13 = 0.288462,
    # NPS' = 0.153846, var = (0.730769 - 0.023669) / 13 = 0.054392, se = 0.233222, +- 1.959964 se
    assert r["nps_low"] == pytest.approx(-30.326, abs=0.01)
    assert r["nps_high"] == pytest.approx(61.096, abs=0.01)
    assert nps([])["nps"] is None
    all_promoters = nps([10] * 40)
    assert all_promoters["nps"] == 100 and all_promoters["nps_high"] == 100 and all_promoters["nps_low"] > 80


def test_csat_hand_computed_and_matches_statsmodels():
    scores = [5, 4, 4, 3, 1, 5, 2, 4]            # 5 of 8 satisfied (4-5)
    r = csat(scores)
    assert r["satisfied"] == 5 and r["csat"] == pytest.approx(62.5) and r["csat_mean"] == pytest.approx(3.5)
    # Wilson by hand: centre (0.625 + z^2/16) / (1 + z^2/8) = 0.584459, half-width 0.278707
    assert r["csat_low"] == pytest.approx(30.575, abs=0.01) and r["csat_high"] == pytest.approx(86.317, abs=0.01)
    lo, hi = proportion_confint(5, 8, method="wilson")
    assert r["csat_low"] == pytest.approx(100 * lo) and r["csat_high"] == pytest.approx(100 * hi)


def test_star_rating_mean_and_t_interval():
    s = [5, 4, 1, 2, 5, 5]
    r = star_rating(s)
    m, sd = np.mean(s), np.std(s, ddof=1)
    half = stats.t.ppf(0.975, 5) * sd / math.sqrt(6)
    assert r["rating"] == pytest.approx(m) and r["rating_low"] == pytest.approx(2 / 6)
    assert r["rating_low_ci"] == pytest.approx(max(1.0, m - half)) and r["rating_high_ci"] == pytest.approx(
        min(5.0, m + half))


def _shop() -> Dataset:
    tx = pd.DataFrame({"customer_id": ["a", "a", "b", "c", "c", "d"],
                       "item_id": ["x", "y", "x", "z", "y", "x"],
                       "timestamp": pd.to_datetime(["2024-01-03", "2024-02-03", "2024-01-04", "2024-01-05",
                                                    "2024-02-05", "2024-02-06"]),
                       "quantity": 1.0, "price": 10.0, "order_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
                       "channel": ["web", "web", "store", "web", "store", "web"]})
    fb = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "a", "b", "c", "a", "c", "d", "a", "b"],
        "timestamp": pd.to_datetime(["2024-01-05", "2024-01-06", "2024-01-07", "2024-01-08", "2024-02-04",
                                     "2024-02-05", "2024-02-06", "2024-01-10", "2024-01-11", "2024-02-10",
                                     "2024-01-20", "2024-02-11"]),
        "kind": ["survey"] * 4 + ["survey"] * 3 + ["rating", "rating", "rating", "complaint", "complaint"],
        "score": [10, 3, 8, 9, 2, 5, 4, 1, 2, 5, None, None],
        "scale": ["nps"] * 4 + ["csat"] * 3 + ["stars"] * 3 + [None, None],
        "item_id": [None] * 7 + ["x", "x", "z", None, None],
        "channel": ["email"] * 4 + ["web", "store", "store"] + ["web", "web", "store", "web", "store"],
        "category": [None] * 10 + ["delivery", "billing"],
        "resolved_at": [None] * 10 + ["2024-01-23", None]})
    items = pd.DataFrame({"item_id": ["x", "y", "z"], "category": ["mugs", "mugs", "toys"]})
    return Dataset.from_frames(tx, items=items, feedback=fb)


def test_satisfaction_tables_by_group():
    ds = _shop()
    over = satisfaction_table(ds, "overall", as_of="2024-03-01", min_responses=5)
    r = over.iloc[0]
    assert r["responses"] == 10 and r["nps_n"] == 4 and r["nps"] == pytest.approx(25.0)   # 2 prom., 1 det.
    assert r["csat_n"] == 3 and r["csat"] == pytest.approx(200 / 3) and r["rating_n"] == 3   # CSAT 2, 5, 4
    assert r["rating"] == pytest.approx(8 / 3) and not r["small"] and r["nps_small"]
    month = satisfaction_table(ds, "month", as_of="2024-03-01", min_responses=5)
    assert month["group"].tolist() == ["2024-01", "2024-02"] and month["responses"].tolist() == [6, 4]
    chan = satisfaction_table(ds, "channel", as_of="2024-03-01", min_responses=5).set_index("group")
    assert chan.loc["email", "nps_n"] == 4 and chan.loc["store", "csat_n"] == 2 and chan.loc["store", "small"]
    # point in time: as of 2024-02-01 only January's answers count
    early = satisfaction_table(ds, "overall", as_of="2024-02-01").iloc[0]
    assert early["responses"] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = satisfaction_table(ds, "segment", as_of="2024-03-01", min_responses=1)
    assert seg["responses"].sum() == 10


def test_complaints_rate_and_resolution():
    ds = _shop()
    t = complaint_table(ds, "overall", as_of="2024-03-01").iloc[0]
    assert t["complaints"] == 2 and t["orders"] == 6 and t["per_1000_orders"] == pytest.approx(1000 * 2 / 6)
    assert t["open"] == 1 and t["median_days_to_resolve"] == pytest.approx(3.0)
    # before the resolution both were open
    assert complaint_table(ds, "overall", as_of="2024-01-22").iloc[0]["open"] == 1
    cat = complaint_table(ds, "category", as_of="2024-03-01").set_index("group")
    assert cat.loc["delivery", "resolved"] == 1 and cat.loc["billing", "open"] == 1


def test_drivers_point_at_the_bad_item():
    ds = _shop()
    d = drivers(ds, as_of="2024-03-01", min_count=1)
    items = d[d["dimension"] == "item"].set_index("value")
    assert items.loc["x", "low_share"] == 1.0 and items.loc["x", "responses"] == 2          # 1 and 2 stars
    assert items.loc["x", "lift"] > items.loc["z", "lift"]
    assert set(d["dimension"]) >= {"channel", "item", "item_category", "complaint_category"}


def test_feedback_columns_hand_case():
    ds = _shop()
    cols = feedback_columns(ds.until("2024-03-01").feedback, "2024-03-01")
    a = cols.loc["a"]
    # a: NPS 10 (1.0), 1 star (0.0), CSAT 2 (0.25): last = CSAT 2 (detractor), trend 0.25 - mean(1, 0) = -0.25
    assert a["feedback_responses"] == 3 and a["last_score"] == 2 and a["last_score_scale"] == "csat"
    assert a["last_score_norm"] == pytest.approx(0.25) and a["score_trend"] == pytest.approx(-0.25)
    assert bool(a["detractor"]) and a["complaints"] == 1 and a["open_complaints"] == 0
    b = cols.loc["b"]
    assert b["open_complaints"] == 1 and b["days_since_complaint"] == pytest.approx(19.0)


def test_report_warns_about_small_groups():
    rep = satisfaction_report(_shop(), as_of="2024-03-01", by=("overall", "channel"), min_responses=5)
    assert any("store" in w for w in rep["warnings"]) and rep["responses"] == 10
    assert set(rep["complaints"]) == {"overall", "month", "channel", "category"}


def _run(args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, buf.getvalue()


def test_feedback_report_cli(tmp_path, capsys):
    ds = _shop()
    ds.transactions.drop(columns="amount").to_csv(tmp_path / "tx.csv", index=False)
    ds.feedback.to_csv(tmp_path / "fb.csv", index=False)
    ds.items.to_csv(tmp_path / "items.csv", index=False)
    code, out = _run(["feedback", "report", str(tmp_path / "tx.csv"), "--feedback", str(tmp_path / "fb.csv"),
                      "--items", str(tmp_path / "items.csv"), "--plots", str(tmp_path / "plots"), "--out",
                      str(tmp_path / "drivers.csv"), "--min-responses", "5", "--drivers-min", "1", "--json"])
    assert not code
    doc = json.loads(out)
    assert doc["satisfaction"]["overall"][0]["nps"] == pytest.approx(25.0)
    assert set(doc["satisfaction"]) == {"overall", "segment", "tier", "lifecycle", "channel", "month"}
    assert all((tmp_path / "plots" / f).stat().st_size > 1000 for f in
               ("satisfaction_by_month.png", "nps_by_segment.png", "complaints_by_month.png", "drivers.png"))
    assert pd.read_csv(tmp_path / "drivers.csv")["dimension"].nunique() == 4
    code, _ = _run(["feedback", "report", str(tmp_path / "tx.csv")])
    assert code == 2 and "--feedback is required" in capsys.readouterr().err
    code, _ = _run(["feedback", "report", str(tmp_path / "tx.csv"), "--feedback", str(tmp_path / "fb.csv"),
                    "--by", "weekday"])
    assert code == 2
