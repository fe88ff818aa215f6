"""Dashboard login sessions and CSRF tokens, without server-side state (every worker checks them alike).

A session cookie holds ``<issued>.<nonce>.<signature>``, the signature being HMAC-SHA256 keyed with the API key
that logged in. The key itself never reaches the browser after the login form, and never a URL or a log.
Checking a session recomputes the signature with every configured key (constant-time comparisons, as
:func:`serving.auth.scopes_for` does for keys), so the scopes are those the key has *now*: removing a key
from ``PERSONALIZE_API_KEYS`` ends its sessions, and so does the age limit.

POSTs carry a CSRF token (double submit): a random value in a ``SameSite=Strict`` cookie and the same value
in a hidden form field; with a foreign ``Origin`` header the POST is refused too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence

from fastapi import Request

SESSION_COOKIE = "pz_session"
CSRF_COOKIE = "pz_csrf"
CSRF_FIELD = "csrf_token"
COOKIE_PATH = "/dashboard"
#: a session lasts this long after login
SESSION_SECONDS = 8 * 3600
_CONTEXT = b"personalize-dashboard-session:"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _sign(key: str, issued: int, nonce: str) -> str:
    msg = _CONTEXT + f"{issued}:{nonce}".encode()
    return _b64(hmac.new(key.encode("utf-8", "surrogateescape"), msg, hashlib.sha256).digest())


def new_session(key: str, *, now: float | None = None) -> str:
    """A session token for ``key`` (already checked to be a configured key)."""
    issued = int(now if now is not None else time.time())
    nonce = _b64(secrets.token_bytes(12))
    return f"{issued}.{nonce}.{_sign(key, issued, nonce)}"


def session_scopes(token: str | None, keys: Mapping[str, Sequence[str]], *,
                   now: float | None = None) -> frozenset[str] | None:
    """The scopes of the key that signed ``token``, or None (absent, malformed, expired, or no such key now)."""
    if not token or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    issued, nonce, sig = int(parts[0]), parts[1], parts[2]
    now = time.time() if now is None else now
    if not (now - SESSION_SECONDS <= issued <= now + 60):
        return None
    found: Sequence[str] | None = None
    presented = sig.encode()
    for key, scopes in keys.items():  # every key, so timing does not tell which one matched
        if hmac.compare_digest(presented, _sign(key, issued, nonce).encode()):
            found = scopes
    return frozenset(found) if found is not None else None


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF cookie value, or a new one: ``(token, is_new)`` (a new one must be set as a cookie)."""
    current = request.cookies.get(CSRF_COOKIE)
    if current and 20 <= len(current) <= 100:
        return current, False
    return _b64(secrets.token_bytes(24)), True


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """The form's token equals the cookie's, and the POST does not come from another origin."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if origin.split("://", 1)[-1] != host:
            return False
    return True


def cookie_options(request: Request, max_age: int | None) -> dict:
    """HttpOnly, SameSite=Strict, limited to /dashboard; Secure when the page came over HTTPS."""
    return {"httponly": True, "samesite": "strict", "path": COOKIE_PATH, "secure": request.url.scheme == "https",
            "max_age": max_age}
