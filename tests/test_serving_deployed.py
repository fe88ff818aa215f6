"""The service as it is deployed: `personalize serve` in a subprocess with two worker processes.

Every worker follows a publish by itself (within 2 s, no failed request), the
admin reload answers with what every worker serves, /metrics is the same
whichever worker answers, bad configuration stops the launcher with one line
(exit 2) before any worker starts, and the README's serve example starts.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_helpers import KEYS, publish_tiny, tiny_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("personalize")
ALL = "all-key-00005"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, key: str | None = ALL, method: str = "GET", timeout: float = 5.0):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _start(args: list[str], env: dict, port: int, wait: bool = True) -> subprocess.Popen:
    proc = subprocess.Popen([str(EXE), *args], env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    if wait:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read()}")
            try:
                if _get(port, "/readyz", None, timeout=1)[0] == 200:
                    return proc
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not become ready")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset()


def test_two_workers_follow_a_publish_and_agree(tmp_path, ds):
    store = tmp_path / "models"
    v1 = publish_tiny(store, ds)["version"]
    port = _port()
    env = {"PERSONALIZE_API_KEYS": json.dumps(KEYS)}
    proc = _start(["serve", "--models", str(store), "--port", str(port), "--workers", "2"], env, port)
    try:
        seen: list[tuple[float, int, str | None]] = []
        stop = threading.Event()

        def hammer():
            i = 0
            while not stop.is_set():  # a fresh connection per request: it may land on either worker
                i += 1
                code, body = _get(port, f"/v1/customers/C{i % 35:03d}/recommendations?k=3")
                version = json.loads(body)["model_version"] if code == 200 else None
                seen.append((time.monotonic(), code, version))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        v2 = publish_tiny(store, ds)["version"]        # a publish, nobody tells the service
        published = time.monotonic()
        time.sleep(3.0)
        stop.set()
        for t in threads:
            t.join()
        assert {c for _, c, _ in seen} == {200}, "a request failed during the swap"
        late = [v for t, _, v in seen if t > published + 2.0]
        assert late and set(late) == {v2}, f"{len(late)} answers after 2 s, versions {set(late)}"
        assert v1 in {v for t, _, v in seen if t < published}
        # every worker reports v2; the admin reload answers with each worker's version
        code, body = _get(port, "/v1/admin/reload", "adm-key-00004", method="POST")
        doc = json.loads(body)
        assert code == 200 and doc["current"] == v2 and doc["lagging"] == []
        pids = {w["pid"] for w in doc["workers"]}
        assert len(pids) == 2 and {w["version"] for w in doc["workers"]} == {v2}
        # /readyz and /metrics agree, whichever worker answers; counters are the sum over workers
        totals = []
        for _ in range(8):
            assert json.loads(_get(port, "/readyz", None)[1])["model_version"] == v2
            text = _get(port, "/metrics", None)[1].decode()
            served = set(re.findall(r'personalize_model_info\{[^}]*version="([^"]+)"[^}]*\} 1\.0', text))
            assert served == {v2}, served
            totals.append(sum(float(x) for x in re.findall(
                r'personalize_requests_total\{[^}]*route="/v1/customers/\{customer_id\}/recommendations"'
                r'[^}]*status="200"\} ([0-9.e+]+)', text)))
        assert totals == sorted(totals) and totals[0] >= len([1 for _, c, _ in seen if c == 200]) * 0.99
    finally:
        _stop(proc)


@pytest.mark.parametrize("env, message", [
    ({"PERSONALIZE_API_KEYS": "{not json"}, "PERSONALIZE_API_KEYS"),
    ({"PERSONALIZE_API_KEYS": '{"short7x": ["recommend"]}'}, "shorter than 8"),
    ({"PERSONALIZE_API_KEYS": '{"long-enough-key": ["shopping"]}'}, "unknown scope"),
    ({"PERSONALIZE_API_KEYS": '{"long-enough-key": ["recommend"]}', "PERSONALIZE_MAX_K": "abc"},
     "PERSONALIZE_MAX_K"),
])
def test_bad_configuration_is_one_line_and_exit_2(tmp_path, ds, env, message):
    store = tmp_path / "models"
    publish_tiny(store, ds)
    port = _port()
    proc = _start(["serve", "--models", str(store), "--port", str(port), "--workers", "2"], env, port, wait=False)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == 2, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    for value in ("short7x", "long-enough-key", "not json"):
        assert value not in err


def test_unusable_event_store_exits_non_zero(tmp_path, ds):
    store = tmp_path / "models"
    publish_tiny(store, ds)
    (tmp_path / "a-file").write_text("x")
    port = _port()
    proc = _start(["serve", "--models", str(store), "--port", str(port), "--events-db",
                   str(tmp_path / "a-file" / "events.sqlite")], {"PERSONALIZE_API_KEYS": json.dumps(KEYS)}, port,
                  wait=False)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "event store" in err and "Traceback" not in err


def test_the_readme_serve_example_starts(tmp_path, ds):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"(PERSONALIZE_API_KEYS='[^']+' \\\n\s+personalize serve[^\n]+)", text).group(1)
    keys = re.search(r"PERSONALIZE_API_KEYS='([^']+)'", block).group(1)
    args = shlex.split(block.split("personalize serve", 1)[1])
    port = _port()
    args[args.index("--port") + 1] = str(port)
    store = tmp_path / "models"
    publish_tiny(store, ds)
    args[args.index("--models") + 1] = str(store)
    proc = _start(["serve", *args], {"PERSONALIZE_API_KEYS": keys}, port)
    try:
        key = next(iter(json.loads(keys)))
        code, body = _get(port, "/v1/customers/C001/recommendations?k=2", key)
        assert code == 200 and len(json.loads(body)["items"]) == 2
    finally:
        _stop(proc)
