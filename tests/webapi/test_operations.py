"""Operations (issue 11): /metrics scraped, one access-log line per request with its id,
/readyz. In-process through the session apps, and over HTTP against a real `udun serve`
whose two gunicorn workers share prometheus-client's multiprocess files."""
from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import running_server

ADMIN = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}


def _samples(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_metrics_count_what_was_asked(client) -> None:  # type: ignore[no-untyped-def]
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.post("/api/v1/verify", data=b"not a payment",
                       content_type="application/pkcs7-mime").status_code == 400
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    after = resp.get_data(as_text=True)
    delta = lambda name, **lab: _samples(after, name, **lab) - _samples(before, name, **lab)  # noqa: E731
    assert delta("udun_http_requests_total", route="/healthz", status="200") == 3
    assert delta("udun_http_requests_total", route="/api/v1/verify", status="400") == 1
    assert delta("udun_http_request_seconds_count", route="/healthz") == 3


def test_every_request_has_an_id_and_one_log_line(client, settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.log_file, "conftest sends the run's logs to UDUN_LOG_FILE"
    given = "ops-test-" + os.urandom(6).hex()
    resp = client.get("/healthz", headers={"X-Request-ID": given})
    assert resp.headers["X-Request-ID"] == given
    bad = client.get("/healthz", headers={"X-Request-ID": "spaces and\u00e9 not allowed"})
    new = bad.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", new)
    lines = [json.loads(line) for line in Path(settings.log_file).read_text(encoding="utf-8").splitlines()]
    mine = [e for e in lines if e.get("request_id") == given]
    assert len(mine) == 1, mine
    entry = mine[0]
    assert entry["logger"] == "udun.access" and entry["method"] == "GET" and entry["route"] == "/healthz"
    assert entry["status"] == 200 and entry["duration_ms"] >= 0 and entry["time"].endswith("Z")
    assert len([e for e in lines if e.get("request_id") == new]) == 1


def test_readyz_checks_the_schema(client, empty_db) -> None:  # type: ignore[no-untyped-def]
    from pkicore.errors import ErrorKind, PkiError
    from webapi.views.health import schema_check

    body = client.get("/readyz").get_json()
    assert body["status"] == "ok" and body["checks"]["schema"]["status"] == "ok"
    assert {"database", "ocsp_key", "tsa_key"} <= set(body["checks"])
    with pytest.raises(PkiError) as e:                   # a database `udun db upgrade` has not reached
        schema_check(empty_db)
    assert e.value.kind is ErrorKind.NOT_INITIALISED and "udun db upgrade" in e.value.message


def test_admin_metrics_need_the_key_and_readyz_is_public(admin_client) -> None:  # type: ignore[no-untyped-def]
    assert admin_client.get("/metrics").status_code == 401
    assert admin_client.get("/metrics", headers=ADMIN).status_code == 200
    ready = admin_client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["schema"]["status"] == "ok"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_metrics_of_a_real_server_sum_its_workers(ca, settings) -> None:  # type: ignore[no-untyped-def]
    with running_server(Path(settings.home), workers=2) as (base, _proc):
        before = _samples(_get(f"{base}/metrics"), "udun_http_requests_total", route="/healthz", status="200")
        for _ in range(20):                  # sync workers close each connection: both workers answer
            _get(f"{base}/healthz")
        after = _samples(_get(f"{base}/metrics"), "udun_http_requests_total", route="/healthz", status="200")
        assert after - before == 20
