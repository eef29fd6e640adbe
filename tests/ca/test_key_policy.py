"""Key and subject policy at issuance (issue 10): a key revoked for keyCompromise is blocked
for ever and takes every certificate on it down; a key is certified for one subject only;
nobody is certified in one of the CA's own names; a profile names the subject attributes
it takes. And migration 0005, which gives existing certificates their key hash."""
from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import x509
from sqlalchemy import text

from helpers import SoftwareKey
from pkicore.errors import ErrorKind, PkiError

BLOCKED = "revoked for key compromise and can never be certified again"
OTHER_SUBJECT = "certified for another subject"
CA_NAME = "cannot be issued in a CA's name"


def _csr(key: SoftwareKey, subject: str | x509.Name) -> bytes:
    import certkit
    from pkicore.x509build import build_csr, parse_name

    # A Name object is a subject udun would not encode itself: the test kit's CSR builder.
    return build_csr(key, parse_name(subject)) if isinstance(subject, str) else certkit.build_csr(key, subject)


@pytest.fixture(scope="module")
def rev(ca):  # type: ignore[no-untyped-def]
    from ca.revocation import Revocation

    return Revocation(ca)


def _spki(key: SoftwareKey) -> str:
    return hashlib.sha256(key.public_key_der).hexdigest()


def _column(ca, serial: str, column: str):  # type: ignore[no-untyped-def]
    with ca.store.engine.connect() as conn:
        return conn.execute(text(f"SELECT {column} FROM certificates WHERE serial = :s"), {"s": serial}).scalar()


def _refused(ca, key: SoftwareKey, subject: str | x509.Name, message: str,  # type: ignore[no-untyped-def]
             kind: ErrorKind = ErrorKind.POLICY) -> PkiError:
    """The request is refused and leaves the store as it was: no row, no audit entry."""
    before = (ca.store.count(), ca.store.counter("audit_seq"), ca.store.counter("status_version"))
    with pytest.raises(PkiError) as err:
        ca.issue(_csr(key, subject), requester="key-policy-test")
    assert err.value.kind is kind, err.value
    assert message in err.value.message, err.value.message
    assert key.public_key_der.hex() not in err.value.message and _spki(key) not in err.value.message
    assert (ca.store.count(), ca.store.counter("audit_seq"), ca.store.counter("status_version")) == before
    return err.value


# --- keys ---------------------------------------------------------------------------

def test_issuance_records_the_key_hash(ca) -> None:  # type: ignore[no-untyped-def]
    key = SoftwareKey()
    rec = ca.issue(_csr(key, "CN=Key Hash,O=key policy tests"))
    spki = x509.Certificate.load(rec.der)["tbs_certificate"]["subject_public_key_info"].dump()
    assert _column(ca, rec.serial, "spki_sha256") == _spki(key) == hashlib.sha256(spki).hexdigest()


