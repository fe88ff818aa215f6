"""`personalize segments` and `personalize clv`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.cli import main


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out, err


@pytest.fixture()
def history_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({
        "customer_id": [f"{i:05d}" for i in rng.integers(0, 80, n)],
        "item_id": rng.choice(["a", "b", "c"], n),
        "timestamp": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"))
        .strftime("%Y-%m-%d %H:%M:%S"),
        "quantity": rng.integers(1, 3, n),
        "price": rng.uniform(2, 80, n).round(2),
    })
    p = tmp_path / "tx.csv"
    df.to_csv(p, index=False)
    return p


def test_segments_json_out_and_plots(history_csv, tmp_path, capsys):
    out_csv = tmp_path / "seg.csv"
    code, out, err = run_cli(["segments", "--format", "generic", str(history_csv), "--as-of", "2023-10-01",
                              "--out", str(out_csv), "--plots", str(tmp_path / "plots"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["as_of"] == "2023-10-01T00:00:00"
    assert sum(r["customers"] for r in doc["segments"]) == doc["customers"]
    assert sum(r["customers"] for r in doc["lifecycle"]) == doc["customers"]
    assert sum(r["customers"] for r in doc["tiers"]) == doc["customers"]
    assert set(doc["clv_models"]["purchase"]) == {"r", "alpha", "a", "b"}
    assert doc["clv_status"] in ("ok", "degenerate") and isinstance(doc["clv_notes"], list)
    table = pd.read_csv(out_csv, dtype={"customer_id": str})
    assert len(table) == doc["customers"] and table["customer_id"].str.len().eq(5).all()
    assert {"segment", "lifecycle", "tier", "clv"} <= set(table.columns)
    for p in doc["plots"]:
        assert open(p, "rb").read(4) == b"\x89PNG"


def test_segments_bad_date_exits_2(history_csv, capsys):
    code, out, err = run_cli(["segments", "--format", "generic", str(history_csv), "--as-of", "someday", "--json"],
                             capsys)
    assert code == 2 and out == ""
    assert err.startswith("personalize: error: ") and "someday" in err and len(err.strip().splitlines()) == 1


def test_clv_before_any_data_exits_2(history_csv, capsys):
    code, out, err = run_cli(["clv", "--format", "generic", str(history_csv), "--calibration-end", "2000-01-01",
                              "--json"], capsys)
    assert code == 2 and "calibration_end" in err


@pytest.mark.realdata
def test_clv_on_cdnow_sample_matches_paper(shared_data, tmp_path, capsys):
    path = shared_data / "cdnow" / "CDNOW_sample.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    png = tmp_path / "clv.png"
    code, out, err = run_cli(["clv", "--format", "cdnow", str(path), "--calibration-end", "1997-09-30",
                              "--time-unit", "W", "--plot", str(png), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    for k, v in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert doc["bgnbd"][k] == pytest.approx(v, rel=0.01)
    for k, v in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert doc["gamma_gamma"][k] == pytest.approx(v, rel=0.01)
    assert doc["bgnbd_log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    h = doc["holdout"]
    assert doc["holdout_end"] == "1998-06-30" and h["duration"] == pytest.approx(39.0)
    assert h["actual_total"] > 0 and h["predicted_total"] == pytest.approx(h["actual_total"], rel=0.25)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_segments_with_tier_config_and_no_clv(history_csv, tmp_path, capsys):
    cfg = tmp_path / "tiers.json"
    cfg.write_text(json.dumps({"tiers": [{"name": "Member"}, {"name": "Star", "min_orders": 4}],
                               "window_days": 365}), encoding="utf-8")
    code, out, err = run_cli(["segments", "--format", "generic", str(history_csv), "--tier-config", str(cfg),
                              "--no-clv", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [r["tier"] for r in doc["tiers"]] == ["Member", "Star"]
    assert doc["clv_models"] is None and "mean_clv" not in doc["segments"][0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tiers": [{"name": "A", "min_spend": 10}, {"name": "B", "min_spend": 5}]}))
    code, out, err = run_cli(["segments", "--format", "generic", str(history_csv), "--tier-config", str(bad)],
                             capsys)
    assert code == 2 and "must not decrease" in err
