"""The FastAPI application factory.

    from serving.app import create_app
    from serving.settings import Settings
    app = create_app(Settings(models="models", api_keys={"shop-key-123": ["recommend"]}))

The bundle is loaded in the lifespan and kept on ``app.state.service``; routes
are one router per area under ``/v1`` plus health, readiness and metrics.
The OpenAPI document (``/docs``) declares both ways to send a key (bearer
token or ``X-API-Key``), so the "Authorize" button works, and every error
response in the one shape of :mod:`serving.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from threadpoolctl import threadpool_limits

from personalize import __version__
from serving import dashboard, errors
from serving.metrics import Metrics, ServiceMiddleware
from serving.routers import (admin, audiences, campaigns, customers, events, health, items, models, offers,
                             recommendations, satisfaction)
from serving.schemas import ErrorOut
from serving.settings import Settings
from serving.state import ServiceState

log = logging.getLogger("personalize.serving")

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def _openapi(app: FastAPI):
    """The schema with the key schemes on every /v1 route and our error shape for 422."""
    def build() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        comps = schema.setdefault("components", {})
        comps["securitySchemes"] = SECURITY_SCHEMES
        comps.setdefault("schemas", {})["ErrorOut"] = ErrorOut.model_json_schema()
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                if path.startswith("/v1/"):
                    op["security"] = [{"bearer": []}, {"apiKey": []}]
                if "422" in op.get("responses", {}):
                    op["responses"]["422"] = {"description": "invalid request (names the field)", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
        for name in ("HTTPValidationError", "ValidationError"):
            comps.get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema
    return build


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        threadpool_limits(1)  # one BLAS/OpenMP thread per server process: scale with workers (STACK.md)
        state: ServiceState = app.state.service
        await asyncio.to_thread(state.open)
        task = asyncio.create_task(state.sync_loop()) if settings.poll_interval > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.close()

    app = FastAPI(title="personalize", version=__version__, lifespan=lifespan,
                  description="Recommendations, profiles, events and audiences over a published model bundle. "
                              "Every error is {\"error\": code, \"detail\": text, \"field\": where}.")
    app.state.settings = settings
    app.state.service = ServiceState(settings, metrics)
    app.state.metrics = metrics
    errors.install(app)
    labels: dict[int, str] = {}  # route object -> full path template, the metrics label
    for router in (recommendations.router, items.router, customers.router, offers.router, events.router,
                   audiences.make_router(settings), campaigns.router, models.router, admin.router,
                   satisfaction.router):
        app.include_router(router, prefix="/v1")
        labels.update({id(r): "/v1" + r.path for r in router.routes})
    app.include_router(health.router)
    labels.update({id(r): r.path for r in health.router.routes})
    dashboard.install(app)  # /dashboard: server-rendered pages for marketing keys (serving/dashboard/)
    app.add_middleware(errors.CatchAllMiddleware)
    app.add_middleware(ServiceMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes, labels=labels)
    app.openapi = _openapi(app)
    return app
