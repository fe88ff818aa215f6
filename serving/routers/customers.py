"""Customer profile and churn risk: what the served bundle knows about one customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from serving.deps import ProfileCtx
from serving.schemas import ChurnRiskOut, ErrorOut, ProfileOut

router = APIRouter(tags=["customers"])

CustomerId = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("/customers/{customer_id}/profile", response_model=ProfileOut, responses={404: {"model": ErrorOut}})
async def profile(customer_id: CustomerId, ctx: ProfileCtx) -> ProfileOut:
    """Segment, lifecycle stage, tier, RFM, CLV, churn risk (when published) and attributes; 404 if unknown."""
    rt = ctx.runtime
    return ProfileOut(**rt.profile(customer_id), model_version=rt.version)


@router.get("/customers/{customer_id}/churn-risk", response_model=ChurnRiskOut,
            responses={404: {"model": ErrorOut, "description": "unknown customer, or one without a churn score"},
                       409: {"model": ErrorOut, "description": "the bundle was published without a churn model"}})
async def churn_risk(customer_id: CustomerId, ctx: ProfileCtx) -> ChurnRiskOut:
    """Calibrated probability of no purchase in the horizon, its band and the top reasons in words."""
    return ChurnRiskOut(**ctx.runtime.churn_risk(customer_id))
