"""Operations (issue 11): /metrics scraped and counted exactly, one JSON access line per
request with its id, /healthz (liveness) and /readyz (readiness). In-process through the
session apps, and over HTTP against a real `udun serve` whose two gunicorn workers share
prometheus-client's multiprocess files."""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
from asn1crypto import x509
from prometheus_client.parser import text_string_to_metric_families

from helpers import PIN, running_server, sample_tx

ADMIN = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _samples(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _delta(before: str, after: str) -> Callable[..., float]:
    return lambda name, **labels: _samples(after, name, **labels) - _samples(before, name, **labels)


def _log_lines(settings: Any, since: int = 0) -> list[dict[str, Any]]:
    """Every line of the run's UDUN_LOG_FILE (from byte ``since``), each parsed as JSON (a line that is not fails)."""
    assert settings.log_file, "conftest sends the run's logs to UDUN_LOG_FILE"
    with open(settings.log_file, "rb") as f:
        f.seek(since)
        return [json.loads(line) for line in f.read().decode("utf-8").splitlines()]


def _ocsp_request(ca: Any, enrolled: Any, nonce: bytes | None) -> bytes:
    from pkicore.ocsp import build_request

    return build_request(x509.Certificate.load(enrolled["user-ec"].cert_der), x509.Certificate.load(ca.chain_der()[0]),
                         nonce)


def _tsa_query(policy: str | None = None) -> bytes:
    from pkicore.tsp import build_request

    return build_request(hashlib.sha256(os.urandom(16)).digest(), nonce=int.from_bytes(os.urandom(8), "big"),
                         policy=policy)


# --- metrics, in-process -------------------------------------------------------------------

def test_metrics_count_what_was_asked(client, settings, ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    from signer.signing import sign_transaction

    signed = sign_transaction(settings, "user-ec", PIN, sample_tx())
    nonceless = _ocsp_request(ca, enrolled, None)
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    bad = client.post("/api/v1/verify", data=b"not a payment", content_type="application/pkcs7-mime")
    assert bad.status_code == 400
    for expected in ("TOTAL_PASSED", "TOTAL_FAILED"):         # the second time: REPLAYED
        assert client.post("/api/v1/verify", data=signed, content_type="application/pkcs7-mime"
                           ).get_json()["status"] == expected
    assert client.get("/api/v1/evidence/ev_nothing").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    assert client.post("/healthz").status_code == 405
    # OCSP: two with a nonce (signed each time), one malformed, one malformed by GET.
    for n in (b"nonce-01", b"nonce-02"):
        assert client.post("/ocsp", data=_ocsp_request(ca, enrolled, n), content_type="application/ocsp-request"
                           ).status_code == 200
    client.post("/ocsp", data=b"junk", content_type="application/ocsp-request")
    client.get("/ocsp/" + base64.b64encode(b"junk").decode())
    client.post("/ocsp", data=nonceless, content_type="application/ocsp-request")   # signed now, or before
    # TSA: two granted, three refused for three reasons.
    for _ in range(2):
        client.post("/tsa", data=_tsa_query(), content_type="application/timestamp-query")
    client.post("/tsa", data=_tsa_query(policy="1.2.3.4"), content_type="application/timestamp-query")
    client.post("/tsa", data=b"junk", content_type="application/timestamp-query")
    client.post("/tsa", data=b"", content_type="application/timestamp-query")
    middle = client.get("/metrics").get_data(as_text=True)
    for _ in range(2):                        # the same nonce-less request: the pre-signed answer
        client.post("/ocsp", data=nonceless, content_type="application/ocsp-request")
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    after = resp.get_data(as_text=True)

    d = _delta(before, middle)
    requests = "udun_http_requests_total"
    assert d(requests, route="/healthz", status="200") == 3
    assert d("udun_http_request_seconds_count", route="/healthz") == 3
    assert d(requests, route="/api/v1/verify", status="400") == 1
    assert d(requests, route="/api/v1/verify", status="200") == 2
    assert d(requests, route="/api/v1/evidence/<evidence_id>", status="404") == 1    # the template, not the path
    assert d(requests, route="unmatched", status="404") == 1
    assert d(requests, route="unmatched", status="405") == 1
    assert d(requests, route="/ocsp", status="200") == 4
    assert d(requests, route="/ocsp/<request>", status="200") == 1
    assert d(requests, route="/tsa", status="200") == 5
    assert d(requests, route="/metrics", status="200") == 1          # the first scrape
    assert not [s for f in text_string_to_metric_families(middle) for s in f.samples
                if "ev_nothing" in str(s.labels) or "/no/such" in str(s.labels)]
    assert d("udun_verifications_total", indication="TOTAL_PASSED", sub_indication="") == 1
    assert d("udun_verifications_total", indication="TOTAL_FAILED", sub_indication="REPLAYED") == 1
    assert d("udun_verifications_total") == 2                        # the malformed body is no verification
    assert d("udun_ocsp_responses_total", status="successful", source="signed") >= 2
    assert d("udun_ocsp_responses_total", status="successful") == 3
    assert d("udun_ocsp_responses_total", status="malformed_request", source="none") == 2
    assert d("udun_tsa_responses_total", status="granted", fail_info="") == 2
    assert d("udun_tsa_responses_total", status="rejection", fail_info="unaccepted_policy") == 1
    assert d("udun_tsa_responses_total", status="rejection", fail_info="bad_data_format") == 2
    assert d("udun_tsa_responses_total") == 5
    # keystore.token's own histogram, in the same default registry: the TSA's signatures.
    assert d("udun_token_sign_seconds_count", key_type="ec-p256") >= 2

    d = _delta(middle, after)
    assert d("udun_ocsp_responses_total", status="successful", source="cached") == 2
    assert d("udun_ocsp_responses_total", status="successful", source="signed") == 0
    dialect = ca.store.engine.dialect.name
    assert _samples(after, "udun_db_pool_size", database=dialect) >= 1
    assert _samples(after, "udun_db_pool_checked_out", database=dialect) >= 0


def test_admin_metrics_readyz_and_healthz_need_the_key(admin_client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/metrics", "/readyz", "/healthz"):
        assert admin_client.get(path).status_code == 401, path
    before = admin_client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert admin_client.get("/healthz", headers=ADMIN).get_json() == {"status": "ok"}
    ready = admin_client.get("/readyz", headers=ADMIN)
    body = ready.get_json()
    assert ready.status_code == 200 and body["status"] == "ok", body
    assert set(body["checks"]) == {"schema", "database", "ca_key"}
    assert all(c["status"] == "ok" for c in body["checks"].values()), body
    after = admin_client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    d = _delta(before, after)
    assert d("udun_http_requests_total", route="/readyz", status="200") == 1
    assert d("udun_http_requests_total", route="/metrics", status="200") == 1


# --- logs, in-process ------------------------------------------------------------------------

def test_one_access_line_per_request_with_its_id(client, bank_key, settings, ca,  # type: ignore[no-untyped-def]
                                                 enrolled) -> None:
    from udun.demo import SAMPLE

    tag = os.urandom(6).hex()
    sent = {f"ops-{tag}-{i}": req for i, req in enumerate([
        ("GET", "/healthz?token=secret-looking", None),
        ("POST", "/ocsp", _ocsp_request(ca, enrolled, b"nonce-03")),
        ("POST", "/tsa", _tsa_query()),
        ("GET", f"/api/v1/evidence/{SAMPLE['payer']['account']}", None),      # an account number in a path
    ])}
    answers = {}
    for rid, (method, path, data) in sent.items():
        resp = client.open(path, method=method, data=data, headers={"X-Request-ID": rid})
        assert resp.headers["X-Request-ID"] == rid
        answers[rid] = resp
    replaced = []
    for bad in ("short", "has spaces in it", "x" * 65, "semi;colon;12345", "caf\u00e9-1234567"):
        resp = client.get("/healthz", headers={"X-Request-ID": bad})
        new = resp.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", new) and new != bad
        replaced.append(new)
    assert len(set(replaced)) == len(replaced)

    lines = _log_lines(settings)
    for rid, (method, path, _) in sent.items():
        mine = [e for e in lines if e.get("request_id") == rid and e["logger"] == "udun.access"]
        assert len(mine) == 1, (rid, mine)
        e = mine[0]
        assert e["level"] == "INFO" and e["message"] == "request" and RFC3339_UTC.fullmatch(e["timestamp"])
        assert e["method"] == method and e["status"] == answers[rid].status_code
        assert e["bytes"] == len(answers[rid].data) and e["duration_ms"] >= 0 and e["pid"] == os.getpid()
        assert "remote_addr" in e and "?" not in e["path"]
    by_id = {e["request_id"]: e for e in lines if e.get("logger") == "udun.access" and "request_id" in e}
    first, ocsp, tsa, evidence = (by_id[rid] for rid in sent)
    assert (first["route"], first["path"]) == ("/healthz", "/healthz")                  # no query string
    assert (ocsp["route"], ocsp["path"]) == ("/ocsp", "/ocsp")
    assert tsa["route"] == "/tsa"
    assert evidence["route"] == "/api/v1/evidence/<evidence_id>" and evidence["status"] == 404
    assert evidence["path"] == "/api/v1/evidence/****" + SAMPLE["payer"]["account"][-4:]
    for new in replaced:
        assert len([e for e in lines if e.get("request_id") == new]) == 1
    text = Path(settings.log_file).read_text(encoding="utf-8")
    assert SAMPLE["payer"]["account"] not in text and bank_key not in text


def test_scrub_masks_accounts_credentials_and_keys() -> None:
    from webapi import observability

    observability._redacted.add("a-configured-key-0123456789abcdefgh")
    text = observability.scrub("payer 6222020200112233445, card 6222 0202 0011 2233 (Bearer abc.def) "
                               "key a-configured-key-0123456789abcdefgh, serial 5f3a, port 8080")
    assert text == "payer ****3445, card ****2233 (Bearer [redacted]) key [redacted], serial 5f3a, port 8080"
    bank_key = "udun_0123456789abcdef_" + "Ab-_" * 10 + "xyz"
    assert observability.scrub(f"key={bank_key}; again {bank_key}") == \
        "key=udun_0123456789abcdef_[redacted]; again udun_0123456789abcdef_[redacted]"


def test_error_lines_carry_the_request_id(settings, empty_db, verifier) -> None:  # type: ignore[no-untyped-def]
    """A failure logged inside a request (a 503 here) names the request; and a second app
    factory in the process adds no second log handler."""
    client = _app_over(settings, empty_db, verifier).test_client()
    rid = "ops-err-" + os.urandom(6).hex()
    resp = client.get("/crl/issuing-ca.crl", headers={"X-Request-ID": rid})
    assert resp.status_code == 503 and resp.get_json()["code"] == "not-initialised"
    mine = [e for e in _log_lines(settings) if e.get("request_id") == rid]
    assert [(e["logger"], e["level"]) for e in mine] == [("udun.webapi", "ERROR"), ("udun.access", "INFO")], mine
    assert mine[0]["code"] == "not-initialised" and mine[0]["status"] == 503
    assert len([h for h in logging.getLogger().handlers if hasattr(h, "_udun_target")]) == 1


def test_a_crash_below_is_counted_and_logged_as_500(settings) -> None:  # type: ignore[no-untyped-def]
    """A WSGI app under Observed that raises: the error goes on to the server (its 500), counted and logged."""
    from prometheus_client import REGISTRY

    from webapi.observability import Observed

    def broken(environ: dict[str, Any], start_response: Any) -> Any:
        raise RuntimeError("boom")

    labels = {"route": "unmatched", "status": "500"}
    before = REGISTRY.get_sample_value("udun_http_requests_total", labels) or 0.0
    rid = "ops-crash-" + os.urandom(6).hex()
    with pytest.raises(RuntimeError):
        Observed(broken)({"PATH_INFO": "/x", "REQUEST_METHOD": "GET", "HTTP_X_REQUEST_ID": rid}, lambda *a: None)
    assert REGISTRY.get_sample_value("udun_http_requests_total", labels) == before + 1
    (line,) = [e for e in _log_lines(settings) if e.get("request_id") == rid]
    assert (line["status"], line["bytes"], line["route"]) == (500, 0, "unmatched")


def test_gunicorn_error_log_is_json_on_the_same_handler(tmp_path: Path) -> None:
    """What udun/server.py can give gunicorn as ``logconfig_dict``: gunicorn's own lines as
    JSON on the app's handler, which the app factory then reuses (no second one); other
    libraries' lines below WARNING never, whatever the root logger's level."""
    log = tmp_path / "gunicorn.log"
    script = (
        "import logging, logging.config\n"
        "from config.settings import load_settings\n"
        "from webapi.observability import configure_logging, gunicorn_logconfig\n"
        "s = load_settings()\n"
        "logging.config.dictConfig(gunicorn_logconfig(s))\n"     # in the arbiter
        "configure_logging(s)\n"                                  # in a worker's create_app
        "logging.getLogger('gunicorn.error').warning('Worker (pid:%s) was sent SIGKILL!', 4711)\n"
        "logging.getLogger('gunicorn.access').warning('not this one')\n"
        "logging.getLogger('udun.access').info('request')\n"
        "logging.getLogger().setLevel(logging.DEBUG)\n"              # as pytest's caplog may
        "logging.getLogger('sqlalchemy.engine').info('INSERT ... parameters')\n"
        "print(len(logging.getLogger().handlers))\n")
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, "UDUN_LOG_FILE": str(log)},
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "1" and not out.stderr, out.stderr
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(e["logger"], e["level"]) for e in lines] == [("gunicorn.error", "WARNING"), ("udun.access", "INFO")]
    assert lines[0]["message"] == "Worker (pid:4711) was sent SIGKILL!"


# --- health and readiness --------------------------------------------------------------------

def _app_over(settings: Any, engine: Any, verifier: Any) -> Any:
    """A bank-facing app over ``engine`` (the session's verifier: nothing read from that database)."""
    from ca.directory import CaDirectory
    from ca.storage.store import Store
    from webapi import create_app

    return create_app(settings, ca=CaDirectory(settings, Store(engine)), verifier=verifier)


def test_readyz_ok_and_healthz_is_liveness(client) -> None:  # type: ignore[no-untyped-def]
    ready = client.get("/readyz")
    body = ready.get_json()
    assert ready.status_code == 200 and body["status"] == "ok", body
    assert body["checks"]["schema"]["status"] == "ok" and body["checks"]["schema"]["revision"]
    assert {"database", "ocsp_key", "tsa_key"} <= set(body["checks"])
    assert ready.headers["Cache-Control"] == "no-store"
    live = client.get("/healthz")
    assert live.status_code == 200 and live.get_json() == {"status": "ok"}


def test_readyz_503_over_an_unusable_database(settings, empty_db, verifier) -> None:  # type: ignore[no-untyped-def]
    """A CaDirectory over a database without udun's tables: not ready, each check naming
    its stable code; still alive."""
    client = _app_over(settings, empty_db, verifier).test_client()
    ready = client.get("/readyz")
    body = ready.get_json()
    assert ready.status_code == 503 and body["status"] == "unavailable", body
    assert set(body["checks"]) == {"schema", "database", "ocsp_key", "tsa_key"}
    for name, check in body["checks"].items():
        assert check["status"] == "failed" and check["code"] == "not-initialised", (name, check)
    assert "udun db upgrade" in body["checks"]["schema"]["detail"]
    assert client.get("/healthz").status_code == 200


def test_schema_check_names_the_upgrade(empty_db) -> None:  # type: ignore[no-untyped-def]
    from pkicore.errors import ErrorKind, PkiError
    from webapi.views.health import schema_check

    with pytest.raises(PkiError) as e:                   # a database `udun db upgrade` has not reached
        schema_check(empty_db)
    assert e.value.kind is ErrorKind.NOT_INITIALISED and "udun db upgrade" in e.value.message


# --- a real server: two workers, one sum --------------------------------------------------------

def _http(base: str, path: str, data: bytes | None = None, rid: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(base + path, data=data, headers={"X-Request-ID": rid} if rid else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def test_metrics_of_a_real_server_sum_its_workers(ca, settings) -> None:  # type: ignore[no-untyped-def]
    tag = os.urandom(6).hex()
    log = Path(settings.log_file)
    start = log.stat().st_size if log.exists() else 0
    with running_server(Path(settings.home), workers=2) as (base, _proc):
        scrape = lambda: _http(base, "/metrics")[1].decode()  # noqa: E731
        before = scrape()
        sent: list[str] = []
        pids: set[int] = set()
        # Sync workers close each connection, so the kernel hands requests to either worker;
        # go on until the access lines show both answered.
        while len(pids) < 2 or len(sent) < 20:
            assert len(sent) < 400, f"one worker answered all {len(sent)} requests"
            rid = f"ops-srv-{tag}-{len(sent)}"
            assert _http(base, "/healthz", rid=rid)[0] == 200
            sent.append(rid)
            if len(pids) < 2:
                pids = {e["pid"] for e in _log_lines(settings, start) if e.get("request_id") in sent}
        for _ in range(3):
            assert _http(base, "/tsa", _tsa_query())[0] == 200
        after = scrape()
    d = _delta(before, after)
    assert d("udun_http_requests_total", route="/healthz", status="200") == len(sent)
    assert d("udun_http_requests_total", route="/metrics", status="200") == 1
    assert d("udun_tsa_responses_total", status="granted") == 3
    lines = _log_lines(settings)                         # every line of the run's log is JSON
    access = [e for e in lines if e.get("request_id") in sent]
    assert sorted(e["request_id"] for e in access) == sorted(sent)
    assert len({e["pid"] for e in access}) == 2
