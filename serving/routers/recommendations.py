"""Recommendations for a known (or unknown) customer, and for an anonymous session."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from serving.deps import RecommendCtx, limit
from serving.schemas import AUTH_ERRORS, MAX_K, Id, RecommendationsOut, SessionIn, SessionOut, error_responses

router = APIRouter(tags=["recommendations"], responses=AUTH_ERRORS)

CustomerId = Annotated[Id, Path(description="the retailer's customer id")]


@router.get("/customers/{customer_id}/recommendations", response_model=RecommendationsOut)
async def customer_recommendations(
        customer_id: CustomerId, ctx: RecommendCtx,
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        category: Annotated[str | None, Query(max_length=2000, description="category, or several separated by "
                                                                            "commas")] = None,
        exclude: Literal["purchased", "non_repeatable", "none"] = "purchased",
        in_stock: bool | None = None) -> RecommendationsOut:
    """Top-k items. An unknown customer gets 200 with the fallback list (`fallback: true`, `source` names it); a
    customer who opted out of personalization gets the non-personal list (`source` ends in `:opt_out`).
    A category the catalog does not have is a 422; when the filters leave the personal list short it is filled
    from the fallback chain, and `note` says so when fewer than k items match at all."""
    limit(k <= ctx.settings.max_k, "k", f"k must be at most {ctx.settings.max_k}")
    categories = [c for c in category.split(",") if c] if category else None
    r = ctx.runtime.recommend(customer_id, k, categories=categories, in_stock=in_stock, exclude=exclude)
    return RecommendationsOut(customer_id=customer_id, items=r.items, model_version=r.model_version,
                              fallback=r.fallback, note=r.note)


@router.post("/recommendations", response_model=SessionOut, responses=error_responses(413))
async def session_recommendations(body: SessionIn, ctx: RecommendCtx) -> SessionOut:
    """Recommendations for an anonymous shopper from the items in their session or cart."""
    limit(body.k <= ctx.settings.max_k, "k", f"k must be at most {ctx.settings.max_k}", "body")
    limit(len(body.item_ids) <= ctx.settings.max_list, "item_ids", f"at most {ctx.settings.max_list} item ids",
          "body")
    r = ctx.runtime.recommend_from_items(body.item_ids, body.k, categories=body.category, in_stock=body.in_stock)
    return SessionOut(items=r.items, model_version=r.model_version, fallback=r.fallback)
