"""The marketer dashboard at ``/dashboard``: server-rendered pages (Jinja2) over the served runtime.

    from serving import dashboard
    dashboard.install(app)     # the router, its HTML error pages and its chart cache

Like the API routes it only validates, authorizes, calls the runtime and renders: the audience builder calls
:meth:`Runtime.audience` with the parameters of ``GET /v1/audiences`` (the same filters, consent, suppression
and opt-out rules, the same CSV), campaigns call :meth:`Runtime.campaigns` / :meth:`Runtime.campaign_readout`,
coupon plans :meth:`Runtime.coupon_plan`, the overview :meth:`Runtime.customer_summary` and the manifest.
Charts are SVG drawn server-side with matplotlib; the pages use no script and load nothing from elsewhere.

Access: a key with the ``audience`` scope logs in through a form (POST, never a URL) and gets an HttpOnly,
SameSite=Strict session cookie (:mod:`serving.dashboard.session`); a key without that scope gets 403; every
POST carries a CSRF token. Pages are sent with ``Cache-Control: no-store`` and a strict Content Security Policy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from personalize.customers import valid_values
from personalize.errors import DataError, MissingComponentError, PersonalizeError, UnknownIdError
from personalize.runtime import Runtime
from serving import auth
from serving.dashboard import charts, session
from serving.dashboard.forms import (AudienceForm, CouponForm, LoginForm, ReadoutForm, TokenForm, form_pairs, multi,
                                     parse)
from serving.routers.audiences import _csv as csv_chunks  # the API's CSV writer: the download is byte-identical
from serving.routers.models import redacted

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def _fmt(value, spec: str = ",.0f", none: str = "-") -> str:
    """A number for a page: ``none`` for missing / NaN, else ``format(value, spec)``."""
    try:
        if value is None or value != value:
            return none
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _cell(value) -> str:
    """A table cell: numbers rounded for reading (the CSV keeps every digit), missing values blank."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    a = abs(value)
    return format(value, ",.0f" if a >= 100 or float(value).is_integer() else (",.2f" if a >= 1 else ".3f"))


templates.env.filters["fmt"] = _fmt
templates.env.filters["cell"] = _cell
router = APIRouter(prefix="/dashboard", include_in_schema=False)

SCOPE = "audience"
PREVIEW_ROWS = 20
LIFECYCLE = ("new", "active", "at-risk", "lapsed", "churned")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class Refusal(Exception):
    """Raised by the access check: the response to send instead of the page (login redirect, 403, 503)."""

    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass
class Viewer:
    scopes: frozenset[str]
    runtime: Runtime


# --------------------------------------------------------------------------------------------- rendering
def _base(request: Request) -> str:
    return request.scope.get("root_path", "") + "/dashboard"


def render(request: Request, name: str, *, status: int = 200, viewer: Viewer | None = None, **context) -> Response:
    token, new = session.csrf_token(request)
    ctx = {"base": _base(request), "csrf": token, "csrf_field": session.CSRF_FIELD, "viewer": viewer,
           "version": viewer.runtime.version if viewer else None, **context}
    response = templates.TemplateResponse(request, name, ctx, status_code=status, headers=SECURITY_HEADERS)
    if new:
        response.set_cookie(session.CSRF_COOKIE, token, **session.cookie_options(request, None))
    return response


def _redirect(request: Request, path: str) -> Response:
    return RedirectResponse(_base(request) + path, status_code=303, headers=SECURITY_HEADERS)


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", status=status, title=title, message=message)


async def viewer(request: Request) -> Viewer:
    """The logged-in viewer: a valid session of a key with the audience scope, and a loaded bundle."""
    settings = request.app.state.settings
    scopes = session.session_scopes(request.cookies.get(session.SESSION_COOKIE), settings.api_keys)
    if scopes is None:
        raise Refusal(_redirect(request, "/login"))
    if SCOPE not in scopes:
        raise Refusal(_error_page(request, 403, "Forbidden", f"This API key lacks the '{SCOPE}' scope: the "
                                  "dashboard is for marketing keys. Log out and use a key with that scope."))
    rt = request.app.state.service.runtime
    if rt is None:
        raise Refusal(_error_page(request, 503, "No model loaded", "The service has no model bundle loaded yet."))
    return Viewer(scopes, rt)


