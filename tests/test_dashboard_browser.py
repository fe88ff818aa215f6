"""The dashboard in a real browser: Debian's chromium driven by Playwright against `personalize serve` (two workers)
on a small trained bundle.

A marketer logs in with a marketing key, builds an audience and sees the same count as the API's
``/v1/audiences`` for the same filters, downloads the CSV and gets the API's CSV byte for byte, and logs out; a
shop key sees 403. The page loads nothing from anywhere else, and no key ever appears in a URL. Screenshots (overview, audience,
coupons, campaign) are written to ``benchmarks/results/dashboard-*.png`` (the test prints the paths).

Skipped, saying why, without chromium (``apt-get install chromium``) or without playwright (``pip install -e
'.[test]'``); Playwright downloads no browser of its own here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "benchmarks" / "results"
CHROMIUM = os.environ.get("PERSONALIZE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
MARKETING = "dash-marketing-key-1"
SHOP = "dash-shop-key-00001"
KEYS = {MARKETING: ["recommend", "profile", "audience"], SHOP: ["recommend"]}
#: flags for a headless chromium on a machine without a display or outside network (and as root)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM} (apt-get install chromium)"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, path: str, key: str = MARKETING):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.fixture(scope="module")
def server(retail_store, tmp_path_factory):
    port = _port()
    env = {**os.environ, "PERSONALIZE_API_KEYS": json.dumps(KEYS), "PERSONALIZE_POLL_INTERVAL": "0.5"}
    events = tmp_path_factory.mktemp("dash-events") / "events.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "personalize", "serve", "--models", str(retail_store),
                             "--events-db", str(events), "--port", str(port), "--workers", "2",
                             "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read()}")
            try:
                if _api(base, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not become ready")
            time.sleep(0.3)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        logs = proc.stderr.read() if proc.stderr else ""
        assert MARKETING not in logs and SHOP not in logs, "an API key reached the server log"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e "
                                                                 "'.[test]'")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _login(page, base: str, key: str):
    page.goto(base + "/dashboard")
    assert page.url == base + "/dashboard/login", "an anonymous visitor is sent to the login form"
    page.fill("#key", key)
    with page.expect_response(lambda r: r.url.endswith("/dashboard/login") and r.request.method == "POST") as resp:
        page.click("button[type=submit]")
    return resp.value


def test_marketer_builds_an_audience_that_matches_the_api_and_downloads_its_csv(server, browser, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    try:
        assert _login(page, server, MARKETING).status == 303
        page.wait_for_selector("#model-version")
        assert page.inner_text("h1") == "Overview"
        served = json.loads(_api(server, "/v1/models")[2])["version"]
        assert page.inner_text("#model-version") == served
        assert page.locator("img.chart").count() >= 4, "segments, lifecycle x tier, churn and CLV charts"
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["pz_session"]["httpOnly"] and cookies["pz_session"]["sameSite"] == "Strict"
        assert MARKETING not in cookies["pz_session"]["value"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        overview_png = ARTIFACTS / "dashboard-overview.png"
        page.screenshot(path=str(overview_png), full_page=True)

        page.click("text=Audiences")
        page.select_option("#consent", "email")
        page.select_option("#segment", ["Champions", "Loyal", "At Risk"])
        page.select_option("#tier", ["Gold", "Platinum"])
        page.fill("#max_churn_risk", "0.9")
        page.click("#count-button")
        page.wait_for_selector("#audience-count")
        shown = int(page.inner_text("#audience-count").replace(",", ""))

        query = ("consent=email&segment=Champions&segment=Loyal&segment=At+Risk&tier=Gold&tier=Platinum"
                 "&max_churn_risk=0.9")
        status, headers, body = _api(server, f"/v1/audiences?{query}&limit=100000")
        assert status == 200
        api_rows = list(csv.DictReader(io.StringIO(body.decode())))
        assert shown == int(headers["X-Count"]) == len(api_rows) > 0
        assert "X-Next-Cursor" not in headers

        with page.expect_download() as dl:
            page.click("#download-csv")
        path = tmp_path / "audience.csv"
        dl.value.save_as(path)
        assert path.read_bytes() == body, "the dashboard's CSV is the API's CSV for the same filters"
        audience_png = ARTIFACTS / "dashboard-audience.png"
        page.screenshot(path=str(audience_png), full_page=True)

        page.click("text=Coupons")
        page.fill("#budget", "150")
        page.click("#coupon-form button")
        page.wait_for_selector("#coupon-customers")
        coupons_png = ARTIFACTS / "dashboard-coupons.png"
        page.screenshot(path=str(coupons_png), full_page=True)
        page.click("text=Campaigns")
        page.click("#campaigns a >> nth=0")
        page.wait_for_selector("#lifts")
        campaign_png = ARTIFACTS / "dashboard-campaign.png"
        page.screenshot(path=str(campaign_png), full_page=True)

        page.click("header form.logout button")
        page.wait_for_selector("#key")
        page.goto(server + "/dashboard/audience")
        assert page.url == server + "/dashboard/login", "after logout the session is gone"
        print(f"\nscreenshots: {overview_png} {audience_png} {coupons_png} {campaign_png}")
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-failure.png"), full_page=True)
        print(f"\nthe page at the failure: {ARTIFACTS / 'dashboard-failure.png'} ({page.url})")
        raise
    finally:
        context.close()
    outside = [u for u in requested if not u.startswith(server) and not u.startswith("data:")]
    assert not outside, f"the dashboard loaded resources from elsewhere: {outside[:5]}"
    assert not [u for u in requested if MARKETING in u], "an API key appeared in a URL"


def test_a_key_without_the_audience_scope_sees_403(server, browser):
    context = browser.new_context()
    page = context.new_page()
    try:
        response = _login(page, server, SHOP)
        assert response.status == 403
        assert "lacks the 'audience' scope" in page.inner_text("main")
        assert "pz_session" not in {c["name"] for c in context.cookies()}
        page.goto(server + "/dashboard")
        assert page.url == server + "/dashboard/login"
    finally:
        context.close()
