"""Liveness, readiness and Prometheus metrics (no API key: for the load balancer and the scraper)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import StateDep
from serving.schemas import ErrorOut, HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ErrorOut}})
async def readyz(state: StateDep):
    """A bundle is loaded and the service can answer."""
    rt = state.runtime
    if rt is None:
        return JSONResponse({"error": "not_ready", "detail": state.load_error or "no bundle loaded"}, status_code=503)
    return ReadyOut(status="ready", model_version=rt.version)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus exposition: requests and latency per route, model version, events ingested, reloads."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
