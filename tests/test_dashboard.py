"""The dashboard (``/dashboard``) in-process: who gets in, what the pages show, and that the audience builder is
``GET /v1/audiences`` (same counts, same CSV, same consent / suppression / erasure rules).

The real browser runs in tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_helpers import KEYS, publish_tiny  # noqa: E402

from personalize.customers import customer_summary  # noqa: E402
from serving.app import create_app  # noqa: E402
from serving.dashboard import session  # noqa: E402
from serving.settings import Settings  # noqa: E402

CRM = "crm-key-00002"      # recommend, profile, audience
SHOP = "shop-key-0001"     # recommend only
API = {"Authorization": f"Bearer {CRM}"}


def _client(store: Path, tmp_path: Path, **settings) -> TestClient:
    s = Settings(models=store, events_db=tmp_path / "events.sqlite", api_keys=KEYS, poll_interval=0, **settings)
    return TestClient(create_app(s))


@pytest.fixture()
def client(retail_store, tmp_path):
    with _client(retail_store, tmp_path) as c:
        yield c


def _csrf(client: TestClient, path: str = "/dashboard/login") -> str:
    page = client.get(path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def _login(client: TestClient, key: str = CRM):
    return client.post("/dashboard/login", data={"key": key, "csrf_token": _csrf(client)}, follow_redirects=False)


@pytest.fixture()
def marketer(client):
    assert _login(client).status_code == 303
    return client


def _count(page_text: str) -> int:
    return int(re.search(r'id="audience-count">([^<]+)<', page_text).group(1).replace(",", ""))


# ------------------------------------------------------------------------------------------------ access
def test_anonymous_visitors_are_sent_to_the_login_form(client):
    for path in ("/dashboard", "/dashboard/audience", "/dashboard/audience.csv?consent=email", "/dashboard/coupons",
                 "/dashboard/campaigns", "/dashboard/campaigns/CMP01"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login", path
    login = client.get("/dashboard/login")
    assert login.status_code == 200 and 'type="password"' in login.text and 'method="post"' in login.text


def test_login_sets_a_strict_httponly_session_cookie_that_is_not_the_key(client):
    r = _login(client)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"]
    assert "pz_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie and CRM not in cookie
    assert client.get("/dashboard").status_code == 200


def test_a_key_without_the_audience_scope_gets_403_at_login_and_on_every_page(client):
    r = _login(client, SHOP)
    assert r.status_code == 403 and "lacks the &#39;audience&#39; scope" in r.text
    assert "pz_session" not in r.headers.get("set-cookie", "")
    # a session of such a key (say the key lost the scope since) is refused too
    client.cookies.set("pz_session", session.new_session(SHOP), path="/dashboard")
    for path in ("/dashboard", "/dashboard/audience?consent=email", "/dashboard/audience.csv?consent=email"):
        assert client.get(path, follow_redirects=False).status_code == 403, path


def test_unknown_keys_empty_keys_and_missing_csrf_tokens_are_refused(client):
    token = _csrf(client)
    assert client.post("/dashboard/login", data={"key": "not-a-key-at-all", "csrf_token": token}).status_code == 401
    assert client.post("/dashboard/login", data={"key": "", "csrf_token": token}).status_code == 422
    assert client.post("/dashboard/login", data={"key": CRM}).status_code == 400          # no token
    assert client.post("/dashboard/login", data={"key": CRM, "csrf_token": "x" * 30}).status_code == 400
    foreign = client.post("/dashboard/login", data={"key": CRM, "csrf_token": token},
                          headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert foreign.status_code == 400 and "pz_session" not in foreign.headers.get("set-cookie", "")
    unknown = client.post("/dashboard/login", data={"key": CRM, "csrf_token": token, "extra": "1"})
    assert unknown.status_code == 422


def test_sessions_end_at_logout_at_expiry_and_when_the_key_is_removed(marketer, retail_store, tmp_path):
    token = _csrf(marketer, "/dashboard")
    assert marketer.post("/dashboard/logout", data={}).status_code == 400     # CSRF token required
    r = marketer.post("/dashboard/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert marketer.get("/dashboard", follow_redirects=False).status_code == 303

    old = session.new_session(CRM, now=time.time() - session.SESSION_SECONDS - 10)
    assert session.session_scopes(old, KEYS) is None
    forged = session.new_session("not-a-configured-key")
    assert session.session_scopes(forged, KEYS) is None
    assert session.session_scopes("garbage", KEYS) is None and session.session_scopes(None, KEYS) is None
    valid = session.new_session(CRM)
    assert "audience" in session.session_scopes(valid, KEYS)
    assert session.session_scopes(valid, {k: v for k, v in KEYS.items() if k != CRM}) is None


def test_pages_are_not_cached_framed_or_allowed_to_load_anything_from_elsewhere(marketer):
    r = marketer.get("/dashboard")
    assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src 'self' data:" in csp and "script-src" not in csp
    assert "<script" not in r.text and "http://" not in r.text and "https://" not in r.text
    css = marketer.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "url(" not in css.text


# ------------------------------------------------------------------------------------------------ overview
def test_overview_shows_the_model_version_and_the_customer_tables_aggregates(marketer):
    rt = marketer.app.state.service.runtime
    page = marketer.get("/dashboard").text
    assert f'id="model-version">{rt.version}<' in page
    assert page.count('<img src="data:image/svg+xml;base64,') >= 4
    summary = customer_summary(rt.customers)
    for name, row in summary.segments.iterrows():
        assert re.search(rf"<td>{re.escape(name).replace(chr(39), '&#39;')}</td><td class=\"n\">{int(row.customers):,}<",
                         page), name
    assert f"{summary.churn_scored:,} customers scored" in page
    assert "PR-AUC" in page and "NDCG@10" in page


def test_overview_of_a_bundle_without_churn_or_campaigns_still_renders(tmp_path):
    store = tmp_path / "models"
    publish_tiny(store)
    with _client(store, tmp_path) as c:
        _login(c)
        assert c.get("/dashboard").status_code == 200
        assert "not in this bundle" in c.get("/dashboard").text
        camp = c.get("/dashboard/campaigns")
        assert camp.status_code == 200 and "has no campaigns" in camp.text
        coupons = c.get("/dashboard/coupons")
        assert coupons.status_code == 409 and "has no coupons" in coupons.text
        churn = c.get("/dashboard/audience?consent=email&min_churn_risk=0.5")
        assert churn.status_code == 409 and "no churn model" in churn.text


# ------------------------------------------------------------------------------------------------ audiences
FILTERS = [
    "consent=email",
    "consent=sms&segment=Champions&segment=Loyal",
    "consent=email&tier=Gold&tier=Platinum&min_churn_risk=0.5",
    "consent=personalization&lifecycle=active&min_clv=500&max_churn_risk=0.3",
    "consent=email&coupon_level=PCT05&budget=100",
    "consent=email&offer_id=PCT10",
]


@pytest.mark.parametrize("query", FILTERS)
def test_the_audience_count_and_csv_are_those_of_the_api(marketer, query):
    api = marketer.get(f"/v1/audiences?{query}&limit=100000", headers=API)
    assert api.status_code == 200 and "x-next-cursor" not in api.headers
    page = marketer.get(f"/dashboard/audience?{query}")
    assert page.status_code == 200
    assert _count(page.text) == int(api.headers["x-count"])
    download = marketer.get(f"/dashboard/audience.csv?{query}")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    assert download.content == api.content


def test_the_csv_spans_every_page_of_the_audience(retail_store, tmp_path):
    with _client(retail_store, tmp_path, audience_page_max=7) as c:
        _login(c)
        rows = list(csv.DictReader(io.StringIO(c.get("/dashboard/audience.csv?consent=email").text)))
        api_ids, cursor = [], None
        while True:
            r = c.get("/v1/audiences?consent=email&limit=7" + (f"&cursor={cursor}" if cursor else ""), headers=API)
            api_ids += [row["customer_id"] for row in csv.DictReader(io.StringIO(r.text))]
            cursor = r.headers.get("x-next-cursor")
            if not cursor:
                break
        assert [r["customer_id"] for r in rows] == api_ids and len(api_ids) > 7
        assert _count(c.get("/dashboard/audience?consent=email").text) == len(api_ids)


def test_consent_suppression_and_erasure_hold_in_the_dashboard(client):
    _login(client)
    rt = client.app.state.service.runtime
    table = rt.customers.set_index("customer_id")
    ids = {r["customer_id"] for r in csv.DictReader(io.StringIO(client.get("/dashboard/audience.csv?consent=sms").text))}
    assert ids and all(table.loc[i, "consent_sms"] for i in ids)
    if "suppressed" in table:
        assert not any(table.loc[i, "suppressed"] for i in ids)
    victim = sorted(ids)[0]
    client.app.state.settings.api_keys["privacy-key-9"] = ["privacy"]
    assert client.delete(f"/v1/customers/{victim}", headers={"Authorization": "Bearer privacy-key-9"}).status_code == 200
    after = {r["customer_id"] for r in csv.DictReader(io.StringIO(client.get("/dashboard/audience.csv?consent=sms").text))}
    assert victim not in after and after == ids - {victim}
    assert _count(client.get("/dashboard/audience?consent=sms").text) == len(after)


@pytest.mark.parametrize("query, field", [
    ("consent=post", "consent"),
    ("consent=email&min_churn_risk=2", "min_churn_risk"),
    ("consent=email&min_churn_risk=0.8&max_churn_risk=0.2", "form"),
    ("consent=email&min_clv=abc", "min_clv"),
    ("consent=email&min_clv=nan", "min_clv"),
    ("consent=email&lifecycle=zombie", "lifecycle"),
    ("consent=email&tier=Diamond", "tier"),
    ("consent=email&segment=Heroes", "segment"),
    ("consent=email&coupon_level=NOPE", "coupon_level"),
    ("consent=email&offer_id=NOPE", "offer_id"),
    ("consent=email&budget=-1", "budget"),
    ("consent=email&colour=red", "form"),
])
def test_bad_filters_are_a_422_naming_the_field_never_a_500(marketer, query, field):
    page = marketer.get(f"/dashboard/audience?{query}")
    assert page.status_code in (400, 422), page.text[:300]
    if page.status_code == 422:
        assert f'id="error-{field}"' in page.text or f"{field}" in page.text
    assert marketer.get(f"/dashboard/audience.csv?{query}").status_code in (400, 422)


def test_budget_without_a_coupon_level_is_explained(marketer):
    page = marketer.get("/dashboard/audience?consent=email&budget=10")
    assert page.status_code == 400 and "budget applies to a coupon audience" in page.text


# ------------------------------------------------------------------------------------------------ campaigns, coupons
def test_campaign_list_and_readout_are_the_runtimes(marketer):
    rt = marketer.app.state.service.runtime
    listing = marketer.get("/dashboard/campaigns").text
    for c in rt.campaigns():
        assert f"/dashboard/campaigns/{c['campaign_id']}" in listing
    cid = rt.campaigns()[0]["campaign_id"]
    page = marketer.get(f"/dashboard/campaigns/{cid}?cuped=pre_spend")
    assert page.status_code == 200
    doc = rt.campaign_readout(cid, cuped=["pre_spend"])
    for verdict in doc["verdicts"]:
        assert str(escape(verdict)) in page.text
    assert "CUPED lift" in page.text
    assert marketer.get("/dashboard/campaigns/NOPE").status_code == 404
    assert marketer.get(f"/dashboard/campaigns/{cid}?alpha=0.9").status_code == 422
    assert marketer.get(f"/dashboard/campaigns/{cid}?cuped=shoe_size").status_code in (400, 422)


def test_coupon_plan_page_shows_the_runtimes_plan(marketer):
    rt = marketer.app.state.service.runtime
    plan, _curve, totals = rt.coupon_plan(channel="email", budget=120.0)
    page = marketer.get("/dashboard/coupons?channel=email&budget=120")
    assert page.status_code == 200
    assert f'id="coupon-customers">{totals["customers"]:,}<' in page.text
    assert f"{totals['total_profit']:,.2f}" in page.text
    for level, n in plan.groupby("level").size().items():
        assert f"<td>{level}</td><td class=\"n\">{n:,}<" in page.text
    assert marketer.get("/dashboard/coupons?channel=fax").status_code == 422
    bad = marketer.get("/dashboard/coupons?budget=-5")
    assert bad.status_code == 422 and 'id="error-budget"' in bad.text


def test_no_key_reaches_the_log(client, caplog):
    caplog.set_level(logging.DEBUG)
    _login(client)
    client.get("/dashboard")
    client.post("/dashboard/login", data={"key": "wrong-key-but-secret", "csrf_token": _csrf(client)})
    assert CRM not in caplog.text and "wrong-key-but-secret" not in caplog.text
