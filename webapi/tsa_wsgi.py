"""A lean WSGI path for the time-stamp authority (RFC 3161 §3.4), in front of Flask.

A time-stamp is one token signature: Flask's per-request machinery would cost as much.
Any body is answered with a TimeStampResp (a refusal carries PKIStatus rejection and a
failInfo); the content type is not enforced, so `curl --data-binary` works as is. When
the TSA's token cannot be reached now, the rejection (systemFailure) comes with HTTP 503
and Retry-After (ca.tsa.TsaReply), so that a client knows to come back.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from asn1crypto import core
from asn1crypto import tsp as asn1tsp

from ca.tsa import TimeStampAuthority, TsaReply
from pkicore import tsp
from webapi import observability as obs
from webapi.bodies import wsgi_body

MAX_BODY = 16 * 1024             # a TimeStampReq is a hash and a few fields
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
REPLY_TYPE = "application/timestamp-reply"


def _outcome(der: bytes) -> tuple[str, str]:
    """(PKIStatus, failInfo names) of a TimeStampResp, for the metrics."""
    try:
        # Only the PKIStatusInfo: asn1crypto's TimeStampResp requires the token (pkicore.tsp).
        info = asn1tsp.PKIStatusInfo.load(core.Sequence.load(der)[0].dump())
        fail = info["fail_info"].native
        return str(info["status"].native), ",".join(sorted(fail)) if fail else ""
    except Exception:  # noqa: BLE001  a count is not worth a failed answer
        return "unknown", ""


class TsaFastPath:
    """WSGI middleware: POST /tsa; everything else goes to ``app``."""

    def __init__(self, app: WsgiApp, tsa: Callable[[], TimeStampAuthority]) -> None:
        self.app = app
        self.tsa = tsa

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/tsa" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        environ[obs.ROUTE] = obs.TSA_ROUTE
        body, too_large = wsgi_body(environ, MAX_BODY)
        if body:
            try:
                reply = self.tsa().reply(body)
            except Exception:  # noqa: BLE001  e.g. no CA here: a refusal, never an HTTP 500
                reply = TsaReply(tsp.rejection("system_failure", "the time-stamp authority is not available"))
            obs.count_tsa(*_outcome(reply.der))
        else:
            fail = "bad_request" if too_large else "bad_data_format"
            text = f"a time-stamp request is at most {MAX_BODY} bytes" if too_large else \
                "send a DER TimeStampReq as the body"
            reply = TsaReply(tsp.rejection(fail, text))
            obs.count_tsa("rejection", fail)
        headers = [("Content-Type", REPLY_TYPE), ("Content-Length", str(len(reply.der))),
                   ("Cache-Control", "no-store")]
        if reply.retry_after is not None:
            start_response("503 Service Unavailable", [*headers, ("Retry-After", str(reply.retry_after))])
        else:
            start_response("200 OK", headers)
        return [reply.der]
