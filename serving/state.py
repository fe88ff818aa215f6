"""What one server process holds: the served runtime, the event store, metrics, and how they change.

Swapping the runtime is a single attribute assignment: a request takes its
reference once (see :func:`serving.deps.get_runtime`) and finishes on that
runtime even if a reload happens meanwhile. A bundle that fails to load or
verify raises before the assignment, so the old runtime keeps serving.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import threading
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from personalize.errors import UnknownIdError
from personalize.store.events import Event, EventStore
from personalize.store import load_bundle
from personalize.runtime import Runtime
from serving.metrics import Metrics
from serving.settings import Settings

log = logging.getLogger("personalize.serving")


def _replay_after(manifest: dict) -> dict:
    """Which stored purchases a bundle has not seen: those that happened after its training data ends
    (or, without a recorded data range, those received after it was published)."""
    last = (manifest.get("data") or {}).get("last_timestamp")
    if last:
        ts = dt.datetime.fromisoformat(last)
        if ts.tzinfo is not None:
            ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return {"happened_after": ts.isoformat(timespec="microseconds")}
    created = manifest.get("created_at")
    if not created:
        return {}
    ts = dt.datetime.fromisoformat(created)
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return {"received_after": ts.isoformat(timespec="microseconds")}


class ServiceState:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.runtime: Runtime | None = None
        self.events: EventStore | None = None
        self.load_error: str | None = None
        self._reload_lock = asyncio.Lock()
        self._events_lock = threading.Lock()   # append+mark and read+filter are atomic w.r.t. each other
        self._own_ids: set[int] = set()
        self._seen_id = 0

    # ------------------------------------------------------------------ bundle
    def build_runtime(self, version: str | None = None) -> tuple[Runtime, int]:
        """Load + verify a bundle and replay the purchases received after it was published (blocking)."""
        bundle = load_bundle(self.settings.models, version)
        rt = Runtime(bundle)
        upto = 0
        if self.events is not None:
            upto = self.events.last_id()
            rows = self.events.events(upto_id=upto, type="purchase", **_replay_after(bundle.manifest))
            n = rt.replay(*EventStore.purchase_arrays(rows))
            if n:
                log.info("replayed %d purchases into bundle %s", n, rt.version)
        return rt, upto

    def _catch_up(self, rt: Runtime, after_id: int) -> None:
        if self.events is None:
            return
        rows = self.events.events(after_id=after_id, type="purchase", **_replay_after(rt.manifest))
        if rows:
            rt.replay(*EventStore.purchase_arrays(rows))

    def open(self) -> None:
        """Start-up: open the event store and load the current bundle (a failure leaves the service unready)."""
        self.events = EventStore(self.settings.events_path)
        self._seen_id = self.events.last_id()
        try:
            rt, upto = self.build_runtime()
        except Exception as exc:  # noqa: BLE001 - reported by /readyz
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("no model bundle loaded: %s", self.load_error)
            return
        self._install(rt)
        self._catch_up(rt, upto)
        self.refreeze()

    def close(self) -> None:
        if self.events is not None:
            self.events.close()

    def _install(self, rt: Runtime) -> None:
        self.runtime = rt
        self.load_error = None
        self.metrics.set_version(rt.version)

    @staticmethod
    def refreeze() -> None:
        """A bundle is hundreds of thousands of long-lived objects (id maps): freeze them out of the cyclic
        GC's way so collections triggered by request garbage stay short (p99). Unfreezing first lets the
        previous bundle's cycles be collected."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    async def reload(self, version: str | None = None) -> tuple[str | None, str]:
        """Swap to the newest published bundle (or ``version``); raises and keeps the old one on failure."""
        if version is not None and not (self.settings.models / version / "manifest.json").is_file():
            raise UnknownIdError(f"no published bundle {version!r} in the model store")
        async with self._reload_lock:
            previous = self.runtime.version if self.runtime is not None else None
            try:
                rt, upto = await run_in_threadpool(self.build_runtime, version)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            self._install(rt)
            await run_in_threadpool(self._catch_up, rt, upto)
            await run_in_threadpool(self.refreeze)
            self.metrics.reloads.labels("ok").inc()
            log.info("serving bundle %s (was %s)", rt.version, previous)
            return previous, rt.version

    # ------------------------------------------------------------------ events
    def append_events(self, events: Sequence[Event]) -> list[int]:
        """Durably store events (returns after commit) and remember they were applied by this process."""
        with self._events_lock:
            ids = self.events.append(events)
            self._own_ids.update(ids)
        for e in events:
            self.metrics.events.labels(e.type).inc()
        return ids

    def apply_purchases(self, events: Sequence[Event]) -> int:
        """Apply stored purchase events to the live overlay; returns the number of customers changed."""
        rt = self.runtime  # the runtime current *after* the events were stored
        if rt is None:
            return 0
        groups: dict[str, tuple[list[str], list]] = {}
        for e in events:
            if e.type == "purchase":
                items, tss = groups.setdefault(e.customer_id, ([], []))
                items.append(e.item_id)
                tss.append(e.timestamp)
        return sum(rt.record_purchase(c, i, t) for c, (i, t) in groups.items())

    def sync_other_workers(self) -> int:
        """Apply purchases that other worker processes stored since the last poll (blocking)."""
        if self.events is None or self.runtime is None:
            return 0
        with self._events_lock:
            rows = self.events.events(after_id=self._seen_id, type=None)
            if not rows:
                return 0
            self._seen_id = rows[-1]["id"]
            foreign = [r for r in rows if r["id"] not in self._own_ids]
            self._own_ids = {i for i in self._own_ids if i > self._seen_id}
        return self.runtime.replay(*EventStore.purchase_arrays(foreign))

    async def sync_loop(self) -> None:
        interval = self.settings.event_sync_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await run_in_threadpool(self.sync_other_workers)
            except Exception as exc:  # noqa: BLE001 - keep polling
                log.warning("event sync failed: %s", type(exc).__name__)
