"""`personalize abtest`, `personalize abtest plan` and `personalize retention`: --json parses, mistakes exit 2."""

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
def exposures_csv(tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    arm = rng.choice(["", "SPRING10"], n, p=[0.5, 0.5])
    conv = rng.random(n) < np.where(arm == "", 0.10, 0.14)
    df = pd.DataFrame({"client": [f"{i:06d}" for i in range(n)], "sent": "2024-04-01 09:00:00", "offer": arm,
                       "bought": np.where(conv, "yes", "no"),
                       "spent": np.where(conv, rng.gamma(2.0, 30.0, n).round(2), 0.0)})
    p = tmp_path / "exposures.csv"
    df.to_csv(p, index=False)
    feats = pd.DataFrame({"customer_id": df["client"], "spend_before": rng.gamma(2.0, 50.0, n).round(2)})
    f = tmp_path / "features.csv"
    feats.to_csv(f, index=False)
    return p, f


GENERIC = ["--customer-col", "client", "--time-col", "sent", "--offer-col", "offer", "--converted-col", "bought",
           "--revenue-col", "spent"]


def test_abtest_generic_json(exposures_csv, capsys):
    p, f = exposures_csv
    code, out, err = run_cli(["abtest", "--exposures", str(p), *GENERIC, "--features", str(f), "--cuped",
                              "spend_before", "--randomized", "--planned-split", "control=1,SPRING10=1",
                              "--bootstrap", "200", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["causal"] is True and doc["flagged"] is False and doc["customers"] == 3000
    assert doc["guards"][0]["code"] == "srm" and doc["srm"]["mismatch"] is False
    assert [a["arm"] for a in doc["arms"]] == ["control", "SPRING10"]
    assert {lf["metric"] for lf in doc["lifts"]} == {"conversion", "revenue"}
    assert doc["cuped"]["covariates"] == ["spend_before"]
    assert doc["verdicts"][0].startswith("SPRING10: +")


def test_abtest_human_output_and_equal_split(exposures_csv, capsys):
    p, _ = exposures_csv
    code, out, err = run_cli(["abtest", "--exposures", str(p), *GENERIC, "--planned-split", "equal",
                              "--metric", "conversion"], capsys)
    assert code == 0, err
    assert "sample ratio OK" in out and "NOT randomized" in out and "verdicts" in out


@pytest.mark.realdata
def test_abtest_hillstrom_json(shared_data, capsys):
    path = shared_data / "hillstrom" / "hillstrom.csv.gz"
    code, out, err = run_cli(["abtest", "--exposures", str(path), "--format", "hillstrom", "--cuped", "history",
                              "--bootstrap", "200", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    rates = {a["arm"]: round(a["rate"]["value"], 4) for a in doc["arms"]}
    assert rates == {"No E-Mail": 0.1062, "Mens E-Mail": 0.1828, "Womens E-Mail": 0.1514}
    assert doc["srm"]["mismatch"] is False and doc["outcome"] == "visits"
    assert doc["verdicts"][1].startswith("Womens E-Mail: +4.5 pp visits [3.9, 5.2], p < 0.001")


def test_abtest_plan_json_and_mde(capsys):
    code, out, err = run_cli(["abtest", "plan", "--baseline", "0.106", "--mde", "0.01", "--power", "0.8",
                              "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["n_control"] == 15_484 and doc["solved_for"] == "n" and doc["metric"] == "proportion"
    code, out, err = run_cli(["abtest", "plan", "--baseline", "0.65", "--sd", "15.9", "--n", "20000", "--json"],
                             capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metric"] == "mean" and doc["solved_for"] == "mde" and doc["mde"] > 0


@pytest.mark.parametrize("argv,message", [
    (["abtest"], "abtest needs --exposures"),
    (["abtest", "plan", "--mde", "0.01"], "--baseline"),
    (["abtest", "plan", "--baseline", "0.1"], "exactly one of --mde"),
    (["abtest", "plan", "--baseline", "0.1", "--mde", "0.01", "--power", "1.5"], "power must be between"),
    (["abtest", "--exposures", "missing.csv"], "file not found"),
])
def test_abtest_mistakes_exit_2_with_one_line(argv, message, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_abtest_bad_split_and_format(exposures_csv, capsys):
    p, _ = exposures_csv
    code, _, err = run_cli(["abtest", "--exposures", str(p), *GENERIC, "--planned-split", "control:1"], capsys)
    assert code == 2 and "arm=weight" in err
    code, _, err = run_cli(["abtest", "--exposures", str(p), "--format", "excel"], capsys)
    assert code == 2 and "unknown --format 'excel'" in err
    code, _, err = run_cli(["abtest", "--exposures", str(p), "--format", "hillstrom", "--offer-col", "x"], capsys)
    assert code == 2 and "go with --format generic" in err


def test_retention_generic_json_and_heatmap(tmp_path, capsys):
    from personalize.datasets import make_retail_frames

    frames, _ = make_retail_frames(n_customers=300, n_items=40, n_categories=4, seed=2, exposures=False)
    tx = frames["transactions"][["customer_id", "item_id", "timestamp", "quantity", "price", "order_id"]]
    p = tmp_path / "tx.csv"
    tx.to_csv(p, index=False)
    png = tmp_path / "cohorts.png"
    code, out, err = run_cli(["retention", "--format", "generic", str(p), "--end", "2024-01-01", "--out", str(png),
                              "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["months"]) == 12 and doc["plot"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    assert doc["cohorts"]["retention"][0][0] == 1.0 and 0 < doc["repeat_purchase"]["repeat_purchase_rate"] <= 1
    code, out, err = run_cli(["retention", "--format", "generic", str(p), "--end", "2024-01-01"], capsys)
    assert code == 0 and "retention" in out


@pytest.mark.realdata
def test_retention_online_retail_drops_the_partial_december(shared_data, tmp_path, capsys):
    path = shared_data / "online_retail" / "online_retail.parquet"
    code, out, err = run_cli(["retention", "--format", "online_retail", str(path), "--out",
                              str(tmp_path / "c.png"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["months"][0] == "2010-12" and doc["months"][-1] == "2011-11"  # data ends 2011-12-09
    assert doc["cohorts"]["cohorts"][0] == "2010-12" and doc["cohorts"]["sizes"][0] > 800
