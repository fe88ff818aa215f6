"""Request and response models of the HTTP API."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def _encodable(v: str) -> str:
    """Ids must be real text: a lone surrogate (valid JSON, invalid Unicode) can be neither stored nor sent."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return v


Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$"), AfterValidator(_encodable)]
#: how far in the future an event may be dated (the data contract's tolerance for clock skew)
FUTURE_TOLERANCE = dt.timedelta(days=1)
MAX_K = 100          # hard caps in the schema; the settings may set lower limits
MAX_LIST = 1000


class RecItem(BaseModel):
    item_id: str
    score: float = Field(description="relevance in [0, 1], comparable across sources: the share of the source's "
                                     "scores (over every customer's candidates) at or below this one")
    raw_score: float = Field(description="the source's own score (an ALS dot product, a popularity count, ...)")
    rank: int
    source: str = Field(description="what produced it: the model (als, twostage, ...), or a fallback (trending, "
                                    "popular); ':opt_out' when the customer refused personalization")


class RecommendationsOut(BaseModel):
    customer_id: str
    items: list[RecItem]
    model_version: str
    fallback: bool = Field(description="true when the customer is unknown to the model and a fallback answered")
    note: str | None = Field(None, description="set when fewer than k items match the filters")


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ids: list[Id] = Field(min_length=1, max_length=MAX_LIST, description="items in the session or cart")
    k: int = Field(10, ge=1, le=MAX_K)
    category: list[Id] | None = Field(None, max_length=100)
    in_stock: bool | None = None


class SessionOut(BaseModel):
    items: list[RecItem]
    model_version: str
    fallback: bool


class SimilarItem(BaseModel):
    item_id: str
    score: float = Field(description="similarity as a percentile in [0, 1] of the model's similarities")
    raw_score: float = Field(description="the model's own similarity")
    rank: int


class SimilarOut(BaseModel):
    item_id: str
    items: list[SimilarItem]
    model_version: str


Scalar = str | float | int | bool | None


class RFMOut(BaseModel):
    R: int | None = Field(None, description="recency score 1-5 (5 = most recent)")
    F: int | None = Field(None, description="frequency score 1-5")
    M: int | None = Field(None, description="monetary score 1-5")
    score: str | None = Field(None, description="the three scores as one code, e.g. '545'")
    recency_days: float | None = None
    orders: float | None = None
    monetary: float | None = None


class CLVOut(BaseModel):
    clv: float | None = Field(None, description="BG/NBD x Gamma-Gamma CLV, discounted")
    clv_simple: float | None = Field(None, description="frequency x order value x retention")
    p_alive: float | None = None
    expected_purchases: float | None = None
    expected_spend: float | None = Field(None, description="expected spend per purchase")


class ChurnOut(BaseModel):
    probability: float = Field(ge=0, le=1, description="calibrated P(no purchase in the horizon)")
    band: str | None = None
    reasons: list[str]


class ChurnRiskOut(ChurnOut):
    customer_id: str
    model_version: str
    as_of: str | None = Field(None, description="scores use data strictly before this time")
    horizon_days: float | None = Field(None, description="churn = no purchase in this many days after as_of")


class ProfileOut(BaseModel):
    customer_id: str
    known_to_recommender: bool
    distinct_items_bought: int
    updated_since_publish: bool
    as_of: str | None = None
    segment: str | None = None
    lifecycle: str | None = None
    tier: str | None = None
    rfm: RFMOut | None = None
    clv: CLVOut | None = None
    churn: ChurnOut | None = Field(None, description="present when the bundle has a churn model")
    attributes: dict[str, Scalar]
    model_version: str


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["purchase", "view", "add_to_cart", "exposure", "redemption"] = Field(
        description="exposure: an offer or coupon was shown or sent; redemption: it was used (both need offer_id)")
    customer_id: Id
    item_id: Id | None = Field(None, description="required for purchase, view and add_to_cart")
    offer_id: Id | None = Field(None, description="required for exposure and redemption: the catalog's offer id")
    quantity: float = Field(1.0, gt=0, le=1e6)
    price: float | None = Field(None, ge=0, le=1e9)
    timestamp: dt.datetime | None = Field(None, description="when it happened (default: when received); at most "
                                                            "one day in the future")
    order_id: Id | None = Field(None, description="with item_id, makes a retried order line idempotent")
    event_id: Id | None = Field(None, description="idempotency key: an event with a stored event_id is "
                                                  "acknowledged again, not stored twice")

    @field_validator("quantity", "price")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("timestamp")
    @classmethod
    def _sane_time(cls, v: dt.datetime | None) -> dt.datetime | None:
        if v is None:
            return v
        if v.year < 1970 or v.year > 2200:
            raise ValueError("timestamp out of range (1970..2200)")
        if v.tzinfo is not None:
            try:
                v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            except (OverflowError, ValueError) as exc:
                raise ValueError("timestamp out of range") from exc
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        if v > now + FUTURE_TOLERANCE:
            raise ValueError(f"timestamp is more than {FUTURE_TOLERANCE.days} day in the future")
        return v


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=MAX_LIST)


