"""`personalize audience`: churn-risk / tier / consent lists from a published bundle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personalize.customers import select_audience
from personalize.errors import BundleError, DataError, MissingComponentError, PersonalizeError


def _table():
    return pd.DataFrame({
        "customer_id": ["c3", "c1", "c2", "c4", "c5"],
        "churn_risk": [0.9, 0.75, 0.2, np.nan, 0.95],
        "churn_band": ["high", "high", "low", None, "high"],
        "tier": ["gold", "gold", "gold", "silver", "silver"],
        "consent_email": [True, True, True, True, False],   # parsed by the Dataset: booleans only
    })


def test_select_audience_filters_and_sorts():
    t = _table()
    got = select_audience(t, min_churn_risk=0.7, tiers=["gold"], consent="email")
    assert got["customer_id"].tolist() == ["c1", "c3"]
    assert select_audience(t, min_churn_risk=0.7)["customer_id"].tolist() == ["c1", "c3", "c5"]  # NaN never passes
    with pytest.raises(MissingComponentError, match="consent_sms"):  # no consent data: a clear error, not []
        select_audience(t, consent="sms")
    with pytest.raises(DataError, match="booleans"):                  # text is never read as consent
        select_audience(t.assign(consent_email=["yes", "no", "no", "no", "no"]), consent="email")
    with pytest.raises(DataError, match="unknown tier.*gold.*silver"):
        select_audience(t, tiers=["platinum"])
    with pytest.raises(PersonalizeError, match="segment"):
        select_audience(t, segments=["Champions"])
    with pytest.raises(PersonalizeError, match="churn_risk"):
        select_audience(t.drop(columns=["churn_risk"]), min_churn_risk=0.5)
    with pytest.raises(PersonalizeError, match="between 0 and 1"):
        select_audience(t, min_churn_risk=7)
    with pytest.raises(PersonalizeError, match="consent"):
        select_audience(t, consent="fax")
    with pytest.raises(BundleError):
        select_audience(None)
    assert select_audience(t, max_churn_risk=0.8)["customer_id"].tolist() == ["c1", "c2"]
    with pytest.raises(PersonalizeError, match="above max_churn_risk"):
        select_audience(t, min_churn_risk=0.9, max_churn_risk=0.1)
    with pytest.raises(PersonalizeError, match="lifecycle"):
        select_audience(t, lifecycle=["active"])
    # personal=False: the list carries scores, never personal attributes or consent flags
    lst = select_audience(t.assign(region="north"), min_churn_risk=0.7, personal=False)
    assert list(lst.columns) == ["customer_id", "churn_risk", "churn_band", "tier"]


def test_cli_audience_reads_the_published_bundle(tmp_path, capsys):
    from personalize.cli import main
    from personalize.store import publish

    table = _table()
    publish({"customers": table}, store=tmp_path / "models")
    out = tmp_path / "list.csv"
    with pytest.raises(SystemExit) as info:
        main(["audience", "--models", str(tmp_path / "models"), "--min-churn-risk", "0.7", "--tier", "gold",
              "--consent", "email", "--out", str(out), "--json"])
    assert info.value.code in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert doc["customers"] == 2
    assert pd.read_csv(out)["customer_id"].tolist() == ["c1", "c3"]
    with pytest.raises(SystemExit) as info:
        main(["audience", "--models", str(tmp_path / "nowhere"), "--min-churn-risk", "0.7"])
    assert info.value.code == 2
