"""GET /healthz: 200 only when the database answers and the delegated keys can sign."""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from pkicore.errors import PkiError

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


@bp.get("/healthz")
def healthz() -> Response:
    services = current_app.extensions["udun"]
    ca = services._ca()

    def delegated(d: Any) -> dict[str, Any]:
        return {"not_after": d.not_after.isoformat().replace("+00:00", "Z")}

    checks = {
        # A read that needs the tables: a missing or unusable database fails here.
        "database": _check("database", lambda: {"status_version": ca.store.counter("status_version")}),
        "ocsp_key": _check("ocsp", lambda: delegated(services.responder().responder())),
        "tsa_key": _check("tsa", lambda: delegated(services.tsa()._tokens()[0])),
    }
    ok = all(c["status"] == "ok" for c in checks.values())
    resp = jsonify({"status": "ok" if ok else "unavailable", "checks": checks})
    resp.status_code = 200 if ok else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp
