"""The data contract: canonical tables and columns.

Every table that enters personalize is renamed to these canonical columns
(users keep their own names through a column mapping) and cast to these
types. Ids are always strings (``"00042"`` stays ``"00042"``); timestamps are
timezone-naive ``datetime64[ns]`` (timezone-aware input is converted to UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# kinds: "id" (string, never empty), "str" (optional string), "time", "float", "int", "bool"


@dataclass(frozen=True)
class TableSchema:
    name: str
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    key: str | None = None

    @property
    def columns(self) -> dict[str, str]:
        return {**self.required, **self.optional}


TRANSACTIONS = TableSchema(
    name="transactions",
    required={
        "customer_id": "id",
        "item_id": "id",
        "timestamp": "time",
        "quantity": "float",
        "price": "float",  # unit price
    },
    optional={
        "order_id": "str",
        "channel": "str",
        "store_id": "str",
        "coupon_id": "str",
        "discount": "float",  # discount amount on the line, currency
    },
)

ITEMS = TableSchema(
    name="items",
    required={"item_id": "id"},
    optional={
        "category": "str",
        "brand": "str",
        "price": "float",
        "in_stock": "bool",
        "margin": "float",  # fraction of price, 0..1
        "repeatable": "bool",  # consumable: may be recommended again after purchase
        "description": "str",
    },
    key="item_id",
)

CUSTOMERS = TableSchema(
    name="customers",
    required={"customer_id": "id"},
    optional={
        "signup_date": "time",
        "birth_date": "time",
        "region": "str",
        "consent_email": "bool",
        "consent_sms": "bool",
        "consent_personalization": "bool",
        "suppressed": "bool",  # global suppression list: never contacted or offered anything
    },
    key="customer_id",
)

OFFER_KINDS = ("percent_off", "amount_off", "spend_get_off", "points_multiplier", "free_shipping")

OFFERS = TableSchema(
    name="offers",
    required={"offer_id": "id", "kind": "str", "value": "float"},
    optional={
        "min_spend": "float",
        "target_category": "str",
        "target_items": "str",  # '|'-separated item ids
        "unit_cost": "float",
        "eligibility": "str",  # JSON object, e.g. {"segments": [...], "tiers": [...]}
        "valid_from": "time",
        "valid_to": "time",
        "per_customer_cap": "int",
    },
    key="offer_id",
)

EXPOSURES = TableSchema(
    name="exposures",
    required={"customer_id": "id", "exposed_at": "time"},
    optional={
        "offer_id": "str",  # empty / None = control group
        "campaign_id": "str",
        "randomized": "bool",
        "converted": "bool",
        "revenue": "float",
    },
)

#: feedback kinds, and the scales a score may be on: scale -> (lowest, highest)
FEEDBACK_KINDS = ("survey", "rating", "review", "complaint")
SCORE_SCALES = {"csat": (1.0, 5.0), "nps": (0.0, 10.0), "stars": (1.0, 5.0)}

FEEDBACK = TableSchema(
    name="feedback",
    required={"customer_id": "id", "timestamp": "time", "kind": "str"},
    optional={
        "score": "float",
        "scale": "str",  # csat (1-5) | nps (0-10) | stars (1-5); ratings and reviews default to stars
        "item_id": "str",
        "order_id": "str",
        "channel": "str",
        "category": "str",  # what a complaint is about (delivery, billing, ...)
        "resolved": "bool",
        "resolved_at": "time",
        "text": "str",
    },
)

#: why a points balance changed
POINTS_REASONS = ("earn", "redeem", "expire", "adjust")

POINTS = TableSchema(
    name="points",
    required={"customer_id": "id", "timestamp": "time", "delta": "float", "reason": "str"},
    optional={
        "order_id": "str",
        "expires_at": "time",  # when the points of an earn (or positive adjust) row expire
    },
)

TABLES = {s.name: s for s in (TRANSACTIONS, ITEMS, CUSTOMERS, OFFERS, EXPOSURES, FEEDBACK, POINTS)}
