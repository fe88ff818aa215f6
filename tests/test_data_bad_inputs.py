"""Every file in tests/data/bad/ raises DataError with its specific message (see cases.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalize.data import Dataset, DataError
from personalize.data.adapters import load_generic

BAD = Path(__file__).resolve().parent / "data" / "bad"
OK_TX = Path(__file__).resolve().parent / "data" / "ok" / "basic.csv"
CASES = json.loads((BAD / "cases.json").read_text(encoding="utf-8"))["cases"]


def _ids(case: dict) -> str:
    return case["file"]


def test_corpus_is_complete():
    files = {p.name for p in BAD.iterdir() if p.name != "cases.json"}
    listed = [c["file"] for c in CASES]
    assert len(listed) == len(set(listed)), "a file is listed twice in cases.json"
    assert files == set(listed), "every file in tests/data/bad has exactly one case"
    assert len(files) >= 25


def load_case(case: dict):
    role = case.get("role", "transactions")
    kwargs = dict(case.get("kwargs", {}))
    path = BAD / case["file"]
    if role == "transactions":
        return load_generic(path, **kwargs)
    return Dataset.from_csv(OK_TX, **{role: path}, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bad_input_raises_data_error(case):
    with pytest.raises(DataError) as info:
        load_case(case)
    err = info.value
    assert case["match"] in str(err)
    assert err.table == case["table"]
    assert err.column == case["column"]
    assert "\n" not in str(err).strip()


CSV_TX_CASES = [c for c in CASES if c.get("role", "transactions") == "transactions" and c["file"].endswith(".csv")]


@pytest.mark.parametrize("case", CSV_TX_CASES, ids=_ids)
def test_bad_csv_through_dataset_from_csv(case):
    kwargs = dict(case.get("kwargs", {}))
    with pytest.raises(DataError) as info:
        Dataset.from_csv(BAD / case["file"], **kwargs)
    assert case["match"] in str(info.value)


def test_good_companion_file_loads():
    # the aux-table cases are only meaningful if ../ok/basic.csv itself is valid
    ds = Dataset.from_csv(OK_TX)
    assert ds.report.kept_rows == ds.report.input_rows == 4
