"""Contact policy: which customer may get which offer, now, and why not.

Every "not eligible" carries one machine-readable reason, the first that
applies in this order (so a customer without consent is ``no_consent`` even
if the offer also expired):

``erased`` / ``suppressed``   the customer asked to be forgotten / is on the global suppression list
``no_consent``                no consent for the channel (e-mail and SMS need an explicit yes; on-site
                              channels need personalization not refused) -- no consent, no offer, ever
``channel``                   the offer is not for this channel
``not_started`` / ``expired`` outside the offer's validity window
``segment`` / ``tier`` / ``lifecycle`` / ``category`` / ``orders``   the offer's eligibility rules
``no_affinity``               a targeted offer (category or items) for a customer who never bought there
                              and has no recommendation there (``ContactPolicy.require_affinity``)
``cap_reached``               the customer has had this offer ``per_customer_cap`` times
``cooldown``                  the customer was contacted less than ``cooldown_days`` ago
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from personalize._params import Params
from personalize.customers.consent import SUPPRESSED, channel_allowed, suppressed_mask
from personalize.errors import ParameterError
from personalize.offers.catalog import CHANNELS, OfferCatalog

__all__ = ["ContactPolicy", "CustomerState", "eligibility", "REASONS"]

REASONS = ("eligible", "erased", "suppressed", "no_consent", "channel", "not_started", "expired", "segment", "tier",
           "lifecycle", "category", "orders", "no_affinity", "cap_reached", "cooldown")
_R = {name: np.int8(i) for i, name in enumerate(REASONS)}

class ContactPolicy(Params):
    """How often a customer may be contacted, and whether targeted offers need affinity.

    ``cooldown_days``: no offer to a customer contacted (exposed to any offer)
    less than this many days ago (0 = no cooldown). ``require_affinity``: a
    targeted offer only for customers who bought in its category or items, or
    have them among their recommendations.
    """

    def __init__(self, *, cooldown_days: float = 7.0, require_affinity: bool = True) -> None:
        self.cooldown_days = cooldown_days
        self.require_affinity = require_affinity

    def check(self) -> None:
        if isinstance(self.cooldown_days, bool) or not isinstance(self.cooldown_days, (int, float)) \
                or self.cooldown_days < 0:
            raise ParameterError(f"cooldown_days must be a number >= 0, got {self.cooldown_days!r}")


@dataclass
class CustomerState:
    """What the policy needs about some customers, as arrays aligned with ``customer_ids``."""

    customer_ids: np.ndarray
    segment: np.ndarray | None = None
    tier: np.ndarray | None = None
    lifecycle: np.ndarray | None = None
    favourite_category: np.ndarray | None = None
    orders: np.ndarray | None = None
    consent: dict[str, np.ndarray | None] = field(default_factory=dict)  # column -> bool array or None (unknown)
    suppressed: np.ndarray | None = None
    erased: np.ndarray | None = None
    affinity: np.ndarray | None = None          # (customers, offers) bool: bought or recommended there
    exposures: np.ndarray | None = None         # (customers, offers) times exposed
    days_since_contact: np.ndarray | None = None  # inf when never contacted

    def __len__(self) -> int:
        return len(self.customer_ids)

    @classmethod
    def from_table(cls, table: pd.DataFrame, rows: np.ndarray | None = None, **arrays) -> "CustomerState":
        """State from a customer table (``personalize.customers.customer_table`` columns), rows ``rows``."""
        t = table if rows is None else table.iloc[rows]

        def col(name, dtype=object):
            return t[name].to_numpy(dtype=dtype) if name in t.columns else None

        consent = {}
        for c in ("consent_email", "consent_sms", "consent_personalization"):
            consent[c] = None if c not in t.columns else t[c].to_numpy(dtype=object)
        orders = t["orders"].to_numpy(dtype=np.float64, na_value=0.0) if "orders" in t.columns else None
        return cls(customer_ids=t["customer_id"].to_numpy(dtype=object), segment=col("segment"), tier=col("tier"),
                   lifecycle=col("lifecycle"), favourite_category=col("top_category"), orders=orders,
                   consent=consent, suppressed=suppressed_mask(t) if SUPPRESSED in t.columns else None, **arrays)


def eligibility(catalog: OfferCatalog, state: CustomerState, *, when, channel: str,
                policy: ContactPolicy | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(eligible, reason)``: ``(customers, offers)`` bool and reason codes (index into :data:`REASONS`).

    ``when=None`` leaves the validity windows out (for the static part of a precomputed policy).
    """
    policy = policy or ContactPolicy()
    policy.check()
    if channel not in CHANNELS:
        raise ParameterError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
    n, m = len(state), len(catalog)
    reason = np.zeros((n, m), dtype=np.int8)

    def mark(mask_rows_offers: np.ndarray, name: str) -> None:
        free = reason == 0
        reason[free & mask_rows_offers] = _R[name]

    ones = np.ones((1, m), bool)
    if state.erased is not None:
        mark(state.erased[:, None] & ones, "erased")
    if state.suppressed is not None:
        mark(state.suppressed[:, None] & ones, "suppressed")
    ok = channel_allowed(state.consent, channel, n)
    mark(~ok[:, None] & ones, "no_consent")
    for j, rules in enumerate(catalog.rules):
        if rules.channels is not None and channel not in rules.channels:
            mark(np.eye(1, m, j, dtype=bool).repeat(n, 0), "channel")
    if when is not None:
        not_started, expired = catalog.active(when)
        mark(np.broadcast_to(not_started[None, :], (n, m)), "not_started")
        mark(np.broadcast_to(expired[None, :], (n, m)), "expired")
    for j, rules in enumerate(catalog.rules):
        for name, values, have in (("segment", rules.segments, state.segment), ("tier", rules.tiers, state.tier),
                                   ("lifecycle", rules.lifecycle, state.lifecycle),
                                   ("category", rules.categories, state.favourite_category)):
            if values is None:
                continue
            fails = np.ones(n, bool) if have is None else ~pd.Series(have, dtype=object).isin(values).to_numpy()
            sel = np.zeros((n, m), bool)
            sel[:, j] = fails
            mark(sel, name)
        if rules.min_orders is not None or rules.max_orders is not None:
            o = state.orders if state.orders is not None else np.zeros(n)
            fails = np.zeros(n, bool)
            if rules.min_orders is not None:
                fails |= o < rules.min_orders
            if rules.max_orders is not None:
                fails |= o > rules.max_orders
            sel = np.zeros((n, m), bool)
            sel[:, j] = fails
            mark(sel, "orders")
    if policy.require_affinity and catalog.targeted.any():
        aff = state.affinity if state.affinity is not None else np.zeros((n, m), bool)
        mark(catalog.targeted[None, :] & ~aff, "no_affinity")
    if state.exposures is not None:
        mark(state.exposures >= catalog.cap[None, :], "cap_reached")
    if state.days_since_contact is not None and policy.cooldown_days > 0:
        mark((state.days_since_contact < policy.cooldown_days)[:, None] & ones, "cooldown")
    return reason == 0, reason
