"""API keys with scopes: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

No key (or an unknown key) -> 401; a known key without the route's scope -> 403.
Keys are compared in constant time against every configured key and are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from fastapi import HTTPException, Request, status


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def scopes_for(key: str, keys: Mapping[str, Sequence[str]]) -> frozenset[str] | None:
    """Scopes of ``key`` (None if unknown). Compares against every key so timing does not reveal which matched."""
    presented = key.encode("utf-8", "surrogateescape")
    found: Sequence[str] | None = None
    for candidate, scopes in keys.items():
        if hmac.compare_digest(presented, candidate.encode("utf-8", "surrogateescape")):
            found = scopes
    return frozenset(found) if found is not None else None


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def check(request: Request, scopes: Sequence[str], settings) -> frozenset[str]:
    """The key's scopes when it has one of ``scopes``; 401 without a known key, 403 without the scope."""
    key = _presented_key(request)
    if key is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key (Authorization: Bearer <key> or "
                                                          "X-API-Key)", headers=_UNAUTHORIZED)
    granted = scopes_for(key, settings.api_keys)
    if granted is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", headers=_UNAUTHORIZED)
    if not any(s in granted for s in scopes):
        need = " or ".join(f"'{s}'" for s in scopes)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks the {need} scope")
    return granted
