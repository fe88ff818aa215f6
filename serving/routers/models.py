"""The served bundle's manifest."""

from __future__ import annotations

import copy

from fastapi import APIRouter

from serving.deps import RecommendCtx
from serving.schemas import AUTH_ERRORS, ModelOut

router = APIRouter(tags=["models"], responses=AUTH_ERRORS)


def redacted(manifest: dict) -> dict:
    """The manifest without where the training data came from (a file path says more than a shop needs)."""
    out = copy.deepcopy(manifest)
    source = (out.get("params") or {}).get("source")
    if isinstance(source, dict) and "path" in source:
        source["path"] = None
    return out


@router.get("/models", response_model=ModelOut)
async def current_model(ctx: RecommendCtx) -> ModelOut:
    """Version and manifest (created at, data fingerprint and range, params, metrics) of the served bundle.
    The training data's file path is shown to `admin` keys only."""
    info = ctx.runtime.info()
    if "admin" not in ctx.scopes:
        info["manifest"] = redacted(info["manifest"])
    return ModelOut(**info)
