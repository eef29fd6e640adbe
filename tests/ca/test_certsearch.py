"""Issue 12: finding certificates by subject, serial, status, profile and time, on both
engines; the CLI's `ca list` and the admin API's GET /api/v1/certificates on real issued
certificates; bad filters refused with the field named."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from ca.certquery import STATUSES, CertificateQuery, Cursor, current_status
from helpers import software_csr
from pkicore.errors import ErrorKind, PkiError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def _engine_with(empty_db: sa.Engine, rows: list[dict[str, Any]]) -> sa.Engine:
    from ca.storage.migrate import alembic
    from ca.storage.schema import certificates
    from ca.storage.store import NewAuthority, Store

    with empty_db.begin() as conn:
        alembic(conn, "upgrade", "head")
    (authority,) = Store(empty_db).add_authorities(
        [NewAuthority("issuing", "t", b"k", "ec-p256", "CN=t", b"der", NOW + timedelta(days=3650))], now=NOW)
    with empty_db.begin() as conn:
        conn.execute(sa.insert(certificates), [{"authority_id": authority.id, **r} for r in rows])
    return empty_db


def _row(i: int, **over: Any) -> dict[str, Any]:
    created = NOW - timedelta(days=100 - i)
    row = {"serial": format(0x1000 + i, "x"), "state": "issued", "profile": "client",
           "subject": f"CN=Customer {i},O=Example Bank,C=CN", "requester": "cli", "tbs_sha256": "ab" * 32,
           "not_before": created, "not_after": created + timedelta(days=365), "created_at": created,
           "issued_at": created, "der": b"x", "status": "good", "revoked_at": None, "revocation_reason": None}
    row.update(over)
    return row


# 0-9 good, 10-11 on hold, 12-14 revoked, 15 expired, 16 revoked and expired, 17 pending,
# 18 failed, 19 an OCSP responder certificate; 20's subject has a LIKE wildcard in it.
ROWS = [
    *(_row(i) for i in range(10)),
    *(_row(i, status="on_hold", revoked_at=NOW - timedelta(days=1), revocation_reason="certificateHold")
      for i in (10, 11)),
    *(_row(i, status="revoked", revoked_at=NOW - timedelta(days=2), revocation_reason="keyCompromise")
      for i in (12, 13, 14)),
    _row(15, not_after=NOW - timedelta(days=1)),
    _row(16, not_after=NOW - timedelta(days=1), status="revoked", revoked_at=NOW - timedelta(days=30)),
    _row(17, state="pending", issued_at=None, der=None),
    _row(18, state="failed", issued_at=None, der=None),
    _row(19, profile="ocsp-responder", subject="CN=udun OCSP Responder,O=udun"),
    _row(20, subject="CN=100%_off,O=Example Bank,C=CN"),
]


@pytest.fixture()
def engine(empty_db: sa.Engine) -> sa.Engine:
    return _engine_with(empty_db, ROWS)


def _find(engine: sa.Engine, **filters: Any) -> list[int]:
    from ca.storage.search import search

    page = search(engine, CertificateQuery.build(limit=1000, **filters), NOW)
    return sorted(int(r.serial, 16) - 0x1000 for r in page.items)


def test_each_status_is_the_current_one(engine: sa.Engine) -> None:
    expected = {"good": [*range(10), 19, 20], "on-hold": [10, 11], "revoked": [12, 13, 14, 16], "expired": [15],
                "pending": [17], "failed": [18]}
    assert set(expected) == set(STATUSES)
    for status, want in expected.items():
        assert _find(engine, status=status) == want, status
    assert _find(engine) == list(range(21))


def test_subject_serial_profile_and_times(engine: sa.Engine) -> None:
    assert _find(engine, subject="customer 1") == [1, *range(10, 19)]          # any case, a substring
    assert _find(engine, subject="100%_") == [20]                          # LIKE wildcards taken literally
    assert _find(engine, subject="%") == [20]
    assert _find(engine, serial="0X100") == list(range(16))                 # a hex prefix, 0x and case ignored
    assert _find(engine, serial="101") == list(range(16, 21))
    assert _find(engine, profile="ocsp-responder") == [19]
    assert _find(engine, status="good", profile="client") == [*range(10), 20]
    day = NOW - timedelta(days=95)
    assert _find(engine, issued_after=day, issued_before=day + timedelta(days=3)) == [5, 6, 7]
    assert _find(engine, issued_after="2026-03-12") == [19, 20]            # a date: midnight UTC
    assert _find(engine, expiring_before=NOW) == [15, 16]
    assert _find(engine, expiring_after=(NOW + timedelta(days=284)).isoformat(), status="good") == [19, 20]


def test_pages_follow_one_another_newest_first(engine: sa.Engine) -> None:
    from ca.storage.search import search

    seen: list[str] = []
    cursor = None
    while True:
        page = search(engine, CertificateQuery.build(limit=4, cursor=cursor), NOW)
        seen += [r.serial for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(page.items) == 1 and len(seen) == 21
    assert seen == [format(0x1000 + i, "x") for i in reversed(range(21))]


def test_ties_on_the_creation_time_are_paged_by_serial(empty_db: sa.Engine) -> None:
    from ca.storage.search import search

    engine = _engine_with(empty_db, [_row(i, created_at=NOW - timedelta(days=1)) for i in range(7)])
    first = search(engine, CertificateQuery.build(limit=3), NOW)
    second = search(engine, CertificateQuery.build(limit=3, cursor=first.next_cursor), NOW)
    third = search(engine, CertificateQuery.build(limit=3, cursor=second.next_cursor), NOW)
    got = [r.serial for p in (first, second, third) for r in p.items]
    assert got == [format(0x1000 + i, "x") for i in reversed(range(7))] and third.next_cursor is None


@pytest.mark.parametrize(("filters", "field"), [
    ({"status": "active"}, "status"), ({"profile": "server"}, "profile"), ({"serial": "xyz"}, "serial"),
    ({"serial": "1" * 41}, "serial"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"), ({"issued_after": "yesterday"}, "issued_after"),
    ({"expiring_before": "2026-13-01"}, "expiring_before"), ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": Cursor(NOW, "zz").encode()}, "cursor"), ({"subject": "x" * 257}, "subject"),
    ({"issued_after": "2026-02-01", "issued_before": "2026-01-01"}, "issued_before"),
])
def test_bad_filters_are_refused_naming_the_field(filters: dict[str, Any], field: str) -> None:
    with pytest.raises(PkiError) as err:
        CertificateQuery.build(**filters)
    assert err.value.kind is ErrorKind.BAD_INPUT and err.value.field == field, err.value


def test_current_status_of_a_record() -> None:
    from dataclasses import replace

    from ca.storage.store import CertRecord

    base = CertRecord("1", 1, "issued", "client", "CN=x", "cli", "", NOW, NOW + timedelta(days=1), NOW, NOW, b"")
    assert current_status(base, NOW) == "good"
    assert current_status(base, NOW + timedelta(days=1)) == "expired"      # notAfter itself has passed
    assert current_status(replace(base, status="on_hold"), NOW + timedelta(days=2)) == "on-hold"
    assert current_status(replace(base, status="revoked"), NOW) == "revoked"
    assert current_status(replace(base, state="pending"), NOW) == "pending"


# --- through the CLI and the admin API, on certificates the CA issued --------------------

ADMIN = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}


@pytest.fixture()
def issued(admin_client, ca) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """Three fresh certificates with one tag in their subjects: good, on hold, revoked."""
    from ca.revocation import Revocation

    tag = f"search-{uuid.uuid4().hex[:10]}"
    serials = {}
    for name in ("good", "held", "revoked"):
        resp = admin_client.post("/api/v1/certificates", data=software_csr(f"{tag} {name}"), headers=ADMIN)
        assert resp.status_code == 201, resp.get_json()
        serials[name] = resp.get_json()["serial"]
    revocation = Revocation(ca)
    revocation.hold(serials["held"], actor="test")
    revocation.revoke(serials["revoked"], "keyCompromise", actor="test")
    return tag, serials


def test_the_admin_api_finds_them_by_status_and_subject(admin_client, issued) -> None:  # type: ignore[no-untyped-def]
    tag, serials = issued
    for status, name in (("good", "good"), ("on-hold", "held"), ("revoked", "revoked")):
        resp = admin_client.get(f"/api/v1/certificates?subject={tag}&status={status}", headers=ADMIN)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert [c["serial"] for c in body["items"]] == [serials[name]] and body["next_cursor"] is None
        assert body["items"][0]["status"] == status
    everything = admin_client.get(f"/api/v1/certificates?subject={tag.upper()}&limit=2", headers=ADMIN).get_json()
    rest = admin_client.get(f"/api/v1/certificates?subject={tag}&limit=2&cursor={everything['next_cursor']}",
                            headers=ADMIN).get_json()
    assert [c["serial"] for c in everything["items"] + rest["items"]] == \
        [serials["revoked"], serials["held"], serials["good"]]          # newest first, across pages
    shown = admin_client.get(f"/api/v1/certificates/{serials['revoked']}", headers=ADMIN).get_json()
    assert shown["status"] == "revoked" and shown["revocation_reason"] == "keyCompromise"
    assert [h["action"] for h in shown["history"]] == ["revoke"] and shown["history"][0]["actor"] == "test"


def test_the_admin_api_refuses_bad_filters_and_callers_without_the_key(admin_client) -> None:  # type: ignore[no-untyped-def]
    assert admin_client.get("/api/v1/certificates").status_code == 401
    assert admin_client.get("/api/v1/certificates", headers={"Authorization": "Bearer wrong"}).status_code == 401
    for query, field in (("status=active", "status"), ("limit=5000", "limit"), ("colour=red", "colour"),
                         ("issued_after=soon", "issued_after"), ("cursor=%00", "cursor")):
        resp = admin_client.get(f"/api/v1/certificates?{query}", headers=ADMIN)
        problem = resp.get_json()
        assert resp.status_code == 400 and resp.mimetype == "application/problem+json", (query, problem)
        assert problem["code"] == "bad-input" and problem.get("field") == field, (query, problem)


def test_ca_list_shows_the_current_status_and_filters(issued, home) -> None:  # type: ignore[no-untyped-def]
    from helpers import udun

    tag, serials = issued
    env = {"UDUN_HOME": str(home)}
    out = udun("ca", "list", "--subject", tag, "--status", "revoked", "--json", env=env)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert [(c["serial"], c["status"]) for c in lines] == [(serials["revoked"], "revoked")]
    table = udun("ca", "list", "--subject", tag, env=env).stdout.decode().splitlines()
    assert [line.split()[:2] for line in table] == [[serials["revoked"], "revoked"], [serials["held"], "on-hold"],
                                                    [serials["good"], "good"]]
    shown = json.loads(udun("ca", "show", serials["held"], "--json", env=env).stdout)
    assert shown["status"] == "on-hold" and shown["history"][0]["action"] == "hold"
    bad = udun("ca", "list", "--serial", "xyz", env=env)
    assert bad.returncode == 2 and b"serial is hex digits" in bad.stderr and b"Traceback" not in bad.stderr
    paged = udun("ca", "list", "--subject", tag, "--limit", "1", env=env)
    assert b"more: --cursor " in paged.stderr
