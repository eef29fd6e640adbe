"""GET /healthz: 200 only when the database answers and the delegated keys can sign.
GET /readyz: the same, and the schema is at this udun's newest revision (servers never
migrate it: a node started before `udun db upgrade` is not ready). GET /metrics: Prometheus."""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from ca.storage.migrate import schema_state
from pkicore.errors import ErrorKind, PkiError
from webapi.observability import metrics_body

bp = Blueprint("health", __name__)
_log = logging.getLogger("udun.health")


def _check(what: str, probe: Any) -> dict[str, Any]:
    try:
        return {"status": "ok", **(probe() or {})}
    except PkiError as e:
        return {"status": "failed", "code": e.kind.value, "detail": e.message}
    except Exception:  # noqa: BLE001  a health check reports, it never fails the request
        _log.exception("health check %s failed", what)
        return {"status": "failed", "code": "unavailable", "detail": f"the {what} check failed"}


def schema_check(engine: Any) -> dict[str, Any]:
    current, head = schema_state(engine)
    if current != head:
        raise PkiError(ErrorKind.NOT_INITIALISED, f"the schema is at {current or 'no revision'}, this udun needs "
                                                  f"{head}: run `udun db upgrade`")
    return {"revision": current}


def answer(checks: dict[str, dict[str, Any]]) -> Response:
    ok = all(c["status"] == "ok" for c in checks.values())
    resp = jsonify({"status": "ok" if ok else "unavailable", "checks": checks})
    resp.status_code = 200 if ok else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/readyz")
def readyz() -> Response:
    ca = current_app.extensions["udun"]._ca()
    return answer({"schema": _check("schema", lambda: schema_check(ca.store.engine)), **_checks()})


def metrics_response() -> Response:
    body, mimetype = metrics_body()
    return Response(body, content_type=mimetype, headers={"Cache-Control": "no-store"})


@bp.get("/metrics")
def metrics() -> Response:
    return metrics_response()


@bp.get("/healthz")
def healthz() -> Response:
    return answer(_checks())


def _checks() -> dict[str, dict[str, Any]]:
    services = current_app.extensions["udun"]
    ca = services._ca()

    def delegated(d: Any) -> dict[str, Any]:
        return {"not_after": d.not_after.isoformat().replace("+00:00", "Z")}

    return {
        # A read that needs the tables: a missing or unusable database fails here.
        "database": _check("database", lambda: {"status_version": ca.store.counter("status_version")}),
        "ocsp_key": _check("ocsp", lambda: delegated(services.responder().responder())),
        "tsa_key": _check("tsa", lambda: delegated(services.tsa()._tokens()[0])),
    }
