"""Every CLI command's --json output parses; output files: known types only, existing folders only, the user's
umask; `personalize train` carries consent flags and a catalog from --customers / --items files."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest

from personalize.cli import main
from personalize.datasets import make_retail_frames
from personalize.store import load_bundle


def run(argv, capsys) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    frames, _ = make_retail_frames(n_customers=300, n_items=60, seed=4, days=300, n_campaigns=2)
    paths = {}
    for name, df in frames.items():
        p = d / f"{name}.csv"
        df.to_csv(p, index=False)
        paths[name] = p
    crm = frames["customers"].rename(columns={"consent_email": "optin"})
    crm.to_csv(d / "crm.csv", index=False)
    paths["crm"] = d / "crm.csv"
    return d, paths


@pytest.fixture(scope="module")
def store(files):
    d, paths = files
    out = d / "models"
    code = main_ok(["train", str(paths["transactions"]), "--out", str(out), "--factors", "4", "--candidates", "10",
                    "--items", str(paths["items"]), "--customers", str(paths["crm"]),
                    "--map", "customers.consent_email=optin", "--no-validate", "--json"])
    assert code == 0
    return out


def main_ok(argv) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return 0 if exc.code is None else exc.code
    return 0


def test_train_carries_consent_and_catalog_from_files(store):
    b = load_bundle(store)
    table = b["customers"]
    assert table["consent_email"].dtype == bool and table["consent_email"].any() and not table["consent_email"].all()
    assert len(b["candidates"].catalog.categories) > 3  # categories from --items


def test_every_command_prints_parseable_json(files, store, capsys, tmp_path):
    d, p = files
    tx = str(p["transactions"])
    commands = [
        ["validate", tx, "--items", str(p["items"]), "--customers", str(p["customers"]), "--json"],
        ["segments", tx, "--as-of", "2023-10-01", "--json"],
        ["clv", tx, "--calibration-end", "2023-07-01", "--json"],
        ["evaluate", tx, "--test-start", "2023-09-01", "--models", "popular,itemknn", "--json"],
        ["churn", "evaluate", tx, "--as-of", "2023-07-01", "--horizon-days", "60", "--folds", "2",
         "--no-details", "--json"],
        ["churn", "score", tx, "--horizon-days", "60", "--json"],
        ["audience", "--models", str(store), "--json"],
        ["audience", "--models", str(store), "--consent", "email", "--json"],
        ["models", "list", "--models", str(store), "--json"],
        ["abtest", "--exposures", str(p["exposures"]), "--campaign", "CMP01", "--json"],
        ["abtest", "plan", "--baseline", "0.1", "--mde", "0.01", "--json"],
        ["retention", tx, "--out", str(tmp_path / "cohorts.png"), "--json"],
        ["forget", "NOBODY", "--models", str(store), "--json"],
    ]
    for argv in commands:
        code, out, err = run(argv, capsys)
        assert code == 0, (argv, err)
        json.loads(out)  # one JSON document, NaN / NaT included as null


@pytest.mark.parametrize("out, message", [("no-such-folder/list.csv", "does not exist"),
                                          ("list.xlsx", "unknown file type")])
def test_out_must_be_a_known_type_in_an_existing_folder(store, tmp_path, capsys, out, message):
    code, _out, err = run(["audience", "--models", str(store), "--out", str(tmp_path / out)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no-such-folder").exists()


def test_out_formats_and_permissions(store, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        for ext in ("csv", "parquet", "jsonl"):
            target = tmp_path / f"list.{ext}"
            code, _o, err = run(["audience", "--models", str(store), "--out", str(target)], capsys)
            assert code == 0, err
            assert stat.S_IMODE(target.stat().st_mode) == 0o644  # the user's umask, not a temp file's 0600
        rows = [json.loads(x) for x in (tmp_path / "list.jsonl").read_text().splitlines()]
        assert len(rows) == len(pd.read_csv(tmp_path / "list.csv")) and "customer_id" in rows[0]
    finally:
        os.umask(old)
    assert run(["forget", "NOBODY", "--models", str(store)], capsys)[0] == 0
    events = store / "events.sqlite"
    assert events.exists() and stat.S_IMODE(events.stat().st_mode) == 0o600  # the event store stays private
