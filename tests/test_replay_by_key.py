"""Issue 10: replay protection by the signer's public key, not its certificate; the audit
log names only a signer that verified; migration 0006 over records that exist."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import CUSTOMER, PIN, SoftwareKey, issue_with, make_root, now, sample_tx

SUBJECT = "CN=Test user-ec,O=udun tests,C=CN"        # the enrolled token's subject (conftest)


def _verify(client, cms: bytes) -> dict:  # type: ignore[no-untyped-def,type-arg]
    resp = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert resp.status_code == 200, resp.get_data()
    return resp.get_json()  # type: ignore[no-any-return]


def _audit_of(ca, cms: bytes) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """The verify audit entries (subject, details) of one submitted CMS, oldest first."""
    digest = hashlib.sha256(cms).hexdigest()
    with ca.store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT subject, details FROM audit_log WHERE action = 'verify' "
                                    "AND details LIKE :d ORDER BY seq"), {"d": f"%{digest}%"}).all()
    return [(r[0], json.loads(r[1])) for r in rows]


def _records(ca, tx_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    from ca.storage.evidence import EvidenceStore

    return [i for i, _, _, t in EvidenceStore(ca.store).ids(100_000) if t == tx_id]


@pytest.fixture(scope="module")
def renewed(settings, enrolled, ca):  # type: ignore[no-untyped-def]
    """The enrolled SoftHSM token's key, its certificate and a second certificate the CA
    issued for the same key and subject (a renewal; not imported onto the token)."""
    from ca.storage.evidence import spki_sha256
    from signer import tokens

    key, cert1, chain = tokens.certificate_and_chain(settings, "user-ec", PIN)
    rec2 = ca.issue(tokens.csr(settings, "user-ec", PIN, SUBJECT), "client", requester="pytest", customer=CUSTOMER)
    assert rec2.der is not None and rec2.der != cert1
    assert spki_sha256(rec2.der) == spki_sha256(cert1)
    return key, cert1, rec2, chain


def test_a_second_certificate_of_the_same_key_cannot_replay(renewed, ca, client) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import x509

    from ca.storage.evidence import spki_sha256
    from pkicore.cms_build import sign_data

    key, cert1, rec2, chain = renewed
    serial1 = format(x509.Certificate.load(cert1).serial_number, "x")
    tx = sample_tx()
    first = _verify(client, sign_data(key, cert1, chain, tx.canonical_bytes(), signing_time=now()))
    assert first["status"] == "TOTAL_PASSED", first["message"]
    assert first["signer"]["serial"] == serial1

    replay = sign_data(key, rec2.der, chain, tx.canonical_bytes(), signing_time=now())
    again = _verify(client, replay)
    assert again["signer"]["serial"] == rec2.serial           # verified, under the second certificate
    assert (again["status"], again["sub_indication"]) == ("TOTAL_FAILED", "REPLAYED"), again["message"]
    assert again["first_evidence_id"] == first["evidence_id"] and again["evidence_id"] is None
    assert first["evidence_id"] in again["message"]
    assert _records(ca, tx.tx_id) == [first["evidence_id"]]
    ((subject, details),) = _audit_of(ca, replay)
    assert subject == f"{rec2.serial}/{tx.tx_id}"
    assert details["signer_serial"] == rec2.serial and details["first_evidence_id"] == first["evidence_id"]
    assert details["signer_spki_sha256"] == spki_sha256(cert1) and "claimed_signer_serial" not in details

    # Another payment under the second certificate is no replay.
    other = sample_tx()
    passed = _verify(client, sign_data(key, rec2.der, chain, other.canonical_bytes(), signing_time=now()))
    assert passed["status"] == "TOTAL_PASSED" and passed["evidence_id"], passed["message"]
    assert passed["signer"]["serial"] == rec2.serial


def test_with_a_challenge_the_replay_is_found_before_the_challenge(renewed, ca, client) -> None:  # type: ignore[no-untyped-def]
    """A payment with a challenge is checked by a read first (first_record): same answer."""
    from pkicore.cms_build import sign_data

    key, cert1, rec2, chain = renewed
    made = client.post("/api/v1/challenges")
    assert made.status_code in (200, 201), made.get_data()
    tx = sample_tx(challenge=made.get_json()["challenge"])
    first = _verify(client, sign_data(key, cert1, chain, tx.canonical_bytes(), signing_time=now()))
    assert first["status"] == "TOTAL_PASSED", first["message"]
    again = _verify(client, sign_data(key, rec2.der, chain, tx.canonical_bytes(), signing_time=now()))
    assert again["sub_indication"] == "REPLAYED", again["message"]      # not CHALLENGE_USED
    assert again["first_evidence_id"] == first["evidence_id"] and first["evidence_id"] in again["message"]
    assert _records(ca, tx.tx_id) == [first["evidence_id"]]


def test_another_key_of_the_same_subject_may_use_the_tx_id(settings, ca, client) -> None:  # type: ignore[no-untyped-def]
    """The key is the signer: a tx_id of one key is free for another key (even same name)."""
    from pkicore.cms_build import sign_data
    from pkicore.x509build import build_csr, parse_name

    tx = sample_tx()
    answers = []
    for _ in range(2):
        key = SoftwareKey()
        rec = ca.issue(build_csr(key, parse_name("CN=Two Keys Customer,O=udun tests,C=CN")), "client",
                       requester="pytest", customer=CUSTOMER)
        answers.append(_verify(client, sign_data(key, rec.der, ca.chain_der(), tx.canonical_bytes(),
                                                 signing_time=now())))
    assert [a["status"] for a in answers] == ["TOTAL_PASSED", "TOTAL_PASSED"], [a["message"] for a in answers]
    assert len(_records(ca, tx.tx_id)) == 2


def test_a_forged_cms_does_not_name_the_attached_certificate(renewed, ca, client) -> None:  # type: ignore[no-untyped-def]
    """Signed by another key, with the customer's valid certificate attached: the audit
    entry names no signer; the attached serial is kept only as a claim."""
    from pkicore.cms_build import sign_data

    _, cert1, rec2, chain = renewed
    tx = sample_tx()
    forged = sign_data(SoftwareKey(), rec2.der, chain, tx.canonical_bytes(), signing_time=now())
    answer = _verify(client, forged)
    assert (answer["status"], answer["sub_indication"]) == ("TOTAL_FAILED", "SIG_CRYPTO_FAILURE")
    ((subject, details),) = _audit_of(ca, forged)
    assert subject == f"unverified/{tx.tx_id}" and rec2.serial not in subject
    assert details["signer_serial"] is None and details["claimed_signer_serial"] == rec2.serial
    assert "signer_spki_sha256" not in details
    assert _records(ca, tx.tx_id) == []


def test_a_certificate_no_trusted_ca_issued_is_only_claimed(renewed, ca, client) -> None:  # type: ignore[no-untyped-def]
    """A key of the forger's own, certified by a root of its own under the customer's serial
    and name: the signature verifies, but nothing says who the serial belongs to."""
    from asn1crypto import x509

    from pkicore.cms_build import sign_data

    rogue_key, forger = SoftwareKey(), SoftwareKey()
    root = make_root(rogue_key)
    cert = issue_with(rogue_key, root, forger.public_key_der, cn="Test user-ec")
    serial = format(x509.Certificate.load(cert).serial_number, "x")
    tx = sample_tx()
    cms = sign_data(forger, cert, [root], tx.canonical_bytes(), signing_time=now())
    answer = _verify(client, cms)
    assert answer["status"] != "TOTAL_PASSED"
    assert any(c["check"] == "signature" and c["result"] == "passed" for c in answer["checks"])
    ((subject, details),) = _audit_of(ca, cms)
    assert subject == f"unverified/{tx.tx_id}"
    assert details["signer_serial"] is None and details["claimed_signer_serial"] == serial


def test_a_verified_signer_is_named_when_the_payment_fails_otherwise(renewed, ca, client) -> None:  # type: ignore[no-untyped-def]
    """The signature and certificate hold, the signing time does not: the signer is named."""
    from pkicore.cms_build import sign_data

    key, _, rec2, chain = renewed
    tx = sample_tx()
    cms = sign_data(key, rec2.der, chain, tx.canonical_bytes(), signing_time=now() - timedelta(minutes=30))
    answer = _verify(client, cms)
    assert answer["sub_indication"] == "SIGNING_TIME_OUT_OF_WINDOW"
    ((subject, details),) = _audit_of(ca, cms)
    assert subject == f"{rec2.serial}/{tx.tx_id}" and details["signer_serial"] == rec2.serial
    assert "claimed_signer_serial" not in details


def test_garbage_names_no_signer(ca, client) -> None:  # type: ignore[no-untyped-def]
    from pkicore.cms_build import sign_data

    key = SoftwareKey()
    cms = sign_data(key, make_root(key, "Not A Client"), [], b"not a payment", signing_time=now())
    answer = _verify(client, cms)
    assert answer["status"] != "TOTAL_PASSED"
    ((subject, details),) = _audit_of(ca, cms)
    assert subject.startswith("unverified/") and details["signer_serial"] is None


# --- migration 0006 ----------------------------------------------------------------------

def _migrate(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    from ca.storage.migrate import alembic

    with engine.begin() as conn:
        alembic(conn, "downgrade" if down else "upgrade", revision)


@pytest.fixture()
def old_db(empty_db: sa.Engine) -> sa.Engine:
    """An empty database on the run's engine (conftest: SQLite, or PostgreSQL with --db)."""
    return empty_db


