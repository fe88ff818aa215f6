"""RFM scores and segments, lifecycle stages, membership tiers, personas."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from personalize.analytics import (SEGMENT_NAMES, LifecycleConfig, Personas, SegmentRule, Tier, TierConfig,
                                   assign_segments, lifecycle_stages, membership_tiers, profiles, rfm_scores)
from personalize.errors import DataError, NotFittedError, PersonalizeError


def _prof(recency, orders, monetary):
    n = len(recency)
    return pd.DataFrame({"recency_days": recency, "orders": orders, "monetary": monetary},
                        index=pd.Index([f"c{i}" for i in range(n)], name="customer_id"))


# --------------------------------------------------------------------------- RFM

def test_quantile_scores_fill_evenly_and_point_the_right_way():
    p = _prof(np.arange(10, 0, -1) * 10.0, np.arange(1, 11), np.arange(1, 11) * 5.0)
    s = rfm_scores(p)
    for col in "RFM":
        assert sorted(s[col].tolist()) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # the most recent (smallest recency) customer gets R = 5; the biggest spender M = 5
    assert s.loc["c9", "R"] == 5 and s.loc["c0", "R"] == 1
    assert s.loc["c9", "M"] == 5 and s.loc["c9", "rfm"] == "555"
    assert s.loc["c9", "FM"] == 5


def test_ties_and_small_populations():
    same = _prof([5.0] * 7, [1] * 7, [10.0] * 7)
    assert set(rfm_scores(same)["F"]) == {3}
    assert set(rfm_scores(same, ties="low")["F"]) == {1}
    one = _prof([3.0], [2], [9.0])
    assert rfm_scores(one)[["R", "F", "M"]].iloc[0].tolist() == [3, 3, 3]
    two = _prof([3.0, 1.0], [1, 2], [1.0, 2.0])
    assert rfm_scores(two)["F"].tolist() == [2, 4]
    # a big block of one-time buyers shares one score; equal values never differ
    p = _prof(np.linspace(1, 100, 20), [1] * 12 + [2, 2, 3, 3, 4, 5, 8, 9], np.linspace(1, 50, 20))
    s = rfm_scores(p)
    assert s["F"].iloc[:12].nunique() == 1 and s["F"].iloc[12] == s["F"].iloc[13]
    assert rfm_scores(p, ties="low")["F"].iloc[0] == 1


def test_fixed_thresholds():
    p = _prof([10.0, 31.0, 100.0, 400.0], [1, 2, 4, 12], [5.0, 50.0, 500.0, 5000.0])
    s = rfm_scores(p, thresholds={"orders": [2, 3, 5, 10], "recency_days": [30, 90, 180, 365]})
    assert s["F"].tolist() == [1, 2, 3, 5]
    assert s["R"].tolist() == [5, 4, 3, 1]
    with pytest.raises(PersonalizeError, match="4 increasing"):
        rfm_scores(p, thresholds={"orders": [3, 2, 5, 10]})
    with pytest.raises(PersonalizeError, match="unknown"):
        rfm_scores(p, thresholds={"spend": [1, 2, 3, 4]})
    with pytest.raises(DataError, match="monetary"):
        rfm_scores(p.drop(columns="monetary"))


def test_default_segment_rules_cover_every_score_and_name_the_classics():
    rows = list(itertools.product(range(1, 6), range(1, 6), range(1, 6), (1, 2, 7)))
    scores = pd.DataFrame(rows, columns=["R", "F", "M", "orders"])
    scores["FM"] = np.floor((scores["F"] + scores["M"]) / 2 + 0.5).astype(int)
    seg = assign_segments(scores, scores[["orders"]])
    assert "Other" not in set(seg)
    assert set(seg) == set(SEGMENT_NAMES)

    def one(R, F, M, orders):
        m = (scores["R"] == R) & (scores["F"] == F) & (scores["M"] == M) & (scores["orders"] == orders)
        return seg[m].iloc[0]

    assert one(5, 1, 2, 1) == "New"
    assert one(4, 2, 1, 1) == "Promising"
    assert one(5, 5, 5, 7) == "Champions"
    assert one(3, 4, 4, 7) == "Loyal"
    assert one(5, 2, 2, 2) == "Potential Loyalist"
    assert one(3, 1, 2, 2) == "Need Attention"
    assert one(1, 5, 5, 7) == "Can't Lose"
    assert one(2, 4, 4, 7) == "At Risk"
    assert one(2, 1, 1, 2) == "Hibernating"
    assert one(1, 1, 1, 1) == "Lost"


def test_custom_segment_rules():
    scores = pd.DataFrame({"R": [5, 1], "F": [5, 1], "M": [5, 1], "FM": [5, 1]}, index=["a", "b"])
    seg = assign_segments(scores, rules=[SegmentRule("VIP", M=(5, 5))], default="Rest")
    assert seg.tolist() == ["VIP", "Rest"]
    with pytest.raises(DataError, match="orders"):
        assign_segments(scores, rules=[SegmentRule("x", orders=(1, 1))])


# --------------------------------------------------------------------------- lifecycle

def test_lifecycle_follows_each_customers_rhythm():
    prof = pd.DataFrame({
        "recency_days": [5.0, 14.0, 20.0, 30.0, 50.0, 120.0, 300.0, 500.0, 14.0],
        "tenure_days": [10.0, 400, 400, 400, 400, 400, 400, 600, 400],
        "ipt_mean_days": [np.nan, 10, 10, 10, 10, np.nan, np.nan, np.nan, 1.0],
        "purchase_days": [1, 11, 11, 11, 11, 1, 1, 1, 30],
    }, index=list("abcdefghi"))
    cfg = LifecycleConfig(prior_weight=0.0, default_gap_days=100.0)
    out = lifecycle_stages(prof, cfg)
    assert out["lifecycle"].tolist() == ["new", "active", "at-risk", "lapsed", "churned", "active", "lapsed",
                                         "churned", "at-risk"]
    assert out.loc["i", "expected_gap_days"] == 7.0  # floored at min_gap_days
    assert out.loc["f", "rhythm_ratio"] == pytest.approx(1.2)
    # shrinkage: one gap of 10 days pulled toward the default of 100 with prior weight 1
    shr = lifecycle_stages(prof.assign(purchase_days=[1, 2, 2, 2, 2, 1, 1, 1, 30]),
                           LifecycleConfig(default_gap_days=100.0))
    assert shr.loc["b", "expected_gap_days"] == pytest.approx(55.0)
    # default gap = median of the repeat buyers' own means
    assert lifecycle_stages(prof).attrs["default_gap_days"] == pytest.approx(10.0)
    with pytest.raises(PersonalizeError):
        LifecycleConfig(at_risk_ratio=3.0, lapsed_ratio=2.0)


# --------------------------------------------------------------------------- tiers

TIER_CFG = TierConfig(tiers=(Tier("Base"), Tier("Silver", min_spend=100.0), Tier("Gold", min_spend=300.0)))


def _tier_tx():
    rows = [("a", "2022-01-01", 50.0), ("a", "2022-03-01", 60.0), ("a", "2022-06-01", 250.0),
            ("a", "2023-07-01", 20.0),
            ("b", "2022-01-01", 200.0), ("b", "2023-02-01", 150.0),
            ("c", "2023-01-01", 100.0), ("c", "2023-05-01", 250.0),
            ("c", "2023-08-01", 999.0)]  # at as_of: excluded
    df = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df


def test_tiers_and_the_date_they_were_reached():
    t = membership_tiers(_tier_tx(), "2023-08-01", TIER_CFG)
    assert t["tier"].tolist() == ["Base", "Silver", "Gold"]
    # a was Gold in 2022 but only 20 was spent in the last 12 months: Base since the first purchase
    assert t.loc["a", "tier_since"] == pd.Timestamp("2022-01-01")
    assert t.loc["a", "t12m_spend"] == pytest.approx(20.0) and t.loc["a", "t12m_orders"] == 1
    assert t.loc["a", "next_tier"] == "Silver" and t.loc["a", "spend_to_next_tier"] == pytest.approx(80.0)
    # b qualified in Jan 2022, lapsed when that order left the window, re-qualified on 2023-02-01
    assert t.loc["b", "tier_since"] == pd.Timestamp("2023-02-01")
    assert t.loc["c", "tier_since"] == pd.Timestamp("2023-05-01")
    assert pd.isna(t.loc["c", "next_tier"]) and np.isnan(t.loc["c", "spend_to_next_tier"])
    # as of mid 2022, a had just become Gold
    early = membership_tiers(_tier_tx(), "2022-07-01", TIER_CFG)
    assert early.loc["a", "tier"] == "Gold" and early.loc["a", "tier_since"] == pd.Timestamp("2022-06-01")


def test_tier_modes_and_config_validation():
    cfg = TierConfig(tiers=(Tier("Member", min_orders=2), Tier("VIP", min_spend=300.0, min_orders=3)),
                     mode="all")
    t = membership_tiers(_tier_tx(), "2023-08-01", cfg)
    assert pd.isna(t.loc["a", "tier"]) and t.loc["a", "tier_level"] == -1  # one order in the window
    assert t.loc["c", "tier"] == "Member"  # 350 spent but only 2 orders: not VIP under "all"
    any_cfg = TierConfig(tiers=cfg.tiers, mode="any")
    assert membership_tiers(_tier_tx(), "2023-08-01", any_cfg).loc["c", "tier"] == "VIP"
    with pytest.raises(PersonalizeError, match="must not decrease"):
        TierConfig(tiers=(Tier("A", min_spend=10.0), Tier("B", min_spend=5.0)))
    with pytest.raises(PersonalizeError, match="unique"):
        TierConfig(tiers=(Tier("A"), Tier("A", min_spend=5.0)))
    with pytest.raises(PersonalizeError, match="only the lowest"):
        TierConfig(tiers=(Tier("A", min_spend=1.0), Tier("B")))
    with pytest.raises(PersonalizeError, match="mode"):
        TierConfig(mode="some")
    d = TierConfig.from_dict({"tiers": [{"name": "X"}, {"name": "Y", "min_orders": 3}], "window_days": 180})
    assert d.tiers[1].min_orders == 3 and d.window_days == 180


# --------------------------------------------------------------------------- personas

def _two_groups(n=300, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        big = i % 3 == 0
        t0 = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
        k = 12 if big else 1
        for j in range(k):
            rows.append((f"c{i:03d}", t0 + pd.Timedelta(days=25 * j), (200.0 if big else 15.0) * rng.uniform(0.8, 1.2)))
    df = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    return profiles(df, "2024-01-01")


def test_personas_separate_groups_and_describe_them():
    prof = _two_groups()
    with pytest.raises(NotFittedError):
        Personas().predict(prof)
    pers = Personas(n_clusters=2, random_state=0).fit(prof)
    lab = pers.predict(prof)
    big = prof["orders"] > 1
    assert lab[big].nunique() == 1 and lab[~big].nunique() == 1 and lab[big].iloc[0] != lab[~big].iloc[0]
    desc = pers.describe()
    assert len(desc) == 2 and desc["customers"].sum() == len(prof)
    big_desc = desc.loc[lab[big].iloc[0], "description"]
    assert "high total spend" in big_desc or "frequent buyers" in big_desc
    again = Personas.from_dict(json.loads(json.dumps(pers.to_dict())))
    pd.testing.assert_series_equal(again.predict(prof), lab)
    with pytest.raises(DataError, match="cannot form"):
        Personas(n_clusters=500).fit(prof)
