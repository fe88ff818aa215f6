"""Similar items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.deps import RecommendCtx, limit
from serving.schemas import AUTH_ERRORS, MAX_K, Id, SimilarOut, error_responses

router = APIRouter(tags=["items"], responses=AUTH_ERRORS)


@router.get("/items/{item_id}/similar", response_model=SimilarOut, responses=error_responses(404))
async def similar_items(item_id: Annotated[Id, Path()], ctx: RecommendCtx,
                        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10) -> SimilarOut:
    """Items most similar to `item_id`; an unknown item is a 404."""
    limit(k <= ctx.settings.max_k, "k", f"k must be at most {ctx.settings.max_k}")
    rt = ctx.runtime
    return SimilarOut(item_id=item_id, items=rt.similar_items(item_id, k), model_version=rt.version)
