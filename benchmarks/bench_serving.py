"""Serving benchmark (issue 4, item 7).

Builds a bundle over a 100,000-item catalog (ALS, 64 factors), starts the
service on 127.0.0.1 (one uvicorn worker, BLAS/OpenMP at one thread) and
drives a bounded keep-alive load (concurrency 16) from a separate process:

phase 1  the recommendations route and a no-op route (/healthz), same run;
phase 2  the recommendations route while the bundle is swapped mid-load
         (POST /v1/admin/reload to a second published version);
phase 3  two worker processes and a publish nobody announces: the time
         until every answer (fresh connections) carries the new version;
phase 4  start and reload with 1,000,000 stored purchase events to replay;
phase 5  an event soak (purchases and recommendations of the same customers,
         many of them new) against one worker, its RSS sampled throughout.

Writes benchmarks/results/serving.json and exits 1 past a target:
recommendations throughput >= 40% of the no-op route's, p99 <= 3 x p50,
zero errors, zero failed requests across the swap; 2 workers converge
within 2 s of a publish with zero failed requests; start and reload with
1M events <= 5 s each; worker RSS grows <= 32 MB from the end of the first
minute of the soak to its end (10 minutes by default).

    .venv/bin/python benchmarks/bench_serving.py [--seconds 15] [--customers 10000] [--items 100000]
        [--events 1000000] [--soak-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789"
CONCURRENCY = 16
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
SERVER_CPU, CLIENT_CPU = (_CPUS[0], _CPUS[1]) if len(_CPUS) >= 2 else (None, None)


# --------------------------------------------------------------------------- data + bundle
def build_store(store: Path, *, customers: int, items: int, lines: int, factors: int, seed: int = 0) -> dict:
    import pandas as pd

    from personalize.data import Dataset
    from personalize.pipeline import train_bundle
    from personalize.store import rollback
    from personalize.recommenders import ALS

    rng = np.random.default_rng(seed)
    # power-law item popularity, customers with a taste cluster so ALS has structure to learn
    clusters = 50
    item_cluster = rng.integers(0, clusters, items)
    cust_cluster = rng.integers(0, clusters, customers)
    pop = 1.0 / np.arange(1, items + 1) ** 0.8
    rng.shuffle(pop)
    by_cluster = [np.flatnonzero(item_cluster == c) for c in range(clusters)]
    cust = rng.integers(0, customers, lines)
    in_cluster = rng.random(lines) < 0.7
    item = np.empty(lines, dtype=np.int64)
    p_all = pop / pop.sum()
    item[~in_cluster] = rng.choice(items, size=int((~in_cluster).sum()), p=p_all)
    for c in range(clusters):
        sel = np.flatnonzero(in_cluster & (cust_cluster[cust] == c))
        members = by_cluster[c]
        w = pop[members] / pop[members].sum()
        item[sel] = rng.choice(members, size=sel.size, p=w)
    t0 = np.datetime64("2024-01-01")
    tx = pd.DataFrame({
        "customer_id": np.char.add("C", cust.astype(str)).astype(object),
        "item_id": np.char.add("I", item.astype(str)).astype(object),
        "timestamp": t0 + rng.integers(0, 365 * 24 * 3600, lines).astype("timedelta64[s]"),
        "quantity": 1.0, "price": np.round(rng.uniform(1, 100, lines), 2)})
    catalog = pd.DataFrame({"item_id": [f"I{i}" for i in range(items)],
                            "category": [f"cat{c}" for c in item_cluster], "price": 10.0,
                            "in_stock": rng.random(items) > 0.1, "repeatable": rng.random(items) > 0.8})
    ds = Dataset.from_frames(tx, items=catalog)
    times = {}
    t = time.perf_counter()
    m1 = train_bundle(ds, store=store, factors=factors, candidates=200, customers=False,
                      recommender=ALS(factors=factors, iterations=5, random_state=0))
    times["publish_v1_s"] = time.perf_counter() - t
    t = time.perf_counter()
    m2 = train_bundle(ds, store=store, factors=factors, candidates=200, customers=False,
                      recommender=ALS(factors=factors, iterations=5, random_state=1))
    times["publish_v2_s"] = time.perf_counter() - t
    rollback(store, m1["version"])  # serve v1 first; phase 2 swaps to v2
    ids = sorted(set(tx["customer_id"]))
    return {"v1": m1["version"], "v2": m2["version"], "customers": ids, "n_items": len(ds.item_vocab),
            "n_customers": len(ds.customer_vocab), "lines": len(ds), "times": times}


# --------------------------------------------------------------------------- load generator
#: the routes a load can drive (``{customer}``: a known customer, or an unknown one 10% of the time)
ROUTES = {"noop": "/healthz", "recs": "/v1/customers/{customer}/recommendations?k=10",
          "nbo": "/v1/customers/{customer}/next-best-offer?n=3&channel=email",
          "coupon": "/v1/customers/{customer}/coupon?channel=email"}


async def _worker(host, port, make_path, deadline, lat, errors, statuses):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        errors.append("connect")
        return
    i = 0
    try:
        while time.perf_counter() < deadline:
            path = make_path(i)
            i += 1
            req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n\r\n").encode()
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            if status != 200:
                errors.append(status)
            else:
                statuses.append(body[-80:])
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(type(exc).__name__)
    finally:
        writer.close()


def _pin(cpu: int | None) -> None:
    """Server and load generator on different cores, so they do not preempt each other."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def _run_load(args):
    host, port, kind, seconds, customers, seed = args
    _pin(CLIENT_CPU)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    picks = [customers[j] for j in rng.integers(0, len(customers), 50_000)]
    picks = [p if k % 10 else f"new-{k}" for k, p in enumerate(picks)]  # 10% unknown customers

    template = ROUTES[kind]

    def make_path(i):
        return template.format(customer=picks[i % len(picks)])

    lat, errors, bodies = [], [], []

    async def main():
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(_worker(host, port, make_path, deadline, lat, errors, bodies)
                               for _ in range(CONCURRENCY)))

    t = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - t
    versions = sorted({b.split(b'"model_version":"')[1].split(b'"')[0].decode() for b in bodies
                       if b'"model_version":"' in b})
    return {"requests": len(lat), "elapsed_s": elapsed, "latencies": lat, "errors": errors[:20],
            "n_errors": len(errors), "versions": versions}