def _library_error(exc: PersonalizeError) -> tuple[int, str | None]:
    """(status, field) of a library error, as serving.errors maps them for the API."""
    if isinstance(exc, UnknownIdError):
        return 404, None
    if isinstance(exc, MissingComponentError):
        return 409, None
    if isinstance(exc, DataError):
        return 422, getattr(exc, "column", None)
    return 400, None


# --------------------------------------------------------------------------------------------- login
@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "login.html", title="Log in")


@router.post("/login")
async def login(request: Request) -> Response:
    form, errors = parse(LoginForm, multi(form_pairs(await request.body())))
    if form is None or not session.csrf_ok(request, form.csrf_token):
        msg = "the form expired: please try again" if form is not None else "enter an API key"
        return render(request, "login.html", status=400 if form is not None else 422, title="Log in", error=msg)
    scopes = auth.scopes_for(form.key, request.app.state.settings.api_keys)
    if scopes is None:
        return render(request, "login.html", status=401, title="Log in", error="invalid API key")
    if SCOPE not in scopes:
        return _error_page(request, 403, "Forbidden", f"This API key lacks the '{SCOPE}' scope: the dashboard is "
                                                      "for marketing keys.")
    response = _redirect(request, "")
    response.set_cookie(session.SESSION_COOKIE, session.new_session(form.key),
                        **session.cookie_options(request, session.SESSION_SECONDS))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form, _ = parse(TokenForm, multi(form_pairs(await request.body())))
    if form is None or not session.csrf_ok(request, form.csrf_token):
        return _error_page(request, 400, "Bad request", "The form expired: reload the page and try again.")
    response = _redirect(request, "/login")
    response.delete_cookie(session.SESSION_COOKIE, path=session.COOKIE_PATH)
    return response


