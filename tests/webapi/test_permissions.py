"""Deny by default (issue 12): every route of both services declares who may call it, the
declaration is what the OpenAPI documents say, and a route without one is refused."""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from webapi.auth import PERMISSION

ADMIN = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}


def _rules(app: Flask) -> list[Any]:
    return [r for r in app.url_map.iter_rules() if r.endpoint != "static"]


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _sample(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", "x0", rule)


@pytest.mark.parametrize("which", ["bank", "admin"])
def test_every_route_declares_a_permission(which: str, app: Flask, admin_app: Flask) -> None:
    service = app if which == "bank" else admin_app
    missing = [r.rule for r in _rules(service) if not hasattr(service.view_functions[r.endpoint], PERMISSION)]
    assert not missing, f"routes without a declared permission (webapi.auth.public / bank_route / operator_route): {missing}"


def test_bank_scopes_are_the_documented_security(app: Flask) -> None:
    from ca.banks import SCOPES
    from webapi.openapi_doc import bank_document

    paths = bank_document()["paths"]
    for rule in _rules(app):
        declared = getattr(app.view_functions[rule.endpoint], PERMISSION)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = paths[_openapi_path(rule.rule)][method.lower()]          # type: ignore[index]
            documented = operation.get("security")                               # type: ignore[union-attr]
            if declared == "public":
                assert documented is None, (rule.rule, documented)
            else:
                scope = declared.removeprefix("bank:")
                assert scope in SCOPES and documented == [{"bankKey": [scope]}], (rule.rule, declared, documented)


ADMIN_PUBLIC = {"/openapi.json", "/api/v1/login/challenge", "/api/v1/login", "/api/v1/enroll/lookup", "/api/v1/enroll",
                "/api/v1/renew", "/api/v1/rekey"}


def test_every_admin_route_but_its_document_and_login_needs_an_operator(admin_app: Flask) -> None:
    client = admin_app.test_client()
    for rule in _rules(admin_app):
        declared = getattr(admin_app.view_functions[rule.endpoint], PERMISSION)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            resp = client.open(_sample(rule.rule), method=method)
            if rule.rule in ADMIN_PUBLIC:
                assert declared == "public" and resp.status_code != 401, (rule.rule, resp.status_code)
            else:
                assert resp.status_code == 401, (method, rule.rule, resp.status_code)
                assert declared.startswith("operator:"), (rule.rule, declared)


def test_a_route_added_without_a_declaration_is_refused(settings, ca, verifier) -> None:  # type: ignore[no-untyped-def]
    from webapi import create_app

    app = create_app(settings, ca=ca, verifier=verifier)
    app.add_url_rule("/api/v1/forgotten", "forgotten", lambda: "open")
    resp = app.test_client().get("/api/v1/forgotten")
    assert resp.status_code == 403 and resp.get_json()["detail"] == "this route declares no permission"


def test_operator_route_checks_the_credential_itself(settings, ca) -> None:  # type: ignore[no-untyped-def]
    """A view declared operator_route on a blueprint with no checks of its own is still closed."""
    from flask import Blueprint

    from adminapi import create_admin_app
    from webapi.auth import operator_route

    app = create_admin_app(settings, ca=ca, admin_api_key="udun-test-admin-key-0123456789abcdef")
    loose = Blueprint("loose", __name__)
    loose.add_url_rule("/api/v1/loose", "loose", operator_route("certificates:read")(lambda: "admin data"))
    app.register_blueprint(loose)
    client = app.test_client()
    denied = client.get("/api/v1/loose")
    assert denied.status_code == 401 and b"admin data" not in denied.get_data()
    assert client.get("/api/v1/loose", headers=ADMIN).get_data() == b"admin data"
