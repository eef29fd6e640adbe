"""Reading request bodies: the verify endpoint's two body forms."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from flask import Request

from pkicore.errors import ErrorKind, PkiError

CMS_TYPES = ("application/pkcs7-mime", "application/octet-stream", "application/pkcs7-signature",
             "application/cms")


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise PkiError(ErrorKind.BAD_INPUT, f"{field} must be a non-empty base64 string", field=field)
    try:
        # Line-wrapped base64 (the `base64` tool's default) is fine; other junk is not.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"{field} is not valid base64", field=field) from e


def signed_payment(req: Request) -> tuple[bytes, bytes | None]:
    """(cms, detached content or None) from a DER body or a JSON body."""
    mimetype = req.mimetype
    if mimetype in CMS_TYPES:
        data = req.get_data(cache=False)
        if not data:
            raise PkiError(ErrorKind.BAD_INPUT, "the body is empty")
        return data, None
    if mimetype == "application/json":
        try:
            body = json.loads(req.get_data(cache=False))
        except (ValueError, RecursionError):   # RecursionError: absurdly nested JSON
            body = None
        if not isinstance(body, dict):
            raise PkiError(ErrorKind.BAD_INPUT, "the body is not a JSON object")
        unknown = sorted(set(body) - {"cms", "content"})
        if unknown:
            raise PkiError(ErrorKind.BAD_INPUT, f"unknown field {unknown[0]}", field=unknown[0])
        cms = _b64(body.get("cms"), "cms")
        content = _b64(body["content"], "content") if body.get("content") is not None else None
        return cms, content
    raise PkiError(ErrorKind.MEDIA_TYPE,
                   "send the CMS as application/pkcs7-mime (DER) or JSON {\"cms\": base64, \"content\": base64}")


# What a field of a JSON object body may hold besides null (json_object's ``kinds``).
_KINDS = {"string": (lambda v: isinstance(v, str), "a string"),
          "integer": (lambda v: type(v) is int, "an integer"),      # not a bool
          "boolean": (lambda v: isinstance(v, bool), "true or false"),
          "strings": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings")}


def json_object(req: Request, fields: tuple[str, ...], kinds: dict[str, str] | None = None) -> dict[str, Any]:
    """An optional JSON object body with only ``fields`` (an empty body is ``{}``), each a
    string or null unless ``kinds`` names another of _KINDS for it."""
    data = req.get_data(cache=False)
    if not data.strip():
        return {}
    if req.mimetype != "application/json":
        raise PkiError(ErrorKind.MEDIA_TYPE, "send the body as application/json")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise PkiError(ErrorKind.BAD_INPUT, "the body is not a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown field {unknown[0]}; known: {', '.join(fields)}",
                       field=unknown[0])
    for name, value in body.items():
        ok, what = _KINDS[(kinds or {}).get(name, "string")]
        if value is not None and not ok(value):
            raise PkiError(ErrorKind.BAD_INPUT, f"{name} is {what}", field=name)
    return body


def wsgi_body(environ: dict[str, Any], limit: int) -> tuple[bytes, bool]:
    """(body, too large) of a WSGI request for the fast paths: Content-Length's octets, or a
    chunked body (the server de-chunks it into wsgi.input) read to its end, at most ``limit``.
    No body, or a Content-Length that is no number, is b""."""
    raw = environ.get("CONTENT_LENGTH")
    if raw:
        try:
            length = int(raw)
        except ValueError:
            return b"", False
        if length > limit:
            return b"", True
        return (environ["wsgi.input"].read(length) if length > 0 else b""), False
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        data = environ["wsgi.input"].read(limit + 1)
        return (b"", True) if len(data) > limit else (data, False)
    return b"", False


def parse_time(text: Any, field: str) -> datetime:
    """An RFC 3339 time with its zone from a JSON body (``2026-11-22T08:00:00Z``)."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise PkiError(ErrorKind.BAD_INPUT, f"{field} is an RFC 3339 time (2026-11-22T08:00:00Z)",
                       field=field) from None
    if moment.tzinfo is None:
        raise PkiError(ErrorKind.BAD_INPUT, f"{field} needs its time zone (Z or +08:00)", field=field)
    return moment
