"""A lean WSGI path for the time-stamp authority (RFC 3161 §3.4), in front of Flask.

A time-stamp is one token signature: Flask's per-request machinery would cost as much.
Any body is answered with a TimeStampResp (a refusal carries PKIStatus rejection and a
failInfo); the content type is not enforced, so `curl --data-binary` works as is.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ca.tsa import TimeStampAuthority
from pkicore import tsp

MAX_BODY = 16 * 1024             # a TimeStampReq is a hash and a few fields
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
REPLY_TYPE = "application/timestamp-reply"


class TsaFastPath:
    """WSGI middleware: POST /tsa; everything else goes to ``app``."""

    def __init__(self, app: WsgiApp, tsa: Callable[[], TimeStampAuthority]) -> None:
        self.app = app
        self.tsa = tsa

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/tsa" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if 0 < length <= MAX_BODY:
            body = environ["wsgi.input"].read(length)
            try:
                answer = self.tsa().respond(body)
            except Exception:  # noqa: BLE001  e.g. no CA here: a refusal, never an HTTP 500
                answer = tsp.rejection("system_failure", "the time-stamp authority is not available")
        elif length > MAX_BODY:
            answer = tsp.rejection("bad_request", f"a time-stamp request is at most {MAX_BODY} bytes")
        else:
            answer = tsp.rejection("bad_data_format", "send a DER TimeStampReq as the body")
        start_response("200 OK", [("Content-Type", REPLY_TYPE), ("Content-Length", str(len(answer))),
                                  ("Cache-Control", "no-store")])
        return [answer]
