"""`personalize uplift evaluate`: --json is one document, Hillstrom and generic inputs, plots, mistakes exit 2."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.cli import main
from personalize.datasets import make_retail

from test_uplift_campaign import hillstrom_like

FAST = ["--seeds", "2", "--cv", "2", "--candidates", "meta", "--n-jobs", "1"]


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out, err


@pytest.fixture(scope="module")
def hillstrom_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("h") / "hillstrom.csv"
    hillstrom_like(4000, 1).to_csv(p, index=False)
    return p


def test_hillstrom_json_one_treatment_with_plots(hillstrom_csv, tmp_path, capsys):
    code, out, err = run_cli(["uplift", "evaluate", "--format", "hillstrom", "--exposures", str(hillstrom_csv),
                              "--treatment", "Womens E-Mail", "--target", "visit", "--plots", str(tmp_path / "p"),
                              "--json", *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)  # one JSON document, nothing else on stdout
    assert doc["treatments"] == ["Womens E-Mail"] and doc["control"] == "No E-Mail" and doc["target"] == "visit"
    assert doc["seeds"] == [0, 1] and doc["test_fraction"] == 0.3 and doc["cv_folds"] == 2
    assert set(doc["learners"]) == {"s_learner", "t_learner", "x_learner", "ensemble", "chosen"}
    assert len(doc["chosen"]["per_seed"]) == 2 and "mean" in doc["chosen"]["uplift_at_30"]
    assert {"learned: treat if predicted uplift > 0", "treat everyone (Womens E-Mail)",
            "treat nobody"} <= set(doc["ipw_policy_value"])
    assert doc["training_set"]["rows"] == int(hillstrom_like(4000, 1)["segment"].isin(
        ["Womens E-Mail", "No E-Mail"]).sum())
    assert doc["warnings"] == []
    for name in ("qini", "uplift"):
        assert open(doc["plots"][name], "rb").read(4) == b"\x89PNG"


def test_hillstrom_two_treatments_and_spend(hillstrom_csv, capsys):
    code, out, err = run_cli(["uplift", "evaluate", "-f", "hillstrom", "--exposures", str(hillstrom_csv),
                              "--treatment", "Womens E-Mail", "--treatment", "Mens E-Mail", "--target", "spend",
                              "--json", *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["treatments"] == ["Mens E-Mail", "Womens E-Mail"] and doc["outcome"] == "continuous"
    assert set(doc["learners"]["chosen"]) >= {"uplift_at_30", "qini", "auuc"}
    assert set(doc["learners"]["t_learner"]["per_arm"]) == {"Mens E-Mail", "Womens E-Mail"}
    assert "learned: best arm if its predicted uplift > 0" in doc["ipw_policy_value"]
    # human output: a table, not JSON
    code, out, err = run_cli(["uplift", "evaluate", "-f", "hillstrom", "--exposures", str(hillstrom_csv),
                              *FAST], capsys)
    assert code == 0, err and out.startswith("uplift evaluation:") and "chosen per seed" in out


@pytest.fixture(scope="module")
def generic_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("g")
    rng = np.random.default_rng(5)
    n = 3000
    spend_before = rng.gamma(2.0, 50.0, n).round(2)
    arm = rng.choice(["", "SPRING10"], n)
    p = 0.08 + np.where(arm == "SPRING10", 0.02 + 0.1 * (spend_before < 60), 0.0)
    conv = rng.random(n) < p
    pd.DataFrame({"client": [f"K{i:05d}" for i in range(n)], "sent": "2024-04-01 09:00:00", "offer": arm,
                  "bought": np.where(conv, "yes", "no"),
                  "spent": np.where(conv, rng.gamma(2.0, 30.0, n).round(2), 0.0)}).to_csv(d / "exp.csv", index=False)
    pd.DataFrame({"customer_id": [f"K{i:05d}" for i in range(n)], "spend_before": spend_before,
                  "tier": rng.choice(["gold", "silver"], n)}).to_csv(d / "feats.csv", index=False)
    return d


GENERIC = ["--customer-col", "client", "--time-col", "sent", "--offer-col", "offer", "--converted-col", "bought",
           "--revenue-col", "spent"]


def test_generic_exposures_with_a_features_file(generic_files, capsys):
    d = generic_files
    code, out, err = run_cli(["uplift", "evaluate", "--exposures", str(d / "exp.csv"), *GENERIC, "--features",
                              str(d / "feats.csv"), "--randomized", "--json", *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["control"] == "control" and doc["treatments"] == ["SPRING10"]
    assert doc["training_set"]["features"] == ["spend_before", "tier"]
    assert doc["learners"]["chosen"]["qini"]["mean"] > 0  # the planted effect (low spenders) is found
    # not declared randomized: the figures come with a warning
    code, out, err = run_cli(["uplift", "evaluate", "--exposures", str(d / "exp.csv"), *GENERIC, "--features",
                              str(d / "feats.csv"), "--feature", "spend_before", "--json", *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["training_set"]["features"] == ["spend_before"] and "randomized" in doc["warnings"][0]


def test_generic_exposures_with_a_purchase_history(tmp_path, capsys):
    ds, _ = make_retail(n_customers=1500, n_items=60, seed=4)
    ds.transactions.drop(columns=["amount"]).to_csv(tmp_path / "tx.csv", index=False)
    ds.exposures.to_csv(tmp_path / "exp.csv", index=False)
    code, out, err = run_cli(["uplift", "evaluate", "--exposures", str(tmp_path / "exp.csv"), "--history",
                              str(tmp_path / "tx.csv"), "--treatment", "PCT20", "--treatment", "PCT10", "--json",
                              *FAST], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["treatments"] == ["PCT10", "PCT20"]
    assert "recency_days" in doc["training_set"]["features"]
    assert doc["training_set"]["feature_source"].startswith("purchase history")


@pytest.mark.parametrize("argv, words", [
    (["--format", "parquet"], "--format"),
    (["--format", "hillstrom", "--target", "revenue"], "--target"),
    (["--format", "hillstrom", "--treatment", "Kids E-Mail"], "Kids E-Mail"),
    (["--format", "hillstrom", "--seeds", "0"], "--seeds"),
    (["--format", "hillstrom", "--cv", "1"], "--cv"),
    (["--format", "hillstrom", "--test-fraction", "1.5"], "--test-fraction"),
    (["--format", "hillstrom", "--select-by", "gini"], "metric"),
    (["--format", "hillstrom", "--candidates", "forest"], "--candidates"),
    (["--format", "hillstrom", "--customer-col", "client"], "--format generic"),
    (["--format", "hillstrom", "--plots", "/nonexistent/dir/plots"], "does not exist"),
    (["--format", "hillstrom", "--feature", "age"], "age"),
])
def test_mistakes_exit_2_with_one_line(argv, words, hillstrom_csv, capsys):
    code, out, err = run_cli(["uplift", "evaluate", "--exposures", str(hillstrom_csv), *FAST, *argv], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("personalize: error:") and words in lines[0], err


def test_generic_mistakes(generic_files, tmp_path, capsys):
    d = generic_files
    code, _, err = run_cli(["uplift", "evaluate", "--exposures", str(d / "exp.csv"), *GENERIC, *FAST], capsys)
    assert code == 2 and "--features" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["uplift", "evaluate", "--exposures", str(tmp_path / "none.csv"), *FAST], capsys)
    assert code == 2 and "file not found" in err
    code, _, err = run_cli(["uplift", "evaluate", *FAST], capsys)
    assert code == 2 and "--exposures" in err
    code, _, err = run_cli(["uplift", "evaluate", "--exposures", str(d / "exp.csv"), *GENERIC, "--history",
                            str(tmp_path / "tx.csv"), *FAST], capsys)
    assert code == 2 and "--history" in err


@pytest.mark.slow
def test_real_hillstrom_one_seed(shared_data, capsys):
    code, out, err = run_cli(["uplift", "evaluate", "--format", "hillstrom", "--exposures",
                              str(shared_data / "hillstrom" / "hillstrom.csv.gz"), "--treatment", "Womens E-Mail",
                              "--target", "visit", "--seeds", "1", "--cv", "3", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == 42693 and abs(doc["observed_effect"]["Womens E-Mail"] - 0.0452) < 5e-4
    # held-out targeting of the e-mail is better than random and than the average effect at the top 30 %
    assert doc["chosen"]["qini"]["mean"] > 0.02 and doc["chosen"]["uplift_at_30"]["mean"] > 0.05
