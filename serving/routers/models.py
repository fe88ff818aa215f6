"""The served bundle's manifest."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import RecommendCtx
from serving.schemas import ModelOut

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelOut)
async def current_model(ctx: RecommendCtx) -> ModelOut:
    """Version and manifest (created at, data fingerprint and range, params, metrics) of the served bundle."""
    return ModelOut(**ctx.runtime.info())
