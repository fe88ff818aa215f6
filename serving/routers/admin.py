"""Administration: hot swap to the newest published bundle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.deps import AdminCtx
from serving.schemas import ErrorOut, ReloadOut

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post("/reload", response_model=ReloadOut, responses={503: {"model": ErrorOut}})
async def reload(ctx: AdminCtx,
                 version: Annotated[str | None, Query(max_length=100, pattern=r"^[0-9A-Za-z_.\-]+$")] = None
                 ) -> ReloadOut:
    """Load the CURRENT bundle (or `version`) off the event loop and swap; on failure the old bundle keeps serving."""
    previous, current = await ctx.state.reload(version)
    return ReloadOut(previous=previous, current=current, changed=previous != current)
