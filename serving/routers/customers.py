"""Customer profile: what the served bundle knows about one customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from serving.deps import ProfileCtx
from serving.schemas import ErrorOut, ProfileOut

router = APIRouter(tags=["customers"])


@router.get("/customers/{customer_id}/profile", response_model=ProfileOut, responses={404: {"model": ErrorOut}})
async def profile(customer_id: Annotated[str, Path(min_length=1, max_length=200)], ctx: ProfileCtx) -> ProfileOut:
    """Profile, segment, tier, CLV and consent flags from the bundle's customer table; 404 if unknown."""
    rt = ctx.runtime
    return ProfileOut(**rt.profile(customer_id), model_version=rt.version)
