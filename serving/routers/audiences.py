"""Audience export for marketing tools: streamed CSV or JSON lines, cursor-paged, consent enforced."""

# no "from __future__ import annotations": the route signature uses the configured page limit at definition time

import base64
import csv
import io
import json
import math
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from personalize._json import json_scalar
from personalize.errors import PersonalizeError
from serving.deps import AudienceCtx, limit
from serving.schemas import AUTH_ERRORS, error_responses
from serving.settings import Settings


#: lifecycle stages of personalize.analytics (LIFECYCLE_STAGES); anything else is a 422
Lifecycle = Literal["new", "active", "at-risk", "lapsed", "churned"]

_CHUNK = 2000


def encode_cursor(customer_id: str | None) -> str | None:
    return None if customer_id is None else base64.urlsafe_b64encode(customer_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise PersonalizeError("invalid cursor") from None
    if not raw:
        raise PersonalizeError("invalid cursor") from None
    return raw


def _rows(page):
    cols = list(page.columns)
    for start in range(0, len(page), _CHUNK):
        chunk = page.iloc[start:start + _CHUNK]
        yield cols, [[json_scalar(v) for v in row] for row in chunk.itertuples(index=False, name=None)]


def _csv(page):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(page.columns))
    yield buf.getvalue()
    for _, rows in _rows(page):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerows(["" if v is None else v for v in r] for r in rows)
        yield buf.getvalue()


def _jsonl(page):
    for cols, rows in _rows(page):
        yield "".join(json.dumps(dict(zip(cols, r)), allow_nan=False) + "\n" for r in rows)


def make_router(settings: Settings) -> APIRouter:
    """The audiences router, with the server's configured page limit in its OpenAPI schema."""
    page_max = settings.audience_page_max
    router = APIRouter(tags=["audiences"], responses=AUTH_ERRORS)

    @router.get("/audiences", response_class=StreamingResponse,
                responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}},
                                 "description": "customer ids with the requested scores, ordered by customer_id; "
                                                "`X-Next-Cursor` header when more pages follow"},
                           **error_responses(400, 409, e400="invalid cursor",
                                             e409="no consent data for the channel, or a filter needs a column "
                                                  "the bundle lacks (e.g. churn risk in a bundle without churn)")})
    async def export_audience(
            ctx: AudienceCtx,
            consent: Literal["email", "sms", "personalization"],
            segment: Annotated[list[str] | None, Query(max_length=50, description="RFM segment(s)")] = None,
            lifecycle: Annotated[list[Lifecycle] | None, Query(max_length=10, description="lifecycle stage(s)")] = None,
            tier: Annotated[list[str] | None, Query(max_length=50, description="membership tier(s)")] = None,
            min_clv: Annotated[float | None, Query(description="keep customers with CLV >= this")] = None,
            min_churn_risk: Annotated[float | None, Query(ge=0, le=1, description="churn probability >= this")] = None,
            max_churn_risk: Annotated[float | None, Query(ge=0, le=1, description="churn probability <= this")] = None,
            fields: Annotated[str | None, Query(max_length=2000, description="comma-separated columns")] = None,
            score: Annotated[str | None, Query(max_length=100)] = None,
            min_score: float | None = None, max_score: float | None = None,
            offer_id: Annotated[str | None, Query(max_length=200, description="only customers this offer may reach "
                                                  "through the consent's channel and for whom it pays (adds "
                                                  "p_accept, expected_value)")] = None,
            coupon_level: Annotated[str | None, Query(max_length=200, description="only customers the coupon plan "
                                                      "gives this level (adds expected_cost, "
                                                      "expected_incremental_profit)")] = None,
            budget: Annotated[float | None, Query(ge=0, description="total expected coupon cost of the plan, over "
                                                  "the filtered audience (with coupon_level)")] = None,
            detractor: Annotated[bool | None, Query(description="true: only customers whose last answer was a "
                                                    "detractor answer (false: only the others)")] = None,
            open_complaints: Annotated[bool | None, Query(description="true: only customers with a complaint not "
                                                          "resolved yet")] = None,
            unhappy: Annotated[bool | None, Query(description="true: detractors or customers with an open complaint "
                                                  "(the service-recovery filter; add min_clv or tier for the "
                                                  "high-value ones)")] = None,
            min_points: Annotated[float | None, Query(description="points balance at least this")] = None,
            points_expiring_within_days: Annotated[float | None, Query(ge=0, le=3650, description="some points "
                                                                       "expire within this many days")] = None,
            cursor: Annotated[str | None, Query(max_length=1000)] = None,
            limit_: Annotated[int, Query(alias="limit", ge=1, le=page_max)] = min(10_000, page_max),
            format: Literal["csv", "jsonl"] = "csv") -> StreamingResponse:
        """Customers who consented to `consent`, filtered by segment, lifecycle, tier, CLV, churn risk, score,
        satisfaction (`detractor`, `open_complaints`, `unhappy`) and points (`min_points`,
        `points_expiring_within_days`);
        ordered by customer_id and paged by `cursor`. Unknown filter values are a 422 listing the valid ones; a
        bundle without consent data for the channel, or a churn filter on a bundle without churn, is a 409.

        `offer_id` narrows the list to the customers the offer may go to now (consent, rules, caps and
        cooldown, live exposures included) and for whom its expected value is positive; `coupon_level` to
        the customers the budgeted coupon plan gives that level (the plan is made over the filtered
        audience: `budget` is spent on it alone). Customers who refused personalization are never in
        either."""
        rt = ctx.runtime
        for name, v in (("min_score", min_score), ("max_score", max_score), ("min_clv", min_clv),
                        ("budget", budget), ("min_points", min_points)):
            limit(v is None or math.isfinite(v), name, f"{name} must be a finite number")
        limit(min_churn_risk is None or max_churn_risk is None or min_churn_risk <= max_churn_risk,
              "min_churn_risk", "min_churn_risk must not be above max_churn_risk")
        field_list = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        page, next_id = await run_in_threadpool(
            rt.audience, consent=consent, segments=segment, fields=field_list, score=score, min_score=min_score,
            max_score=max_score, lifecycle=lifecycle, tiers=tier, min_clv=min_clv, min_churn_risk=min_churn_risk,
            max_churn_risk=max_churn_risk, offer_id=offer_id, coupon_level=coupon_level, budget=budget,
            cursor=decode_cursor(cursor), limit=limit_, **{k: v for k, v in (
                ("detractor", detractor), ("open_complaints", open_complaints), ("unhappy", unhappy),
                ("min_points", min_points), ("points_expiring_within_days", points_expiring_within_days))
                if v is not None})
        headers = {"X-Model-Version": rt.version, "X-Count": str(len(page))}
        if next_id is not None:
            headers["X-Next-Cursor"] = encode_cursor(next_id)
        if format == "csv":
            return StreamingResponse(_csv(page), media_type="text/csv", headers=headers)
        return StreamingResponse(_jsonl(page), media_type="application/x-ndjson", headers=headers)

    return router