def _summ(r: dict) -> dict:
    lat = np.asarray(r["latencies"]) * 1000
    out = {"requests": r["requests"], "throughput_rps": r["requests"] / r["elapsed_s"],
           "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
           "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
           "max_ms": float(lat.max()) if lat.size else None, "errors": r["n_errors"], "error_samples": r["errors"]}
    out["p99_over_p50"] = out["p99_ms"] / out["p50_ms"] if lat.size else None
    if r.get("versions"):
        out["versions_seen"] = r["versions"]
    return out


def load(host, port, kind, seconds, customers, seed=0) -> dict:
    # the load generator runs in its own process so it does not share the server's GIL
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_load, ((host, port, kind, seconds, customers, seed),))


def interleaved(host, port, seconds, customers, rounds=3, kinds=("noop", "recs")) -> tuple[dict, ...]:
    """The routes ``kinds`` alternately in short rounds, so drifting load from other processes on a shared
    machine hits every route alike."""
    acc = {k: {"requests": 0, "elapsed_s": 0.0, "latencies": [], "errors": [], "n_errors": 0, "versions": []}
           for k in kinds}
    for r in range(rounds):
        for kind in kinds:
            res = load(host, port, kind, seconds / rounds, customers, seed=r)
            a = acc[kind]
            a["requests"] += res["requests"]
            a["elapsed_s"] += res["elapsed_s"]
            a["latencies"] += res["latencies"]
            a["errors"] += res["errors"]
            a["n_errors"] += res["n_errors"]
            a["versions"] = sorted(set(a["versions"]) | set(res["versions"]))
    return tuple(acc[k] for k in kinds)


# --------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, port: int, events: Path) -> subprocess.Popen:
    env = dict(os.environ, PERSONALIZE_API_KEYS=json.dumps({KEY: ["recommend", "admin"]}))
    proc = subprocess.Popen([sys.executable, "-m", "personalize", "serve", "--models", str(store), "--port",
                             str(port), "--workers", "1", "--events-db", str(events), "--log-level", "warning"],
                            env=env, cwd=ROOT, preexec_fn=lambda: _pin(SERVER_CPU))
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("server did not become ready")


