"""Next-best-offer and personalized coupons over a loaded bundle, with live caps and cooldowns.

:class:`OfferDesk` answers from the bundle's precomputed ``offers``
(:class:`~personalize.offers.OfferScores`) and ``coupons``
(:class:`~personalize.coupons.plan.CouponTable`) components. Exposure and
redemption events posted to the service land in :class:`LiveContacts` (the
runtime's one record of them) and count against per-customer caps and the
contact cooldown at once. Privacy rules come from the runtime: an erased
customer is unknown, a customer who opted out of personalization gets the
non-personal (cold) answer, and consent for the channel is required.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd

from personalize.coupons.allocate import NONE
from personalize.coupons.plan import CouponTable, plan_frame
from personalize.errors import DataError, MissingComponentError, UnknownIdError
from personalize.offers import CHANNELS, OfferScores

__all__ = ["LiveContacts", "OfferDesk"]

_NS_DAY = 86_400 * 10**9


class LiveContacts:
    """Exposures and redemptions since the bundle was published: counts per (customer, offer), last contact."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[int, int]] = {}
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, customer_id: str, offer: int, ns: int, *, exposure: bool) -> None:
        with self._lock:
            if exposure:
                c = self._counts.setdefault(customer_id, {})
                c[offer] = c.get(offer, 0) + 1
            if ns > self._last.get(customer_id, 0):
                self._last[customer_id] = int(ns)

    def counts(self, customer_id: str) -> dict[int, int] | None:
        return self._counts.get(customer_id)

    def last(self, customer_id: str) -> int | None:
        return self._last.get(customer_id)

    def forget(self, customer_id: str) -> None:
        with self._lock:
            self._counts.pop(customer_id, None)
            self._last.pop(customer_id, None)

    def __len__(self) -> int:
        return len(self._last)


