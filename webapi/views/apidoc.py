"""GET /openapi.json: the OpenAPI 3.1 document of the API this process serves.

The documents are data (webapi.openapi_doc); each is encoded once per process, on first
use, and served with an ETag so clients and caches revalidate instead of refetching.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Callable

from flask import Blueprint, Response, request

from webapi.openapi_doc import Json, admin_document, bank_document
from webapi.auth import public

bp = Blueprint("apidoc", __name__)              # the bank-facing API's document (udun serve)
admin_bp = Blueprint("admin_apidoc", __name__)  # the admin API's document (udun serve-admin)

# Public and cacheable: the document changes only with the installed code, and the ETag
# (its hash) lets a cache check it after an upgrade.
_CACHE_CONTROL = "public, max-age=3600"


@functools.cache
def _encoded(build: Callable[[], Json]) -> tuple[bytes, str]:
    """(JSON bytes, ETag) of a document: built and encoded once per process."""
    body = json.dumps(build(), ensure_ascii=False, separators=(",", ":")).encode()
    return body, hashlib.sha256(body).hexdigest()[:32]


def _serve(build: Callable[[], Json]) -> Response:
    body, etag = _encoded(build)
    resp = Response(body, mimetype="application/json")
    resp.headers["Cache-Control"] = _CACHE_CONTROL
    resp.set_etag(etag)
    resp.make_conditional(request)              # 304 for a matching If-None-Match
    return resp


@bp.get("/openapi.json")
@public
def bank_openapi() -> Response:
    return _serve(bank_document)


# Outside adminapi.views' blueprint, so its before_request (the admin key) does not apply:
# the document describes the API and reveals no data.
@admin_bp.get("/openapi.json")
@public
def admin_openapi() -> Response:
    return _serve(admin_document)
