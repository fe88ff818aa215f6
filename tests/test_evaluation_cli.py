"""`personalize evaluate`: one JSON document with a row per model and track."""

from __future__ import annotations

import json

import pytest

from personalize.cli import main
from personalize.datasets import make_retail


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sales_csv(tmp_path_factory):
    tx = make_retail(n_customers=150, n_items=60, n_categories=5, seed=2, offers=False, exposures=False)[0].transactions
    df = tx.rename(columns={"customer_id": "Kunde", "item_id": "Artikel", "timestamp": "Datum",
                            "quantity": "Menge", "price": "Preis"})[["Kunde", "Artikel", "Datum", "Menge", "Preis"]]
    df["Datum"] = df["Datum"].dt.strftime("%d.%m.%Y %H:%M")
    path = tmp_path_factory.mktemp("cli") / "sales.csv"
    df.to_csv(path, sep=";", index=False)
    return path


MAPPING = ["--customer-col", "Kunde", "--item-col", "Artikel", "--time-col", "Datum", "--time-format",
           "%d.%m.%Y %H:%M", "--quantity-col", "Menge", "--price-col", "Preis"]


def test_generic_format_json(sales_csv, capsys):
    code, out, err = run_cli(["evaluate", "--format", "generic", str(sales_csv), *MAPPING, "--test-start",
                              "2023-11-01", "--k", "5", "--models", "popular,itemknn,buyagain", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["k"] == 5 and doc["test_start"].startswith("2023-11-01")
    assert set(doc["customers"]) == {"all", "discovery", "new_customers"} and doc["customers"]["all"] > 50
    rows = {(r["model"], r["track"]): r for r in doc["rows"]}
    assert {(m, t) for m in ("popular", "itemknn", "buyagain") for t in ("all", "discovery")} <= set(rows)
    for r in doc["rows"]:
        assert {"model", "track", "recall", "ndcg", "map", "precision", "hit_rate", "coverage", "fit_seconds"} <= set(r)
        assert 0 <= r["ndcg"] <= 1 and 0 <= r["recall"] <= 1 and r["fit_seconds"] >= 0
    assert rows[("itemknn", "discovery")]["ndcg"] > rows[("popular", "discovery")]["ndcg"]


def test_human_table(sales_csv, capsys):
    code, out, err = run_cli(["evaluate", "--format", "generic", str(sales_csv), *MAPPING, "--test-start",
                              "2023-11-01", "--models", "popular", "--tracks", "all"], capsys)
    assert code == 0, err
    assert "popular" in out and "ndcg" in out and "discovery" not in out.split("\n", 2)[-1]


@pytest.mark.parametrize("extra, message", [
    (["--models", "popular,magic"], "unknown model"),
    (["--k", "0"], "--k"),
    (["--tracks", "everything"], "--tracks"),
    (["--test-start", "2030-01-01"], "test window"),
])
def test_user_mistakes_exit_2(sales_csv, capsys, extra, message):
    argv = ["evaluate", "--format", "generic", str(sales_csv), *MAPPING, "--test-start", "2023-11-01",
            "--models", "popular", "--json"]
    # later options win: append the faulty one
    code, out, err = run_cli(argv + extra, capsys)
    assert code == 2 and out == ""
    assert err.startswith("personalize: error:") and message in err and "Traceback" not in err
