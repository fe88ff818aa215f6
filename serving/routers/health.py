"""Liveness, readiness and Prometheus metrics (no API key: for the load balancer and the scraper)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import StateDep
from serving.errors import error_response
from serving.schemas import HealthOut, ReadyOut, error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, responses=error_responses(503))
async def readyz(state: StateDep):
    """A bundle is loaded and this worker can answer (the version it serves; no paths, no errors' text)."""
    rt = state.runtime
    if rt is None:
        return error_response(503, "not_ready", f"no bundle loaded ({state.load_error or 'starting'})")
    return ReadyOut(status="ready", model_version=rt.version, follows_current=state.follows_current())


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus exposition (every worker's values): requests and latency per route, model version per worker,
    events ingested, reloads."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
