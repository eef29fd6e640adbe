"""The OpenAPI 3.1 documents (webapi.openapi_doc): valid, served at /openapi.json, covering
every route both ways, and true: real answers validate against the documented responses."""
from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from ca.authority import CertificateAuthority
from config.settings import Settings
from helpers import PIN, Enrolled, sample_tx
from webapi.openapi_doc import Json, admin_document, bank_document

ADMIN = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}
DOCS: dict[str, Callable[[], Json]] = {"bank": bank_document, "admin": admin_document}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# Answered in front of Flask by WSGI middleware, so absent from app.url_map. The modules have
# no constants for their paths (they compare PATH_INFO with literals), hence this list:
# webapi.ocsp_wsgi (POST /ocsp, GET /ocsp/{base64}) and webapi.tsa_wsgi (POST /tsa).
# test_fast_paths_match_document requests each, so an entry nothing answers fails there.
FAST_PATHS = {("POST", "/ocsp"), ("GET", "/ocsp/{request}"), ("POST", "/tsa")}

_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")   # <name> and <conv:name>, <conv(args):name>


def flask_routes(app: Flask) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every rule of ``app`` but static files."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((method, path))
    return routes


def documented_routes(doc: Json) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(method.upper(), path) for path, item in paths.items() if isinstance(item, dict)
            for method in item if method in HTTP_METHODS}


def served_routes(which: str, app: Flask) -> set[tuple[str, str]]:
    return flask_routes(app) | (FAST_PATHS if which == "bank" else set())


def _listed(routes: set[tuple[str, str]]) -> str:
    return ", ".join(f"{m} {p}" for m, p in sorted(routes, key=lambda r: (r[1], r[0])))


def undocumented(served: set[tuple[str, str]], doc: Json) -> str | None:
    """A message naming the routes the document lacks, or None."""
    missing = served - documented_routes(doc)
    return f"routes missing from the OpenAPI document: {_listed(missing)}" if missing else None


def unserved(served: set[tuple[str, str]], doc: Json) -> str | None:
    """A message naming the documented routes nothing answers, or None."""
    extra = documented_routes(doc) - served
    return f"documented routes the app does not serve: {_listed(extra)}" if extra else None


