"""Campaign readouts for marketing tools: what each arm did, with intervals, guards and a verdict."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from serving.deps import AudienceCtx
from serving.schemas import AUTH_ERRORS, error_responses

router = APIRouter(tags=["campaigns"], responses=AUTH_ERRORS)

_NO_CAMPAIGNS = error_responses(409, e409="the bundle was trained without campaign exposures")


@router.get("/campaigns", responses=_NO_CAMPAIGNS)
async def list_campaigns(ctx: AudienceCtx) -> dict[str, Any]:
    """The campaigns in the served bundle: exposures, customers, arms, control group, randomized, dates."""
    return {"campaigns": await run_in_threadpool(ctx.runtime.campaigns), "model_version": ctx.runtime.version}


@router.get("/campaigns/{campaign_id}/readout", responses={**_NO_CAMPAIGNS, **error_responses(404)})
async def campaign_readout(
        ctx: AudienceCtx,
        campaign_id: Annotated[str, Path(min_length=1, max_length=200)],
        alpha: Annotated[float, Query(gt=0, lt=0.5, description="significance level")] = 0.05,
        cuped: Annotated[list[str] | None, Query(max_length=10, description="pre-period covariate(s) for CUPED, "
                                                 "e.g. pre_spend")] = None,
        bootstrap: Annotated[int, Query(ge=0, le=2000, description="bootstrap resamples for revenue intervals "
                                                                   "(0: none)")] = 0) -> dict[str, Any]:
    """Per arm: customers, conversions, rate and revenue per customer; per treatment against control: the
    absolute and relative lift with intervals, p-values (Holm-corrected and always-valid), CUPED when asked;
    the sample-ratio check and guards; causal only when every exposure was randomized. Erased customers
    are left out."""
    rt = ctx.runtime
    doc = await run_in_threadpool(rt.campaign_readout, campaign_id, alpha=alpha, cuped=cuped, bootstrap=bootstrap)
    return {**doc, "model_version": rt.version}
