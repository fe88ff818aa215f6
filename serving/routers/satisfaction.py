"""Satisfaction over the served bundle: NPS, CSAT and star ratings by month, channel, segment, tier or lifecycle."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from serving.deps import Ctx, _context
from serving.schemas import AUTH_ERRORS, SatisfactionGroupOut, SatisfactionTableOut, error_responses

router = APIRouter(tags=["satisfaction"], responses=AUTH_ERRORS)

InsightsCtx = Annotated[Ctx, _context("audience", "profile")]


@router.get("/satisfaction", response_model=SatisfactionTableOut,
            responses=error_responses(409, e409="the bundle has no feedback, or no labels for the grouping"))
async def satisfaction(ctx: InsightsCtx,
                       by: Literal["overall", "month", "channel", "segment", "tier", "lifecycle"] = "overall",
                       min_responses: Annotated[int, Query(ge=1, le=100_000, description="groups with fewer answers "
                                                           "are flagged small")] = 30) -> SatisfactionTableOut:
    """NPS (promoters - detractors, adjusted Wald 95 % interval), CSAT (% 4-5, Wilson interval) and the mean star
    rating per group, over the bundle's feedback and the feedback posted since; erased customers left out. Groups
    with fewer than `min_responses` answers are flagged `small` and named in `warnings`. No customer ids."""
    rt = ctx.runtime
    rows = await run_in_threadpool(rt.satisfaction, by=by, min_responses=min_responses)
    warnings = [f"{r['group']}: only {r['responses']} answers (< {min_responses})" for r in rows if r["small"]]
    return SatisfactionTableOut(by=by, model_version=rt.version, groups=[SatisfactionGroupOut(**r) for r in rows],
                                warnings=warnings)
