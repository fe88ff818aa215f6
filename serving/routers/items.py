"""Similar items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.deps import RecommendCtx, limit
from serving.schemas import MAX_K, ErrorOut, SimilarOut

router = APIRouter(tags=["items"])


@router.get("/items/{item_id}/similar", response_model=SimilarOut, responses={404: {"model": ErrorOut}})
async def similar_items(item_id: Annotated[str, Path(min_length=1, max_length=200)], ctx: RecommendCtx,
                        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10) -> SimilarOut:
    """Items most similar to `item_id`; an unknown item is a 404 with a JSON error."""
    limit(k <= ctx.settings.max_k, "k", f"k must be at most {ctx.settings.max_k}")
    rt = ctx.runtime
    return SimilarOut(item_id=item_id, items=rt.similar_items(item_id, k), model_version=rt.version)
