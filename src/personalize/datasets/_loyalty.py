"""Synthetic feedback and loyalty points with known truth (used by :mod:`personalize.datasets.synthetic`).

Both tables come from their own random streams and are built *from* the
generated orders and dropout times, so every other table is the same with or
without them.

Feedback
--------
* Every customer has a latent **satisfaction** ``s`` (standard normal),
  negatively tied to her dropout hazard: ``s = -0.75 z + 0.66 e`` with ``z``
  the standardized log hazard, so dissatisfied customers churn sooner.
* Experiences differ by channel (web -0.25, store +0.15, app 0 on ``s``) and by
  item (a per-item quality, sd 0.6).
* **Post-order CSAT** surveys (12 % of orders, 1-4 days later):
  ``round(3.7 + 0.9 s + channel + N(0, 0.7))`` clipped to 1-5.
* **Relationship NPS** waves (4 a period, 25 % of the customers alive then):
  ``round(7.2 + 2.2 s + N(0, 1.3))`` clipped to 0-10, channel ``email``.
* **Star ratings** of bought items (6 % of lines, 3-12 days later; 30 % of them
  reviews with a text): ``round(3.9 + 0.5 s + quality + N(0, 0.7))``, 1-5.
* **Complaints** about orders at a rate growing as satisfaction falls (and 1.6x
  on the web), by category per channel; 85 % resolved after a log-normal
  time (median 3 days). Resolutions after the end of the data are not in it.
* **Bad experiences before dropout**: of the customers who drop out inside
  the window, ``sigmoid(-0.2 - s)`` had a bad experience about 3 weeks before
  (exponential, mean 20 days) that made them leave: a complaint (65 %, of which
  70 % were never resolved) or a CSAT answer of 1-2 about her last order (a
  complaint when she has no order in the 60 days before). An open complaint
  is therefore the strongest warning of all.

Points
------
80 % of the customers are programme members. Members earn one point per unit
of net spend on every order (two on an order with a ``points_multiplier``
coupon), valid 365 days; members who joined before the window bring an
opening balance (Gamma(2, 150) points) whose expiry date falls inside it. The
**expiry nudge**: the expiry date is drawn so that a member's visit rate is
``1 + expiry_boost`` (3x) in the 14 days before her points expire (the date is
drawn given the visits, with weight ``(1 + boost) ** visits in those 14 days``).
At a visit members redeem everything (in blocks of 100) when points are about
to expire (80 %), otherwise 500 points with probability 0.35 once they hold
1,000. Half the resolved complaints of members get 200 goodwill points
(``adjust``). Points left in a lot at its expiry are written off by an
``expire`` row (soonest-expiring points are used first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from personalize.datasets.synthetic import (DAY_S, _CHANNELS, _clock_seconds, _from_clock, _ranges, _seconds_to_ts,
                                            _str_col)

SATISFACTION_HAZARD_CORR = -0.75
CHANNEL_EFFECT = {"web": -0.25, "store": 0.15, "app": 0.0}
CSAT_SHARE, RATING_SHARE, NPS_WAVE_SHARE, REVIEW_SHARE = 0.12, 0.06, 0.25, 0.3
COMPLAINT_RATE = 0.015
P_RESOLVED, RESOLUTION_MEDIAN_DAYS = 0.85, 3.0
TRIGGER_MEAN_DAYS, P_TRIGGER_COMPLAINT, P_TRIGGER_UNRESOLVED = 20.0, 0.65, 0.7
MEMBER_SHARE, POINTS_VALID_DAYS, EXPIRY_BOOST, EXPIRY_WINDOW_DAYS = 0.8, 365.0, 2.0, 14.0
GOODWILL_POINTS = 200.0
COMPLAINT_CATEGORIES = ("delivery", "product_quality", "billing", "staff", "returns")
_CATEGORY_P = {  # by channel: web, store, app
    0: [0.5, 0.2, 0.15, 0.0, 0.15],
    1: [0.0, 0.35, 0.15, 0.35, 0.15],
    2: [0.4, 0.25, 0.2, 0.0, 0.15],
}
_GOOD_TEXT = ("Great product, would buy again", "Exactly as described", "Very happy with it", "Good value")
_MID_TEXT = ("It is fine", "Okay for the price", "Does the job")
_BAD_TEXT = ("Disappointed, broke quickly", "Not as described", "Poor quality", "Would not recommend")
_COMPLAINT_TEXT = {"delivery": "Parcel arrived late", "product_quality": "Item was faulty",
                   "billing": "Charged twice", "staff": "Unfriendly service in store",
                   "returns": "Refund still not received"}


@dataclass
class Orders:
    """Clean orders of the generator, numbered by time (row = order number)."""

    cust: np.ndarray     # int64 customer index
    sec: np.ndarray      # int64 shop-clock seconds since start
    amount: np.ndarray   # float64 net spend
    channel: np.ndarray  # int8 index into _CHANNELS
    multiplier: np.ndarray  # float64 points multiplier of the order (1, or the coupon's)
    ids: pa.Array        # order id strings


@dataclass
class Lines:
    cust: np.ndarray
    item: np.ndarray
    order: np.ndarray  # order number


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def satisfaction(mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lm = np.log(mu)
    z = (lm - lm.mean()) / (lm.std() or 1.0)
    rho = SATISFACTION_HAZARD_CORR
    return rho * z + np.sqrt(1.0 - rho * rho) * rng.normal(0.0, 1.0, len(mu))


def _sec(raw_days: np.ndarray) -> np.ndarray:
    return _clock_seconds(raw_days)


def _raw(sec: np.ndarray) -> np.ndarray:
    return _from_clock(sec / DAY_S)


def make_feedback(m, orders: Orders, lines: Lines, start_ts: pd.Timestamp, cust_ids: pa.Array,
                  item_ids: pa.Array) -> tuple[pd.DataFrame, dict]:
    """The feedback table (sorted by time) and its truth (satisfaction, item quality, dropout triggers)."""
    rng = m.rng(12)
    days = m.days
    n_c = m.n_c
    s = satisfaction(m.mu, rng)
    quality = rng.normal(0.0, 0.6, m.n_i)
    chan_eff = np.array([CHANNEL_EFFECT[c] for c in _CHANNELS])
    parts: list[dict] = []

    def add(cust, raw_t, kind, score, scale, item=None, order=None, channel=None, category=None,
            resolved_raw=None, text=None) -> None:
        n = len(cust)
        if not n:
            return
        parts.append({"cust": cust.astype(np.int64), "t": raw_t, "kind": np.full(n, kind, object),
                      "score": score.astype(np.float64), "scale": np.full(n, scale, object),
                      "item": np.full(n, -1, np.int64) if item is None else item.astype(np.int64),
                      "order": np.full(n, -1, np.int64) if order is None else order.astype(np.int64),
                      "channel": np.full(n, None, object) if channel is None else channel,
                      "category": np.full(n, None, object) if category is None else category,
                      "resolved_t": np.full(n, np.nan) if resolved_raw is None else resolved_raw,
                      "text": np.full(n, None, object) if text is None else text})

    o_raw = _raw(orders.sec)
    o_chan = orders.channel.astype(np.int64)
    chan_names = np.array(_CHANNELS, dtype=object)

    # post-order CSAT
    pick = np.flatnonzero(rng.random(len(orders.cust)) < CSAT_SHARE)
    t = o_raw[pick] + rng.uniform(1.0, 4.0, len(pick))
    ok = t < days
    pick, t = pick[ok], t[ok]
    c = orders.cust[pick]
    x = 3.7 + 0.9 * s[c] + chan_eff[o_chan[pick]] + rng.normal(0.0, 0.7, len(pick))
    add(c, t, "survey", np.clip(np.round(x), 1, 5), "csat", order=pick, channel=chan_names[o_chan[pick]])

    # relationship NPS waves
    for k in range(4):
        d = days * (k + 0.5) / 4.0
        alive = (m.t0 <= d) & (m.death > d)
        who = np.flatnonzero(alive & (rng.random(n_c) < NPS_WAVE_SHARE))
        t = d + rng.uniform(0.0, 5.0, len(who))
        ok = t < days
        who, t = who[ok], t[ok]
        x = 7.2 + 2.2 * s[who] + rng.normal(0.0, 1.3, len(who))
        add(who, t, "survey", np.clip(np.round(x), 0, 10), "nps", channel=np.full(len(who), "email", object))

    # star ratings and reviews of bought items
    pick = np.flatnonzero(rng.random(len(lines.cust)) < RATING_SHARE)
    t = o_raw[lines.order[pick]] + rng.uniform(3.0, 12.0, len(pick))
    ok = t < days
    pick, t = pick[ok], t[ok]
    c, it, od = lines.cust[pick], lines.item[pick], lines.order[pick]
    stars = np.clip(np.round(3.9 + 0.5 * s[c] + quality[it] + rng.normal(0.0, 0.7, len(pick))), 1, 5)
    review = rng.random(len(pick)) < REVIEW_SHARE
    u = rng.random(len(pick))
    text = np.full(len(pick), None, dtype=object)
    for lo, hi, phrases in ((1, 2, _BAD_TEXT), (3, 3, _MID_TEXT), (4, 5, _GOOD_TEXT)):
        sel = review & (stars >= lo) & (stars <= hi)
        text[sel] = np.array(phrases, dtype=object)[(u[sel] * len(phrases)).astype(np.int64)]
    for kind, sel in (("rating", ~review), ("review", review)):
        add(c[sel], t[sel], kind, stars[sel], "stars", item=it[sel], order=od[sel],
            channel=chan_names[o_chan[od[sel]]], text=text[sel] if kind == "review" else None)

    # complaints about orders (background) and resolutions
    rate = COMPLAINT_RATE * np.exp(-0.8 * s[orders.cust]) * np.where(o_chan == 0, 1.6, 1.0)
    pick = np.flatnonzero(rng.random(len(orders.cust)) < rate)
    t = o_raw[pick] + rng.uniform(0.0, 7.0, len(pick))
    ok = t < days
    pick, t = pick[ok], t[ok]
    _complaints(add, rng, orders.cust[pick], t, o_chan[pick], pick, P_RESOLVED, days)

    # bad experiences that made customers leave, about three weeks before their dropout
    left = np.flatnonzero((m.death < days) & (m.death > m.t0))
    had = left[rng.random(len(left)) < _sigmoid(-0.2 - s[left])]
    t = m.death[had] - rng.exponential(TRIGGER_MEAN_DAYS, len(had))
    ok = t > m.t0[had]
    had, t = had[ok], t[ok]
    trigger = np.full(n_c, np.nan)
    trigger[had] = t
    last_order, last_chan = _last_order_before(orders, o_raw, had, t)
    chan = np.where(last_order >= 0, last_chan, m.dom_channel[had]).astype(np.int64)
    # a complaint, or a CSAT answer of 1-2 about the last order (a complaint when there is no recent order)
    complain = (rng.random(len(had)) < P_TRIGGER_COMPLAINT) | (last_order < 0)
    _complaints(add, rng, had[complain], t[complain], chan[complain],
                np.where(last_order[complain] >= 0, last_order[complain], -1), 1.0 - P_TRIGGER_UNRESOLVED, days)
    rest = ~complain
    add(had[rest], t[rest], "survey", rng.integers(1, 3, int(rest.sum())).astype(np.float64), "csat",
        order=last_order[rest], channel=chan_names[chan[rest]])

    frame, row_cust = _frame(parts, start_ts, cust_ids, item_ids, orders.ids)
    truth = {"satisfaction": s, "item_quality": quality, "channel_effect": dict(CHANNEL_EFFECT),
             "dropout_trigger_raw": trigger, "_row_customer": row_cust}
    return frame, truth


def _complaints(add, rng, cust, t, chan, order, p_resolved, days) -> None:
    n = len(cust)
    if not n:
        return
    cat = np.empty(n, dtype=object)
    u = rng.random(n)
    for ch, p in _CATEGORY_P.items():
        sel = chan == ch
        cum = np.cumsum(p)
        cat[sel] = np.array(COMPLAINT_CATEGORIES, dtype=object)[np.minimum(np.searchsorted(cum, u[sel] * cum[-1],
                                                                                            side="right"), 4)]
    resolved = rng.random(n) < p_resolved
    rt = t + np.exp(np.log(RESOLUTION_MEDIAN_DAYS) + 0.8 * rng.normal(0.0, 1.0, n))
    rt = np.where(resolved & (rt < days), rt, np.nan)
    text = np.array([_COMPLAINT_TEXT[c] for c in cat], dtype=object)
    add(cust, t, "complaint", np.full(n, np.nan), None, order=order,
        channel=np.array(_CHANNELS, dtype=object)[chan], category=cat, resolved_raw=rt, text=text)


def _last_order_before(orders: Orders, o_raw: np.ndarray, cust: np.ndarray, t: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Each (customer, time)'s last order before the time, if within 60 days (-1 otherwise), and its channel."""
    if not len(cust):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    span = float(o_raw.max() + 1000.0) if len(o_raw) else 1000.0
    key = orders.cust.astype(np.float64) * span + o_raw
    order = np.argsort(key, kind="stable")
    pos = np.searchsorted(key[order], cust.astype(np.float64) * span + t, side="left") - 1
    ok = pos >= 0
    cand = np.where(ok, order[np.maximum(pos, 0)], -1)
    ok &= (orders.cust[np.maximum(cand, 0)] == cust) & (t - o_raw[np.maximum(cand, 0)] <= 60.0)
    cand = np.where(ok, cand, -1)
    return cand, np.where(ok, orders.channel[np.maximum(cand, 0)], 0).astype(np.int64)


