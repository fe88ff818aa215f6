"""Per-customer reasons in marketer words, from LightGBM feature contributions.

LightGBM's ``pred_contrib`` splits each raw score (log-odds) into one
contribution per feature plus a bias. Related features are summed into a
*reason group* (e.g. ``recency_days``, ``overdue_ratio`` and ``recency_share``
all say "it has been long since the last purchase"), the groups are ranked by
contribution, and each is rendered as a sentence from the customer's own
feature values, e.g. "no purchase for 120 days; usually buys every 30".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["reason_group", "render_reason", "top_reasons", "GROUP_TITLES"]

GROUP_TITLES = {
    "recency": "time since last purchase",
    "rhythm": "purchase rhythm",
    "frequency": "number of purchases",
    "recent_activity": "recent activity",
    "spend": "spending",
    "tenure": "time as a customer",
    "expected": "expected purchases",
    "target": "past purchases of the target",
    "repeat_items": "regular re-buys",
    "satisfaction": "satisfaction and complaints",
    "points": "loyalty points",
    "other": "other",
}

_SATISFACTION = ("feedback_responses", "last_score_norm", "mean_score_norm", "score_trend", "detractor",
                 "complaints", "open_complaints", "days_since_complaint", "detractor_answers_91d", "complaints_91d")


def reason_group(feature: str) -> str:
    """The reason group of a feature name."""
    f = feature
    if f.startswith("target_"):
        return "target"
    if f in ("recency_days", "overdue_ratio", "overdue_days", "recency_share"):
        return "recency"
    if f.startswith("gap_"):
        return "rhythm"
    if f in ("purchases", "purchase_rate_30d", "profile_orders", "profile_lines"):
        return "frequency"
    if f.startswith(("purchases_", "activity_")):
        return "recent_activity"
    if f.startswith(("spend", "units_", "profile_aov", "profile_items_per_order", "profile_trend",
                     "profile_monetary")):
        return "spend"
    if f == "tenure_days":
        return "tenure"
    if f.startswith("bgnbd_"):
        return "expected"
    if f.startswith("repeat_item"):
        return "repeat_items"
    if f.removeprefix("profile_") in _SATISFACTION:
        return "satisfaction"
    if f.removeprefix("profile_").startswith("points_"):
        return "points"
    return "other"


def _num(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "?"
    return f"{v:,.0f}"


def _money(v: float | None, currency: str) -> str:
    if v is None or not np.isfinite(v):
        return "?"
    return f"{currency}{v:,.0f}" if abs(v) >= 10 or v == 0 else f"{currency}{v:,.2f}"


def _plural(n: float, word: str) -> str:
    n_int = int(round(n)) if np.isfinite(n) else 0
    return f"{n_int:,} {word}" + ("" if n_int == 1 else "s")


def _span(days: float) -> str:
    if not np.isfinite(days):
        return "?"
    if days >= 60:
        return _plural(days / 30.4375, "month")
    if days >= 14:
        return _plural(days / 7.0, "week")
    return _plural(days, "day")


def _windows(v: Mapping[str, float], prefix: str) -> list[int]:
    out = []
    for k in v:
        if k.startswith(prefix) and k.endswith("d"):
            try:
                out.append(int(k[len(prefix):-1]))
            except ValueError:
                pass
    return sorted(out)


def render_reason(group: str, v: Mapping[str, float], *, horizon_days: float = 90.0,
                  currency: str = "$", target_label: str = "the target", raises: bool = True) -> str:
    """One sentence describing ``group`` with the customer's values ``v`` (feature -> value); ``raises``:
    whether the group pushes the prediction up (the sentence then names what is worrying about it)."""
    g = v.get
    rec, gap = g("recency_days", math.nan), g("gap_mean_days", math.nan)
    n = g("purchases", math.nan)
    if group == "recency":
        if np.isfinite(gap):
            lead = "no purchase for" if rec > gap else "last purchase"
            tail = "" if rec > gap else " ago"
            return f"{lead} {_num(rec)} days{tail}; usually buys every {_num(gap)}"
        return f"only one purchase, {_num(rec)} days ago"
    if group == "rhythm":
        if not np.isfinite(gap):
            return "no repeat purchase yet"
        sd = g("gap_std_days", math.nan)
        txt = f"buys about every {_num(gap)} days"
        if np.isfinite(sd) and gap > 0 and sd > 0.75 * gap:
            txt += " but irregularly"
        last = g("gap_last_days", math.nan)
        if np.isfinite(last) and last > 1.5 * gap:
            txt += f"; the last gap was {_num(last)} days"
        return txt
    if group == "frequency":
        return f"{_plural(n, 'purchase')} in {_span(g('tenure_days', math.nan))} as a customer"
    if group == "recent_activity":
        ws = _windows(v, "purchases_")
        if not ws:
            return "recent activity"
        parts = [f"{_plural(g(f'purchases_{w}d', 0.0), 'purchase')} in the last {_span(w)}" for w in ws[-2:]]
        act = g(f"activity_{ws[-1]}d", math.nan)
        txt = ", ".join(parts)
        if np.isfinite(act) and n > 1:
            txt += f" ({act:.0%} of the usual pace)"
        return txt
    if group == "spend":
        trend = g("spend_trend", math.nan)
        if np.isfinite(trend) and abs(trend) >= 0.2 and "spend_91d" in v and "spend_182d" in v:
            recent = g("spend_91d", 0.0)
            prev = g("spend_182d", 0.0) - recent
            word = "spending down" if trend < 0 else "spending up"
            return (f"{word}: {_money(recent, currency)} in the last 13 weeks vs "
                    f"{_money(prev, currency)} in the 13 weeks before")
        return (f"spends about {_money(g('spend_per_purchase', math.nan), currency)} per purchase, "
                f"{_money(g('spend_total', math.nan), currency)} in total")
    if group == "tenure":
        return f"customer for {_span(g('tenure_days', math.nan))}"
    if group == "expected":
        e = g("bgnbd_expected", math.nan)
        pa = g("bgnbd_p_alive", math.nan)
        txt = f"purchase pattern predicts {e:.1f} purchases in the next {_span(horizon_days)}"
        if np.isfinite(pa) and n > 1:
            txt += f" ({pa:.0%} likely still active)"
        return txt
    if group == "repeat_items":
        k = g("repeat_items", 0.0)
        if not k:
            return "no item bought regularly"
        over, due = g("repeat_items_overdue", 0.0), g("repeat_item_due_days", math.nan)
        nxt = g("repeat_item_next_due_days", math.nan)
        if over and np.isfinite(due) and raises:
            return f"{_plural(over, 'regular re-buy')} overdue (by up to {_num(-due)} days)"
        if not raises:
            return f"buys {_plural(k, 'item')} regularly" + (f", next due in {_num(nxt)} days"
                                                             if np.isfinite(nxt) and nxt >= 0 else "")
        if np.isfinite(nxt):
            return f"next regular re-buy due in {_num(nxt)} days"
        return f"{_plural(k, 'item')} bought regularly"
    if group == "satisfaction":
        parts = []
        opened = g("open_complaints", 0.0)
        if np.isfinite(opened) and opened > 0:
            since = g("days_since_complaint", math.nan)
            parts.append(f"{_plural(opened, 'open complaint')}" + (f", the last {_num(since)} days ago"
                                                                  if np.isfinite(since) else ""))
        elif np.isfinite(g("days_since_complaint", math.nan)):
            parts.append(f"complained {_num(g('days_since_complaint', math.nan))} days ago")
        last = g("last_score_norm", math.nan)
        if np.isfinite(last):
            word = "a detractor answer" if g("detractor", 0.0) else f"{last:.0%} of the scale"
            parts.append(f"last satisfaction score {word}")
            trend = g("score_trend", math.nan)
            if np.isfinite(trend) and trend <= -0.2:
                parts.append("scores falling")
        if not parts:
            return "no satisfaction answer yet"
        return "; ".join(parts)
    if group == "points":
        bal = g("points_balance", math.nan)
        soon, days = g("points_expiring_30d", math.nan), g("points_next_expiry_days", math.nan)
        if np.isfinite(soon) and soon > 0:
            return f"{_num(soon)} points expire within 30 days (balance {_num(bal)})"
        if np.isfinite(bal) and bal > 0:
            return f"{_num(bal)} points, next expiry in {_num(days)} days" if np.isfinite(days) else \
                f"{_num(bal)} loyalty points"
        return "no loyalty points to use"
    if group == "target":
        k = g("target_purchases", 0.0)
        if not k:
            return f"never bought {target_label}"
        return (f"bought {target_label} on {_plural(k, 'day')}, last {_num(g('target_recency_days', math.nan))} "
                f"days ago ({g('target_spend_share', 0.0):.0%} of spend)")
    return group


def top_reasons(contrib: np.ndarray, values: np.ndarray, feature_names: list[str], *, n: int = 3,
                positive_only: bool = True, horizon_days: float = 90.0, currency: str = "$",
                target_label: str = "the target", direction: str = "up",
                describe_other: Callable[[str, float], str] | None = None) -> list[list[dict]]:
    """Top ``n`` reasons per row.

    ``contrib``: (rows, features + 1) from ``booster.predict(pred_contrib=True)``
    (last column = bias); ``values``: (rows, features) feature values.
    Features of the same group are summed; groups named "other" are rendered
    one feature at a time as "<feature> = <value>".

    ``direction``: ``"up"`` -- the groups pushing the prediction up (with
    ``positive_only``, only those); ``"predicted"`` -- the groups pushing it
    the way the row's prediction went from the average (the bias): for a
    row predicted above average the ones raising it, for a row below it the
    ones lowering it (prefixed "lowers it:"), so a low-risk customer is never
    given a worrying reason.
    Each reason: ``{"reason": text, "group": group, "contribution": float, "raises": bool}``.
    """
    if direction not in ("up", "predicted"):
        raise ValueError(f"direction must be 'up' or 'predicted', got {direction!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0 reasons, got {n}")
    contrib = np.atleast_2d(np.asarray(contrib, dtype=np.float64))
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    k = len(feature_names)
    if contrib.shape[1] != k + 1 or values.shape[1] != k:
        raise ValueError("contributions / values do not match the feature names")
    keys = []
    for f in feature_names:
        gname = reason_group(f)
        keys.append(f"other:{f}" if gname == "other" else gname)
    uniq = list(dict.fromkeys(keys))
    gidx = np.array([uniq.index(kk) for kk in keys])
    G = np.zeros((k, len(uniq)))
    G[np.arange(k), gidx] = 1.0
    gc = contrib[:, :k] @ G
    out: list[list[dict]] = []
    for r in range(len(contrib)):
        sign = 1.0 if direction == "up" or gc[r].sum() >= 0 else -1.0
        order = np.argsort(-sign * gc[r], kind="stable")
        vals = dict(zip(feature_names, values[r].tolist()))
        reasons = []
        for j in order[:n]:
            c = float(gc[r, j])
            if (positive_only or direction == "predicted") and sign * c <= 0:
                break
            key = uniq[j]
            if key.startswith("other:"):
                f = key[6:]
                text = describe_other(f, vals[f]) if describe_other else \
                    f"{f.removeprefix('profile_').replace('_', ' ')} = {vals[f]:.3g}"
                group = "other"
            else:
                text = render_reason(key, vals, horizon_days=horizon_days, currency=currency,
                                     target_label=target_label, raises=c > 0)
                group = key
            if c <= 0 and direction == "predicted":
                text = "lowers it: " + text
            reasons.append({"reason": text, "group": group, "contribution": round(c, 4), "raises": c > 0})
        out.append(reasons)
    return out
