"""`personalize demo` trains every model on the embedded sample, and every request it prints works as printed."""

from __future__ import annotations

import json
import shlex
import warnings
from urllib.parse import urlsplit

import pytest

warnings.filterwarnings("ignore", message=".*httpx.*", category=DeprecationWarning)

from fastapi.testclient import TestClient  # noqa: E402

from personalize.cli import main  # noqa: E402
from personalize.commands.demo import DEMO_KEYS, demo_examples  # noqa: E402
from personalize.data import CleaningOptions, Dataset  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.settings import Settings  # noqa: E402


def _curl(line: str) -> tuple[str, str, dict, str | None, str]:
    """(method, path with query, headers, body, comment) of one printed curl line."""
    code, _, comment = line.partition("   # ")
    args = shlex.split(code)
    assert args[0] == "curl"
    headers, body, url = {}, None, None
    i = 1
    while i < len(args):
        a = args[i]
        if a == "-H":
            k, _, v = args[i + 1].partition(": ")
            headers[k] = v
            i += 2
        elif a == "-d":
            body = args[i + 1]
            i += 2
        elif a == "-s":
            i += 1
        else:
            url = a
            i += 1
    parts = urlsplit(url)
    return ("POST" if body else "GET"), parts.path + (f"?{parts.query}" if parts.query else ""), headers, body, \
        comment


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    try:
        main(["demo", "--no-serve", "--customers", "1500", "--items", "200", "--data-dir", str(d / "data"),
              "--models", str(d / "models"), "--json"])
    except SystemExit as exc:
        assert not exc.code
    return d


def test_every_printed_example_works(demo_store, tmp_path):
    d = demo_store
    ds = Dataset.from_csv(d / "data" / "transactions.csv", items=d / "data" / "items.csv",
                          customers=d / "data" / "customers.csv", offers=d / "data" / "offers.csv",
                          exposures=d / "data" / "exposures.csv", options=CleaningOptions(returns="net"))
    examples = demo_examples(ds, str(d / "models"), "http://127.0.0.1:8000")
    assert any("next-best-offer" in e for e in examples) and any("coupon_level" in e for e in examples)
    assert any("/readout" in e for e in examples)
    keys = {f"demo-{name}-key": scopes for name, scopes in DEMO_KEYS.items()}
    s = Settings(models=d / "models", events_db=tmp_path / "events.sqlite", api_keys=keys, poll_interval=0)
    with TestClient(create_app(s)) as c:
        for line in examples:
            method, path, headers, body, comment = _curl(line)
            r = c.request(method, path, headers=headers, content=body)
            want = 403 if "403" in comment else 200
            assert r.status_code == want, (line, r.text[:300])
            if want == 200 and "next-best-offer" in path:
                assert r.json()["offers"], "the demo's NBO example shows no offer"
            if want == 200 and r.headers["content-type"].startswith("application/json"):
                json.loads(r.text)
