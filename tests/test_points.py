"""Loyalty points: the lots model by hand and against its row-by-row definition, balances as of a date, expiring
points, activity, liability, tiers, the price of a point (points-multiplier offers) and the points report CLI."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from personalize.analytics import points as P
from personalize.cli import main
from personalize.data import Dataset
from personalize.datasets import make_retail
from personalize.offers import OfferCatalog

D0 = pd.Timestamp("2024-01-01")


def day(n: float) -> pd.Timestamp:
    return D0 + pd.Timedelta(days=n)


def ledger(rows) -> pd.DataFrame:
    return pd.DataFrame([{"customer_id": c, "timestamp": day(t), "delta": float(d), "reason": r,
                          "expires_at": None if x is None else day(x)} for c, t, d, r, x in rows])


def test_soonest_expiring_points_are_used_first():
    # lot A 100 expiring day 40, lot B 50 expiring day 10 (a bonus): a redemption of 80 on day 5 uses B first
    pts = ledger([("c", 0, 100, "earn", 40), ("c", 1, 50, "adjust", 10), ("c", 5, -80, "redeem", None)])
    lots = P.points_lots(pts, day(6))
    assert lots.lot_left.tolist() == [70.0, 0.0] and lots.balance.tolist() == [70.0]
    cols = P.points_columns(pts, day(6))
    assert cols.loc["c", "points_expiring_30d"] == 0 and cols.loc["c", "points_next_expiry_days"] == \
        pytest.approx(34.0)
    assert P.points_columns(pts, day(20)).loc["c", "points_expiring_30d"] == 70


def test_lots_model_writes_off_what_is_left_at_expiry():
    pts = ledger([("c", 0, 100, "earn", 10), ("c", 5, -30, "redeem", None), ("c", 12, 40, "earn", 50)])
    lots = P.points_lots(pts, day(20))
    assert lots.mode == "lots" and lots.balance.tolist() == [40.0]
    assert lots.implicit_expired[2].tolist() == [70.0]
    # as of the expiry moment itself the points are still there (usable strictly before it)
    assert P.points_lots(pts, day(10)).balance.tolist() == [70.0]
    act = P.points_activity(pts, as_of=day(20), freq="M")
    assert act[["earned", "redeemed", "expired"]].sum().tolist() == [140.0, 30.0, 70.0]
    assert act["balance_end"].iloc[-1] == 40.0


def test_ledger_mode_trusts_expire_rows_and_flags_overdue_points():
    pts = ledger([("c", 0, 100, "earn", 10), ("c", 11, -100, "expire", None), ("d", 0, 60, "earn", 10)])
    lots = P.points_lots(pts, day(20))
    assert lots.mode == "ledger" and lots.balance.tolist() == [0.0, 60.0]
    cols = P.points_columns(pts, day(20))
    assert cols.loc["d", "points_expiring_30d"] == 60 and cols.loc["d", "points_next_expiry_days"] == 0  # overdue


def test_deficit_is_paid_back_by_the_next_points():
    pts = ledger([("c", 0, 10, "earn", None), ("c", 1, -30, "adjust", None), ("c", 2, 50, "earn", None)])
    lots = P.points_lots(pts, day(3))
    assert lots.balance.tolist() == [30.0] and lots.lot_left.tolist() == [0.0, 30.0]


def test_vectorized_model_equals_the_row_by_row_definition():
    rng = np.random.default_rng(1)
    for trial in range(60):
        rows = []
        for c in range(int(rng.integers(1, 5))):
            t = 0
            for _ in range(int(rng.integers(1, 10))):
                t += int(rng.integers(0, 4))
                r = str(rng.choice(["earn", "redeem", "expire", "adjust"], p=[0.5, 0.25, 0.1, 0.15]))
                d = float(rng.integers(1, 100)) * (-1 if r in ("redeem", "expire") or
                                                     (r == "adjust" and rng.random() < 0.5) else 1)
                x = t + (10 if trial % 2 else int(rng.integers(0, 20))) if d > 0 and rng.random() < 0.8 else None
                rows.append((f"c{c}", t, d, r, x))
        pts = ledger(rows)
        if trial % 3 == 0:
            pts = pts[pts["reason"] != "expire"]
        if not len(pts):
            continue
        as_of = day(int(rng.integers(0, 40)))
        for policy in (P.PointsPolicy(), P.PointsPolicy(validity_days=7.0)):
            lots = P.points_lots(pts, as_of, policy=policy)
            codes, ids, ts, delta, x, _ = P._ledger_arrays(pts, as_of, policy)
            for c in range(len(ids)):
                r = np.flatnonzero(codes == c)
                pos, left, bal, written = P._reference(ts[r], delta[r], x[r], as_of.value, lots.mode == "lots")
                ref = np.zeros(len(r))
                ref[pos] = left
                assert np.allclose(lots.lot_left[lots.lot_cust == c], ref[delta[r] > 0])
                assert lots.balance[c] == pytest.approx(bal)
                assert lots.implicit_expired[2][lots.implicit_expired[0] == c].sum() == pytest.approx(
                    sum(a for _, a in written))


def test_balance_as_of_any_date_is_point_in_time():
    pts = ledger([("c", 0, 100, "earn", 400), ("c", 30, -50, "redeem", None), ("c", 60, 20, "earn", 400)])
    tx = pd.DataFrame({"customer_id": ["c"], "item_id": ["i"], "timestamp": [day(0)], "quantity": 1.0,
                       "price": 1.0})
    ds = Dataset.from_frames(tx, points=pts)
    assert P.points_balances(ds, day(30)).loc["c", "points_balance"] == 100      # the redemption is on day 30
    assert P.points_balances(ds, day(31)).loc["c", "points_balance"] == 50
    assert P.points_balances(ds, day(90)).loc["c", "points_balance"] == 70
    assert P.points_balances(ds.until(day(31)), day(90)).loc["c", "points_balance"] == 50


def test_liability_redemption_rate_and_tiers():
    pts = ledger([("a", 0, 1000, "earn", 20), ("a", 5, -600, "redeem", None), ("a", 21, -400, "expire", None),
                  ("b", 3, 700, "earn", None), ("c", 4, 100, "earn", None)])
    rr = P.redemption_rate(pts, as_of=day(30))
    assert rr["redemption_rate"] == pytest.approx(0.6) and rr["redeemed"] == 600 and rr["expired"] == 400
    li = P.points_liability(pts, as_of=day(30), policy=P.PointsPolicy(point_value=0.02))
    assert li["outstanding_points"] == 800 and li["liability"] == pytest.approx(16.0)
    assert li["expected_cost"] == pytest.approx(16.0 * 0.6)
    tx = pd.DataFrame({"customer_id": ["a", "b", "c"], "item_id": "i", "timestamp": [day(1), day(3), day(4)],
                       "quantity": 1.0, "price": [600.0, 20.0, 30.0]})
    ds = Dataset.from_frames(tx, points=pts)
    t = P.points_tiers(ds, day(30))
    assert t.loc["a", "tier"] == "Silver" and t.loc["b", "tier"] == "Silver" and t.loc["c", "tier"] == "Bronze"
    assert t.loc["c", "points_to_next_tier"] == 400
    custom = P.PointsTierConfig(tiers=(P.PointsTier("Member"), P.PointsTier("VIP", 900.0)))
    assert P.points_tiers(ds, day(30), custom).loc["a", "tier"] == "VIP"
    spend = P.points_tiers(ds, day(30), P.PointsTierConfig(basis="spend"))
    assert spend.loc["a", "tier"] == "Silver" and spend.attrs["basis"] == "spend"   # 600 spend, Silver at 500
    with pytest.raises(Exception, match="basis"):
        P.PointsTierConfig(basis="age")


def test_points_multiplier_priced_from_the_ledger():
    ds, _ = make_retail(n_customers=600, n_items=60, seed=5, points=True)
    pricing = P.points_pricing(ds)
    assert 0.9 <= pricing.points_per_currency <= 1.0           # one point per unit of spend, rounded down
    assert 0 < pricing.redemption_rate < 1
    cat = OfferCatalog.from_frame(ds.offers)
    j = int(np.flatnonzero(cat.kinds == "points_multiplier")[0])
    plain = cat.redemption_cost(np.array([100.0]), np.array([j]))[0]
    assert plain == pytest.approx(cat.unit_cost[j])               # without a ledger: the catalog's estimate
    priced = OfferCatalog.from_frame(ds.offers, points=pricing)
    cost = priced.redemption_cost(np.array([100.0, 200.0]), np.array([j, j]))
    want = (cat.value[j] - 1) * 100.0 * pricing.points_per_currency * pricing.point_value * pricing.redemption_rate
    assert cost[0] == pytest.approx(want) and cost[1] == pytest.approx(2 * want)
    k = int(np.flatnonzero(cat.kinds == "percent_off")[0])        # other kinds are unchanged
    assert priced.redemption_cost(np.array([100.0]), np.array([k]))[0] == cat.redemption_cost(
        np.array([100.0]), np.array([k]))[0]


def test_points_report_cli(tmp_path, capsys):
    ds, _ = make_retail(n_customers=400, n_items=50, seed=6, points=True, offers=False, exposures=False)
    ds.transactions.drop(columns="amount").to_csv(tmp_path / "tx.csv", index=False)
    ds.points.to_csv(tmp_path / "pts.csv", index=False)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exc:
        main(["points", "report", str(tmp_path / "tx.csv"), "--points", str(tmp_path / "pts.csv"), "--plots",
              str(tmp_path / "plots"), "--out", str(tmp_path / "bal.csv"), "--point-value", "0.02", "--json"])
    assert not exc.value.code
    doc = json.loads(buf.getvalue())
    bal = pd.read_csv(tmp_path / "bal.csv")
    assert doc["outstanding_points"] == pytest.approx(bal["points_balance"].clip(lower=0).sum())
    assert doc["liability"]["liability"] == pytest.approx(0.02 * doc["outstanding_points"])
    assert (tmp_path / "plots" / "points_activity.png").stat().st_size > 1000
    assert doc["activity"][-1]["balance_end"] == pytest.approx(ds.points["delta"].sum())
    with pytest.raises(SystemExit) as exc:
        main(["points", "report", str(tmp_path / "tx.csv"), "--points", str(tmp_path / "pts.csv"), "--freq", "X"])
    assert exc.value.code == 2 and "--freq" in capsys.readouterr().err