def test_key_compromise_blocks_the_key_for_ever(ca, rev) -> None:  # type: ignore[no-untyped-def]
    key = SoftwareKey()
    rec = ca.issue(_csr(key, "CN=Compromised Alice,O=key policy tests"))
    assert ca.store.blocked_key(key.public_key_der) is None
    rev.revoke(rec.serial, "keyCompromise", actor="officer")
    reason, blocked_at, serial = ca.store.blocked_key(key.public_key_der)
    assert (reason, serial) == ("keyCompromise", rec.serial)
    assert abs(blocked_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    # Not for the same subject (no renewal onto a compromised key), nor for anyone else.
    _refused(ca, key, "CN=Compromised Alice,O=key policy tests", BLOCKED)
    _refused(ca, key, "CN=Someone Else,O=key policy tests", BLOCKED)
    # Another key for the same person is fine.
    assert ca.issue(_csr(SoftwareKey(), "CN=Compromised Alice,O=key policy tests")).state == "issued"


def test_other_revocation_reasons_do_not_block_the_key(ca, rev) -> None:  # type: ignore[no-untyped-def]
    key = SoftwareKey()
    subject = "CN=Superseded Bob,O=key policy tests"
    first = ca.issue(_csr(key, subject))
    rev.hold(first.serial)
    rev.revoke(first.serial, "superseded")
    assert ca.store.blocked_key(key.public_key_der) is None
    assert ca.issue(_csr(key, subject)).state == "issued"


def test_key_compromise_revokes_every_certificate_on_the_key(ca, rev) -> None:  # type: ignore[no-untyped-def]
    key, other = SoftwareKey(), SoftwareKey()
    subject = "CN=Two Certificates,O=key policy tests"
    first, second, held, superseded = (ca.issue(_csr(key, subject)) for _ in range(4))
    bystander = ca.issue(_csr(other, subject))                     # same person, another key
    rev.hold(held.serial, actor="teller")
    rev.revoke(superseded.serial, "superseded")
    version = ca.store.counter("status_version")
    compromised = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)

    done = rev.revoke(first.serial, "keyCompromise", compromised, actor="officer")

    assert ca.store.counter("status_version") > version            # OCSP caches drop their answers
    for serial in (second.serial, held.serial):
        r = ca.get(serial)
        assert (r.status, r.revocation_reason, r.revoked_at, r.invalidity_date) == \
            ("revoked", "keyCompromise", done.revoked_at, compromised)
    assert ca.store.history(second.serial)[-1].action == "revoke"
    assert [(e.action, e.reason, e.actor) for e in ca.store.history(second.serial)] == \
        [("revoke", "keyCompromise", "officer")]
    assert [(e.action, e.reason) for e in ca.store.history(held.serial)] == \
        [("hold", "certificateHold"), ("revoke", "keyCompromise")]
    # Revoked already for another reason: left as it was; another key: untouched.
    assert (ca.get(superseded.serial).revocation_reason, ca.get(bystander.serial).status) == ("superseded", "good")
    with ca.store.engine.connect() as conn:
        audit = {row[0]: json.loads(row[1]) for row in conn.execute(text(
            "SELECT subject, details FROM audit_log WHERE action = 'revoke' AND subject IN (:a, :b, :c)"),
            {"a": first.serial, "b": second.serial, "c": held.serial})}
    assert audit[first.serial]["blocked_key_spki_sha256"] == _spki(key)
    assert sorted(audit[first.serial]["same_key_revoked"]) == sorted([second.serial, held.serial])
    assert audit[second.serial]["same_key_as"] == first.serial and audit[second.serial]["from"] == "good"
    assert audit[held.serial]["from"] == "on_hold" and audit[held.serial]["reason"] == "keyCompromise"
    # Published at once: the CRL lists all three with reason keyCompromise.
    from asn1crypto import crl as asn1crl

    entries = {e["user_certificate"].native: e for e in
               asn1crl.CertificateList.load(ca.store.latest_crl(ca.authority("issuing").id).der)
               ["tbs_cert_list"]["revoked_certificates"]}
    for serial in (first.serial, second.serial, held.serial):
        exts = {e["extn_id"].native: e["extn_value"].native for e in entries[int(serial, 16)]["crl_entry_extensions"]}
        assert exts["crl_reason"] == "key_compromise" and exts["invalidity_date"] == compromised


def test_a_certificate_being_issued_is_revoked_with_its_key(ca, rev) -> None:  # type: ignore[no-untyped-def]
    """An intent recorded before the keyCompromise revocation is signed after it: born revoked."""
    from ca.authority import CertificateAuthority

    key = SoftwareKey()
    subject = "CN=In Flight,O=key policy tests"
    first = ca.issue(_csr(key, subject))
    calls: list[None] = []

    class Interleaved(CertificateAuthority):
        def issuer(self):  # type: ignore[no-untyped-def]
            calls.append(None)
            if len(calls) == 2:                           # prepare(), then the signature
                rev.revoke(first.serial, "keyCompromise")  # after the intent, before signing
            return super().issuer()

    late = Interleaved(ca.settings, ca.store).issue(_csr(key, subject))
    assert len(calls) == 2
    stored = ca.get(late.serial)
    assert (stored.state, stored.status, stored.revocation_reason) == ("issued", "revoked", "keyCompromise")


# --- one subject per key ------------------------------------------------------------

def test_same_key_for_another_subject_is_refused(ca) -> None:  # type: ignore[no-untyped-def]
    key = SoftwareKey()
    ca.issue(_csr(key, "CN=Key Owner,O=key policy tests"))
    err = _refused(ca, key, "CN=Key Thief,O=key policy tests", OTHER_SUBJECT)
    assert "Key Owner" not in err.message                       # another customer's name stays private
    _refused(ca, key, "CN=Key Owner,O=another bank", OTHER_SUBJECT)
    _refused(ca, key, "CN=key owner,O=key policy tests", OTHER_SUBJECT)


