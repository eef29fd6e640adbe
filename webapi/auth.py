"""The API key that guards evidence reads here and every admin route (adminapi).

Issue 12 replaces it with per-bank credentials; until then one key, checked at start-up:
at least 32 characters and no white space around it (a key read from a file with its
newline could otherwise never match a bearer token).
"""
from __future__ import annotations

import hmac

from flask import Response, request

from pkicore.errors import ErrorKind, PkiError
from webapi.problems import problem

MIN_KEY_CHARS = 32


def checked_key(raw: str | None, *, required: bool) -> str | None:
    """The key as configured, refused when weak; None when unset and not ``required``."""
    if not raw:
        if required:
            raise PkiError(ErrorKind.BAD_INPUT, "set UDUN_ADMIN_API_KEY (e.g. `openssl rand -base64 33`)")
        return None
    if raw != raw.strip():
        raise PkiError(ErrorKind.BAD_INPUT, "UDUN_ADMIN_API_KEY has white space around it; remove it")
    if len(raw) < MIN_KEY_CHARS:
        raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_ADMIN_API_KEY must be at least {MIN_KEY_CHARS} random "
                                            "characters (e.g. `openssl rand -base64 33`)")
    return raw


def require_key(key: str | None) -> Response | None:
    """None when the request carries ``key`` as its bearer token (RFC 6750), else a problem."""
    if not key:
        return problem(403, "forbidden", "admin API disabled", "set UDUN_ADMIN_API_KEY to enable it")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # RFC 9110 §11.1: the scheme name is case-insensitive.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        resp = problem(401, "unauthorized", "unauthorized", "a valid admin API key is required")
        # RFC 9110 §11.6.1: a 401 names the scheme it wants; RFC 6750 §3: invalid_token
        # when a token was sent and did not match.
        resp.headers["WWW-Authenticate"] = 'Bearer realm="udun"' + (', error="invalid_token"' if given else "")
        return resp
    return None
