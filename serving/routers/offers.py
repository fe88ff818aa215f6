"""Next-best-offer and the personalized coupon for one customer (shop scope: answered on-site in milliseconds)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.deps import RecommendCtx
from serving.schemas import AUTH_ERRORS, Channel, CouponOut, Id, NextBestOfferOut, error_responses

router = APIRouter(tags=["offers"], responses=AUTH_ERRORS)

CustomerId = Annotated[Id, Path(description="the retailer's customer id")]
_NO_OFFERS = error_responses(409, e409="the bundle was published without offers (no offer catalog or exposures)")


@router.get("/customers/{customer_id}/next-best-offer", response_model=NextBestOfferOut, responses=_NO_OFFERS)
async def next_best_offer(customer_id: CustomerId, ctx: RecommendCtx,
                          n: Annotated[int, Query(ge=1, le=20, description="at most this many offers")] = 3,
                          channel: Channel = "web") -> NextBestOfferOut:
    """The offers to show now, by expected value (P(accept) x value), with reasons; offers the contact policy
    holds back (consent, caps, cooldown, validity, rules) are counted in `not_shown`. An unknown customer
    gets the cold answer (`source: cold`); a customer who refused personalization gets it too
    (`cold:opt_out`). Exposures posted to `/v1/events` count against caps and the cooldown at once."""
    return NextBestOfferOut(**ctx.runtime.next_best_offer(customer_id, n=n, channel=channel))


@router.get("/customers/{customer_id}/coupon", response_model=CouponOut, responses=_NO_OFFERS)
async def coupon(customer_id: CustomerId, ctx: RecommendCtx, channel: Channel = "web") -> CouponOut:
    """The coupon level with the highest expected incremental profit (uplift x margin - expected discount
    cost), or `level: null` when none pays or may be given; every level's figures are listed."""
    return CouponOut(**ctx.runtime.coupon(customer_id, channel=channel))
