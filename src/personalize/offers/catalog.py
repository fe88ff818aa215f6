"""The offer catalog: what each offer gives, costs, targets and who it is for.

Built from the Dataset's validated ``offers`` table (the data contract checks
kinds, amounts and validity windows); :meth:`OfferCatalog.from_frame` also
parses each offer's ``eligibility`` rules and refuses a bad one with a
:class:`DataError` naming the offer and the field.

Eligibility rules (a JSON object per offer; every key optional; lists are OR-ed)::

    {"segments": ["Champions", "Loyal"], "tiers": ["Gold"], "lifecycle": ["active", "at-risk"],
     "categories": ["grocery"], "channels": ["email", "web"], "min_orders": 2, "max_orders": 10}

``categories`` keeps customers whose favourite category is one of them;
``channels`` limits the channels the offer may be shown in.

What an accepted offer costs the retailer (:meth:`OfferCatalog.redemption_cost`),
for a customer whose basket is worth ``b`` (at least the offer's
``min_spend``, which the customer has to reach):

=================  =========================================================
percent_off        ``value / 100 * b * share`` (``share``: the part of the
                   basket the offer applies to, the customer's share of
                   purchases in the target category or items; 1 untargeted)
amount_off         ``min(value, b)``
spend_get_off      ``value``
points_multiplier  0 (its cost is the points liability in ``unit_cost``)
free_shipping      ``value`` (the fee waived)
=================  =========================================================

plus ``unit_cost``: handling for every kind, the points liability for points (priced per redemption).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalize.data.schema import OFFER_KINDS
from personalize.customers.consent import OFFER_CHANNEL_CONSENT
from personalize.errors import DataError

__all__ = ["OfferCatalog", "Rules", "CHANNELS", "RULE_KEYS"]

CHANNELS = tuple(OFFER_CHANNEL_CONSENT)  # email, sms, web, app
RULE_KEYS = ("segments", "tiers", "lifecycle", "categories", "channels", "min_orders", "max_orders")
_LIST_RULES = ("segments", "tiers", "lifecycle", "categories", "channels")


@dataclass(frozen=True)
class Rules:
    """One offer's eligibility rules (None = no restriction)."""

    segments: tuple[str, ...] | None = None
    tiers: tuple[str, ...] | None = None
    lifecycle: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    min_orders: float | None = None
    max_orders: float | None = None

    @classmethod
    def parse(cls, text, offer_id: str) -> "Rules":
        if text is None or (isinstance(text, float) and np.isnan(text)) or str(text).strip() in ("", "{}"):
            return cls()
        try:
            d = json.loads(text)
        except ValueError:
            raise DataError(f"offer {offer_id!r}: eligibility is not valid JSON", table="offers",
                            column="eligibility") from None
        if not isinstance(d, dict):
            raise DataError(f"offer {offer_id!r}: eligibility must be a JSON object", table="offers",
                            column="eligibility")
        unknown = sorted(set(d) - set(RULE_KEYS))
        if unknown:
            raise DataError(f"offer {offer_id!r}: unknown eligibility rule(s) {unknown}; known: {list(RULE_KEYS)}",
                            table="offers", column="eligibility")
        out = {}
        for key in _LIST_RULES:
            v = d.get(key)
            if v is None:
                continue
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
                raise DataError(f"offer {offer_id!r}: eligibility '{key}' must be a non-empty list of names",
                                table="offers", column="eligibility")
            if key == "channels":
                bad = [x for x in v if x not in CHANNELS]
                if bad:
                    raise DataError(f"offer {offer_id!r}: unknown channel(s) {bad}; channels: {list(CHANNELS)}",
                                    table="offers", column="eligibility")
            out[key] = tuple(v)
        for key in ("min_orders", "max_orders"):
            v = d.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise DataError(f"offer {offer_id!r}: eligibility '{key}' must be a number >= 0", table="offers",
                                column="eligibility")
            out[key] = float(v)
        if out.get("min_orders") is not None and out.get("max_orders") is not None \
                and out["min_orders"] > out["max_orders"]:
            raise DataError(f"offer {offer_id!r}: eligibility min_orders is above max_orders", table="offers",
                            column="eligibility")
        return cls(**out)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v is not None}


