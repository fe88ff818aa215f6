"""Prometheus metrics and the ASGI middleware that records them.

``personalize_requests_total{method,route,status}``, ``personalize_request_seconds{route}``
(histogram), ``personalize_model_info{version}`` (1 for the served version, per worker),
``personalize_model_loaded_timestamp_seconds``, ``personalize_events_ingested_total{type}``,
``personalize_reloads_total{result}``. The route label is the route template
(``/v1/customers/{customer_id}/recommendations``), never the raw path, so ids stay out.

With several worker processes (``personalize serve --workers N``) the launcher
sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start: every worker
writes its values there and ``/metrics`` reports the sum over workers (the
model gauges per worker ``pid``), whichever worker answers the scrape.
"""

from __future__ import annotations

import json
import os
import time

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from serving.errors import error_body

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_mode()
        # in multiprocess mode the values live in the shared directory; the registry only names them
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("personalize_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("personalize_request_seconds", "HTTP request latency", ["route"],
                                 buckets=_BUCKETS, registry=self.registry)
        self.model_info = Gauge("personalize_model_info", "1 for the model bundle version this worker serves",
                                ["version"], registry=self.registry, multiprocess_mode="liveall")
        self.model_loaded = Gauge("personalize_model_loaded_timestamp_seconds", "when the served bundle was loaded",
                                  registry=self.registry, multiprocess_mode="liveall")
        self.events = Counter("personalize_events_ingested", "events stored", ["type"], registry=self.registry)
        self.reloads = Counter("personalize_reloads", "bundle reloads", ["result"], registry=self.registry)
        self._children: dict[tuple, tuple] = {}
        self._version: str | None = None

    def set_version(self, version: str) -> None:
        if self._version is not None and self._version != version:
            if self.multiprocess:  # a label cannot be removed from the shared files: 0 = no longer served
                self.model_info.labels(self._version).set(0)
            else:
                self.model_info.remove(self._version)
        self.model_info.labels(version).set(1)
        self.model_loaded.set(time.time())
        self._version = version

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(method, route, str(status)), self.latency.labels(route))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def exposition(self) -> bytes:
        """The text exposition: every worker's values in multiprocess mode, this process's otherwise."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    @staticmethod
    def worker_gone(pid: int) -> None:
        """Drop a dead worker's gauges (its counters stay in the totals)."""
        if multiprocess_mode():
            multiprocess.mark_process_dead(pid)


class ServiceMiddleware:
    """Pure ASGI middleware: request metrics and the request body size limit (413 past the limit)."""

    def __init__(self, app, *, metrics: Metrics, max_body_bytes: int, labels: dict[int, str] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.labels = labels or {}
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_holder = [500]
        limit = self.max_body

        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _reject(send, limit)
                    self.metrics.observe(scope["method"], "body_too_large", 413, time.perf_counter() - start)
                    return

        seen = [0]

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
            return message

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        finally:
            route = scope.get("route")
            path = self.labels.get(id(route)) or getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], path, status_holder[0], time.perf_counter() - start)


async def _reject(send, limit: int) -> None:
    body = json.dumps(error_body("request_too_large", f"request body exceeds the limit of {limit} bytes")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
