"""CLV that knows when it fails: a degenerate-CLV world (nobody lapses, as on Online Retail), a world only
MBG/NBD can describe, and what every output says about them (fit results, customer view, record, CLI)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.analytics import customer_record, customer_view
from personalize.cli import main
from personalize.evaluation.scenarios import lapse_free_world

AS_OF = "2024-01-01"


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return (0 if info.value.code is None else info.value.code), out, err


@pytest.fixture(scope="module")
def lapse_free():
    return lapse_free_world(seed=0)


@pytest.fixture(scope="module")
def degenerate_view(lapse_free):
    return customer_view(lapse_free, AS_OF)


def test_view_of_a_degenerate_fit_says_so_and_withholds_p_alive(degenerate_view):
    v = degenerate_view
    assert v.attrs["clv_status"] == "degenerate"
    assert (v["clv_status"] == "degenerate").all()
    # both purchase models were tried on a holdout; both found no drop-out
    sel = v.attrs["clv_selection"]
    assert sel["status"] == "ok" and sel["degenerate"]
    assert {c["status"] for c in sel["candidates"].values()} == {"degenerate"}
    diag = v.attrs["clv_diagnostics"]["purchase"]
    assert diag["status"] == "degenerate" and diag["issues"][0]["code"] == "no_dropout"
    assert diag["p_alive"]["share_above_0.99"] > 0.99
    # P(alive) would be 1 for everyone: withheld; the purchase-rate outputs stay
    assert v["p_alive"].isna().all()
    assert v["clv"].notna().all() and (v["clv"] > 0).all() and v["expected_purchases"].notna().all()
    note = v["clv_note"].iloc[0]
    assert "p_alive withheld" in note and "no drop-out" in note and note == " | ".join(v.attrs["clv_notes"])
    assert v["clv_note"].nunique() == 1


def test_record_of_a_degenerate_fit_carries_the_flag(degenerate_view):
    rec = customer_record(degenerate_view, degenerate_view.index[0])
    back = json.loads(json.dumps(rec, allow_nan=False))
    assert back["clv_status"] == "degenerate" and back["p_alive"] is None
    assert "p_alive withheld" in back["clv_note"] and back["clv"] > 0


def test_mbgnbd_is_chosen_where_bgnbd_cannot_let_one_time_buyers_go():
    ds = lapse_free_world(one_timers=0.4, seed=2)
    v = customer_view(ds, AS_OF)
    assert v.attrs["clv_status"] == "ok" and (v["clv_status"] == "ok").all()
    assert v.attrs["clv_models"]["model"] == "mbgnbd" == v.attrs["clv_selection"]["used"]
    assert v.attrs["clv_selection"]["candidates"]["bgnbd"]["status"] == "degenerate"
    # one-time buyers long silent are mostly gone; regular buyers are alive
    once_old = (v["orders"] == 1) & (v["recency_days"] > 120)
    regular = v["orders"] >= 4
    assert once_old.sum() > 50 and regular.sum() > 50
    assert v.loc[once_old, "p_alive"].median() < 0.3 < 0.9 < v.loc[regular, "p_alive"].median()
    # asked for BG/NBD explicitly: the same data give a flagged view
    bg = customer_view(ds, AS_OF, clv_model="bgnbd")
    assert bg.attrs["clv_status"] == "degenerate" and bg.attrs["clv_selection"]["status"] == "given"
    assert bg["p_alive"].isna().all()


def test_healthy_history_is_not_flagged():
    # customers lapse after a while (exponential lifetimes): drop-out is identified
    rng = np.random.default_rng(4)
    rows = []
    for c in range(800):
        t, life = rng.uniform(0, 200), rng.exponential(150)
        rate = rng.gamma(2.0, 1 / 40.0)
        end = t + life
        while t < min(end, 365):
            rows.append((f"c{c:04d}", pd.Timestamp("2023-01-01") + pd.Timedelta(days=float(t)), "i", 1.0,
                         float(rng.uniform(5, 50))))
            t += rng.exponential(1 / rate)
    tx = pd.DataFrame(rows, columns=["customer_id", "timestamp", "item_id", "quantity", "price"])
    v = customer_view(tx, AS_OF)
    assert v.attrs["clv_status"] == "ok", v.attrs["clv_notes"]
    assert v["p_alive"].notna().all() and v["p_alive"].min() < 0.5
    assert v.attrs["clv_diagnostics"]["purchase"]["status"] == "ok"


@pytest.fixture(scope="module")
def lapse_free_csv(lapse_free, tmp_path_factory):
    path = tmp_path_factory.mktemp("clv") / "tx.csv"
    lapse_free.transactions[["customer_id", "item_id", "timestamp", "quantity", "price"]].to_csv(path, index=False)
    return path


def test_segments_cli_reports_the_degenerate_fit(lapse_free_csv, capsys):
    code, out, err = run_cli(["segments", "--format", "generic", str(lapse_free_csv), "--as-of", AS_OF, "--json"],
                             capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["clv_status"] == "degenerate" and "p_alive withheld" in doc["clv_notes"][0]
    assert doc["clv_diagnostics"]["purchase"]["issues"][0]["code"] == "no_dropout"
    assert doc["clv_selection"]["degenerate"] is True
    code, out, err = run_cli(["segments", "--format", "generic", str(lapse_free_csv), "--as-of", AS_OF], capsys)
    assert code == 0 and "CLV: degenerate" in out and "note: p_alive withheld" in out


def test_clv_cli_validates_on_the_holdout_and_flags_the_fit(lapse_free_csv, tmp_path, capsys):
    table, png = tmp_path / "holdout.csv", tmp_path / "clv.png"
    code, out, err = run_cli(["clv", "--format", "generic", str(lapse_free_csv), "--calibration-end", "2023-09-30",
                              "--table", str(table), "--plot", str(png), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "degenerate" and any("no drop-out" in w for w in doc["warnings"])
    assert set(doc["models"]) == {"bgnbd", "mbgnbd"} and doc["selection"]["chosen"] == doc["model"]
    assert doc["diagnostics"]["purchase"]["status"] == "degenerate"
    h = doc["holdout"]
    assert h["actual_total"] > 0 and h["by_frequency"][0]["frequency"] == "0"
    # a customer base that does not lapse is still predicted well in total: only P(alive) is uninformative
    assert h["predicted_total"] == pytest.approx(h["actual_total"], rel=0.15)
    rows = pd.read_csv(table)
    assert rows["frequency"].astype(str).iloc[-1] == "total" and len(rows) == len(h["by_frequency"]) + 1
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, out, err = run_cli(["clv", "--format", "generic", str(lapse_free_csv), "--calibration-end", "2023-09-30"],
                             capsys)
    assert code == 0 and "WARNING: BG/NBD found (almost) no drop-out" in out and "frequency  customers" in out
    code, out, err = run_cli(["clv", "--format", "generic", str(lapse_free_csv), "--calibration-end", "2023-09-30",
                              "--model", "pareto", "--json"], capsys)
    assert code == 2 and "--model" in err


@pytest.mark.realdata
def test_online_retail_clv_is_flagged_and_clv_simple_works(shared_data):
    from personalize.data.adapters import load_online_retail

    path = shared_data / "online_retail" / "online_retail.parquet"
    if not path.exists():
        pytest.skip(f"{path} not found")
    ds = load_online_retail(path)
    v = customer_view(ds, ds.last_timestamp.normalize() + pd.Timedelta(days=1))
    assert v.attrs["clv_status"] == "degenerate"
    assert v.attrs["clv_diagnostics"]["purchase"]["mean_dropout"] < 1e-3
    assert "Lost segment" in v.attrs["clv_notes"][0]
    # one year of history: clv_simple uses two half-year periods instead of failing
    assert v["clv_simple"].notna().all() and (v["clv_simple"] > 0).sum() > 1000
    assert v.attrs["clv_simple"]["period_days"] < 365 and "shortened" in v.attrs["clv_notes"][-1]