class OfferCatalog:
    """Offers as aligned arrays (``offer_ids[j]`` is offer ``j``) plus their parsed rules."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)
        f = self.frame
        self.offer_ids = f["offer_id"].astype(str).to_numpy(dtype=object)
        self.kinds = f["kind"].astype(str).to_numpy(dtype=object)
        self.kind_codes = np.array([OFFER_KINDS.index(k) for k in self.kinds], dtype=np.int64)
        self.value = f["value"].to_numpy(dtype=np.float64)
        self.min_spend = self._num("min_spend", 0.0)
        self.unit_cost = self._num("unit_cost", 0.0)
        self.cap = self._num("per_customer_cap", np.inf)
        self.cap[~np.isfinite(self.cap)] = np.inf
        self.valid_from = self._time("valid_from")
        self.valid_to = self._time("valid_to")
        self.target_category = [None if pd.isna(v) else str(v) for v in
                                (f["target_category"] if "target_category" in f else [None] * len(f))]
        self.target_items = [tuple(str(v).split("|")) if isinstance(v, str) and v else () for v in
                             (f["target_items"] if "target_items" in f else [None] * len(f))]
        self.rules = [Rules.parse(e, o) for e, o in zip(
            f["eligibility"] if "eligibility" in f else [None] * len(f), self.offer_ids)]
        self.targeted = np.array([c is not None or bool(i) for c, i in zip(self.target_category, self.target_items)])
        self.index = {o: j for j, o in enumerate(self.offer_ids.tolist())}
        self._words = [self._describe(j) for j in range(len(self.offer_ids))]
        self._active_at: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

    def _num(self, col: str, default: float) -> np.ndarray:
        if col not in self.frame:
            return np.full(len(self.frame), default)
        return self.frame[col].to_numpy(dtype=np.float64, na_value=default)

    def _time(self, col: str) -> np.ndarray:
        if col not in self.frame:
            return np.full(len(self.frame), np.datetime64("NaT"), dtype="datetime64[ns]")
        return self.frame[col].to_numpy(dtype="datetime64[ns]")

    @classmethod
    def from_frame(cls, offers: pd.DataFrame | None) -> "OfferCatalog":
        """The catalog of a Dataset's validated ``offers`` table (a clear error when there is none)."""
        if offers is None or not len(offers):
            raise DataError("no offers: load an offer catalog (--offers PATH)", table="offers")
        return cls(offers)

    def __len__(self) -> int:
        return len(self.offer_ids)

    def basket(self, aov: np.ndarray) -> np.ndarray:
        """``(customers, offers)`` basket values: the customer's typical order, at least each offer's min spend."""
        return np.maximum(np.asarray(aov, np.float64)[:, None], self.min_spend[None, :])

    def redemption_cost(self, basket: np.ndarray, offers: np.ndarray, share: np.ndarray | None = None) -> np.ndarray:
        """Cost to the retailer of one redemption of offer ``offers`` on a basket worth ``basket`` (arrays of
        one shape, e.g. pairs, or ``(customers, 1)`` against ``(1, offers)``); see the module docstring."""
        b = np.asarray(basket, np.float64)
        o = np.asarray(offers, np.int64)
        b, o = np.broadcast_arrays(b, o)
        s = np.ones_like(b) if share is None else np.broadcast_to(np.asarray(share, np.float64), b.shape)
        code = self.kind_codes[o]
        value, unit = self.value[o], self.unit_cost[o]
        cost = np.select(
            [code == OFFER_KINDS.index("percent_off"), code == OFFER_KINDS.index("amount_off"),
             code == OFFER_KINDS.index("points_multiplier")],
            [value / 100.0 * b * s, np.minimum(value, b), np.zeros_like(b)], default=value)
        return cost + unit

    def active(self, when: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        """(not started yet, expired) masks over the offers at ``when`` (the last answer is reused within the
        same second: every request of the service asks about "now")."""
        ns = pd.Timestamp(when).value
        cached = self._active_at
        if cached is not None and cached[0] == ns // 1_000_000_000:
            return cached[1]
        t = np.datetime64(ns, "ns")
        not_started = ~np.isnat(self.valid_from) & (self.valid_from > t)
        expired = ~np.isnat(self.valid_to) & (self.valid_to < t)
        if ns % 1_000_000_000 == 0:  # only whole-second times are cached: any other is answered exactly
            self._active_at = (ns // 1_000_000_000, (not_started, expired))
        return not_started, expired

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def describe(self, j: int) -> str:
        """An offer in words, e.g. '10% off', '7 off on orders of 20+'."""
        return self._words[j]

    def _describe(self, j: int) -> str:
        k, v, ms = self.kinds[j], self.value[j], self.min_spend[j]
        target = self.target_category[j] or ("selected items" if self.target_items[j] else None)
        text = {"percent_off": f"{v:g}% off", "amount_off": f"{v:g} off", "spend_get_off": f"{v:g} off",
                "points_multiplier": f"{v:g}x points", "free_shipping": "free shipping"}[k]
        if ms > 0:
            text += f" on orders of {ms:g}+"
        if target:
            text += f" ({target})"
        return text