def test_the_other_subject_check_reads_the_key_subject_index(ca) -> None:  # type: ignore[no-untyped-def]
    """Migration 0008: both halves of the check are index range reads, so issuance does not
    slow down as one key's renewals pile up (the store's own statement, explained by SQLite)."""
    from ca.storage.store import SAME_KEY_OTHER_SUBJECT

    raw = ca.store.raw.compiled(SAME_KEY_OTHER_SUBJECT)        # the SQL text the driver runs
    params = {**raw.defaults, "spki": "0" * 64, "subject": "CN=x"}
    with ca.store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = conn.execute(text("EXPLAIN QUERY PLAN " + raw.sql), params).all()
            searches = [row[-1] for row in plan if "certificates" in row[-1]]
            assert len(searches) == 2, plan
            assert all("USING INDEX ix_certificates_spki_subject (spki_sha256=? AND subject" in s
                       for s in searches), plan
            return
        # PostgreSQL's planner may scan a table this small whole whatever the indexes; with
        # sequential scans priced out, both halves must find the index.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        lines = [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + raw.sql, params).all()]
    plan_text = "\n".join(lines)
    assert "Seq Scan on certificates" not in plan_text, plan_text
    conds = [ln for ln in lines if "Index Cond:" in ln]
    assert sum("ix_certificates_spki_subject" in ln for ln in lines) == 2, plan_text
    assert len(conds) == 2 and all("spki_sha256" in c and "subject" in c for c in conds), plan_text


def test_same_key_same_subject_is_a_renewal(ca) -> None:  # type: ignore[no-untyped-def]
    key = SoftwareKey()
    subject = "CN=Renewing Carol,O=key policy tests,C=CN"
    a, b = ca.issue(_csr(key, subject)), ca.issue(_csr(key, subject))
    assert a.serial != b.serial and a.state == b.state == "issued"
    assert _column(ca, a.serial, "spki_sha256") == _column(ca, b.serial, "spki_sha256") == _spki(key)