@router.get("/static/dashboard.css")
async def stylesheet() -> Response:
    return FileResponse(HERE / "static" / "dashboard.css", media_type="text/css",
                        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


# --------------------------------------------------------------------------------------------- overview
_CHART_LOCK = threading.Lock()


def _overview(request: Request, rt: Runtime) -> dict:
    """The customer summary and its charts, computed once per (bundle, erasures) and cached on the app."""
    cache: dict = request.app.state.dashboard_cache
    key = (rt.version, len(rt.erasures))
    with _CHART_LOCK:
        if key in cache:
            return cache[key]
    summary = rt.customer_summary()
    out: dict[str, Any] = {"summary": summary, "charts": {}}
    if summary.segments is not None and len(summary.segments):
        out["charts"]["segments"] = charts.segments_chart(summary.segments)
    if summary.lifecycle_by_tier is not None and summary.lifecycle_by_tier.size:
        out["charts"]["lifecycle"] = charts.lifecycle_tier_chart(summary.lifecycle_by_tier)
    if summary.churn_histogram is not None and summary.churn_scored:
        out["charts"]["churn"] = charts.churn_chart(summary.churn_histogram)
    if summary.clv_by_tier is not None and len(summary.clv_by_tier):
        out["charts"]["clv"] = charts.clv_tier_chart(summary.clv_by_tier)
    with _CHART_LOCK:
        if len(cache) >= 4:
            cache.clear()
        cache[key] = out
    return out


def model_facts(manifest: dict) -> dict:
    """The manifest's headline numbers: data, recommender validation, churn validation."""
    data, metrics = manifest.get("data") or {}, manifest.get("metrics") or {}
    rec = metrics.get("recommender") or {}
    served = (rec.get("models") or {}).get(rec.get("served")) or {}
    churn = metrics.get("churn") or {}
    return {
        "created_at": manifest.get("created_at"), "library_version": manifest.get("library_version"),
        "first_timestamp": data.get("first_timestamp"), "last_timestamp": data.get("last_timestamp"),
        "customers": data.get("n_customers"), "n_items": data.get("n_items"), "transactions": data.get("transactions"),
        "recommender": (manifest.get("params") or {}).get("recommender", {}).get("class"),
        "recommender_status": rec.get("status"), "recommender_reason": rec.get("reason"),
        "ndcg_all": (served.get("all") or {}).get("ndcg"), "ndcg_discovery": (served.get("discovery") or {}).get("ndcg"),
        "recall_all": (served.get("all") or {}).get("recall"),
        "vs_popular_all": (rec.get("vs_popular") or {}).get("all"),
        "vs_popular_discovery": (rec.get("vs_popular") or {}).get("discovery"),
        "churn_auc": churn.get("auc"), "churn_pr_auc": churn.get("pr_auc"), "churn_brier": churn.get("brier"),
        "components": sorted((manifest.get("components") or {}).keys()),
    }


@router.get("")
async def overview(request: Request) -> Response:
    v = await viewer(request)
    rt = v.runtime
    manifest = rt.info()["manifest"]
    if "admin" not in v.scopes:
        manifest = redacted(manifest)
    try:
        data = await run_in_threadpool(_overview, request, rt)
        problem = None
    except MissingComponentError as exc:
        data, problem = {"summary": None, "charts": {}}, str(exc)
    return render(request, "overview.html", viewer=v, title="Overview", model=model_facts(manifest),
                  problem=problem, **data)


# --------------------------------------------------------------------------------------------- audiences
def _options(rt: Runtime) -> dict:
    """What the audience form offers: the values the filters accept for this bundle."""
    table = rt.customers
    opts: dict[str, list] = {"segments": [], "tiers": [], "lifecycle": list(LIFECYCLE), "offers": [], "levels": []}
    if table is not None:
        for key, col in (("segments", "segment"), ("tiers", "tier")):
            if col in table.columns:
                opts[key] = valid_values(table, col)
        if "tier_level" in table.columns:  # lowest tier first
            level = table.dropna(subset=["tier"]).groupby("tier")["tier_level"].min().to_dict()
            opts["tiers"].sort(key=lambda t: (level.get(t, float("inf")), t))
    offers, coupons = rt.desk.offers, rt.desk.coupons
    if offers is not None:
        opts["offers"] = [str(o) for o in offers.catalog.offer_ids]
    if coupons is not None:
        opts["levels"] = [str(lvl) for lvl in coupons.ladder.levels]
    return opts


def _count_and_preview(rt: Runtime, args: dict, page: int) -> tuple[int, Any]:
    """Every page of the audience: the number of customers and the first rows."""
    total, preview, cursor = 0, None, None
    while True:
        frame, cursor = rt.audience(**args, cursor=cursor, limit=page)
        if preview is None:
            preview = frame.head(PREVIEW_ROWS)
        total += len(frame)
        if cursor is None:
            return total, preview


@router.get("/audience")
async def audience(request: Request) -> Response:
    v = await viewer(request)
    rt = v.runtime
    params = multi(list(request.query_params.multi_items()))
    ctx: dict[str, Any] = {"title": "Audience builder", "options": _options(rt), "errors": {}, "problem": None,
                           "count": None, "preview": None, "query": None, "form": None}
    if not params:  # the empty form
        ctx["form"] = AudienceForm()
        return render(request, "audience.html", viewer=v, **ctx)
    form, errors = parse(AudienceForm, params)
    ctx.update(form=form or AudienceForm.model_construct(**_echo(params)), errors=errors)
    if form is None:
        return render(request, "audience.html", status=422, viewer=v, **ctx)
    try:
        count, preview = await run_in_threadpool(_count_and_preview, rt, form.runtime_args(),
                                                 request.app.state.settings.audience_page_max)
    except PersonalizeError as exc:
        status, field = _library_error(exc)
        ctx["errors" if field else "problem"] = {field: str(exc)} if field else str(exc)
        return render(request, "audience.html", status=status, viewer=v, **ctx)
    ctx.update(count=count, preview=preview, query=form.query())
    return render(request, "audience.html", viewer=v, **ctx)


def _echo(params: dict) -> dict:
    """The submitted values shown back in a form that failed validation (lists kept as lists)."""
    out = {}
    for k in ("consent", "segment", "lifecycle", "tier", "min_clv", "min_churn_risk", "max_churn_risk", "offer_id",
              "coupon_level", "budget"):
        val = params.get(k)
        if k in ("segment", "lifecycle", "tier"):
            out[k] = val if isinstance(val, list) else ([val] if val else [])
        else:
            out[k] = val if isinstance(val, str) else None
    return out


@router.get("/audience.csv")
async def audience_csv(request: Request) -> Response:
    """Every customer of the audience as one CSV (the API's columns and format, all pages)."""
    v = await viewer(request)
    rt = v.runtime
    form, errors = parse(AudienceForm, multi(list(request.query_params.multi_items())))
    if form is None:
        return _error_page(request, 422, "Invalid filters", "; ".join(errors.values()))
    args, page_size = form.runtime_args(), request.app.state.settings.audience_page_max
    try:
        first, cursor = await run_in_threadpool(rt.audience, **args, limit=page_size)
    except PersonalizeError as exc:
        status, field = _library_error(exc)
        return _error_page(request, status, "Cannot export this audience", str(exc))

    def chunks():
        yield from csv_chunks(first)
        nxt = cursor
        while nxt is not None:
            frame, nxt = rt.audience(**args, cursor=nxt, limit=page_size)
            yield from list(csv_chunks(frame))[1:]   # the header only once

    name = f"audience-{form.consent}-{rt.version}.csv"
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"',
               "X-Model-Version": rt.version}
    return StreamingResponse(chunks(), media_type="text/csv", headers=headers)


