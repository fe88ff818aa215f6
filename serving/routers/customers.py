"""One customer: profile and churn risk (what the served bundle knows), and erasure (right to be forgotten)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from serving.deps import PrivacyCtx, ProfileCtx
from serving.schemas import AUTH_ERRORS, ChurnRiskOut, ForgetOut, Id, ProfileOut, error_responses

router = APIRouter(tags=["customers"], responses=AUTH_ERRORS)

CustomerId = Annotated[Id, Path(description="the retailer's customer id")]


@router.get("/customers/{customer_id}/profile", response_model=ProfileOut, responses=error_responses(404))
async def profile(customer_id: CustomerId, ctx: ProfileCtx) -> ProfileOut:
    """Segment, lifecycle stage, tier, RFM, CLV, churn risk (when published) and attributes; 404 if unknown."""
    rt = ctx.runtime
    return ProfileOut(**rt.profile(customer_id), model_version=rt.version)


@router.get("/customers/{customer_id}/churn-risk", response_model=ChurnRiskOut,
            responses=error_responses(404, 409, e404="unknown customer, or one without a churn score",
                                      e409="the bundle was published without a churn model"))
async def churn_risk(customer_id: CustomerId, ctx: ProfileCtx) -> ChurnRiskOut:
    """Calibrated probability of no purchase in the horizon, its band and the top reasons in words."""
    return ChurnRiskOut(**ctx.runtime.churn_risk(customer_id))


@router.delete("/customers/{customer_id}", response_model=ForgetOut)
async def forget_customer(customer_id: CustomerId, ctx: PrivacyCtx) -> ForgetOut:
    """Right to erasure (`privacy` or `admin` scope): the customer's events are deleted, a salted hash joins the
    store's erasure list, every worker treats the id as unknown from now on, and every later bundle is trained
    without them. Idempotent."""
    result = await run_in_threadpool(ctx.state.forget, [customer_id])
    return ForgetOut(customer_id=customer_id, events_deleted=result["events_deleted"])
