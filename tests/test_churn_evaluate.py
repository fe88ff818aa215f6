"""Churn evaluation: metrics, calibration and lift tables, cross-validation vs baselines, CLI, plots."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from personalize.churn import binary_metrics, calibration_table, evaluate_churn, lift_table
from personalize.errors import DataError


def run_cli(argv, capsys):
    from personalize.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out, err


def test_binary_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    m = binary_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    s = binary_metrics(y, p * 100, probability=False)
    assert s["auc"] == pytest.approx(m["auc"]) and s["brier"] is None and s["log_loss"] is None
    assert binary_metrics(np.ones(5), np.linspace(0, 1, 5))["auc"] is None
    with pytest.raises(DataError):
        binary_metrics([0, 1], [0.5])


def test_calibration_and_lift_tables():
    rng = np.random.default_rng(1)
    p = rng.random(10_000)
    y = (rng.random(10_000) < p).astype(int)
    cal = calibration_table(y, p, n_bins=10)
    assert cal["customers"].sum() == 10_000 and cal.attrs["ece"] < 0.03
    np.testing.assert_allclose(cal["predicted"], cal["observed"], atol=0.05)
    bad = calibration_table(y, np.clip(p + 0.3, 0, 1), strategy="uniform")
    assert bad.attrs["ece"] > 0.2
    lt = lift_table(y, p)
    assert list(lt["decile"]) == list(range(1, 11)) and lt["customers"].sum() == 10_000
    assert lt["lift"].iloc[0] > 1.7 and lt["lift"].iloc[-1] < 0.3
    assert lt["cumulative_gain"].iloc[-1] == pytest.approx(1.0)
    assert (np.diff(lt["cumulative_gain"]) >= 0).all()
    rnd = lift_table(y, rng.random(10_000))
    assert abs(rnd["lift"].iloc[0] - 1) < 0.15


@pytest.fixture(scope="module")
def cdnow_sample(shared_data):
    from personalize.data.adapters import load_cdnow_sample

    path = shared_data / "cdnow" / "CDNOW_sample.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return load_cdnow_sample(path)


@pytest.mark.realdata
def test_cdnow_sample_cross_validation(cdnow_sample):
    ev = evaluate_churn(cdnow_sample, as_of="1997-09-30", horizon_days=273, folds=3,
                        model_params={"learning_rate": 0.1, "n_jobs": 1})
    d = ev.to_dict()
    assert d["customers"] == 2357 and d["cutoff"] == "1997-10-01T00:00:00"
    assert 0.68 < d["churn_rate"] < 0.74
    assert set(d["baselines"]) == {"recency", "bgnbd_expected", "bgnbd_alive"}
    assert d["baselines"]["recency"]["auc"] == pytest.approx(0.77, abs=0.02)
    assert d["model"]["auc"] > 0.74 and d["model"]["brier"] < 0.18
    assert set(d["model"]) >= {"auc", "pr_auc", "brier", "log_loss"}
    assert len(d["per_fold_auc"]) == 3 and d["example_reasons"][0]["reasons"]
    json.dumps(d, allow_nan=False)
    with pytest.raises(DataError, match="label window"):
        evaluate_churn(cdnow_sample, as_of="1998-01-31", horizon_days=273)
    with pytest.raises(DataError, match="exactly one"):
        evaluate_churn(cdnow_sample, horizon_days=273)


@pytest.mark.realdata
def test_cli_churn_evaluate_json_and_plots(shared_data, tmp_path, capsys):
    path = shared_data / "cdnow" / "CDNOW_sample.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    code, out, err = run_cli(["churn", "evaluate", "--format", "cdnow", str(path), "--as-of", "1997-09-30",
                              "--horizon-days", "273", "--folds", "2", "--learning-rate", "0.1", "--json",
                              "--no-details", "--plots", str(tmp_path / "plots")], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) >= {"model", "baselines", "customers", "churn_rate"}
    assert set(doc["model"]) == {"auc", "pr_auc", "brier", "log_loss"}
    assert set(doc["baselines"]) == {"recency", "bgnbd_expected", "bgnbd_alive"}
    assert sorted(p.split("/")[-1] for p in doc["plots"]) == ["calibration.png", "gains.png", "importance.png",
                                                               "lift.png", "roc.png"]
    assert all((tmp_path / "plots" / n).stat().st_size > 1000 for n in ("roc.png", "lift.png"))
    code, out, err = run_cli(["churn", "evaluate", "--format", "cdnow", str(path), "--as-of", "not-a-date",
                              "--json"], capsys)
    assert code == 2 and "not a date" in err and out == ""


@pytest.mark.slow
@pytest.mark.realdata
def test_cdnow_master_beats_every_baseline(shared_data):
    """Done-when of issue 6: AUC >= 0.772 on the full CDNOW master, above every baseline."""
    from personalize.data.adapters import load_cdnow

    path = shared_data / "cdnow" / "CDNOW_master.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    ev = evaluate_churn(load_cdnow(path), as_of="1997-09-30", horizon_days=273, folds=5)
    d = ev.to_dict()
    assert d["customers"] == 23570
    assert d["model"]["auc"] >= 0.772, d["model"]
    for name, b in d["baselines"].items():
        assert d["model"]["auc"] > b["auc"], (name, b)


def test_cli_churn_score_production_mode(tmp_path, capsys):
    from personalize.datasets import make_retail_frames

    frames, _ = make_retail_frames(n_customers=400, n_items=30, days=300, orders_per_year=24, seed=2,
                                   offers=False, exposures=False)
    tx = frames["transactions"]
    src = tmp_path / "tx.csv"
    tx.to_csv(src, index=False)
    out = tmp_path / "risk.csv"
    code, stdout, err = run_cli(["churn", "score", "--format", "generic", str(src), "--horizon-days", "60",
                                 "--min-risk", "0.5", "--learning-rate", "0.1", "--out", str(out),
                                 "--save-model", str(tmp_path / "model"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(stdout)
    risk = pd.read_csv(out)
    assert list(risk.columns) == ["customer_id", "probability", "band", "reasons"]
    assert len(risk) == doc["customers_listed"] and (risk["probability"] >= 0.5).all()
    assert risk["probability"].is_monotonic_decreasing
    assert len(doc["training_cutoffs"]) == 3 and (tmp_path / "model" / "model.txt").exists()
