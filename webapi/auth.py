"""Who may call a route: banks by their API keys (ca.banks), operators by their token
login or API token (ca.operators) with the permissions of their role.

Deny by default: every view of both apps is declared ``public``, ``bank_route(scope)`` or
``operator_route(permission)``; one that is not is refused (``deny_undeclared``), and
tests/webapi/test_permissions.py fails on it. Bearer tokens are RFC 6750's; a 401 names the
scheme it wants (RFC 9110 §11.6.1), a 403 the scope or permission that was missing (RFC
6750 §3.1).

UDUN_ADMIN_API_KEY, the shared key of before operators, still works as an admin (the audit
log names it ``admin-key``, no person): for a first set-up or scripts not moved yet. It is
checked at start-up: at least 32 characters and no white space around it (a key read from
a file with its newline could otherwise never match a bearer token).
"""
from __future__ import annotations

import functools
import hmac
from urllib.parse import quote
from typing import Any, Callable, TypeVar

from flask import Response, current_app, g, request

from ca.operators import OperatorPrincipal
from ca.storage.audit import signed_request
from pkicore.errors import ErrorKind, PkiError
from webapi.peer import ENV_CLIENT_SHA256
from webapi.problems import problem
from pkicore.ratelimit import retry_seconds

MIN_KEY_CHARS = 32
PERMISSION = "udun_permission"          # the attribute every view carries (the route-permission test)
F = TypeVar("F", bound=Callable[..., Any])


def public(view: F) -> F:
    """Declare a view open to anyone (OCSP, CRLs, CA certificates, TSA, health)."""
    setattr(view, PERMISSION, "public")
    return view


ADMIN_KEY = OperatorPrincipal("admin-key", "admin", "admin-key")
_READS = ("GET", "HEAD")


def _operator(ctx: dict[str, Any], token: str | None) -> OperatorPrincipal:
    key = ctx.get("key")
    if key and token and hmac.compare_digest(token.encode(), key.encode()):
        return ADMIN_KEY
    return ctx["operators"].authenticate(token, request.remote_addr)  # type: ignore[no-any-return]


def _signed_path() -> str:
    """The path and query a signed request names (pkicore.adminsig.request_message): the
    path as this service routes it, percent-encoded as a client sends it (RFC 3986
    §3.3), and the query exactly as sent."""
    query = request.query_string.decode("latin-1")
    return quote(request.path, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")


def operator_route(permission: str) -> Callable[[F], F]:
    """A view of the admin API for operators whose role has ``permission``
    (ca.operators.ROLES); the operator is ``flask.g.operator``. In a token session a change
    (not GET) must carry the token's signature over it; every audit entry the view writes
    then carries that signed request."""
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = current_app.extensions["udun-admin"]
            token = bearer()
            try:
                who = _operator(ctx, token)
                if permission not in who.permissions:
                    raise PkiError(ErrorKind.FORBIDDEN, f"the role {who.role} does not have the {permission!r} "
                                                        "permission")
                signed = None
                if who.session is not None and request.method not in _READS:
                    signed = ctx["operators"].signed_request(
                        who, request.method, _signed_path(), request.get_data(cache=True),
                        request.headers.get("Udun-Request-Seq"), request.headers.get("Udun-Request-Signature"),
                        request.headers.get("Udun-Request-Scheme"))
            except PkiError as e:
                if e.kind not in (ErrorKind.UNAUTHORIZED, ErrorKind.FORBIDDEN):
                    raise
                return _challenged(e, permission, token is not None)
            g.operator = who
            with signed_request(signed):
                return view(*args, **kwargs)

        setattr(wrapper, PERMISSION, f"operator:{permission}")
        return wrapper  # type: ignore[return-value]
    return decorate


def actor() -> str:
    """How the audit log names the operator of this admin request."""
    return g.operator.actor  # type: ignore[no-any-return]


def deny_undeclared() -> Response | None:
    """App-wide, before every view: one that declares no permission is refused (a route
    added without thought is closed, not open)."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and not hasattr(view, PERMISSION):
        return problem(403, "forbidden", "forbidden", "this route declares no permission")
    return None


def bearer() -> str | None:
    """The request's bearer token (RFC 6750 §2.1; the scheme name is case-insensitive,
    RFC 9110 §11.1), or None."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return (given.strip() or None) if scheme.lower() == "bearer" else None


def _challenged(e: PkiError, scope: str, sent: bool) -> Response:
    status = 401 if e.kind is ErrorKind.UNAUTHORIZED else 403
    resp = problem(status, e.kind.value, e.kind.value, e.message)
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="udun"' + (', error="invalid_token"' if sent else "")
    else:
        resp.headers["WWW-Authenticate"] = f'Bearer realm="udun", error="insufficient_scope", scope="{scope}"'
    return resp


def bank_route(scope: str) -> Callable[[F], F]:
    """The view runs only for a valid bank key with ``scope``; the bank is ``flask.g.bank``
    (a ca.banks.Principal). Checked before the body is read: an unauthenticated request
    costs one key lookup and writes nothing."""
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer()
            services = current_app.extensions["udun"]
            try:
                g.bank = services.banks().authenticate(token, scope, request.environ.get(ENV_CLIENT_SHA256),
                                                       request.remote_addr)
            except PkiError as e:
                if e.kind not in (ErrorKind.UNAUTHORIZED, ErrorKind.FORBIDDEN):
                    raise
                return _challenged(e, scope, token is not None)
            wait = services.key_wait(g.bank.key_id)          # counted only once the key was checked
            if wait:
                raise PkiError(ErrorKind.RATE_LIMITED, f"more than {services.key_rate} with this API key; retry "
                               f"after {retry_seconds(wait)} s", retry_after=retry_seconds(wait))
            return view(*args, **kwargs)

        setattr(wrapper, PERMISSION, f"bank:{scope}")
        return wrapper  # type: ignore[return-value]
    return decorate


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
