"""RFC 9457 problem details: the only place error kinds become HTTP statuses.

Failures at 500 and above are logged (the operator's to fix): the error's code and its
message, scrubbed by webapi.observability's formatter (no account number, credential or
known key gets into a line), never the request, its body or a traceback.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from pkicore.errors import ErrorKind, PkiError

log = logging.getLogger("udun.webapi")

STATUS = {
    ErrorKind.BAD_INPUT: 400,
    ErrorKind.BAD_TRANSACTION: 400,
    ErrorKind.BAD_CSR: 400,
    ErrorKind.UNSUPPORTED: 400,
    ErrorKind.MEDIA_TYPE: 415,      # RFC 9110 §15.5.16
    ErrorKind.RATE_LIMITED: 429,    # RFC 6585 §4
    ErrorKind.POLICY: 422,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.PIN: 503,             # the server's own token PIN is wrong: an operator problem
    ErrorKind.PIN_LOCKED: 503,
    ErrorKind.TOKEN: 503,
    ErrorKind.NOT_INITIALISED: 503,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.INTERNAL: 500,
}

_HTTP_CODES = {400: "bad-input", 401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type", 429: "too-many-requests"}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": f"urn:udun:problem:{code}", "code": code, "title": title, "status": status, "detail": detail}
    body.update(extra)
    resp = jsonify(body)
    resp.status_code = status
    resp.mimetype = "application/problem+json"
    return resp


def register(app: Flask) -> None:
    """Every error, ours or Werkzeug's or a bug, answers problem+json without a traceback."""

    @app.errorhandler(PkiError)
    def _pki(e: PkiError) -> Response:
        status = STATUS.get(e.kind, 500)
        extra = {"field": e.field} if e.field else {}
        if status >= 500:
            log.error("request failed: %s", e.message, extra={"fields": {"code": e.kind.value, "status": status}})
        resp = problem(status, e.kind.value, e.kind.name.replace("_", " ").lower(), e.message, **extra)
        if e.retry_after is not None:
            resp.headers["Retry-After"] = str(e.retry_after)        # RFC 9110 §10.2.3
        return resp

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        status = e.code or 500
        return problem(status, _HTTP_CODES.get(status, "http-error"), e.name, e.description or e.name)

    @app.errorhandler(Exception)
    def _bug(e: Exception) -> Response:
        log.exception("unexpected error", extra={"fields": {"code": "internal", "status": 500}})
        return problem(500, "internal", "internal error", "the server failed; the error was logged")
