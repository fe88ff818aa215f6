"""Typed dependencies: one per scope, resolving the API key check, the settings and the served runtime.

A route declares ``ctx: RecommendCtx`` (or ``ProfileCtx`` ...): the key is
checked for the scope (401 / 403), repeated single-valued query parameters
are refused (422: FastAPI would silently keep the last), and ``ctx.runtime``
is the runtime current when the request started, so a reload mid-request
does not affect it. One dependency (plus the overridable
:func:`get_settings`) per request keeps the hot path short: FastAPI's
dependency resolution is the largest fixed cost of a route (measured in
benchmarks/bench_serving.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from personalize.runtime import Runtime
from personalize.store.events import EventStore
from serving import auth
from serving.errors import ServiceUnavailable
from serving.settings import Settings
from serving.state import ServiceState


async def get_settings(request: Request) -> Settings:
    """The app's settings (tests override this with ``app.dependency_overrides``)."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True, slots=True)
class Ctx:
    settings: Settings
    state: ServiceState
    current: Runtime | None
    scopes: frozenset[str]

    @property
    def runtime(self) -> Runtime:
        if self.current is None:
            raise ServiceUnavailable("no model bundle is loaded")
        return self.current

    @property
    def events(self) -> EventStore:
        return self.state.events


def _single_valued(request: Request) -> None:
    """422 when a query parameter the route takes once is given twice (``consent=email&consent=sms``)."""
    qp = request.query_params
    if len(qp.multi_items()) == len(qp):  # the common case: no name repeated
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    for p in dependant.query_params:
        name = p.alias or p.name
        if len(qp.getlist(name)) > 1 and not _is_list(p):
            raise HTTPException(422, [{"loc": ["query", name], "msg": f"{name} may be given once"}])


def _is_list(param) -> bool:
    ann = getattr(param.field_info, "annotation", None)
    return "list" in str(ann).lower()


def _context(*scopes: str):
    async def dependency(request: Request, settings: SettingsDep) -> Ctx:
        granted = auth.check(request, scopes, settings)
        _single_valued(request)
        state = request.app.state.service
        return Ctx(settings, state, state.runtime, granted)

    dependency.__name__ = f"authorize_{'_or_'.join(scopes)}"
    return Depends(dependency)


RecommendCtx = Annotated[Ctx, _context("recommend")]
ProfileCtx = Annotated[Ctx, _context("profile")]
EventsCtx = Annotated[Ctx, _context("events")]
AudienceCtx = Annotated[Ctx, _context("audience")]
AdminCtx = Annotated[Ctx, _context("admin")]
PrivacyCtx = Annotated[Ctx, _context("privacy", "admin")]


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


def limit(ok: bool, field: str, message: str, where: str = "query") -> None:
    """422 in the shape of FastAPI's validation errors when a configured limit is exceeded."""
    if not ok:
        raise HTTPException(422, [{"loc": [where, field], "msg": message, "type": "limit_exceeded"}])
