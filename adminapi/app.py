"""The admin service's app factory: the CA with its issuing key, for operators (ca.operators)."""
from __future__ import annotations

import os

from flask import Flask

from adminapi.approvals import make_approvals
from ca.authority import CertificateAuthority
from ca.operators import Operators
from config.settings import Settings, load_settings
from webapi import problems
from webapi.auth import checked_key, deny_undeclared
from webapi.observability import Observed, configure_logging, tag_flask_route, watch_pool

MAX_BODY = 64 * 1024


def create_admin_app(settings: Settings | None = None, *, ca: CertificateAuthority | None = None,
                     admin_api_key: str | None = None) -> Flask:
    """Build the admin API. UDUN_ADMIN_API_KEY is optional (operators have their own
    credentials: `udun operator add`); when set it must be strong."""
    settings = settings or load_settings()
    key = checked_key(admin_api_key or os.environ.get("UDUN_ADMIN_API_KEY"), required=False)
    if ca is None:
        ca = CertificateAuthority.open(settings, migrate_schema=False)
    configure_logging(settings, redact=[key] if key else [])
    app = Flask("udun-admin")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    ctx = app.extensions["udun-admin"] = {"ca": ca, "key": key,
                                          "operators": Operators(ca, ca.clock, settings.operator_session_minutes)}
    ctx["approvals"] = make_approvals(ctx)
    problems.register(app)
    app.before_request(tag_flask_route)            # app-wide: before operator_route's checks
    app.before_request(deny_undeclared)
    watch_pool(ca.store.engine)
    from adminapi import approvals, banks, customers, enrollments, evidence, limits, operators, otp, renewal, views
    from webapi.views import apidoc

    app.register_blueprint(views.bp)
    app.register_blueprint(banks.bp)
    app.register_blueprint(evidence.bp)
    app.register_blueprint(operators.bp)
    app.register_blueprint(approvals.bp)
    app.register_blueprint(enrollments.bp)
    app.register_blueprint(customers.bp)
    app.register_blueprint(limits.bp)
    app.register_blueprint(otp.bp)
    app.register_blueprint(renewal.bp)
    app.register_blueprint(apidoc.admin_bp)
    app.wsgi_app = Observed(app.wsgi_app)  # type: ignore[method-assign]
    return app