# --------------------------------------------------------------------------------------------- campaigns
@router.get("/campaigns")
async def campaigns(request: Request) -> Response:
    v = await viewer(request)
    try:
        rows, problem = await run_in_threadpool(v.runtime.campaigns), None
    except MissingComponentError as exc:
        rows, problem = [], str(exc)
    return render(request, "campaigns.html", viewer=v, title="Campaigns", campaigns=rows, problem=problem)


@router.get("/campaigns/{campaign_id}")
async def campaign(request: Request, campaign_id: str) -> Response:
    v = await viewer(request)
    rt = v.runtime
    if not 1 <= len(campaign_id) <= 200:
        return _error_page(request, 422, "Invalid campaign id", "campaign_id: 1 to 200 characters")
    form, errors = parse(ReadoutForm, multi(list(request.query_params.multi_items())))
    if form is None:
        return _error_page(request, 422, "Invalid readout options", "; ".join(errors.values()))
    try:
        doc = await run_in_threadpool(rt.campaign_readout, campaign_id, alpha=form.alpha, cuped=form.cuped or None,
                                      bootstrap=0)
    except PersonalizeError as exc:
        status, field = _library_error(exc)
        return _error_page(request, status, "No readout", str(exc))
    covariates = []
    feats = rt.bundle.get("campaign_features")
    if feats is not None:
        covariates = [c for c in feats.columns if c not in ("campaign_id", "customer_id")]
    chart = await run_in_threadpool(charts.readout_chart, doc["arms"], doc.get("outcome") or "conversion")
    return render(request, "campaign.html", viewer=v, title=f"Campaign {campaign_id}", doc=doc, chart=chart,
                  form=form, covariates=covariates)


# --------------------------------------------------------------------------------------------- coupons
@router.get("/coupons")
async def coupons(request: Request) -> Response:
    v = await viewer(request)
    rt = v.runtime
    params = multi(list(request.query_params.multi_items()))
    form, errors = parse(CouponForm, params)
    ctx: dict[str, Any] = {"title": "Coupon plan", "errors": errors, "problem": None, "totals": None,
                           "form": form or CouponForm.model_construct(channel=params.get("channel", "email"),
                                                                     budget=params.get("budget"))}
    if form is None:
        return render(request, "coupons.html", status=422, viewer=v, **ctx)
    try:
        plan, curve, totals = await run_in_threadpool(rt.coupon_plan, channel=form.channel, budget=form.budget)
    except PersonalizeError as exc:
        status, field = _library_error(exc)
        ctx["errors" if field else "problem"] = {field: str(exc)} if field else str(exc)
        return render(request, "coupons.html", status=status, viewer=v, **ctx)
    by_level = (plan.groupby("level").agg(customers=("customer_id", "size"), expected_cost=("expected_cost", "sum"),
                                          expected_profit=("expected_incremental_profit", "sum"))
                if len(plan) else None)
    top = plan.sort_values("expected_incremental_profit", ascending=False).head(20) if len(plan) else None
    chart = await run_in_threadpool(charts.coupon_curve_chart, curve, form.budget)
    consent = {"email": "email", "sms": "sms"}.get(form.channel)
    ctx.update(totals=totals, by_level=by_level, top=top, chart=chart, audience_consent=consent)
    return render(request, "coupons.html", viewer=v, **ctx)


# --------------------------------------------------------------------------------------------- install
async def _refused(request: Request, exc: Refusal) -> Response:
    return exc.response


def install(app: FastAPI) -> None:
    """Add the dashboard to ``app``: its routes, the handler that sends its refusals, its chart cache."""
    app.state.dashboard_cache = {}
    app.add_exception_handler(Refusal, _refused)
    app.include_router(router)
