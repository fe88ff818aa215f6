"""What one server process holds: the served runtime, the event store, metrics, and how they change.

Every worker process follows the model store by itself: a background loop
looks at ``CURRENT`` every 0.1 s and swaps to a new bundle when it changes;
every ``poll_interval`` (0.5 s) it also applies events and erasures recorded by the other workers, and
writes a heartbeat with the version it serves (so ``POST /v1/admin/reload``
can answer with what every worker serves). Swapping the runtime is a single
attribute assignment: a request takes its reference once (see
:func:`serving.deps.get_runtime`) and finishes on that runtime. A bundle that
fails to load leaves the old one serving; a worker that starts while
``CURRENT`` is damaged serves the newest valid version and keeps retrying.

Which events a bundle has not seen is decided by ingest sequence, not by
timestamp: the manifest records the last event id its training data
included (``data.events_through_id``, 0 when trained on a file alone) and
the runtime replays every stored purchase after it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import threading
import time
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from personalize.errors import BundleError, PersonalizeError, UnknownIdError
from personalize.runtime import Runtime
from personalize.store import current_version, list_versions, load_bundle, rollback
from personalize.store.events import LEDGER_EVENTS, OFFER_EVENTS, Appended, Erasures, Event, EventStore, ledger_row
from serving.metrics import Metrics
from serving.settings import Settings

log = logging.getLogger("personalize.serving")
#: seconds between looks at CURRENT between two full ticks of the sync loop
CURRENT_POLL = 0.1
#: seconds between two returns of freed heap memory to the system (see :func:`_malloc`)
TRIM_INTERVAL = 10.0


@functools.lru_cache(maxsize=1)
def _malloc():
    """glibc's allocator, or None elsewhere.

    A worker that takes events allocates and frees many mid-sized numpy arrays (the live overlay's
    compactions, candidate lists). glibc raises its mmap threshold after such frees and then keeps
    freed heap pages: RSS crept up ~150 bytes per event in a soak with a bounded live state. A fixed
    threshold (:func:`tune_malloc`, which also stops the dynamic raise) and a periodic
    ``malloc_trim`` keep it flat.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # pragma: no cover - not glibc
        return None


def tune_malloc() -> None:
    libc = _malloc()
    if libc is not None:
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: arrays of 128 KiB and more come from mmap


def trim_malloc() -> None:
    libc = _malloc()
    if libc is not None:
        libc.malloc_trim(0)


def events_through_id(manifest: dict) -> int:
    """The last event id a bundle's training data included (0: none)."""
    try:
        return int((manifest.get("data") or {}).get("events_through_id") or 0)
    except (TypeError, ValueError):
        return 0


