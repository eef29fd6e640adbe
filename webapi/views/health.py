"""GET /healthz: liveness, the process answers (no database, no token: cheap enough to ask
often, and a slow database must not get a live worker restarted).
GET /readyz: readiness, whether this process can serve: the database answers at this
udun's newest schema revision (servers never migrate it: a node started before `udun db
upgrade` is not ready) and the delegated OCSP and TSA keys can be used. 503 names each
failed check with its stable code. GET /metrics: Prometheus."""
from __future__ import annotations

import logging
from typing import Any, Callable

from flask import Blueprint, Response, current_app, jsonify

from ca.storage.migrate import schema_state
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError
from webapi.observability import metrics_body
from webapi.auth import public

bp = Blueprint("health", __name__)
_log = logging.getLogger("udun.health")


def _check(what: str, probe: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    try:
        return {"status": "ok", **(probe() or {})}
    except PkiError as e:
        return {"status": "failed", "code": e.kind.value, "detail": e.message}
    except Exception:  # noqa: BLE001  a check reports, it never fails the request
        _log.exception("readiness check %s failed", what)
        return {"status": "failed", "code": ErrorKind.UNAVAILABLE.value, "detail": f"the {what} check failed"}


def schema_check(engine: Any) -> dict[str, Any]:
    current, head = schema_state(engine)
    if current != head:
        raise PkiError(ErrorKind.NOT_INITIALISED, f"the schema is at {current or 'no revision'}, this udun needs "
                                                  f"{head}: run `udun db upgrade`")
    return {"revision": current}


def live() -> Response:
    """The liveness answer of both services."""
    resp = jsonify({"status": "ok"})
    resp.headers["Cache-Control"] = "no-store"
    return resp


def answer(checks: dict[str, dict[str, Any]]) -> Response:
    """200 when every check is ok, else 503; the same JSON shape either way."""
    ok = all(c["status"] == "ok" for c in checks.values())
    resp = jsonify({"status": "ok" if ok else "unavailable", "checks": checks})
    resp.status_code = 200 if ok else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp


def metrics_response() -> Response:
    body, mimetype = metrics_body()
    return Response(body, content_type=mimetype, headers={"Cache-Control": "no-store"})


@bp.get("/healthz")
@public
def healthz() -> Response:
    return live()


@bp.get("/readyz")
@public
def readyz() -> Response:
    return answer(_readiness())


@bp.get("/metrics")
@public
def metrics() -> Response:
    # No key on the bank-facing port (a Prometheus scraper has none to give): the counts
    # say how busy the CA is and nothing of any payment, but firewall the route (or the
    # reverse proxy) so that only the scraper reaches it.
    return metrics_response()


def _readiness() -> dict[str, dict[str, Any]]:
    services = current_app.extensions["udun"]
    ca = services._ca()

    def delegated(d: Any) -> dict[str, Any]:
        return {"not_after": rfc3339(d.not_after)}

    return {
        "schema": _check("schema", lambda: schema_check(ca.store.engine)),
        # A read that needs the tables: a missing or unusable database fails here.
        "database": _check("database", lambda: {"status_version": ca.store.counter("status_version")}),
        "ocsp_key": _check("ocsp", lambda: delegated(services.responder().responder())),
        "tsa_key": _check("tsa", lambda: delegated(services.tsa()._tokens()[0])),
    }
