"""Issue 12, point 1: bank credentials. Verify, challenges and evidence need a bank's API key
with the route's scope; evidence, replay records and challenges belong to the bank that made
them; keys are hashed at rest, expire, rotate and revoke; an anonymous call writes nothing.
Each attack an insider with one bank's key could try is a test here."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import CUSTOMER, PIN, SoftwareKey, bank_key, now, sample_tx

ADMIN = {"Authorization": "Bearer udun-test-admin-key-0123456789abcdef"}


def _key(ca, bank: str, *scopes: str) -> str:  # type: ignore[no-untyped-def]
    return bank_key(ca.store, ca.clock, bank, scopes or None)


def _as(app, key: str | None):  # type: ignore[no-untyped-def]
    c = app.test_client()
    if key is not None:
        c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return c


def _counts(ca) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with ca.store.engine.connect() as conn:
        return {t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() or 0)
                for t in ("audit_log", "challenges", "evidence", "bank_keys")}


def _signed(settings) -> bytes:  # type: ignore[no-untyped-def]
    from signer.signing import sign_transaction

    return sign_transaction(settings, "user-ec", PIN, sample_tx())


def _verify(client, cms: bytes) -> Any:  # type: ignore[no-untyped-def]
    return client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")


# --- no key, a wrong key, a key without the scope -------------------------------------------

@pytest.mark.parametrize("method,path", [("POST", "/api/v1/verify"), ("POST", "/api/v1/challenges"),
                                         ("GET", "/api/v1/evidence/ev_0123456789abcdef")])
def test_anonymous_and_wrong_keys_are_401_and_write_nothing(app, ca, settings, enrolled, method: str,
                                                            path: str) -> None:  # type: ignore[no-untyped-def]
    body = _signed(settings) if path.endswith("verify") else None
    real = _key(ca, "auth-bank")
    before = _counts(ca)
    tampered = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    for key, error in ((None, False), ("not-a-key", True), (tampered, True),
                       ("udun_0123456789abcdef_" + "A" * 43, True), (ADMIN["Authorization"].split()[1], True)):
        resp = _as(app, key).open(path, method=method, data=body, content_type="application/pkcs7-mime")
        assert resp.status_code == 401, (key, resp.get_json())
        problem = resp.get_json()
        assert resp.mimetype == "application/problem+json" and problem["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="udun"' + (', error="invalid_token"' if error else "")
        assert real not in resp.get_data(as_text=True)
    assert _counts(ca) == before


def test_a_key_without_the_scope_is_403_naming_it(app, ca, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    reader = _as(app, _key(ca, "scope-bank", "evidence:read"))
    resp = _verify(reader, _signed(settings))
    assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden"
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="udun", error="insufficient_scope", scope="verify"'
    verifier = _as(app, _key(ca, "scope-bank", "verify"))
    assert verifier.post("/api/v1/challenges").status_code == 403
    assert verifier.get("/api/v1/evidence/ev_x").status_code == 403
    assert reader.get("/api/v1/evidence/ev_x").status_code == 404


# --- what belongs to a bank -----------------------------------------------------------------

def test_a_bank_reads_only_its_own_evidence(app, ca, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = _as(app, _key(ca, "owner-bank")), _as(app, _key(ca, "other-bank"))
    answer = _verify(mine, _signed(settings)).get_json()
    assert answer["status"] == "TOTAL_PASSED"
    assert mine.get(f"/api/v1/evidence/{answer['evidence_id']}").status_code == 200
    stolen = theirs.get(f"/api/v1/evidence/{answer['evidence_id']}")
    unknown = "ev_019a8c2f4b100000000000000000000000"
    missing = theirs.get(f"/api/v1/evidence/{unknown}")
    assert stolen.status_code == missing.status_code == 404
    # nothing tells them apart but the id asked for
    assert stolen.get_json()["detail"] == missing.get_json()["detail"].replace(unknown, answer["evidence_id"])


def test_replay_is_per_bank_and_the_audit_names_the_bank(app, ca, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    """Another bank holding the payment cannot burn its tx_id for the bank it was meant for;
    the same bank sending it twice is a replay."""
    from ca.audit import load_entries

    first_key, second_key = _key(ca, "replay-a"), _key(ca, "replay-b")
    a, b = _as(app, first_key), _as(app, second_key)
    cms = _signed(settings)
    at_b = _verify(b, cms).get_json()
    at_a = _verify(a, cms).get_json()
    assert at_b["status"] == at_a["status"] == "TOTAL_PASSED" and at_a["evidence_id"] != at_b["evidence_id"]
    again = _verify(a, cms).get_json()
    assert (again["sub_indication"], again["first_evidence_id"]) == ("REPLAYED", at_a["evidence_id"])
    entries = {e.subject: e for e in load_entries(ca)}
    key_a = first_key.split("_")[1]
    assert entries[at_a["evidence_id"]].actor == f"bank:replay-a/{key_a}"
    assert entries[at_b["evidence_id"]].actor.startswith("bank:replay-b/")


def test_a_challenge_is_used_only_by_the_bank_that_asked(app, ca, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from pkicore.cms_build import sign_data
    from pkicore.x509build import build_csr, parse_name

    key = SoftwareKey()
    rec = ca.issue(build_csr(key, parse_name(f"CN=Challenge {uuid.uuid4().hex[:8]},O=udun tests,C=CN")),
                   customer=CUSTOMER)
    a, b = _as(app, _key(ca, "challenge-a")), _as(app, _key(ca, "challenge-b"))
    value = a.post("/api/v1/challenges").get_json()["challenge"]
    cms = sign_data(key, rec.der, ca.chain_der(), sample_tx(challenge=value).canonical_bytes(), signing_time=now())
    at_b = _verify(b, cms).get_json()
    assert at_b["sub_indication"] == "CHALLENGE_UNKNOWN" and at_b["evidence_id"] is None
    assert _verify(a, cms).get_json()["status"] == "TOTAL_PASSED"       # B's attempt did not use it up


# --- the key's life ---------------------------------------------------------------------------

def test_keys_are_stored_as_slow_hashes_only(ca) -> None:  # type: ignore[no-untyped-def]
    from ca.banks import Banks

    banks = Banks(ca.store, ca.clock)
    banks.add("hash-bank", None, actor="pytest")
    new = banks.issue_key("hash-bank", actor="pytest")
    with ca.store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM bank_keys WHERE id = :i"), {"i": new.record.id}).one()._mapping
    stored = " ".join(str(v) for v in row.values())
    secret = new.text.split("_", 2)[2]
    assert secret not in stored and new.text not in stored
    assert row["hash"].startswith("scrypt$16384$8$1$")


def test_expired_revoked_and_disabled_keys_are_refused_at_once(app, ca, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from ca.banks import Banks
    from ca.storage.schema import bank_keys

    banks = Banks(ca.store, ca.clock)
    banks.add("life-bank", None, actor="pytest")
    new = banks.issue_key("life-bank", ["challenges"], days=1, actor="pytest")
    client = _as(app, new.text)
    assert client.post("/api/v1/challenges").status_code == 201          # and the slow hash is cached now
    with ca.store.engine.begin() as conn:
        conn.execute(sa.update(bank_keys).where(bank_keys.c.id == new.record.id)
                     .values(expires_at=now() - timedelta(seconds=1)))
    expired = client.post("/api/v1/challenges")
    assert expired.status_code == 401 and expired.get_json()["detail"] == "the API key is expired"
    other = banks.issue_key("life-bank", ["challenges"], actor="pytest")
    client = _as(app, other.text)
    assert client.post("/api/v1/challenges").status_code == 201
    banks.set_disabled("life-bank", True, actor="pytest")
    assert client.post("/api/v1/challenges").get_json()["detail"] == "the bank is disabled"
    banks.set_disabled("life-bank", False, actor="pytest")
    assert client.post("/api/v1/challenges").status_code == 201
    banks.revoke_key(other.record.id, actor="pytest")                     # another process's Banks, in effect
    revoked = client.post("/api/v1/challenges")
    assert revoked.status_code == 401 and revoked.get_json()["detail"] == "the API key is revoked"


def test_rotation_keeps_the_old_key_for_the_grace_period_only(app, ca) -> None:  # type: ignore[no-untyped-def]
    from ca.banks import Banks

    banks = Banks(ca.store, ca.clock)
    banks.add("rotate-bank", None, actor="pytest")
    old = banks.issue_key("rotate-bank", ["challenges"], actor="pytest")
    graced = banks.rotate_key(old.record.id, timedelta(hours=2), actor="pytest")
    assert graced.record.scopes == ("challenges",)
    for text in (old.text, graced.text):
        assert _as(app, text).post("/api/v1/challenges").status_code == 201
    listed = {k.id: k for k in banks.keys("rotate-bank")}
    assert listed[old.record.id].replaced_by == graced.record.id
    assert listed[old.record.id].expires_at is not None and listed[old.record.id].expires_at <= now() + timedelta(hours=2)
    at_once = banks.rotate_key(graced.record.id, timedelta(0), actor="pytest")
    assert _as(app, graced.text).post("/api/v1/challenges").status_code == 401
    assert _as(app, at_once.text).post("/api/v1/challenges").status_code == 201
    from pkicore.errors import PkiError

    with pytest.raises(PkiError) as e:
        banks.rotate_key(graced.record.id, timedelta(hours=1), actor="pytest")
    assert e.value.kind.value == "conflict"


def test_bad_names_scopes_and_days_are_refused_with_their_field(ca) -> None:  # type: ignore[no-untyped-def]
    from ca.banks import Banks
    from pkicore.errors import PkiError

    banks = Banks(ca.store, ca.clock)
    for call, field in ((lambda: banks.add("Bad Name", None, actor="t"), "name"),
                        (lambda: banks.add("-x", None, actor="t"), "name"),
                        (lambda: banks.issue_key("testbank", ["admin"], actor="t"), "scopes"),
                        (lambda: banks.issue_key("testbank", [], actor="t"), "scopes"),
                        (lambda: banks.issue_key("testbank", days=0, actor="t"), "days")):
        with pytest.raises(PkiError) as e:
            call()
        assert (e.value.kind.value, e.value.field) == ("bad-input", field)
    with pytest.raises(PkiError) as e:
        banks.issue_key("no-such-bank", actor="t")
    assert e.value.kind.value == "not-found"


# --- the admin API ----------------------------------------------------------------------------

def test_bank_administration_through_the_admin_api(admin_client, app, ca) -> None:  # type: ignore[no-untyped-def]
    name = f"api-{uuid.uuid4().hex[:8]}"
    assert admin_client.post("/api/v1/banks", json={"name": name}).status_code == 401      # the admin key first
    made = admin_client.post("/api/v1/banks", headers=ADMIN, json={"name": name, "display_name": "Bank 中文"})
    assert made.status_code == 201 and made.get_json()["display_name"] == "Bank 中文"
    assert made.headers["Location"] == f"/api/v1/banks/{name}"
    again = admin_client.post("/api/v1/banks", headers=ADMIN, json={"name": name})
    assert again.status_code == 409 and again.get_json()["code"] == "conflict"
    key = admin_client.post(f"/api/v1/banks/{name}/keys", headers=ADMIN, json={"scopes": ["challenges"], "days": 7})
    assert key.status_code == 201 and key.headers["Cache-Control"] == "no-store"
    body = key.get_json()
    assert body["scopes"] == ["challenges"] and body["state"] == "active"
    assert _as(app, body["key"]).post("/api/v1/challenges").status_code == 201
    shown = admin_client.get(f"/api/v1/banks/{name}", headers=ADMIN).get_json()
    assert [k["key_id"] for k in shown["keys"]] == [body["key_id"]] and "key" not in shown["keys"][0]
    rotated = admin_client.post(f"/api/v1/bank-keys/{body['key_id']}/rotate", headers=ADMIN,
                                json={"grace_hours": 0}).get_json()
    assert _as(app, body["key"]).post("/api/v1/challenges").status_code == 401
    revoked = admin_client.post(f"/api/v1/bank-keys/{rotated['key_id']}/revoke", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.get_json()["state"] == "revoked"
    assert _as(app, rotated["key"]).post("/api/v1/challenges").status_code == 401
    for bad, field in (({"scopes": "verify"}, "scopes"), ({"days": "7"}, "days"), ({"days": True}, "days"),
                       ({"scopes": ["root"]}, "scopes"), ({"nope": 1}, "nope")):
        resp = admin_client.post(f"/api/v1/banks/{name}/keys", headers=ADMIN, json=bad)
        assert resp.status_code == 400 and resp.get_json()["field"] == field, (bad, resp.get_json())
    assert admin_client.post("/api/v1/banks/nobody/keys", headers=ADMIN, json={}).status_code == 404
    assert admin_client.post(f"/api/v1/banks/{name}/disable", headers=ADMIN).get_json()["state"] == "disabled"
    assert admin_client.post(f"/api/v1/banks/{name}/disable", headers=ADMIN).status_code == 409
    listed = admin_client.get("/api/v1/banks", headers=ADMIN).get_json()["items"]
    assert next(b for b in listed if b["name"] == name)["state"] == "disabled"


def _size(ca) -> tuple[dict[str, int], int]:  # type: ignore[no-untyped-def]
    """Rows of every table, and the database's size: SQLite's pages; on PostgreSQL the bytes
    of the main fork of every table and index of udun's schema. Not pg_database_size:
    autovacuum, running on its own, adds free-space and visibility-map forks (it wrote
    ~100 KiB during one flood run, with not one row changed); it never adds main-fork pages,
    only a new row or row version does (a vacuum may give trailing empty pages back)."""
    from ca.storage.schema import metadata

    with ca.store.engine.connect() as conn:
        rows = {t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() or 0) for t in metadata.tables}
        if conn.dialect.name == "sqlite":
            size = int(conn.execute(sa.text("PRAGMA page_count")).scalar() or 0)
        else:
            size = int(conn.execute(sa.text(
                "SELECT coalesce(sum(pg_relation_size(c.oid, 'main')), 0) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')")).scalar()
                or 0)
    return rows, size


def test_a_flood_of_anonymous_requests_leaves_the_database_as_it_was(settings, ca, verifier, enrolled) -> None:  # type: ignore[no-untyped-def]
    """10,000 calls without a valid key (none, garbage, a well-formed key of no bank) to the
    three bank routes, from one address, with a rate limit: each is a 401 or, past the
    limit, a 429; not one row or page more (issue 12's flood test)."""
    import dataclasses

    from webapi import create_app

    limited = create_app(dataclasses.replace(settings, rate_limit_per_address="3000/minute"), ca=ca,
                         verifier=verifier)
    cms = _signed(settings)
    anonymous, garbage, unknown = (_as(limited, k) for k in (None, "x" * 60, "udun_00000000deadbeef_" + "Q" * 43))
    before = _size(ca)
    statuses: dict[int, int] = {}
    for i in range(10_000):
        client = (anonymous, garbage, unknown)[i % 3]
        route = i % 4
        if route == 0:
            resp = _verify(client, cms)
        elif route == 1:
            resp = client.post("/api/v1/challenges")
        elif route == 2:
            resp = client.get(f"/api/v1/evidence/ev_{i:032x}")
        else:
            resp = client.post("/api/v1/verify", json={"cms": "AAAA"})
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        if resp.status_code == 429:
            assert int(resp.headers["Retry-After"]) >= 1 and resp.get_json()["code"] == "too-many-requests"
    assert set(statuses) == {401, 429} and statuses[401] >= 3000 and statuses[429] >= 1, statuses
    after = _size(ca)
    assert after[0] == before[0]                                   # not one row more, less or other
    assert after[1] == before[1] if ca.store.engine.dialect.name == "sqlite" else after[1] <= before[1], \
        (before[1], after[1])


def test_a_bank_looks_up_a_certificate_by_serial_with_its_scope(app, ca, enrolled) -> None:  # type: ignore[no-untyped-def]
    user = enrolled["user-ec"]
    reader = _as(app, _key(ca, "cert-bank", "certificates:read"))
    shown = reader.get(f"/api/v1/certificates/{user.serial.upper()}")
    assert shown.status_code == 200, shown.get_json()
    body = shown.get_json()
    assert body["serial"] == user.serial and body["status"] == "good" and "requester" not in body
    assert body["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert reader.get("/api/v1/certificates/00ff00ff").status_code == 404
    assert _as(app, _key(ca, "cert-bank", "verify")).get(f"/api/v1/certificates/{user.serial}").status_code == 403
    assert _as(app, None).get(f"/api/v1/certificates/{user.serial}").status_code == 401


def test_keys_never_expire_only_when_said_and_rotate_once(admin_client, ca) -> None:  # type: ignore[no-untyped-def]
    name = f"exp-{uuid.uuid4().hex[:8]}"
    assert admin_client.post("/api/v1/banks", headers=ADMIN, json={"name": name}).status_code == 201
    nulls = admin_client.post(f"/api/v1/banks/{name}/keys", headers=ADMIN, json={"days": None, "scopes": None})
    assert nulls.status_code == 201 and nulls.get_json()["expires_at"] is not None      # null: the default
    forever = admin_client.post(f"/api/v1/banks/{name}/keys", headers=ADMIN, json={"never_expires": True})
    assert forever.status_code == 201 and forever.get_json()["expires_at"] is None
    for bad, field in (({"scopes": []}, "scopes"), ({"never_expires": "yes"}, "never_expires"),
                       ({"never_expires": True, "days": 3}, "never_expires")):
        resp = admin_client.post(f"/api/v1/banks/{name}/keys", headers=ADMIN, json=bad)
        assert resp.status_code == 400 and resp.get_json()["field"] == field, (bad, resp.get_json())
    key_id = nulls.get_json()["key_id"]
    first = admin_client.post(f"/api/v1/bank-keys/{key_id}/rotate", headers=ADMIN, json={})
    assert first.status_code == 201
    again = admin_client.post(f"/api/v1/bank-keys/{key_id}/rotate", headers=ADMIN, json={})
    assert again.status_code == 409 and first.get_json()["key_id"] in again.get_json()["detail"]


# --- finding evidence -------------------------------------------------------------------------

def test_a_bank_finds_only_its_own_evidence(app, admin_client, ca, settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from signer.signing import sign_transaction

    mine, theirs = _as(app, _key(ca, "find-a")), _as(app, _key(ca, "find-b"))
    tx = sample_tx()
    cms = sign_transaction(settings, "user-ec", PIN, tx)
    at_a = [_verify(mine, cms).get_json()] + [_verify(mine, _signed(settings)).get_json() for _ in range(2)]
    at_b = _verify(theirs, cms).get_json()                            # the same payment, at another bank
    assert all(a["status"] == "TOTAL_PASSED" for a in [*at_a, at_b])
    page = mine.get("/api/v1/evidence?limit=2").get_json()
    assert [i["evidence_id"] for i in page["items"]] == [a["evidence_id"] for a in reversed(at_a)][:2]
    rest = mine.get(f"/api/v1/evidence?limit=2&cursor={page['next_cursor']}").get_json()
    assert [i["evidence_id"] for i in rest["items"]] == [at_a[0]["evidence_id"]] and rest["next_cursor"] is None
    by_tx = mine.get(f"/api/v1/evidence?tx_id={tx.tx_id}").get_json()["items"]
    assert [(i["evidence_id"], i["bank"]) for i in by_tx] == [(at_a[0]["evidence_id"], "find-a")]
    for bad, field in (("bank=find-b", "bank"), ("limit=0", "limit"), ("signer_serial=xyz", "signer_serial"),
                       ("received_after=2026-12-02&received_before=2026-12-01", "received_before"),
                       ("cursor=ev_nope", "cursor")):
        resp = mine.get(f"/api/v1/evidence?{bad}")
        assert resp.status_code == 400 and resp.get_json()["field"] == field, (bad, resp.get_json())
    assert _as(app, None).get("/api/v1/evidence").status_code == 401
    # Operators see every bank's, and may name one.
    assert admin_client.get("/api/v1/evidence").status_code == 401
    both = admin_client.get(f"/api/v1/evidence?tx_id={tx.tx_id}", headers=ADMIN).get_json()["items"]
    assert sorted(i["bank"] for i in both) == ["find-a", "find-b"]
    only_b = admin_client.get(f"/api/v1/evidence?tx_id={tx.tx_id}&bank=find-b", headers=ADMIN).get_json()["items"]
    assert [i["evidence_id"] for i in only_b] == [at_b["evidence_id"]]


def test_client_certificates_as_credentials_in_process(app, ca) -> None:  # type: ignore[no-untyped-def]
    """The verified certificate reaches the app as environ udun.tls.client_sha256 (only the
    server's worker can set it: a header cannot)."""
    import hashlib

    from ca.banks import Banks
    from helpers import SoftwareKey, make_root

    banks = Banks(ca.store, ca.clock)
    banks.add("cert-a", None, actor="pytest")
    der = make_root(SoftwareKey(), cn="Bank A client")
    sha = hashlib.sha256(der).hexdigest()
    rec = banks.add_cert("cert-a", der, ["challenges"], actor="pytest")
    assert rec.sha256 == sha and rec.scopes == ("challenges",)
    with_cert = app.test_client()
    with_cert.environ_base["udun.tls.client_sha256"] = sha
    assert with_cert.post("/api/v1/challenges").status_code == 201
    assert with_cert.get("/api/v1/evidence").status_code == 403
    forged = app.test_client().post("/api/v1/challenges", headers={"Udun.Tls.Client-Sha256": sha})
    assert forged.status_code == 401
    own_key, other_key = _key(ca, "cert-a"), _key(ca, "cert-b")
    assert with_cert.post("/api/v1/challenges", headers={"Authorization": f"Bearer {own_key}"}).status_code == 201
    assert with_cert.post("/api/v1/challenges", headers={"Authorization": f"Bearer {other_key}"}).status_code == 401
    banks.set_disabled("cert-a", True, actor="pytest")
    assert with_cert.post("/api/v1/challenges").get_json()["detail"] == "the bank is disabled"
    banks.set_disabled("cert-a", False, actor="pytest")
    from pkicore.errors import PkiError

    with pytest.raises(PkiError) as e:
        banks.add_cert("cert-b", der, actor="pytest")                    # one certificate, one bank
    assert e.value.kind.value == "conflict"
    with pytest.raises(PkiError) as e:
        banks.add_cert("cert-a", b"not a certificate", actor="pytest")
    assert (e.value.kind.value, e.value.field) == ("bad-input", "certificate")
    banks.remove_cert(sha.upper(), actor="pytest")
    assert with_cert.post("/api/v1/challenges").status_code == 401


def test_client_certificates_through_the_admin_api(admin_client, ca) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import pem

    from helpers import SoftwareKey, make_root

    name = f"apicert-{uuid.uuid4().hex[:8]}"
    assert admin_client.post("/api/v1/banks", headers=ADMIN, json={"name": name}).status_code == 201
    text = pem.armor("CERTIFICATE", make_root(SoftwareKey(), cn="API client")).decode()
    made = admin_client.post(f"/api/v1/banks/{name}/certificates", headers=ADMIN,
                             json={"certificate_pem": text, "scopes": ["verify"]})
    assert made.status_code == 201 and made.get_json()["state"] == "active", made.get_json()
    sha = made.get_json()["sha256"]
    shown = admin_client.get(f"/api/v1/banks/{name}", headers=ADMIN).get_json()
    assert [c["sha256"] for c in shown["certificates"]] == [sha]
    for bad, field in (({}, "certificate_pem"), ({"certificate_pem": "junk"}, "certificate"),
                       ({"certificate_pem": text, "scopes": []}, "scopes")):
        resp = admin_client.post(f"/api/v1/banks/{name}/certificates", headers=ADMIN, json=bad)
        assert resp.status_code == 400 and resp.get_json()["field"] == field, resp.get_json()
    again = admin_client.post(f"/api/v1/banks/{name}/certificates", headers=ADMIN, json={"certificate_pem": text})
    assert again.status_code == 409
    removed = admin_client.post(f"/api/v1/bank-certificates/{sha}/remove", headers=ADMIN)
    assert removed.status_code == 200 and removed.get_json()["state"] == "removed"
    assert admin_client.post(f"/api/v1/bank-certificates/{sha}/remove", headers=ADMIN).status_code == 409