class ServiceState:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.runtime: Runtime | None = None
        self.events: EventStore | None = None
        self.erasures = Erasures("", ())
        self.load_error: str | None = None
        self.pid = os.getpid()
        self._reload_lock = threading.Lock()
        self._events_lock = threading.Lock()   # append+apply and read+apply are atomic w.r.t. each other
        self._own_ids: set[int] = set()
        self._seen_id = 0                      # events up to here are applied to self.runtime
        self._failed_version: str | None = None
        self._trimmed = 0.0                    # when freed heap memory was last returned (trim_malloc)

    # ------------------------------------------------------------------ bundle
    def _store_is_a_directory_of_versions(self) -> bool:
        return not (self.settings.models / "manifest.json").is_file()

    def build_runtime(self, version: str | None = None) -> tuple[Runtime, int]:
        """Load + verify a bundle and replay the stored purchases it was not trained on (blocking).

        Returns the runtime and the last event id applied to it.
        """
        bundle = load_bundle(self.settings.models, version)
        rt = Runtime(bundle)
        rt.set_erasures(self.erasures)
        upto = 0
        if self.events is not None:
            t = time.perf_counter()
            cust, item, ns, upto = self.events.purchases_after(events_through_id(bundle.manifest))
            keep = ~self.erasures.mask(cust) if len(self.erasures) else slice(None)
            n = rt.replay(cust[keep], item[keep], ns[keep])
            upto = max(upto, events_through_id(bundle.manifest))
            if n:
                log.info("replayed %d stored purchases into bundle %s in %.2f s", n, rt.version,
                         time.perf_counter() - t)
            if rt.desk.offers is not None:
                cust, offer, typ, ns, last = self.events.offer_events_after(events_through_id(bundle.manifest))
                keep = ~self.erasures.mask(cust) if len(self.erasures) and len(cust) else slice(None)
                rt.replay_offer_events(cust[keep], offer[keep], typ[keep], ns[keep])
                upto = max(upto, last)
            ledger = self.events.ledger_rows(after_id=events_through_id(bundle.manifest))
            if ledger:
                rt.replay_ledger([r for r in ledger if r["customer_id"] not in self.erasures])
                upto = max(upto, ledger[-1]["id"])
        return rt, upto

    def _start_runtime(self) -> tuple[Runtime, int]:
        """The CURRENT bundle, or (when it cannot be loaded) the newest version that can."""
        try:
            return self.build_runtime()
        except Exception as exc:  # noqa: BLE001 - fall back below, report by /readyz
            if not self._store_is_a_directory_of_versions() or current_version(self.settings.models) is None:
                raise
            self._failed_version = current_version(self.settings.models)
            log.error("CURRENT bundle %s cannot be loaded (%s); trying earlier versions",
                      self._failed_version, type(exc).__name__)
            for row in reversed(list_versions(self.settings.models)):
                if not row["ok"] or row["version"] == self._failed_version:
                    continue
                try:
                    return self.build_runtime(row["version"])
                except Exception:  # noqa: BLE001 - try the next one
                    continue
            raise

    def open(self) -> None:
        """Start-up: open the event store and load a bundle (a failure leaves the service unready)."""
        tune_malloc()
        self.events = EventStore(self.settings.events_path)
        self.erasures = self.events.erasures()
        try:
            rt, upto = self._start_runtime()
        except Exception as exc:  # noqa: BLE001 - reported by /readyz (without paths)
            self.load_error = type(exc).__name__
            log.error("no model bundle loaded: %s", exc)
            self.heartbeat()
            return
        self._install(rt, upto)
        self.catch_up()
        self.refreeze()

    def close(self) -> None:
        events, self.events = self.events, None
        if events is not None:
            try:
                events.leave(self.pid)
            finally:
                events.close()

    def _install(self, rt: Runtime, upto: int) -> None:
        with self._events_lock:
            self.runtime = rt
            self._seen_id = upto
            self._own_ids = {i for i in self._own_ids if i > upto}
        self.load_error = None
        self.metrics.set_version(rt.version)
        self.heartbeat()

    @staticmethod
    def refreeze() -> None:
        """A bundle is hundreds of thousands of long-lived objects (id maps): freeze them out of the cyclic
        GC's way so collections triggered by request garbage stay short (p99). Unfreezing first lets the
        previous bundle's cycles be collected."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def swap_to(self, version: str | None = None) -> str:
        """Load ``version`` (default: CURRENT) and serve it (blocking); raises and keeps the old one on failure."""
        with self._reload_lock:
            previous = self.runtime.version if self.runtime is not None else None
            try:
                rt, upto = self.build_runtime(version)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            self._install(rt, upto)
            self.catch_up()
            self.refreeze()
            self._failed_version = None
            self.metrics.reloads.labels("ok").inc()
            log.info("serving bundle %s (was %s)", rt.version, previous)
            return rt.version

    def follow_store(self) -> str | None:
        """Swap to CURRENT if it names another bundle than the served one (once per bad version). Blocking."""
        if not self._store_is_a_directory_of_versions():
            return None
        want = current_version(self.settings.models)
        have = self.runtime.version if self.runtime is not None else None
        if want is None or want == have or want == self._failed_version:
            return None
        try:
            return self.swap_to(want)
        except Exception as exc:  # noqa: BLE001 - keep serving the last good bundle; retry when CURRENT changes
            self._failed_version = want
            log.error("bundle %s cannot be loaded (%s); still serving %s", want, type(exc).__name__, have)
            return None

    async def reload(self, version: str | None = None, *, wait: float = 5.0) -> dict:
        """Make ``version`` (default: the newest CURRENT) what every worker serves, and say which do.

        With a version, CURRENT is pointed at it first (after verifying it), so
        the other workers follow within their poll interval. Waits up to
        ``wait`` seconds for every live worker to report it.
        """
        if version is not None:
            if not self._store_is_a_directory_of_versions():
                raise PersonalizeError("this service serves a single bundle directory: nothing to reload")
            try:
                await run_in_threadpool(rollback, self.settings.models, version)
            except BundleError as exc:
                raise UnknownIdError(f"no loadable published bundle {version!r} in the model store") from exc
        previous = self.runtime.version if self.runtime is not None else None
        target = version or (current_version(self.settings.models) if self._store_is_a_directory_of_versions()
                             else None)
        if target is None or target != previous or self.runtime is None:
            await run_in_threadpool(self.swap_to, target)
        target = self.runtime.version
        deadline = time.monotonic() + wait
        workers = await run_in_threadpool(self.workers)
        while any(w["version"] != target for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            workers = await run_in_threadpool(self.workers)
        return {"previous": previous, "current": target, "changed": previous != target, "workers": workers,
                "lagging": [w for w in workers if w["version"] != target]}

    def follows_current(self) -> bool:
        """False while CURRENT names a bundle this worker could not load (it serves an earlier one)."""
        return self._failed_version is None

    # ------------------------------------------------------------------ workers
    def heartbeat(self) -> None:
        if self.events is not None:
            self.events.heartbeat(self.pid, self.runtime.version if self.runtime is not None else None)

    def workers(self) -> list[dict]:
        if self.events is None:
            return []
        alive = []
        for w in self.events.workers(alive_within=max(3.0, 4 * self.settings.poll_interval)):
            if w["pid"] != self.pid and not _pid_alive(w["pid"]):
                self.events.leave(w["pid"])
                Metrics.worker_gone(w["pid"])
                continue
            alive.append(w)
        return alive

    # ------------------------------------------------------------------ events
    def append_events(self, events: Sequence[Event]) -> list[Appended]:
        """Durably store events (returns after commit) and apply the new purchases to the served runtime."""
        with self._events_lock:
            stored = self.events.append(events)
            rt = self.runtime
            new = [(e, a) for e, a in zip(events, stored) if not a.duplicate]
            self._own_ids.update(a.id for _, a in new)
            if rt is not None:
                for e, _ in new:
                    if e.type == "purchase":
                        rt.record_purchase(e.customer_id, [e.item_id], [e.timestamp])
                    elif e.type in OFFER_EVENTS:
                        rt.record_offer_event(e.customer_id, e.offer_id, e.timestamp, exposure=e.type == "exposure")
                    elif e.type in LEDGER_EVENTS:
                        rt.record_ledger(e.type, ledger_row(e))
        for e, a in zip(events, stored):
            if not a.duplicate:
                self.metrics.events.labels(e.type).inc()
        return stored

    def catch_up(self) -> int:
        """Apply purchases, offer exposures and redemptions that other worker processes stored since the last
        look (blocking); returns how many purchases."""
        if self.events is None or self.runtime is None:
            return 0
        with self._events_lock:
            rt = self.runtime
            rows = self.events.events(after_id=self._seen_id)
            if not rows:
                return 0
            self._seen_id = max(self._seen_id, rows[-1]["id"])
            foreign = [r for r in rows if r["id"] not in self._own_ids
                       and r["customer_id"] not in self.erasures]
            self._own_ids = {i for i in self._own_ids if i > self._seen_id}
            bought = [r for r in foreign if r["type"] == "purchase"]
            for r in foreign:
                if r["type"] in OFFER_EVENTS and r.get("offer_id"):
                    rt.record_offer_event(r["customer_id"], r["offer_id"], r["timestamp"],
                                          exposure=r["type"] == "exposure")
                elif r["type"] in LEDGER_EVENTS:
                    rt.record_ledger(r["type"], EventStore.unpack(r))
            return rt.replay(*EventStore.purchase_arrays(bought)) if bought else 0

    sync_other_workers = catch_up  # the name the tests and wave 1 used

    def forget(self, customer_ids: Sequence[str]) -> dict:
        """Erase customers everywhere this process holds them, and in the store (other workers follow)."""
        result = self.events.forget(customer_ids)
        self.sync_erasures()
        rt = self.runtime
        if rt is not None:
            for c in customer_ids:
                rt.forget(c)
        return result

    def sync_erasures(self) -> int:
        """Pick up erasures recorded by any worker; returns how many are new here."""
        if self.events is None:
            return 0
        er = self.events.erasures()
        new = len(er.hashes - self.erasures.hashes)
        if new or er.salt != self.erasures.salt:
            self.erasures = er
            if self.runtime is not None:
                self.runtime.set_erasures(er)
        return new

    def tick(self) -> None:
        """One turn of the background loop (blocking)."""
        self.sync_erasures()
        self.follow_store()
        self.catch_up()
        self.heartbeat()
        now = time.monotonic()
        if now - self._trimmed >= TRIM_INTERVAL:
            self._trimmed = now
            trim_malloc()

    def _current_moved(self) -> bool:
        """CURRENT names another bundle than the served one (a read of one small file)."""
        if self.runtime is None or not self._store_is_a_directory_of_versions():
            return False
        want = current_version(self.settings.models)
        return want is not None and want != self.runtime.version and want != self._failed_version

    async def sync_loop(self) -> None:
        """The full tick every ``poll_interval``; between ticks CURRENT alone is looked at every
        :data:`CURRENT_POLL` seconds, so that a publish is picked up without waiting for the next tick."""
        interval = self.settings.poll_interval
        quick = min(interval, CURRENT_POLL)
        last = time.monotonic()
        while True:
            await asyncio.sleep(quick)
            now = time.monotonic()
            try:
                if now - last < interval - 1e-3 and not self._current_moved():
                    continue
                last = now
                await run_in_threadpool(self.tick)
            except Exception as exc:  # noqa: BLE001 - keep polling
                log.warning("store sync failed: %s", type(exc).__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True
