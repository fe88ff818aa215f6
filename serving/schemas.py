"""Request and response models of the HTTP API."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
MAX_K = 100          # hard caps in the schema; the settings may set lower limits
MAX_LIST = 1000


class RecItem(BaseModel):
    item_id: str
    score: float
    rank: int
    source: str


class RecommendationsOut(BaseModel):
    customer_id: str
    items: list[RecItem]
    model_version: str
    fallback: bool = Field(description="true when the customer is unknown to the model and a fallback answered")


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
    score: float
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
    type: Literal["purchase", "view", "add_to_cart"]
    customer_id: Id
    item_id: Id
    quantity: float = Field(1.0, gt=0, le=1e6)
    price: float | None = Field(None, ge=0, le=1e9)
    timestamp: dt.datetime | None = Field(None, description="when it happened (default: when received)")
    order_id: Id | None = None

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
                v.astimezone(dt.timezone.utc)
            except (OverflowError, ValueError) as exc:
                raise ValueError("timestamp out of range") from exc
        return v


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=MAX_LIST)


class EventsOut(BaseModel):
    accepted: int
    ids: list[int]
    purchases_applied: int = Field(description="customers whose recommendations were refreshed")


class ModelOut(BaseModel):
    version: str
    manifest: dict[str, Any]
    live_customers: int


class ReloadOut(BaseModel):
    previous: str | None
    current: str
    changed: bool


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    model_version: str


class ErrorOut(BaseModel):
    error: str
    detail: Any
