"""`personalize validate`: bad inputs exit 2 with one clear stderr line; good inputs print one JSON document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from personalize.cli import main

HERE = Path(__file__).resolve().parent
BAD = HERE / "data" / "bad"
OK = HERE / "data" / "ok"
CASES = [c for c in json.loads((BAD / "cases.json").read_text(encoding="utf-8"))["cases"]
         if c.get("role", "transactions") == "transactions"]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else code), out, err


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["file"])
def test_bad_file_exits_2_with_one_line(case, capsys):
    argv = ["validate", "--format", "generic", str(BAD / case["file"]), "--json", *case.get("cli", [])]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("personalize: error: ")
    assert case["match"] in lines[0]


@pytest.mark.parametrize("name", ["binary_garbage.csv", "missing_column.csv", "date_out_of_range.csv"])
def test_bad_file_real_entry_point(name):
    # the real process: python -m personalize (a few files, to keep the suite fast)
    proc = subprocess.run([sys.executable, "-m", "personalize", "validate", "--format", "generic", str(BAD / name),
                           "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("personalize: error: ")


def test_missing_file_and_unknown_format(capsys):
    code, _, err = run_cli(["validate", "--format", "generic", str(OK / "nope.csv"), "--json"], capsys)
    assert code == 2 and "file not found" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["validate", "--format", "excel", str(OK / "basic.csv"), "--json"], capsys)
    assert code == 2 and "unknown --format 'excel'" in err


def test_validate_json_summary(capsys):
    code, out, err = run_cli(["validate", "--format", "generic", str(OK / "basic.csv"), "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)  # exactly one JSON document
    for key in ("input_rows", "kept_rows", "dropped", "customers", "items", "first_timestamp", "last_timestamp"):
        assert key in doc
    assert doc["input_rows"] == 4 and doc["kept_rows"] == 4 and doc["dropped"] == {}
    assert doc["customers"] == 3 and doc["items"] == 3
    assert doc["first_timestamp"] == "2011-01-01T10:00:00"
    assert doc["last_timestamp"] == "2011-01-04T09:30:00"


def test_validate_column_mapping_options(capsys):
    argv = ["validate", "--format", "generic", str(OK / "user_columns.csv"), "--json", "--customer-col", "Kunde",
            "--item-col", "Artikel", "--time-col", "Datum", "--time-format", "%d.%m.%Y", "--quantity-col", "Menge",
            "--price-col", "Preis", "--sep", ";", "--decimal", ","]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["kept_rows"] == 3 and doc["customers"] == 2
    assert doc["first_timestamp"] == "2010-12-31T00:00:00"
    assert doc["revenue"] == pytest.approx(2 * 4.0 + 10.5 + 10.5)


def test_validate_tab_separator_option(capsys):
    code, out, err = run_cli(["validate", str(OK / "tab.tsv"), "--sep", "\\t", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["kept_rows"] == 2


def test_validate_human_output(capsys):
    code, out, err = run_cli(["validate", "--format", "generic", str(OK / "basic.csv")], capsys)
    assert code == 0, err
    assert "input rows" in out and "kept rows" in out


def test_validate_help(capsys):
    code, out, _ = run_cli(["validate", "--help"], capsys)
    assert code == 0
    for opt in ("--format", "--customer-col", "--item-col", "--time-col", "--time-format", "--quantity-col",
                "--price-col", "--json"):
        assert opt in out


def test_validate_takes_item_and_customer_tables(tmp_path, capsys):
    import pandas as pd

    ok = OK / "basic.csv"
    items = tmp_path / "items.csv"
    tx = pd.read_csv(ok, dtype=str)
    pd.DataFrame({"item_id": sorted(tx["item_id"].unique()), "category": "mugs"}).to_csv(items, index=False)
    customers = tmp_path / "customers.csv"
    pd.DataFrame({"customer_id": sorted(tx["customer_id"].unique()) + ["never-bought"],
                  "consent_email": "yes"}).to_csv(customers, index=False)
    code, out, err = run_cli(["validate", str(ok), "--items", str(items), "--customers", str(customers), "--json"],
                             capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["tables"]["items"] == tx["item_id"].nunique()
    assert doc["tables"]["customers"] == tx["customer_id"].nunique() + 1
    # a broken item table is a user error: exit 2, one line, names the table
    code, out, err = run_cli(["validate", str(ok), "--items", str(BAD / "items_duplicate_keys.csv")],
                             capsys)
    assert code == 2 and "items" in err and "duplicate" in err and "Traceback" not in err
    # the adapters bring their own tables; a file adds to them (e.g. a CRM export's consent flags)
    cdnow = tmp_path / "cdnow.txt"
    cdnow.write_text("customer_id date number_of_cds dollar_value\n1 19970101 1 11.77\n2 19970112 2 20.5\n")
    crm = tmp_path / "crm.csv"
    crm.write_text("client,optin\n1,yes\n2,no\n")
    code, out, err = run_cli(["validate", "--format", "cdnow", str(cdnow), "--customers", str(crm),
                              "--map", "customers.customer_id=client", "--map", "customers.consent_email=optin",
                              "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["tables"]["customers"] == 2
    code, out, err = run_cli(["validate", "--format", "cdnow", str(cdnow), "--customers", str(crm),
                              "--map", "customers.nonsense=client"], capsys)
    assert code == 2 and "no field 'nonsense'" in err