def _unique_constraints(engine: sa.Engine) -> dict[str, list[str]]:
    return {str(u["name"]): u["column_names"] for u in sa.inspect(engine).get_unique_constraints("evidence")}


def test_migration_0006_fills_the_key_and_keeps_existing_replays(ca, old_db: sa.Engine) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import pem

    from ca.storage.evidence import EvidenceStore, Replayed, spki_sha256
    from ca.storage.store import Store
    from pkicore.cms_build import sign_data
    from pkicore.x509build import build_csr, parse_name

    def cert_of(key: SoftwareKey, cn: str) -> bytes:
        der = ca.issue(build_csr(key, parse_name(f"CN={cn},O=udun tests,C=CN")), "client", requester="pytest",
                     customer=CUSTOMER).der
        assert der is not None
        return der

    chain_der = ca.chain_der()
    k, other, kept = SoftwareKey(), SoftwareKey(), SoftwareKey()
    k1, k2, k3 = (cert_of(k, "Renewing Customer") for _ in range(3))     # three certificates, one key
    o1, m1 = cert_of(other, "Other Customer"), cert_of(kept, "Kept Customer")
    t0 = now() - timedelta(days=30)

    def row(eid: str, cert: bytes | None, tx_id: str, minutes: int, *, chain: bytes | None = None,
            cms: bytes | None = None) -> dict[str, Any]:
        real = cert is not None
        return {
            "id": eid, "received_at": t0 + timedelta(minutes=minutes),
            "signer_cert_sha256": hashlib.sha256(cert).hexdigest() if real else "ab" * 32,   # type: ignore[arg-type]
            "signer_serial": "1234", "tx_id": tx_id, "content": b"{}",
            "cms": cms if cms is not None else (sign_data(k, cert, chain_der, b"{}", signing_time=t0)
                                                if cert in (k1, k2, k3) else b"\x30\x03junk"),
            "stamped_cms": b"x", "time_stamp": b"x", "revocation_kind": "ocsp", "revocation": b"x", "report": "{}",
            "chain": chain if chain is not None else b"".join(pem.armor("CERTIFICATE", d)
                                                                for d in [cert, *chain_der]),  # type: ignore[list-item]
            "ca_revocation": None,
        }

    rows = [
        row("ev_a1", k1, "T1", 0),
        # The attack in the data: T1 again under k2, later; then under k3 (its id sorts first,
        # it was received last: receipt order decides which record is first).
        row("ev_a2", k2, "T1", 5),
        row("ev_a0", k3, "T1", 9),
        row("ev_a3", k2, "T2", 6),
        # Another key, T1 too: its chain is damaged, its CMS holds the certificate.
        row("ev_b1", o1, "T1", 7, chain=b"-----BEGIN CERTIFICATE-----\nnot base64\n",
            cms=sign_data(other, o1, chain_der, b"{}", signing_time=t0)),
        # Chain and CMS damaged; the certificate is in the certificates table.
        row("ev_c1", m1, "T1", 8, chain=b"", cms=b"junk"),
        # Nothing holds the certificate: the fallback value, old uniqueness.
        row("ev_d1", None, "T1", 10, chain=b"junk", cms=b"junk"),
        row("ev_d2", None, "T2", 11, chain=b"junk", cms=b"junk"),
    ]
    _migrate(old_db, "0004")
    meta = sa.MetaData()
    with old_db.begin() as conn:
        evidence = sa.Table("evidence", meta, autoload_with=conn)
        certificates = sa.Table("certificates", meta, autoload_with=conn)
        authorities = sa.Table("authorities", meta, autoload_with=conn)
        conn.execute(sa.insert(authorities), {"id": 1, "name": "issuing", "token_label": "t", "key_id": "00",
                                              "key_type": "ec-p256", "subject": "CN=x", "cert_der": chain_der[0],
                                              "not_after": t0 + timedelta(days=900), "created_at": t0})
        conn.execute(sa.insert(certificates), {
            "serial": "abc1", "authority_id": 1, "state": "issued", "profile": "client", "subject": "CN=Kept",
            "requester": "pytest", "tbs_sha256": "00" * 32, "not_before": t0, "not_after": t0 + timedelta(days=9),
            "created_at": t0, "issued_at": t0, "der": m1, "cert_sha256": hashlib.sha256(m1).hexdigest()})
        conn.execute(sa.insert(evidence), rows)
    assert "uq_evidence_signer_tx" in _unique_constraints(old_db)

    _migrate(old_db, "0006")
    kk, ok, mk = spki_sha256(k1), spki_sha256(o1), spki_sha256(m1)
    with old_db.connect() as conn:
        keys: dict[str, str] = dict(conn.execute(sa.text("SELECT id, signer_spki_sha256 FROM evidence")).all())
    assert keys == {"ev_a1": kk, "ev_a2": f"{kk}#ev_a2", "ev_a0": f"{kk}#ev_a0", "ev_a3": kk,
                    "ev_b1": ok, "ev_c1": mk, "ev_d1": "cert:" + "ab" * 32, "ev_d2": "cert:" + "ab" * 32}
    uniques = _unique_constraints(old_db)
    assert uniques.get("uq_evidence_spki_tx") == ["signer_spki_sha256", "tx_id"]
    assert "uq_evidence_signer_tx" not in uniques

    # The running code, at the head (replay records per bank since 0010): among the records
    # from before banks, T1 of key k is ev_a1, whichever certificate.
    _migrate(old_db, "head")
    store = EvidenceStore(Store(old_db))
    assert store.first_record(None, kk, "T1") == "ev_a1" and store.first_record(None, kk, "T2") == "ev_a3"
    assert store.has_unowned_records()
    with old_db.begin() as conn:
        conn.execute(sa.text("INSERT INTO banks (id, name, display_name, created_at) VALUES (1, 'b', 'B', :t)"),
                     {"t": now()})
    # A bank's records: one tx_id per key, whichever of its certificates signed it.
    new = {**row("ev_e1", k2, "T3", 20), "signer_spki_sha256": kk, "ca_revocation": [("crl", b"\x30\x00")],
           "bank_id": 1}
    store.record(new, None, {"evidence_id": "ev_e1"}, now(), "pytest")
    with pytest.raises(Replayed) as replayed:
        store.record({**row("ev_e2", k3, "T3", 21), "signer_spki_sha256": kk, "ca_revocation": [], "bank_id": 1},
                     None, {"evidence_id": "ev_e2"}, now(), "pytest")
    assert replayed.value.first_id == "ev_e1"
    assert store.first_record(1, kk, "T3") == "ev_e1"
    with old_db.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.text("UPDATE evidence SET signer_spki_sha256 = :k, tx_id = 'T3', bank_id = 1 "
                             "WHERE id = 'ev_a2'"), {"k": kk})

    # Down again: the old constraint is back (and holds); up again: the same values.
    _migrate(old_db, "0005", down=True)
    uniques = _unique_constraints(old_db)
    assert uniques.get("uq_evidence_signer_tx") == ["signer_cert_sha256", "tx_id"]
    assert "signer_spki_sha256" not in {c["name"] for c in sa.inspect(old_db).get_columns("evidence")}
    _migrate(old_db, "0006")
    with old_db.connect() as conn:
        again: dict[str, str] = dict(conn.execute(sa.text("SELECT id, signer_spki_sha256 FROM evidence")).all())
    assert again == {**keys, "ev_e1": kk}


def test_migration_0006_on_an_empty_table(old_db: sa.Engine) -> None:
    _migrate(old_db, "0006")
    assert _unique_constraints(old_db).get("uq_evidence_spki_tx") == ["signer_spki_sha256", "tx_id"]
    column = next(c for c in sa.inspect(old_db).get_columns("evidence") if c["name"] == "signer_spki_sha256")
    assert column["nullable"] is False