class EventResult(BaseModel):
    index: int = Field(description="position of the event in the request")
    id: int | None = Field(None, description="the stored event's id (also for a duplicate); None when not stored")
    status: Literal["applied", "stored", "duplicate", "ignored"] = Field(
        description="applied: stored and reflected at once; stored: stored, nothing to apply (a view, or an item "
                    "the served model does not know yet); duplicate: already stored, not stored twice; "
                    "ignored: not stored")
    reason: str | None = Field(None, description="why it was not applied: view_event, unknown_item, "
                                                 "unknown_offer, no_offers_in_bundle, duplicate, erased_customer")


class EventsOut(BaseModel):
    accepted: int = Field(description="events stored by this request (duplicates excluded)")
    ids: list[int]
    purchases_applied: int = Field(description="purchases reflected in recommendations at once")
    offer_events_applied: int = Field(0, description="exposures and redemptions counted against caps and "
                                                     "cooldowns at once")
    results: list[EventResult]


class ModelOut(BaseModel):
    version: str
    manifest: dict[str, Any]
    live_customers: int


class WorkerOut(BaseModel):
    pid: int
    version: str | None
    seconds_ago: float = Field(description="age of the worker's last heartbeat")


class ReloadOut(BaseModel):
    previous: str | None
    current: str
    changed: bool
    workers: list[WorkerOut] = Field(description="every live worker process and the version it serves")
    lagging: list[WorkerOut] = Field(description="workers not yet serving `current` when the answer was sent")


class ForgetOut(BaseModel):
    customer_id: str
    events_deleted: int
    erased: bool = True


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    model_version: str
    follows_current: bool = Field(description="false while the store's CURRENT bundle cannot be loaded and an "
                                              "earlier version is served")


class ErrorOut(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found, invalid_request, unauthorized")
    detail: str = Field(description="what went wrong, in words")
    field: str | None = Field(None, description="where: the parameter or body field at fault, when there is one")


_ERROR_TEXT = {400: "a request the library refused", 401: "no API key, or an unknown one",
               403: "the key lacks the route's scope", 404: "unknown id", 409: "the bundle lacks what this needs",
               413: "request body too large", 422: "invalid request (names the field)",
               503: "no model bundle is loaded yet"}


def error_responses(*codes: int, **descriptions: str) -> dict:
    """OpenAPI ``responses`` for error status codes, all in the :class:`ErrorOut` shape."""
    return {c: {"model": ErrorOut, "description": descriptions.get(f"e{c}", _ERROR_TEXT[c])} for c in codes}


#: what every authenticated route can answer besides its own errors
AUTH_ERRORS = error_responses(401, 403, 422, 503)


Channel = Literal["email", "sms", "web", "app"]


class OfferOut(BaseModel):
    offer_id: str
    description: str = Field(description="the offer in words, e.g. '10% off' or 'spend 200, get 20 off'")
    kind: str
    p_accept: float = Field(ge=0, le=1, description="calibrated P(the customer accepts | she is shown it)")
    value: float = Field(description="what an acceptance is worth: basket margin less the offer's cost")
    expected_value: float = Field(description="p_accept x value; only offers with expected_value > 0 are shown")
    rank: int
    reasons: list[str]


class NextBestOfferOut(BaseModel):
    customer_id: str
    channel: Channel
    offers: list[OfferOut] = Field(description="best first; empty when no allowed offer pays (a valid answer)")
    not_shown: dict[str, int] = Field(description="offers left out, counted by reason: cap_reached, cooldown, "
                                                  "no_consent, expired, segment, does_not_pay, ...")
    source: str = Field(description="personalized; cold for an unknown customer; cold:opt_out for one who "
                                    "refused personalization")
    model_version: str


class CouponLevelOut(BaseModel):
    level: str = Field(description="the ladder level (its offer id)")
    description: str
    allowed: bool = Field(description="false when the contact policy forbids it (consent, cap, validity, rules)")
    expected_cost: float = Field(description="expected discount paid, redemptions by who would buy anyway included")
    expected_incremental_profit: float = Field(description="uplift x basket margin - expected cost")


class CouponOut(BaseModel):
    customer_id: str
    channel: Channel
    level: str | None = Field(description="the most profitable allowed level; null when no level pays")
    coupon: CouponLevelOut | None
    reason: str
    levels: list[CouponLevelOut] = Field(description="every level of the ladder, allowed or not")
    source: str = Field(description="personalized, cold, or cold:opt_out")
    model_version: str