def test_a_failed_issuance_does_not_hold_the_key(ca, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = SoftwareKey()

    def broken(prepared):  # type: ignore[no-untyped-def]
        raise PkiError(ErrorKind.TOKEN, "token removed")

    with monkeypatch.context() as m:
        m.setattr(ca.issuer(), "sign", broken)
        with pytest.raises(PkiError):
            ca.issue(_csr(key, "CN=Never Signed,O=key policy tests"))
    assert ca.issue(_csr(key, "CN=Signed Later,O=key policy tests")).state == "issued"


def test_concurrent_requests_for_one_key_cannot_both_pass(ca) -> None:  # type: ignore[no-untyped-def]
    """Two intents for one key and different subjects at the same moment: one wins, in every round."""
    from ca.authority import new_serial
    from pkicore import names

    issuing = ca.authority("issuing")
    for round_ in range(8):
        key = SoftwareKey()
        barrier = threading.Barrier(2)
        results: list[object] = [None, None]
        serials = [format(new_serial(), "x") for _ in range(2)]

        def intent(i: int) -> None:
            subject = names.parse(f"CN=Racer {round_}-{i},O=key policy tests")
            now = datetime.now(timezone.utc)
            barrier.wait()
            try:
                results[i] = ca.store.record_intent(
                    serial=serials[i], authority_id=issuing.id, profile="client", subject=names.rfc4514(subject),
                    requester="race", tbs_sha256="0" * 64, not_before=now, not_after=now + timedelta(days=1),
                    now=now, public_key_der=key.public_key_der, subject_der=subject.dump())
            except PkiError as e:
                results[i] = e

        threads = [threading.Thread(target=intent, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1, results
        err = next(r for r in results if r is not True)
        assert isinstance(err, PkiError), results
        assert err.kind is ErrorKind.POLICY and OTHER_SUBJECT in err.message
        for serial in serials:
            ca.store.record_failed(serial)                       # tidy: these were never signed


# --- subjects: the CA's own names -----------------------------------------------------

@pytest.mark.parametrize("subject", [
    "CN=udun Issuing CA",
    "CN=udun Issuing CA,O=udun",
    "O=udun,CN=udun Issuing CA",
    "CN=UDUN  issuing ca",
    "CN=udun Issuing CA,O=Some Bank,C=CN",
    "CN=\uff55\uff44\uff55\uff4e Issuing CA",                   # fullwidth letters: NFKC
    "CN=udun Root CA",
    "CN=udun root ca,O=Some Bank",
    "CN=udun Root CA,O=udun",
], ids=["issuing-cn", "issuing-dn", "issuing-dn-reordered", "case-and-spaces", "issuing-cn-other-o",
        "fullwidth", "root-cn", "root-cn-case", "root-dn"])
def test_subjects_named_like_the_ca_are_refused(ca, subject: str) -> None:  # type: ignore[no-untyped-def]
    _refused(ca, SoftwareKey(), subject, CA_NAME)


def test_the_whole_dn_of_the_ca_is_named_as_such(ca) -> None:  # type: ignore[no-untyped-def]
    err = _refused(ca, SoftwareKey(), "CN=udun Issuing CA,O=udun", CA_NAME)
    assert "is the name of this CA's issuing certificate" in err.message
    err = _refused(ca, SoftwareKey(), "CN=udun Root CA,O=Other", CA_NAME)
    assert "CN is the CN of this CA's root certificate" in err.message


@pytest.mark.parametrize("subject", ["CN=udun Issuing CA Support Desk", "CN=Issuing CA,O=udun", "CN=udun,O=udun"])
def test_names_that_only_resemble_the_ca_are_allowed(ca, subject: str) -> None:  # type: ignore[no-untyped-def]
    assert ca.issue(_csr(SoftwareKey(), subject)).state == "issued"


def test_delegated_names_are_refused_but_their_renewal_works(ca) -> None:  # type: ignore[no-untyped-def]
    """The OCSP responder and TSA certificates are the CA's too; their own renewal (under
    their own delegated profile) asks for the same name again, and that is allowed."""
    from ca import renewal

    def cn(name: str) -> str:
        return str(x509.Certificate.load(ca.store.authority(name).cert_der).subject.native["common_name"])

    _refused(ca, SoftwareKey(), f"CN={cn('ocsp')},O=key policy tests", CA_NAME)
    _refused(ca, SoftwareKey(), f"CN={cn('tsa').upper()}", CA_NAME)
    before = x509.Certificate.load(ca.store.authority("ocsp").cert_der)
    renewal.renew(ca, "ocsp")
    after = x509.Certificate.load(ca.store.authority("ocsp").cert_der)
    assert after.subject == before.subject and after.serial_number != before.serial_number


# --- subjects: the attributes a profile takes -----------------------------------------

def test_every_listed_attribute_is_taken(ca) -> None:  # type: ignore[no-untyped-def]
    from pkicore import names

    subject = names.build([("country_name", "CN"), ("state_or_province_name", "Beijing"),
                           ("locality_name", "Haidian"), ("organization_name", "key policy tests"),
                           ("organizational_unit_name", "Retail"), ("serial_number", "ID-0042"),
                           ("email_address", "dave@example.com"), ("common_name", "Dave Listed")])
    cert = x509.Certificate.load(ca.issue(_csr(SoftwareKey(), subject)).der)
    assert len(cert.subject.chosen) == 8


@pytest.mark.parametrize("attrs, label", [
    ({"common_name": "Erin", "title": "Dr"}, "title"),
    ({"common_name": "Erin", "given_name": "Erin"}, "given_name"),
    ({"common_name": "Erin", "domain_component": "example"}, "DC"),
], ids=["title", "given-name", "dc"])
def test_unlisted_subject_attributes_are_refused(ca, attrs: dict, label: str) -> None:  # type: ignore[no-untyped-def]
    _refused(ca, SoftwareKey(), x509.Name.build(attrs), f"subject attribute {label}")


def test_unlisted_attribute_by_oid_is_named(ca) -> None:  # type: ignore[no-untyped-def]
    odd = x509.Name(name="", value=x509.RDNSequence([
        x509.RelativeDistinguishedName([{"type": "common_name", "value": x509.DirectoryString(
            name="utf8_string", value="Frank")}]),
        x509.RelativeDistinguishedName([{"type": "1.2.3.4.5", "value": x509.DirectoryString(
            name="utf8_string", value="x")}]),
    ]))
    err = _refused(ca, SoftwareKey(), odd, "subject attribute 1.2.3.4.5 is not allowed in the client profile")
    assert err.kind is ErrorKind.POLICY


def test_profiles_take_their_own_attribute_lists() -> None:
    from ca.policy import check_csr

    csr = _csr(SoftwareKey(), "CN=Gina,L=Shanghai,O=key policy tests")
    assert check_csr(csr).subject_text == check_csr(csr, "client").subject_text
    with pytest.raises(PkiError) as err:
        check_csr(csr, "tsa")
    assert err.value.kind is ErrorKind.POLICY and "subject attribute L is not allowed in the tsa profile" in err.value.message
    with pytest.raises(PkiError) as err:
        check_csr(csr, "nonsense")
    assert err.value.kind is ErrorKind.BAD_INPUT and "unknown profile" in err.value.message


# --- migration 0005 -----------------------------------------------------------------

def _alembic(conn, verb: str, revision: str) -> None:  # type: ignore[no-untyped-def]
    from ca.storage.migrate import alembic

    alembic(conn, verb, revision)


def test_migration_0005_fills_key_hashes_and_blocks_compromised_keys(ca, empty_db) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import MetaData, Table, inspect, insert

    keys = [SoftwareKey(), SoftwareKey(), SoftwareKey()]
    certs = [ca.issue(_csr(k, f"CN=Migrated {i},O=key policy tests")) for i, k in enumerate(keys)]
    issuing = ca.store.authority("issuing")
    engine = empty_db
    with engine.begin() as conn:
        _alembic(conn, "upgrade", "0004")
    now = datetime.now(timezone.utc)
    # Rows as revision 0004 had them: its tables as the database has them (reflected), not
    # the head schema's (ca.storage.schema has the columns of later revisions).
    meta = MetaData()
    with engine.begin() as conn:
        authorities, certificates, status_events = (Table(name, meta, autoload_with=conn)
                                                    for name in ("authorities", "certificates", "status_events"))
        conn.execute(insert(authorities), {"id": 1, "name": "issuing", "token_label": "t", "key_id": "00",
                                           "key_type": "ec-p256", "subject": issuing.subject,
                                           "cert_der": issuing.cert_der, "not_after": now, "created_at": now})
        old = {"authority_id": 1, "profile": "client", "requester": "old", "issued_at": None, "der": None,
               "status": "good", "revoked_at": None, "revocation_reason": None}
        conn.execute(insert(certificates), [
            *({**old, "serial": rec.serial, "state": "issued", "subject": rec.subject, "tbs_sha256": rec.tbs_sha256,
               "not_before": rec.not_before, "not_after": rec.not_after, "created_at": now, "issued_at": now,
               "der": rec.der, "status": "revoked" if i == 1 else "good",
               "revoked_at": now - timedelta(hours=1) if i == 1 else None,
               "revocation_reason": "keyCompromise" if i == 1 else None} for i, rec in enumerate(certs)),
            {**old, "serial": "abc123", "state": "pending", "subject": "CN=P", "tbs_sha256": "0" * 64,
             "not_before": now, "not_after": now, "created_at": now},
            {**old, "serial": "def456", "state": "issued", "subject": "CN=Q", "tbs_sha256": "0" * 64,
             "not_before": now, "not_after": now, "created_at": now, "der": b"not a certificate"},
        ])
        conn.execute(insert(status_events), {"serial": certs[1].serial, "action": "revoke", "reason": "keyCompromise",
                                             "invalidity_date": None, "actor": "old", "at": now})

    with engine.begin() as conn:
        _alembic(conn, "upgrade", "0005")
    with engine.connect() as conn:
        hashes = dict(conn.execute(text("SELECT serial, spki_sha256 FROM certificates")).all())
        blocked = conn.execute(text("SELECT spki_sha256, reason, serial FROM blocked_keys")).all()
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("certificates")}
    assert [hashes[c.serial] for c in certs] == [_spki(k) for k in keys]
    assert hashes["abc123"] is None and hashes["def456"] is None
    assert blocked == [(_spki(keys[1]), "keyCompromise", certs[1].serial)]
    assert "ix_certificates_spki_sha256" in indexes

    # The store on the migrated database: the blocked key is refused, a renewal passes.
    from ca.storage.store import Store

    store = Store(engine)
    assert store.blocked_key(keys[1].public_key_der)[2] == certs[1].serial

    def intent(serial: str, key: SoftwareKey, subject: str) -> bool:
        from pkicore import names

        name = names.parse(subject)
        return store.record_intent(serial=serial, authority_id=1, profile="client", subject=names.rfc4514(name),
                                   requester="t", tbs_sha256="0" * 64, not_before=now, not_after=now, now=now,
                                   public_key_der=key.public_key_der, subject_der=name.dump())

    assert intent("aa01", keys[0], certs[0].subject)
    with pytest.raises(PkiError) as err:
        intent("aa02", keys[1], certs[1].subject)
    assert BLOCKED in err.value.message
    with pytest.raises(PkiError) as err:
        intent("aa03", keys[2], "CN=Someone Else")
    assert OTHER_SUBJECT in err.value.message
    store.raw.close()

    with engine.begin() as conn:
        _alembic(conn, "downgrade", "0004")
    with engine.connect() as conn:
        insp = inspect(conn)
        assert "blocked_keys" not in insp.get_table_names()
        assert "spki_sha256" not in {c["name"] for c in insp.get_columns("certificates")}
        assert conn.execute(text("SELECT count(*) FROM certificates")).scalar() == len(certs) + 3
        assert conn.execute(text("SELECT count(*) FROM status_events")).scalar() == 1
    with engine.begin() as conn:                                   # and up again
        _alembic(conn, "upgrade", "0005")
    engine.dispose()