def start_workers(store: Path, port: int, events: Path, workers: int) -> subprocess.Popen:
    env = dict(os.environ, PERSONALIZE_API_KEYS=json.dumps({KEY: ["recommend", "admin", "events"]}))
    proc = subprocess.Popen([sys.executable, "-m", "personalize", "serve", "--models", str(store), "--port",
                             str(port), "--workers", str(workers), "--events-db", str(events), "--log-level",
                             "warning"], env=env, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("server did not become ready")


def stop_group(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def _version_of(port: int, cid: str) -> str | None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/customers/{cid}/recommendations?k=5",
                                 headers={"Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())["model_version"]
    except OSError:
        return None


def workers_follow_publish(store: Path, tmp: Path, customers: list[str], info: dict) -> dict:
    """Phase 3: two workers, CURRENT moved under them; seconds until every fresh connection gets the new one."""
    import threading

    from personalize.store import rollback

    rollback(store, info["v1"])
    port = free_port()
    proc = start_workers(store, port, tmp / "workers-events.sqlite", 2)
    seen: list[tuple[float, str | None]] = []
    stop = threading.Event()

    def hammer(k: int):
        i = k
        while not stop.is_set():
            i += 3
            seen.append((time.monotonic(), _version_of(port, customers[i % len(customers)])))

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(2.0)
        rollback(store, info["v2"])   # what a publish does to CURRENT
        moved = time.monotonic()
        time.sleep(6.0)
        stop.set()
        for t in threads:
            t.join()
    finally:
        stop.set()
        stop_group(proc)
    after = [(t, v) for t, v in seen if t >= moved]
    old_after = [t for t, v in after if v != info["v2"]]
    converge = (max(old_after) - moved) if old_after else 0.0
    return {"workers": 2, "requests": len(seen), "failed": sum(v is None for _, v in seen),
            "converged_s": round(converge, 3), "requests_after_publish": len(after)}


def replay_start_and_reload(store: Path, tmp: Path, n_events: int, customers: list[str], items: list[str],
                            info: dict) -> dict:
    """Phase 4: a worker's start and a reload with ``n_events`` stored purchases that no bundle includes."""
    import sqlite3

    from personalize.store import rollback
    from personalize.store.events import EventStore
    from serving.metrics import Metrics
    from serving.settings import Settings
    from serving.state import ServiceState

    db = tmp / "replay-events.sqlite"
    EventStore(db).close()
    rng = np.random.default_rng(3)
    cust = rng.integers(0, len(customers) * 3, n_events)   # two thirds of the ids are customers new since training
    item = rng.integers(0, len(items), n_events)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000", time.gmtime())
    t = time.perf_counter()
    with sqlite3.connect(db) as con:
        con.executemany("INSERT INTO events (received_at, type, customer_id, item_id, quantity, price, timestamp) "
                        "VALUES (?, 'purchase', ?, ?, 1.0, NULL, ?)",
                        ((now, customers[c] if c < len(customers) else f"new-{c}", items[i], now)
                         for c, i in zip(cust.tolist(), item.tolist())))
    fill_s = time.perf_counter() - t
    rollback(store, info["v1"])
    st = ServiceState(Settings(models=store, events_db=db, api_keys={KEY: ["admin"]}, poll_interval=0), Metrics())
    t = time.perf_counter()
    st.open()
    start_s = time.perf_counter() - t
    live = {"customers": len(st.runtime.live), "events": st.runtime.live.n_events,
            "bytes": st.runtime.live.nbytes}
    t = time.perf_counter()
    st.swap_to(info["v2"])
    reload_s = time.perf_counter() - t
    st.close()
    return {"events": n_events, "fill_s": round(fill_s, 2), "start_s": round(start_s, 3),
            "reload_s": round(reload_s, 3), "live": live}


def soak(store: Path, tmp: Path, seconds: float, customers: list[str], items: list[str], info: dict) -> dict:
    """Phase 5: events and recommendations for ``seconds`` against one worker; its RSS over time."""
    import psutil

    from personalize.store import rollback

    rollback(store, info["v1"])
    port = free_port()
    proc = start_workers(store, port, tmp / "soak-events.sqlite", 1)
    server = psutil.Process(proc.pid)
    rng = np.random.default_rng(5)
    samples, posted_at, posted, failed, i = [], [], 0, 0, 0
    t0 = time.monotonic()
    next_sample = t0
    try:
        while time.monotonic() - t0 < seconds:
            batch = []
            for _ in range(10):
                i += 1
                c = customers[int(rng.integers(len(customers)))] if i % 3 else f"soak-new-{i}"
                batch.append({"type": "purchase", "customer_id": c, "item_id": items[int(rng.integers(len(items)))],
                              "event_id": f"soak-{i}"})
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", method="POST",
                                         data=json.dumps({"events": batch}).encode(),
                                         headers={"Authorization": f"Bearer {KEY}",
                                                  "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                posted += len(batch)
            except OSError:
                failed += 1
            if _version_of(port, batch[0]["customer_id"]) is None:
                failed += 1
            if time.monotonic() >= next_sample:
                rss = sum(p.memory_info().rss for p in [server, *server.children(recursive=True)])
                samples.append((round(time.monotonic() - t0, 1), round(rss / 2**20, 1)))
                posted_at.append(posted)
                next_sample += 10.0
    finally:
        stop_group(proc)
    w = next((j for j, (t, _) in enumerate(samples) if t >= 60.0), 0)
    warm = samples[w][1]
    after = posted_at[-1] - posted_at[w]
    return {"seconds": seconds, "events_posted": posted, "failed_requests": failed,
            "rss_mb_samples": samples, "rss_mb_after_warmup": warm, "rss_mb_end": samples[-1][1],
            "rss_growth_mb": round(samples[-1][1] - warm, 1), "events_after_warmup": after,
            # the growth per event, for comparing soaks that posted different numbers of events (a busy machine)
            "rss_growth_bytes_per_event": round((samples[-1][1] - warm) * 2**20 / after, 1) if after else None}


def server_side(port: int, route: str) -> dict:
    """Approximate server-side latency percentiles (time inside the app) from the Prometheus histogram: the
    upper bucket bound holding the 50th / 99th percentile. Compared with the client-side numbers it shows how
    much of the tail is spent waiting (queueing, scheduling on a shared machine) rather than computing."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith("personalize_request_seconds_bucket{") and f'route="{route}"' in line:
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    out = {"requests": int(total)}
    for q in (0.5, 0.99):
        bound = next((le for le, c in buckets if c >= q * total), None)
        out[f"p{int(q * 100)}_ms_at_most"] = None if bound in (None, float("inf")) else bound * 1000
    return out


def reload(port: int) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/admin/reload", method="POST",
                                 headers={"Authorization": f"Bearer {KEY}"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        body = json.loads(r.read())
    body["seconds"] = time.perf_counter() - t
    return body


def in_process(store: Path, customers: list[str], n: int = 500) -> dict:
    """Per-call cost of the two designs, in this process with one BLAS thread: filtering the precomputed
    candidate list vs asking the recommender to score the whole catalog for every request."""
    from threadpoolctl import threadpool_limits

    from personalize.runtime import Runtime
    from personalize.store import load_bundle

    rt = Runtime(load_bundle(store))
    ids = [customers[i % len(customers)] for i in range(0, n * 7, 7)]
    out = {}
    with threadpool_limits(1):
        for name, fn in (("candidates_filtered_us", lambda c: rt.recommend(c, 10)),
                         ("recommender_full_scoring_us", lambda c: rt.model.recommend(c, k=10))):
            fn(ids[0])
            t = time.perf_counter()
            for c in ids:
                fn(c)
            out[name] = (time.perf_counter() - t) / len(ids) * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="load duration per phase")
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--store", help="reuse (or create) the benchmark model store here instead of a temp dir")
    ap.add_argument("--events", type=int, default=1_000_000, help="stored events replayed at start / reload")
    ap.add_argument("--soak-seconds", type=float, default=600.0, help="length of the event soak")
    ap.add_argument("--phases", default="load,follow,replay,soak",
                    help="comma-separated subset of load (phases 1-2), follow, replay, soak")
    args = ap.parse_args()
    phases = set(args.phases.split(","))

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        store = Path(args.store) if args.store else Path(tmp) / "models"
        cache = store / "bench_info.json"
        t = time.perf_counter()
        if cache.is_file():
            from personalize.store import rollback

            info = json.loads(cache.read_text())
            rollback(store, info["v1"])
        else:
            info = build_store(store, customers=args.customers, items=args.items, lines=args.lines,
                               factors=args.factors)
            if args.store:
                cache.write_text(json.dumps(info))
        build_s = time.perf_counter() - t
        noop = recs = swap = design = swap_result = None
        if "load" in phases:
            design = in_process(store, info["customers"])
            port = free_port()
            proc = start_server(store, port, Path(tmp) / "events.sqlite")
            try:
                load("127.0.0.1", port, "recs", 2.0, info["customers"], seed=9)   # warm-up
                noop_raw, recs_raw = interleaved("127.0.0.1", port, args.seconds, info["customers"])
                noop, recs = _summ(noop_raw), _summ(recs_raw)
                recs["server_side"] = server_side(port, "/v1/customers/{customer_id}/recommendations")
                noop["server_side"] = server_side(port, "/healthz")
                from personalize.store import rollback

                rollback(store, info["v2"])
                swap_result = {}

                def swap_later():
                    time.sleep(args.seconds / 3)
                    swap_result.update(reload(port))

                import threading

                th = threading.Thread(target=swap_later)
                th.start()
                swap = _summ(load("127.0.0.1", port, "recs", args.seconds, info["customers"], seed=2))
                th.join()
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        from personalize.store import load_bundle

        items = load_bundle(store, info["v1"])["candidates"].item_ids_list
        follow = workers_follow_publish(store, Path(tmp), info["customers"], info) if "follow" in phases else None
        replay = (replay_start_and_reload(store, Path(tmp), args.events, info["customers"], items, info)
                  if "replay" in phases else None)
        soaked = soak(store, Path(tmp), args.soak_seconds, info["customers"], items, info) if "soak" in phases \
            else None

    result = {
        "setup": {"items": info["n_items"], "customers": info["n_customers"], "lines": info["lines"],
                  "factors": args.factors, "candidates_per_customer": 200, "concurrency": CONCURRENCY,
                  "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU,
                  "seconds_per_phase": args.seconds, "workers": 1, "unknown_customer_share": 0.1,
                  "build_s": build_s, **info["times"]},
        "phases": sorted(phases),
    }
    checks = {}
    if noop is not None:
        ratio = recs["throughput_rps"] / noop["throughput_rps"]
        result.update({"in_process": design, "noop": noop, "recommendations": recs,
                       "recs_over_noop_throughput": ratio, "swap": {**swap, "reload": swap_result}})
        checks.update({
            "recs_throughput_ge_40pct_of_noop": ratio >= 0.40,
            "recs_p99_le_3x_p50": recs["p99_over_p50"] <= 3.0,
            "zero_errors": noop["errors"] == 0 and recs["errors"] == 0,
            "swap_zero_failed_requests": swap["errors"] == 0 and swap["requests"] > 0,
            "swap_served_both_versions": swap.get("versions_seen") == sorted([info["v1"], info["v2"]]),
        })
    if follow is not None:
        result["two_workers_follow_publish"] = follow
        checks["two_workers_converge_le_2s"] = follow["converged_s"] <= 2.0 and follow["failed"] == 0
    if replay is not None:
        result["replay_1m_events"] = replay
        checks["start_with_1m_events_le_5s"] = replay["start_s"] <= 5.0
        checks["reload_with_1m_events_le_5s"] = replay["reload_s"] <= 5.0
    if soaked is not None:
        result["event_soak"] = soaked
        checks["soak_rss_growth_le_32mb"] = soaked["rss_growth_mb"] <= 32.0 and soaked["failed_requests"] == 0
    finish("serving", result, checks)


if __name__ == "__main__":
    main()