class OfferDesk:
    """Offers and coupons of one bundle (see the module docstring)."""

    def __init__(self, offers: OfferScores | None, coupons: CouponTable | None) -> None:
        self.offers = offers
        self.coupons = coupons
        self.live = LiveContacts()
        self._coupon_offers = (coupons.ladder.offer_index(offers.catalog)
                               if coupons is not None and offers is not None else None)

    def _need(self, what: str):
        part = self.offers if what == "offers" else self.coupons
        if part is None:
            raise MissingComponentError(f"this bundle has no {what} (train with an offer catalog and randomized "
                                        f"exposures: `personalize train --offers ... --exposures ...`)")
        return part

    def knows_offer(self, offer_id: str) -> int:
        """The offer's index in the catalog (UnknownIdError otherwise)."""
        j = self._need("offers").catalog.index.get(offer_id)
        if j is None:
            raise UnknownIdError(f"unknown offer_id {offer_id!r}")
        return j

    def record(self, customer_id: str, offer_id: str, ns: int, *, exposure: bool) -> bool:
        """A live exposure or redemption; False when the offer is not in the catalog."""
        if self.offers is None:
            return False
        j = self.offers.catalog.index.get(offer_id)
        if j is None:
            return False
        self.live.add(customer_id, j, ns, exposure=exposure)
        return True

    # ------------------------------------------------------------------ next-best-offer
    def next_best(self, customer_id: str | None, *, n: int, channel: str, now: pd.Timestamp,
                  source: str, personal: bool = True) -> dict:
        """Top ``n`` offers (possibly none). ``customer_id=None``: the cold answer; ``personal=False``: the
        average customer's ranking under this customer's own policy state; ``source`` says which."""
        scores = self._need("offers")
        key = customer_id if customer_id is not None else ""
        out = scores.rank(customer_id, channel=channel, n=n, now=now, live_exposures=self.live.counts(key),
                          live_last_contact_ns=self.live.last(key), personal=personal)
        if customer_id is not None and not out["known"]:
            source = "cold"
        out["source"] = source
        return out

    # ------------------------------------------------------------------ coupons
    def _coupon_usable(self, rows: np.ndarray, channel: str, now: pd.Timestamp,
                       customer_ids: Sequence[str] | None = None) -> np.ndarray:
        """``(len(rows), levels)``: which levels the contact policy allows (rows -1: the cold customer)."""
        scores = self._need("offers")
        if channel not in CHANNELS:
            raise DataError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}", column="channel")
        ch = CHANNELS.index(channel)
        lv = self._coupon_offers
        rows = np.asarray(rows, np.int64)
        static = np.where(rows[:, None] >= 0, scores.static[np.maximum(rows, 0)][:, lv, ch],
                          scores.cold_static[lv, ch][None, :])
        usable = static == 0
        not_started, expired = scores.catalog.active(now)
        usable &= ~(not_started | expired)[lv][None, :]
        exposed = np.where(rows[:, None] >= 0, scores.exposures[np.maximum(rows, 0)][:, lv], 0)
        if customer_ids is not None:
            for k, cid in enumerate(customer_ids):
                live = self.live.counts(cid)
                if live:
                    exposed[k] += np.array([live.get(int(j), 0) for j in lv])
        usable &= exposed < scores.catalog.cap[lv][None, :]
        return usable

    def _usable_one(self, srow: int, channel: str, now: pd.Timestamp, customer_id: str) -> np.ndarray:
        """:meth:`_coupon_usable` for one customer row (-1: cold), without the batch's array building."""
        scores = self.offers
        if channel not in CHANNELS:
            raise DataError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}", column="channel")
        ch = CHANNELS.index(channel)
        lv = self._coupon_offers
        usable = (scores.static[srow, lv, ch] if srow >= 0 else scores.cold_static[lv, ch]) == 0
        not_started, expired = scores.catalog.active(now)
        usable &= ~(not_started[lv] | expired[lv])
        exposed = scores.exposures[srow, lv].astype(np.int64) if srow >= 0 else np.zeros(len(lv), np.int64)
        live = self.live.counts(customer_id)
        if live:
            exposed = exposed + np.array([live.get(int(j), 0) for j in lv])
        return usable & (exposed < scores.catalog.cap[lv])

    def coupon(self, customer_id: str | None, *, channel: str, now: pd.Timestamp, source: str,
               personal: bool = True) -> dict:
        """The customer's best coupon level without a budget (``level: None`` when none pays or is allowed);
        ``personal=False``: the average customer's figures under this customer's own policy state."""
        table = self._need("coupons")
        scores = self._need("offers")
        row = table.pos.get(customer_id, -1) if customer_id is not None else -1
        srow = scores.row(customer_id) if customer_id is not None else -1
        usable = self._usable_one(srow, channel, now, customer_id or "")
        if row < 0 and customer_id is not None:
            source = "cold"
        if not personal:
            row = -1
        j, why = table.best(row, usable)
        cost = table.cost[row] if row >= 0 else table.cold_cost
        profit = table.profit[row] if row >= 0 else table.cold_profit
        levels = [{"level": lvl, "description": scores.catalog.describe(int(o)), "allowed": bool(usable[k]),
                   "expected_cost": float(cost[k]), "expected_incremental_profit": float(profit[k])}
                  for k, (lvl, o) in enumerate(zip(table.ladder.levels, self._coupon_offers))]
        best = None if j == NONE else levels[j]
        return {"level": None if best is None else best["level"], "coupon": best, "reason": why, "levels": levels,
                "source": source}

    def coupon_plan(self, customer_ids: np.ndarray, *, channel: str, budget: float | None, now: pd.Timestamp,
                    excluded: np.ndarray | None = None) -> pd.DataFrame:
        """The budgeted plan over the bundle's customers (``excluded`` rows get nothing): plan rows."""
        table = self._need("coupons")
        scores = self._need("offers")
        rows = scores.index_of(table.customer_ids)
        usable = self._coupon_usable(rows, channel, now)
        for cid in self.live._counts:  # live exposures count against caps
            r = table.pos.get(cid)
            if r is not None:
                usable[r] &= self._coupon_usable(np.array([rows[r]]), channel, now, [cid])[0]
        if excluded is not None:
            usable[excluded] = False
        alloc = table.plan(usable, budget=budget)
        return plan_frame(table, alloc, scores.catalog).assign(total_cost=alloc.total_cost,
                                                               total_profit=alloc.total_profit)

    def plan(self, *, channel: str, budget: float | None, now: pd.Timestamp,
             excluded_ids: frozenset[str] | set[str] = frozenset(), curve_points: int = 20
             ) -> tuple[pd.DataFrame, list[dict], dict]:
        """(plan rows, profit vs budget curve, totals) over the bundle's customers, leaving ``excluded_ids`` out.

        The curve: the plan's expected cost and profit at ``curve_points`` budgets from 0 to what the
        unconstrained plan spends (where more budget stops paying).
        """
        table = self._need("coupons")
        ids = table.customer_ids
        excluded = pd.Index(ids).isin(list(excluded_ids)) if excluded_ids else None
        plan = self.coupon_plan(ids, channel=channel, budget=budget, now=now, excluded=excluded)
        scores = self._need("offers")
        usable = self._coupon_usable(scores.index_of(ids), channel, now)
        if excluded is not None:
            usable[excluded] = False
        full = table.plan(usable, budget=None)
        curve = []
        top = max(float(full.total_cost), float(budget or 0.0))  # past the unconstrained cost the curve is flat
        for b in np.linspace(0.0, top, max(2, int(curve_points))):
            a = table.plan(usable, budget=float(b))
            curve.append({"budget": float(b), "expected_cost": float(a.total_cost),
                          "expected_incremental_profit": float(a.total_profit), "customers": int(a.n_assigned)})
        totals = {"customers": int(len(plan)), "total_cost": float(plan["expected_cost"].sum()) if len(plan) else 0.0,
                  "total_profit": float(plan["expected_incremental_profit"].sum()) if len(plan) else 0.0,
                  "unconstrained_cost": float(full.total_cost), "unconstrained_profit": float(full.total_profit)}
        return plan.drop(columns=["total_cost", "total_profit"], errors="ignore"), curve, totals

    # ------------------------------------------------------------------ audiences
    def offer_audience(self, offer_id: str, *, channel: str, now: pd.Timestamp) -> pd.DataFrame:
        """Every bundle customer the offer may go to through ``channel`` and for whom it pays (EV > 0)."""
        scores = self._need("offers")
        j = scores.catalog.index.get(offer_id)
        if j is None:
            known = list(map(str, scores.catalog.offer_ids[:20]))
            raise DataError(f"unknown offer_id {offer_id!r}; offers: {known}", column="offer_id")
        ch = CHANNELS.index(channel)
        ok = scores.static[:, j, ch] == 0
        not_started, expired = scores.catalog.active(now)
        if not_started[j] or expired[j]:
            raise DataError(f"offer {offer_id!r} is not valid now ({'not started' if not_started[j] else 'expired'})",
                            column="offer_id")
        exposed = scores.exposures[:, j].astype(np.int64)
        for cid, counts in self.live._counts.items():
            r = scores.row(cid)
            if r >= 0 and j in counts:
                exposed[r] += counts[j]
        ok &= exposed < scores.catalog.cap[j]
        ev = scores.p[:, j] * scores.value[:, j]
        ok &= ev > 0
        rows = np.flatnonzero(ok)
        return pd.DataFrame({"customer_id": scores.customer_ids[rows].astype(str),
                             "p_accept": scores.p[rows, j].astype(np.float64),
                             "expected_value": ev[rows].astype(np.float64)})