def _frame(parts: list[dict], start_ts: pd.Timestamp, cust_ids: pa.Array, item_ids: pa.Array,
           order_ids: pa.Array) -> tuple[pd.DataFrame, np.ndarray]:
    cols = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in
            ("cust", "t", "kind", "score", "scale", "item", "order", "channel", "category", "resolved_t", "text")}
    sec = _sec(cols["t"]) if len(cols["t"]) else np.zeros(0, np.int64)
    order = np.argsort(sec, kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    sec = sec[order]
    start64 = start_ts.to_datetime64().astype("datetime64[ns]")
    rt = cols["resolved_t"].astype(np.float64)
    has_rt = np.isfinite(rt)
    r_sec = np.where(has_rt, _sec(np.where(has_rt, rt, 0.0)), 0)
    resolved_at = np.where(has_rt, _seconds_to_ts(start64, r_sec), np.datetime64("NaT", "ns"))

    def text_col(values) -> pd.Series:
        return pd.Series(pd.array(list(values), dtype="str"))

    item, od = cols["item"].astype(np.int64), cols["order"].astype(np.int64)
    none = pa.array([None], pa.large_string())
    frame = pd.DataFrame({
        "customer_id": _str_col(cust_ids.take(pa.array(cols["cust"].astype(np.int64)))),
        "timestamp": _seconds_to_ts(start64, sec),
        "kind": text_col(cols["kind"]),
        "score": cols["score"].astype(np.float64),
        "scale": text_col(cols["scale"]),
        "item_id": _str_col(pa.concat_arrays([item_ids, none]).take(pa.array(np.where(item >= 0, item,
                                                                                        len(item_ids))))),
        "order_id": _str_col(pa.concat_arrays([order_ids, none]).take(pa.array(np.where(od >= 0, od,
                                                                                         len(order_ids))))),
        "channel": text_col(cols["channel"]),
        "category": text_col(cols["category"]),
        "resolved": has_rt.astype(bool),
        "resolved_at": resolved_at.astype("datetime64[ns]"),
        "text": text_col(cols["text"]),
    })
    return frame, cols["cust"].astype(np.int64)


# --------------------------------------------------------------------------- points
def _expiry_days(m, orders: Orders, who: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Expiry day of each member's opening balance, drawn given her visits (see the module docstring)."""
    days = int(m.days)
    if days < 2 or not len(who):
        return np.zeros(len(who))
    cand = np.arange(1, days, dtype=np.float64)            # midnights inside the window
    span = float(days + 1000)
    key = np.sort(orders.cust.astype(np.float64) * span + orders.sec / DAY_S)
    out = np.empty(len(who))
    step = max(1, 2_000_000 // len(cand))
    for lo in range(0, len(who), step):
        w = who[lo:lo + step].astype(np.float64)[:, None] * span
        hi_k = np.searchsorted(key, (w + cand[None, :]).ravel(), side="left").reshape(-1, len(cand))
        lo_k = np.searchsorted(key, (w + cand[None, :] - EXPIRY_WINDOW_DAYS).ravel(),
                               side="left").reshape(-1, len(cand))
        logw = (hi_k - lo_k) * np.log1p(EXPIRY_BOOST)
        g = rng.gumbel(size=logw.shape)
        out[lo:lo + step] = cand[np.argmax(logw + g, axis=1)]
    return out


def make_points(m, orders: Orders, feedback: pd.DataFrame | None, fb_cust: np.ndarray | None,
                start_ts: pd.Timestamp, cust_ids: pa.Array) -> tuple[pd.DataFrame, dict]:
    """The points ledger (sorted by time, earn before redeem at one moment) and its truth."""
    rng = m.rng(13)
    days = float(m.days)
    n_c = m.n_c
    member = rng.random(n_c) < MEMBER_SHARE
    valid = POINTS_VALID_DAYS * DAY_S
    # lots: opening balances, order earnings, goodwill points; events in time order per customer
    opening = np.flatnonzero(member & ~m.is_new)
    amount0 = np.round(rng.gamma(2.0, 150.0, len(opening)))
    keep = amount0 > 0
    opening, amount0 = opening[keep], amount0[keep]
    exp_day = _expiry_days(m, orders, opening, rng)
    x0 = (exp_day * DAY_S).astype(np.int64)
    om = member[orders.cust]
    o_idx = np.flatnonzero(om)
    o_pts = np.floor(np.clip(orders.amount[o_idx], 0.0, None)) * orders.multiplier[o_idx]
    g_cust = np.zeros(0, np.int64)
    g_sec = np.zeros(0, np.int64)
    if feedback is not None and len(feedback) and fb_cust is not None:
        res = (feedback["kind"] == "complaint").to_numpy() & feedback["resolved"].to_numpy(dtype=bool)
        res &= member[fb_cust]
        res &= rng.random(len(feedback)) < 0.5
        g_cust = fb_cust[res].astype(np.int64)
        start64 = start_ts.to_datetime64().astype("datetime64[ns]")
        g_sec = ((feedback["resolved_at"].to_numpy()[res] - start64) // np.timedelta64(1, "s")).astype(np.int64)
    # one table of lots: (customer, earn time, expiry, amount, is_order, order number)
    lc = np.concatenate([opening, orders.cust[o_idx], g_cust]).astype(np.int64)
    ls = np.concatenate([x0 - int(valid), orders.sec[o_idx], g_sec]).astype(np.int64)
    lx = np.concatenate([x0, orders.sec[o_idx] + int(valid), g_sec + int(valid)]).astype(np.int64)
    la = np.concatenate([amount0, o_pts, np.full(len(g_cust), GOODWILL_POINTS)])
    lk = np.concatenate([np.zeros(len(opening), np.int8), np.ones(len(o_idx), np.int8),
                         np.full(len(g_cust), 2, np.int8)])
    lo = np.concatenate([np.full(len(opening), -1), o_idx, np.full(len(g_cust), -1)]).astype(np.int64)
    srt = np.lexsort((ls, lc))
    lc, ls, lx, la, lk, lo = lc[srt], ls[srt], lx[srt], la[srt], lk[srt], lo[srt]
    n_l = len(lc)
    first = np.r_[True, lc[1:] != lc[:-1]] if n_l else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    cnt = np.diff(np.r_[starts, n_l])
    owner = np.repeat(np.arange(len(starts)), cnt)
    cum = np.cumsum(la)
    base = np.repeat(np.r_[0.0, cum[starts[1:] - 1]] if len(starts) else np.zeros(0), cnt)
    cumE = cum - base                                        # per-customer cumulative earned
    prevE = cumE - la
    # lot expiries are non-decreasing within a customer (opening first, then 365 days after each earning):
    # soonest-expiring points are the oldest, so a consumption pointer P (points used or expired) suffices
    n_cu = len(starts)
    P = np.zeros(n_cu)
    jexp = np.zeros(n_cu, np.int64)                          # lots expired so far (a prefix)
    big = np.int64(1) << np.int64(36)
    xkey = owner.astype(np.int64) * big + lx                 # customers' lots, expiry-sorted within customer
    ekey = owner.astype(np.int64) * (np.int64(1) << np.int64(40)) + cumE.astype(np.int64)
    rows: list[tuple] = []                                   # (lot-position arrays, kind, amounts, seconds)
    end_sec = int(days * DAY_S)

    def expire_until(cus: np.ndarray, t: np.ndarray) -> None:
        """Write off lots of customers ``cus`` whose expiry is at or before ``t``."""
        j = np.searchsorted(xkey, cus.astype(np.int64) * big + t, side="right") - starts[cus]
        new = j > jexp[cus]
        if not new.any():
            return
        c, jn = cus[new], j[new]
        pos = _ranges(starts[c] + jexp[c], starts[c] + jn)
        p0 = np.repeat(P[c], jn - jexp[c])
        amt = np.clip(cumE[pos] - np.maximum(p0, prevE[pos]), 0.0, la[pos])
        rows.append((pos, "expire", -amt, lx[pos]))
        P[c] = np.maximum(P[c], cumE[starts[c] + jn - 1])
        jexp[c] = jn

    rank = np.arange(n_l) - starts[owner] if n_l else np.zeros(0, np.int64)
    for r in range(int(cnt.max()) if n_l else 0):
        at = np.flatnonzero(rank == r)
        cus = owner[at]
        expire_until(cus, ls[at])                           # points are usable strictly before their expiry
        earn = la[at]
        rows.append((at, "earn", earn, ls[at]))
        is_order = lk[at] == 1
        bal = cumE[at] - P[cus]
        # the soonest-expiring lot with points left: the first whose cumulative earnings pass the pointer
        nxt = np.searchsorted(ekey, cus.astype(np.int64) * (np.int64(1) << np.int64(40)) + P[cus].astype(np.int64),
                              side="right")
        soon = (nxt <= at) & (lx[np.minimum(nxt, n_l - 1)] - ls[at] <= EXPIRY_WINDOW_DAYS * DAY_S)
        u = rng.random(len(at))
        all_in = is_order & soon & (bal >= 100) & (u < 0.8)
        block = is_order & ~all_in & (bal >= 1000) & (u < 0.35)
        red = np.where(all_in, np.floor(bal / 100.0) * 100.0, np.where(block, 500.0, 0.0))
        sel = red > 0
        if sel.any():
            rows.append((at[sel], "redeem", -red[sel], ls[at][sel]))
            P[cus[sel]] += red[sel]
    if n_cu:
        expire_until(np.arange(n_cu), np.full(n_cu, end_sec - 1))
    # assemble: earn rows of opening balances / orders / goodwill, redeem and expire rows
    pos = np.concatenate([p for p, *_ in rows]) if rows else np.zeros(0, np.int64)
    kind = np.concatenate([np.full(len(p), k, object) for p, k, *_ in rows]) if rows else np.zeros(0, object)
    delta = np.concatenate([a for *_, a, _s in rows]) if rows else np.zeros(0)
    sec = np.concatenate([s_ for *_, s_ in rows]) if rows else np.zeros(0, np.int64)
    keep = delta != 0
    pos, kind, delta, sec = pos[keep], kind[keep], delta[keep], sec[keep]
    kind = np.where((kind == "earn") & (lk[pos] == 2), "adjust", kind)
    rank_k = np.select([kind == "expire", kind == "earn", kind == "adjust"], [0, 1, 2], 3)  # expiry first
    srt = np.lexsort((rank_k, sec))
    pos, kind, delta, sec, rank_k = pos[srt], kind[srt], delta[srt], sec[srt], rank_k[srt]
    start64 = start_ts.to_datetime64().astype("datetime64[ns]")
    od = np.where((kind == "earn") | (kind == "redeem"), lo[pos], -1)
    none = pa.array([None], pa.large_string())
    expires = np.where((kind == "earn") | (kind == "adjust"), _seconds_to_ts(start64, lx[pos]),
                       np.datetime64("NaT", "ns")).astype("datetime64[ns]")
    frame = pd.DataFrame({
        "customer_id": _str_col(cust_ids.take(pa.array(lc[pos]))),
        "timestamp": _seconds_to_ts(start64, sec),
        "delta": delta.astype(np.float64) + 0.0,
        "reason": pd.Series(pd.array(kind.tolist(), dtype="str")),
        "order_id": _str_col(pa.concat_arrays([orders.ids, none]).take(pa.array(np.where(od >= 0, od,
                                                                                          len(orders.ids))))),
        "expires_at": expires,
    })
    opening_expiry = np.full(n_c, np.datetime64("NaT", "ns"), dtype="datetime64[ns]")
    opening_expiry[opening] = _seconds_to_ts(start64, x0)
    truth = {"points_member": member, "opening_points_expiry": opening_expiry, "expiry_boost": EXPIRY_BOOST,
             "expiry_window_days": EXPIRY_WINDOW_DAYS}
    return frame, truth

