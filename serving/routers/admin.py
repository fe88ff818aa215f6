"""Administration: make every worker serve the newest (or a given) published bundle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.deps import AdminCtx
from serving.schemas import AUTH_ERRORS, ReloadOut, error_responses

router = APIRouter(prefix="/admin", tags=["admin"], responses=AUTH_ERRORS)


@router.post("/reload", response_model=ReloadOut, responses=error_responses(404, e404="no such published bundle"))
async def reload(ctx: AdminCtx,
                 version: Annotated[str | None, Query(max_length=100, pattern=r"^[0-9A-Za-z_.\-]+$")] = None
                 ) -> ReloadOut:
    """Serve the CURRENT bundle (or point CURRENT at `version` first). Every worker follows the store's CURRENT
    within a second; the answer waits (up to 5 s) and lists the version each live worker serves, and which lag.
    A bundle that fails to load leaves the old one serving."""
    return ReloadOut(**await ctx.state.reload(version))