@pytest.fixture(params=["bank", "admin"])
def which(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def service(which: str, app: Flask, admin_app: Flask) -> Flask:
    return app if which == "bank" else admin_app


# --- the documents ---------------------------------------------------------------------


def test_documents_are_valid_openapi_31(which: str) -> None:
    doc = DOCS[which]()
    validate(doc, cls=OpenAPIV31SpecValidator)        # raises, naming the place, when invalid
    assert doc["openapi"] == "3.1.0"
    info = doc["info"]
    assert isinstance(info, dict) and info["version"] == importlib.metadata.version("udun")


def test_every_route_is_documented(which: str, service: Flask) -> None:
    message = undocumented(served_routes(which, service), DOCS[which]())
    assert message is None, message


def test_every_documented_route_exists(which: str, service: Flask) -> None:
    message = unserved(served_routes(which, service), DOCS[which]())
    assert message is None, message


def test_the_route_check_names_what_is_missing() -> None:
    """The comparison itself: a route added without documentation, and the reverse, are named."""
    probe = Flask("probe")
    probe.add_url_rule("/api/v1/things/<int:thing_id>", "thing", lambda thing_id: "", methods=["GET", "DELETE"])
    doc = bank_document()
    served = flask_routes(probe)
    assert served == {("GET", "/api/v1/things/{thing_id}"), ("DELETE", "/api/v1/things/{thing_id}")}
    assert undocumented(served, doc) == ("routes missing from the OpenAPI document: "
                                         "DELETE /api/v1/things/{thing_id}, GET /api/v1/things/{thing_id}")
    message = unserved(served, doc)
    assert message is not None and "POST /api/v1/verify" in message and "GET /ocsp/{request}" in message


def test_problem_codes_are_all_documented() -> None:
    """Every code webapi.problems can answer is in the Problem schema's enum."""
    from pkicore.errors import ErrorKind
    from webapi import problems

    for doc in (bank_document(), admin_document()):
        codes = _at(doc, "/components/schemas/Problem/properties/code/enum")
        assert isinstance(codes, list)
        expected = {k.value for k in ErrorKind} | set(problems._HTTP_CODES.values()) | {"http-error"}
        assert expected <= set(codes), expected - set(codes)


def test_examples_match_their_schemas(which: str) -> None:
    """Every example in the document validates against the schema beside it."""
    doc = DOCS[which]()
    count = 0
    for pointer, node in _walk(doc, ""):
        if "schema" in node and isinstance(node.get("examples"), dict):     # media type / parameter
            for example in node["examples"].values():
                _validator(doc, f"{pointer}/schema").validate(example["value"])
                count += 1
        if isinstance(node.get("examples"), list) and ("type" in node or "enum" in node):   # JSON Schema
            for value in node["examples"]:
                _validator(doc, pointer).validate(value)
                count += 1
    assert count > 0


# --- /openapi.json ---------------------------------------------------------------------


def test_openapi_json_is_served_and_cacheable(client: FlaskClient) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.get_json() == bank_document()
    assert "public" in resp.headers["Cache-Control"] and resp.headers["ETag"]
    again = client.get("/openapi.json", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304 and not again.data
    check_response(bank_document(), "/openapi.json", "get", resp)


def test_admin_openapi_json_is_public(admin_client: FlaskClient) -> None:
    """Outside adminapi.views' blueprint: no key needed, unlike every admin route."""
    resp = admin_client.get("/openapi.json")
    assert resp.status_code == 200 and resp.get_json() == admin_document()
    assert admin_client.get("/healthz").status_code == 401             # the key still guards the rest
    check_response(admin_document(), "/openapi.json", "get", resp)


# --- real answers against the documented responses -------------------------------------


def test_verify_problem_matches_document(client: FlaskClient) -> None:
    doc = bank_document()
    resp = client.post("/api/v1/verify", json={"cms": "not base64!!"})
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    check_response(doc, "/api/v1/verify", "post", resp)
    resp = client.post("/api/v1/verify", data=b"hello", content_type="text/plain")
    check_response(doc, "/api/v1/verify", "post", resp)
    resp = client.post("/api/v1/verify", data=b"\x30" * (1024 * 1024 + 1), content_type="application/pkcs7-mime")
    assert resp.status_code == 413
    check_response(doc, "/api/v1/verify", "post", resp)


def test_verify_reports_match_document(client: FlaskClient, settings: Settings, enrolled: dict[str, Enrolled]) -> None:
    """A passed report (evidence_id, time_stamp, statuses) and the replay of the same payment."""
    from signer.signing import sign_transaction

    doc = bank_document()
    signed = sign_transaction(settings, "user-ec", PIN, sample_tx())
    passed = client.post("/api/v1/verify", data=signed, content_type="application/pkcs7-mime")
    assert passed.get_json()["status"] == "TOTAL_PASSED", passed.get_json()
    check_response(doc, "/api/v1/verify", "post", passed)
    replayed = client.post("/api/v1/verify", data=signed, content_type="application/pkcs7-mime")
    assert replayed.get_json()["sub_indication"] == "REPLAYED"
    check_response(doc, "/api/v1/verify", "post", replayed)


def test_health_and_challenge_match_document(client: FlaskClient) -> None:
    doc = bank_document()
    health = client.get("/healthz")
    assert health.status_code == 200
    check_response(doc, "/healthz", "get", health)
    challenge = client.post("/api/v1/challenges")
    assert challenge.status_code == 201
    check_response(doc, "/api/v1/challenges", "post", challenge)


def test_downloads_match_document(client: FlaskClient, ca: CertificateAuthority) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    doc = bank_document()
    cert = client.get("/ca/issuing-ca.crt")
    assert cert.status_code == 200
    check_response(doc, "/ca/{name}.crt", "get", cert)
    assert x509.load_der_x509_certificate(cert.data).public_bytes(Encoding.DER) == ca.chain_der()[0]
    check_response(doc, "/ca/{name}.crt", "get", client.get("/ca/nope.crt"))
    crl = client.get("/crl/root-ca.crl")
    check_response(doc, "/crl/{name}.crl", "get", crl)
    check_response(doc, "/crl/{name}.crl", "get", client.get("/crl/root-ca.crl",
                                                             headers={"If-None-Match": crl.headers["ETag"]}))
    check_response(doc, "/api/v1/evidence/{evidence_id}", "get", client.get("/api/v1/evidence/ev_nothing"))
    check_response(doc, "/api/v1/evidence/{evidence_id}", "get",
                   client.get("/api/v1/evidence/ev_nothing", headers=ADMIN))


def test_fast_paths_match_document(client: FlaskClient) -> None:
    """Each of FAST_PATHS answers as documented (a Flask 404 would not match): refusals are
    OCSP / RFC 3161 statuses inside a 200, as the document says."""
    from asn1crypto import core, ocsp, tsp

    doc = bank_document()
    posted = client.post("/ocsp", data=b"junk", content_type="application/ocsp-request")
    check_response(doc, "/ocsp", "post", posted)
    got = client.get("/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA%3D%3D")
    check_response(doc, "/ocsp/{request}", "get", got)
    for resp in (posted, got):
        assert ocsp.OCSPResponse.load(resp.data)["response_status"].native == "malformed_request"
    stamped = client.post("/tsa", data=b"junk", content_type="application/timestamp-query")
    check_response(doc, "/tsa", "post", stamped)
    # Only the PKIStatusInfo: asn1crypto's TimeStampResp wrongly requires the token (pkicore.tsp).
    status = tsp.PKIStatusInfo.load(core.Sequence.load(stamped.data)[0].dump())
    assert status["status"].native == "rejection"


def test_admin_answers_match_document(admin_client: FlaskClient, enrolled: dict[str, Enrolled]) -> None:
    doc = admin_document()
    check_response(doc, "/healthz", "get", admin_client.get("/healthz", headers=ADMIN))
    check_response(doc, "/healthz", "get", admin_client.get("/healthz"))
    shown = admin_client.get(f"/api/v1/certificates/{enrolled['user-ec'].serial}", headers=ADMIN)
    assert shown.status_code == 200
    check_response(doc, "/api/v1/certificates/{serial}", "get", shown)
    check_response(doc, "/api/v1/certificates/{serial}", "get",
                   admin_client.get("/api/v1/certificates/00ff", headers=ADMIN))
    bad = admin_client.post("/api/v1/certificates", data=b"garbage", headers=ADMIN)
    assert bad.status_code == 400
    check_response(doc, "/api/v1/certificates", "post", bad)
    found = admin_client.get("/api/v1/certificates?limit=3", headers=ADMIN)
    assert found.status_code == 200 and found.get_json()["items"]
    check_response(doc, "/api/v1/certificates", "get", found)
    for query in ("status=active", ""):
        check_response(doc, "/api/v1/certificates", "get",
                       admin_client.get(f"/api/v1/certificates?{query}", headers=ADMIN if query else {}))


# --- helpers ---------------------------------------------------------------------------

_BASE = "https://udun.invalid/openapi.json"    # the document's URI in the schema registry


def _escape(segment: str) -> str:
    """One JSON pointer segment (RFC 6901), percent-encoded for a URI fragment."""
    return quote(segment.replace("~", "~0").replace("/", "~1"), safe="")


def _at(doc: Json, pointer: str) -> Any:
    """The node at an escaped pointer (as ``_escape`` makes them, or a $ref's fragment)."""
    node: Any = doc                       # JSON of any shape: the pointer says what it is
    for segment in pointer.lstrip("/").split("/"):
        node = node[unquote(segment).replace("~1", "/").replace("~0", "~")]
    return node


def _walk(node: Any, pointer: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(pointer, dict) for every object in the document."""
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            yield from _walk(value, f"{pointer}/{_escape(key)}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{pointer}/{i}")


def _validator(doc: Json, pointer: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for the schema at ``pointer`` (already escaped), its
    $refs (#/components/...) resolved inside the document."""
    registry: Registry[Any] = Registry().with_resource(_BASE, DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"{_BASE}#{pointer}"}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_response(doc: Json, path: str, method: str, resp: TestResponse) -> None:
    """``resp`` is one of the responses documented for ``method path``: status, media type,
    required headers, and the body against the schema (JSON) or a non-empty binary."""
    where = f"{method.upper()} {path} -> {resp.status_code} {resp.mimetype}"
    responses = _at(doc, f"/paths/{_escape(path)}/{method}/responses")
    status = str(resp.status_code)
    assert status in responses, f"{where}: status not documented"
    pointer = f"/paths/{_escape(path)}/{method}/responses/{status}"
    documented = responses[status]
    if "$ref" in documented:
        pointer = documented["$ref"].removeprefix("#")
        documented = _at(doc, pointer)
    for name, header in documented.get("headers", {}).items():
        if "$ref" in header:
            header = _at(doc, header["$ref"].removeprefix("#"))
        assert not header.get("required") or name in resp.headers, f"{where}: no {name} header"
    content = documented.get("content")
    if content is None:                                     # e.g. 304: no body
        assert not resp.data, f"{where}: a body where none is documented"
        return
    by_type = {key.split(";")[0].strip(): key for key in content}
    mimetype = resp.mimetype or ""
    assert mimetype in by_type, f"{where}: media type not documented (documented: {sorted(by_type)})"
    schema_pointer = f"{pointer}/content/{_escape(by_type[mimetype])}/schema"
    if mimetype == "application/json" or mimetype.endswith("+json"):
        body = json.loads(resp.get_data())
        errors = sorted(_validator(doc, schema_pointer).iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{where}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    else:
        schema = _at(doc, schema_pointer)
        assert schema.get("type") == "string", f"{where}: a non-JSON body documented as {schema}"
        assert resp.data, f"{where}: empty body"
