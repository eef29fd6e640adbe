"""Fixture data for tests/ca/test_migrations.py: what a database at each earlier Alembic
revision holds, and what the head revision must hold after upgrading it.

Rows are written in the head's shape (every column of ca.storage.schema) and inserted with
only the columns the table has at the seeded revision (reflected): ``seed`` says which
rows the application would have written at that revision, ``expected`` what the upgrade
must leave (columns backfilled by the data migrations 0005, 0006 and 0007 included).

ADDING A REVISION: once it is no longer the head, the revision before it needs an entry
in SEEDED (the test fails naming it), and the rows here must cover every table and column
it adds; the test fails when a table at a seeded revision gets no row, or a column no value.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import pem
from cryptography import x509 as cx509

from helpers import SoftwareKey, issue_with, make_root

# Revision -> what a database made at it holds here (the test requires one for every
# revision but the head).
SEEDED: dict[str, str] = {
    "0001": "authorities (root, issuing, ocsp, tsa); certificates issued, pending, failed, damaged",
    "0002": "+ statuses (on hold, revoked for keyCompromise and superseded), status events, counters, CRLs",
    "0003": "+ evidence (one tx_id replayed under a second certificate of one key), challenges, "
            "a hash-chained audit log with a checkpoint",
    "0004": "+ the CA certificates' revocation data in evidence (one record still without)",
    "0005": "+ key hashes written at issuance (pending rows too), a blocked key",
    "0006": "+ evidence keyed by the signer's key (no replay across certificates any more)",
    "0007": "+ delegated keys, one of them destroyed",
    "0008": "the same rows (0008 changes an index only)",
    "0009": "the same rows (0009 changes PostgreSQL's column compression only)",
    "0010": "+ a bank with an API key and a TLS client certificate; evidence and challenges of that bank",
    "0011": "+ an admin operator with an API token, a token certificate, a session and a login challenge",
    "0012": "+ a changed approval policy, an executed request with its vote",
    "0013": "+ an enrollment used for s01 (with a payer account), one still open (without), one cancelled (with)",
    "0014": "+ the customer of that enrollment, its account and certificate",
    "0015": "+ that customer's own CNY limit, a day's usage",
}

T0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
ISSUING = 2
AUDIT = ["issue", "hold", "revoke", "crl", "verify"]


def since(revision: str, first: str, known: list[str]) -> bool:
    """Whether ``revision`` is ``first`` or later."""
    return known.index(revision) >= known.index(first)


def spki(public_key_der: bytes) -> str:
    """ca.storage.store.spki_sha256 / ca.storage.evidence.spki_sha256 for our EC keys (whose
    SPKI DER is canonical already): what migrations 0005 and 0006 must compute."""
    return hashlib.sha256(public_key_der).hexdigest()


@dataclass
class World:
    """The keys and certificates behind the rows: made once, real DER throughout."""

    keys: dict[str, SoftwareKey]
    authority_der: dict[str, bytes]
    certs: dict[str, bytes]          # serial -> DER (issued rows)
    crl_der: dict[tuple[int, int], bytes]
    old_ocsp_der: bytes
    signed: dict[tuple[str, str], bytes] = field(default_factory=dict)   # (serial, tx_id) -> CMS, made once

    def cms(self, serial: str, content: bytes) -> bytes:
        """The payment signed by ``serial``'s key (ECDSA signatures differ each time: kept)."""
        from pkicore.cms_build import sign_data

        if (serial, content.decode()) not in self.signed:
            self.signed[(serial, content.decode())] = sign_data(
                self.keys[_KEY_OF[serial]], self.certs[serial], [self.authority_der["issuing"]], content,
                signing_time=T0)
        return self.signed[(serial, content.decode())]


def make_world() -> World:
    from pkicore.algorithms import SigScheme
    from pkicore.crlbuild import build_crl, entry

    keys = {name: SoftwareKey() for name in ("root", "issuing", "ocsp", "tsa", "old-ocsp", "alice", "bob", "carol")}
    authority_der = {name: make_root(keys[name], cn=f"Migration {name}") for name in ("root", "issuing", "ocsp", "tsa")}
    issuing = authority_der["issuing"]
    certs: dict[str, bytes] = {}
    for serial, key, cn in (("s01", "alice", "Alice"), ("s02", "bob", "Bob"), ("s03", "carol", "Carol"),
                            ("s04", "carol", "Carol"), ("s05", "alice", "Alice")):
        certs[serial] = issue_with(keys["issuing"], issuing, keys[key].public_key_der, cn=cn,
                                   not_before=T0 - timedelta(days=10))
    crl_der = {}
    for (authority, number), signer in (((1, 1), "root"), ((ISSUING, 1), "issuing"), ((ISSUING, 2), "issuing")):
        issuer = cx509.load_der_x509_certificate(authority_der[signer]).subject
        revoked = [entry(0x3, T0 + timedelta(days=1), "keyCompromise", None)] if number == 2 else []
        crl_der[(authority, number)] = build_crl(
            keys[signer], SigScheme.ECDSA_SHA256, issuer=issuer, issuer_ski=b"\x01" * 20, number=number,
            this_update=T0 + timedelta(hours=number), next_update=T0 + timedelta(days=number), entries=revoked)
    return World(keys, authority_der, certs, crl_der, make_root(keys["old-ocsp"], cn="Migration old ocsp"))


# --- rows in the head's shape -----------------------------------------------------------

def _authorities(w: World) -> list[dict[str, Any]]:
    return [{"id": i, "name": name, "token_label": f"udun-{name}", "key_id": f"{i:02x}" * 8, "key_type": "ec-p256",
             "subject": f"CN=Migration {name}", "cert_der": w.authority_der[name],
             "not_after": T0 + timedelta(days=3650), "created_at": T0 - timedelta(days=30)}
            for i, name in enumerate(("root", "issuing", "ocsp", "tsa"), start=1)]


_KEY_OF = {"s01": "alice", "s02": "bob", "s03": "carol", "s04": "carol", "s05": "alice", "s06": "bob"}
_STATUS = {  # serial -> (status, revoked_at, reason, invalidity_date), from 0002 on
    "s02": ("on_hold", T0 + timedelta(hours=5), "certificateHold", None),
    "s03": ("revoked", T0 + timedelta(days=1), "keyCompromise", T0 + timedelta(hours=20)),
    "s05": ("revoked", T0 + timedelta(days=2), "superseded", None),
}


def _certificates(w: World, seeded_at: str, known: list[str]) -> list[dict[str, Any]]:
    rows = []
    for serial in ("s01", "s02", "s03", "s04", "s05", "s06", "s07", "s08"):
        der = w.certs.get(serial, b"not a certificate" if serial == "s08" else None)
        state = {"s06": "pending", "s07": "failed"}.get(serial, "issued")
        status, revoked_at, reason, invalidity = _STATUS.get(serial, ("good", None, None, None))
        if not since(seeded_at, "0002", known):
            status, revoked_at, reason, invalidity = "good", None, None, None   # no status before 0002
        key = _KEY_OF.get(serial)
        key_hash: str | None = None                          # 0005 cannot read these (no DER, damaged)
        if serial in w.certs:
            key_hash = spki(w.keys[_KEY_OF[serial]].public_key_der)            # 0005 backfills it
        elif key is not None and since(seeded_at, "0005", known):
            key_hash = spki(w.keys[key].public_key_der)      # issuance writes it for pending rows from 0005
        rows.append({"serial": serial, "authority_id": ISSUING, "state": state, "profile": "client",
                     "subject": f"CN={key or 'Nobody'},O=udun tests",
                     "requester": "renewal:s01" if serial == "s05" else "pytest",    # alice's key again
                     "tbs_sha256": hashlib.sha256(serial.encode()).hexdigest(),
                     "not_before": T0 - timedelta(days=10), "not_after": T0 + timedelta(days=355),
                     "created_at": T0, "issued_at": T0 if der else None, "der": der,
                     "cert_sha256": hashlib.sha256(der).hexdigest() if der else None,
                     "status": status, "revoked_at": revoked_at, "revocation_reason": reason,
                     "invalidity_date": invalidity, "spki_sha256": key_hash})
    return rows


def _status_events() -> list[dict[str, Any]]:
    return [{"id": i, "serial": serial, "action": {"on_hold": "hold", "revoked": "revoke"}[status],
             "reason": reason, "invalidity_date": invalidity, "actor": "operator", "at": at}
            for i, (serial, (status, at, reason, invalidity)) in enumerate(sorted(_STATUS.items()), start=1)]


def _crls(w: World) -> list[dict[str, Any]]:
    return [{"id": i, "authority_id": authority, "number": number, "this_update": T0 + timedelta(hours=number),
             "next_update": T0 + timedelta(days=number), "entries": 1 if number == 2 else 0, "der": der}
            for i, ((authority, number), der) in enumerate(sorted(w.crl_der.items()), start=1)]


def _counters() -> list[dict[str, Any]]:
    # audit_seq is made by 0003 (at 0); a database at 0003 or later has it at the log's length.
    return [{"name": "crl_number:1", "value": 1}, {"name": f"crl_number:{ISSUING}", "value": 2},
            {"name": "status_version", "value": 3}, {"name": "audit_seq", "value": len(AUDIT)}]


def _chain_pem(w: World, serial: str) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", d) for d in (w.certs[serial], w.authority_der["issuing"],
                                                          w.authority_der["root"]))


def _evidence(w: World, rev: str, known: list[str]) -> list[dict[str, Any]]:
    records = [("ev_1", "s01", "T1", 0), ("ev_2", "s05", "T2", 1), ("ev_3", "s02", "T1", 2)]
    if not since(rev, "0006", known):
        # The replay 0006 closes, in the data already: T1 of Alice's key again, under her other certificate.
        records.append(("ev_0", "s05", "T1", 3))
    rows = []
    for eid, serial, tx_id, minutes in records:
        key = w.keys[_KEY_OF[serial]]
        content = json.dumps({"tx_id": tx_id, "amount": "1.00"}).encode()
        cms = w.cms(serial, content)
        key_hash = spki(key.public_key_der)
        rows.append({"id": eid, "received_at": T0 + timedelta(minutes=minutes),
                     "signer_cert_sha256": hashlib.sha256(w.certs[serial]).hexdigest(), "signer_serial": serial,
                     "tx_id": tx_id, "content": content, "cms": cms, "stamped_cms": cms + b"-stamped",
                     "time_stamp": b"\x30\x03tst", "chain": _chain_pem(w, serial), "revocation_kind": "ocsp",
                     "revocation": b"\x30\x03rsp",
                     "report": json.dumps({"conclusion": "TOTAL_PASSED", "evidence_id": eid}),
                     "ca_revocation": json.dumps([["crl", "MAA="]]) if eid != "ev_2" else None,
                     "signer_spki_sha256": f"{key_hash}#{eid}" if eid == "ev_0" else key_hash,
                     # 0010: records from before it belong to no bank; from it on, a bank's
                     "bank_id": 1 if since(rev, "0010", known) else None})
    return rows


def _challenges(rev: str, known: list[str]) -> list[dict[str, Any]]:
    bank = 1 if since(rev, "0010", known) else None
    return [{"value": "c" * 43, "created_at": T0, "expires_at": T0 + timedelta(minutes=5),
             "used_at": T0 + timedelta(minutes=1), "evidence_id": "ev_1", "bank_id": bank},
            {"value": "d" * 43, "created_at": T0, "expires_at": T0 + timedelta(minutes=5), "used_at": None,
             "evidence_id": None, "bank_id": bank}]


def _banks(rev: str, known: list[str]) -> list[dict[str, Any]]:
    if not since(rev, "0010", known):
        return []
    return [{"id": 1, "name": "seed-bank", "display_name": "种子银行", "created_at": T0, "disabled_at": None}]


def _bank_certs(rev: str, known: list[str]) -> list[dict[str, Any]]:
    if not since(rev, "0010", known):
        return []
    return [{"cert_sha256": "ab" * 32, "bank_id": 1, "subject": "CN=seed bank client,O=种子银行",
             "scopes": "verify", "not_after": T0 + timedelta(days=365), "created_at": T0, "removed_at": None}]


def _bank_keys(rev: str, known: list[str]) -> list[dict[str, Any]]:
    if not since(rev, "0010", known):
        return []
    return [{"id": "0123456789abcdef", "bank_id": 1, "hash": "scrypt$16384$8$1$c2FsdA$aGFzaA",
             "scopes": "verify challenges", "created_at": T0, "expires_at": T0 + timedelta(days=365),
             "revoked_at": None, "replaced_by": None}]


def _operator_rows(rev: str, known: list[str]) -> dict[str, list[dict[str, Any]]]:
    """0011's tables: an admin with a token and a token certificate, a session, a challenge."""
    if not since(rev, "0011", known):
        return {"operators": [], "operator_tokens": [], "operator_certs": [], "operator_sessions": [],
                "login_challenges": []}
    return {
        "operators": [{"id": 1, "name": "alice", "role": "admin", "created_by": "cli:root", "created_at": T0,
                       "disabled_at": None}],
        "operator_tokens": [{"id": "fedcba9876543210", "operator_id": 1, "hash": "scrypt$16384$8$1$c2FsdA$aGFzaA",
                             "created_by": "cli:root", "created_at": T0, "expires_at": None, "revoked_at": None}],
        "operator_certs": [{"serial": "s01", "operator_id": 1, "created_by": "operator:alice", "created_at": T0,
                            "removed_at": None}],
        "operator_sessions": [{"id": "0011223344556677", "operator_id": 1, "secret_sha256": "cd" * 32,
                               "cert_serial": "s01", "created_at": T0, "expires_at": T0 + timedelta(minutes=15),
                               "ended_at": None, "last_seq": 3}],
        "login_challenges": [{"id": "8899aabbccddeeff", "nonce": "ef" * 32, "address": "10.0.0.7", "created_at": T0,
                              "expires_at": T0 + timedelta(minutes=2), "used_at": None}],
    }


def _approval_rows(rev: str, known: list[str]) -> dict[str, list[dict[str, Any]]]:
    """0012's tables: a changed policy, an executed request with its vote."""
    if not since(rev, "0012", known):
        return {"approval_policies": [], "approvals": [], "approval_votes": []}
    return {
        "approval_policies": [{"action": "bulk-revoke", "approvals": 2, "roles": "admin operator",
                               "expires_hours": 12, "threshold": 5, "profiles": None, "updated_at": T0,
                               "updated_by": "operator:alice"}],
        "approvals": [{"id": "a0a1a2a3a4a5a6a7", "action": "ca-revoke", "params": '{"reason":"keyCompromise"}',
                       "params_sha256": "ef" * 32, "requester": "operator:alice", "required": 1, "roles": "admin",
                       "approved": 1, "state": "executed", "created_at": T0, "expires_at": T0 + timedelta(hours=24),
                       "decided_at": T0 + timedelta(minutes=5), "result": '{"serial":"s01"}'}],
        "approval_votes": [{"approval_id": "a0a1a2a3a4a5a6a7", "operator": "operator:bob", "vote": "approve",
                            "comment": "同意", "at": T0 + timedelta(minutes=5)}],
    }


def _enrollments(rev: str, known: list[str]) -> list[dict[str, Any]]:
    """0013's table: an enrollment used for s01, one still open, one cancelled."""
    if not since(rev, "0013", known):
        return []
    base = {"code_hash": "scrypt$16384$8$1$c2FsdA$aGFzaA", "profile": "client", "created_by": "operator:alice",
            "created_at": T0, "expires_at": T0 + timedelta(days=3), "locked_at": None}
    return [{**base, "id": "ABCD1234", "subject": "CN=Alice,O=udun tests,C=CN", "accounts": '["6222020200112233445"]',
             "attempts": 1, "used_at": T0 + timedelta(hours=1), "serial": "s01", "customer_id": "ENR-ABCD1234",
             "approved_at": T0},
            {**base, "id": "EFGH5678", "subject": "CN=张三,O=udun tests,C=CN", "accounts": "[]", "attempts": 0,
             "used_at": None, "serial": None, "customer_id": None, "approved_at": T0},
            # Cancelled before use: 0014 makes no customer of it (its account stays free).
            {**base, "id": "JKMN9012", "subject": "CN=李四,O=udun tests,C=CN", "accounts": '["6222000000000000001"]',
             "attempts": 0, "locked_at": T0 + timedelta(minutes=3), "used_at": None, "serial": None,
             "customer_id": None, "approved_at": T0}]


def _customer_rows(w: World, rev: str, known: list[str]) -> dict[str, list[dict[str, Any]]]:
    """0014's tables: the customer made for enrollment ABCD1234 (0014 makes the same from
    0013's enrollment), its account, and s01 bound to it."""
    if not since(rev, "0013", known):
        return {"customers": [], "customer_accounts": [], "certificate_customers": []}
    return {
        "customers": [{"id": "ENR-ABCD1234", "name": "CN=Alice,O=udun tests,C=CN", "created_by": "operator:alice",
                       "created_at": T0}],
        "customer_accounts": [{"account": "6222020200112233445", "customer_id": "ENR-ABCD1234",
                               "added_by": "operator:alice", "added_at": T0}],
        "certificate_customers": [{"cert_sha256": hashlib.sha256(w.certs["s01"]).hexdigest(),
                                   "serial": "s01", "customer_id": "ENR-ABCD1234", "bound_by": "enrollment:ABCD1234",
                                   "bound_at": T0 + timedelta(hours=1)},
                                  {"cert_sha256": hashlib.sha256(w.certs["s05"]).hexdigest(),     # its renewal
                                   "serial": "s05", "customer_id": "ENR-ABCD1234", "bound_by": "migration:renewal",
                                   "bound_at": T0}],
    }


def _limit_rows(rev: str, known: list[str]) -> dict[str, list[dict[str, Any]]]:
    """0015's tables: a customer's own CNY limits and a day's usage."""
    if not since(rev, "0015", known):
        return {"limits": [], "limit_usage": []}
    return {"limits": [{"scope": "customer", "subject": "ENR-ABCD1234", "currency": "CNY", "per_payment": 5_000_000,
                        "per_day": None, "set_by": "operator:alice", "set_at": T0}],
            "limit_usage": [{"customer_id": "ENR-ABCD1234", "currency": "CNY", "day": "2025-03-04",
                             "used": 123_450, "payments": 1}]}


def _otp_rows(rev: str, known: list[str]) -> list[dict[str, Any]]:
    """0016's table: a locked 宝令 of that customer."""
    if not since(rev, "0016", known):
        return []
    return [{"id": "OTP00001", "customer_id": "ENR-ABCD1234", "kind": "baoling", "period": 60, "digits": 6,
             "secret": "bm9uY2UxMjM0NTY3Y2lwaGVy", "created_by": "operator:alice", "created_at": T0, "failures": 5,
             "locked_at": T0 + timedelta(hours=2), "last_step": 29_000_000, "revoked_at": None}]


def audit_entries() -> list[Any]:
    from ca.auditlog import next_entry

    entries: list[Any] = []
    for seq, action in enumerate(AUDIT, start=1):
        entries.append(next_entry(seq, entries[-1].hash if entries else None, action, "operator",
                                  f"serial s0{seq}", {"n": seq, "note": "迁移"}, T0 + timedelta(seconds=seq)))
    return entries


def _audit_log() -> list[dict[str, Any]]:
    return [{"seq": e.seq, "at": e.at, "action": e.action, "actor": e.actor, "subject": e.subject,
             "details": e.details, "prev_hash": e.prev_hash, "hash": e.hash} for e in audit_entries()]


def _audit_checkpoints() -> list[dict[str, Any]]:
    third = audit_entries()[2]
    return [{"id": 1, "seq": third.seq, "head_hash": third.hash, "at": T0 + timedelta(minutes=10),
             "cms": b"\x30\x03tok"}]


def _blocked_keys(w: World) -> list[dict[str, Any]]:
    return [{"spki_sha256": spki(w.keys["carol"].public_key_der), "reason": "keyCompromise",
             "blocked_at": _STATUS["s03"][1], "serial": "s03"}]


def _delegated(authority: dict[str, Any]) -> dict[str, Any]:
    """A delegated_keys row for an ``ocsp`` or ``tsa`` authority row (as 0007 seeds it)."""
    return {"cert_sha256": hashlib.sha256(authority["cert_der"]).hexdigest(), "name": authority["name"],
            "token_label": authority["token_label"], "key_id": authority["key_id"],
            "cert_der": authority["cert_der"], "not_after": authority["not_after"],
            "created_at": authority["created_at"], "destroyed_at": None}


def _delegated_keys(w: World, rev: str, known: list[str]) -> list[dict[str, Any]]:
    # The current ocsp and tsa certificates: what 0007 seeds from authorities, and udun records after it.
    rows = [_delegated(a) for a in _authorities(w) if a["name"] in ("ocsp", "tsa")]
    if since(rev, "0007", known):     # an earlier responder key, renewed and destroyed since
        old = {**_authorities(w)[2], "cert_der": w.old_ocsp_der, "key_id": "ee" * 8}
        rows.append({**_delegated(old), "destroyed_at": T0 - timedelta(days=1)})
    return rows


def seed(w: World, rev: str, known: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Rows (head-shaped) the application would have written to a database at ``rev``; the
    caller inserts those of tables that exist at ``rev``, with the columns they had then."""
    rows = _rows(w, rev, known)
    rows["counters"] = [r for r in rows["counters"] if r["name"] != "audit_seq"]   # 0003 makes it; set apart
    return rows


def seeded_audit_seq(rev: str, known: list[str]) -> int | None:
    """What the seed sets the audit_seq counter (made by 0003) to; None before 0003."""
    return len(AUDIT) if since(rev, "0003", known) else None


def _rows(w: World, rev: str, known: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {
        "authorities": _authorities(w),
        "certificates": _certificates(w, rev, known),
        "status_events": _status_events(),
        "counters": _counters(),
        "crls": _crls(w),
        "evidence": _evidence(w, rev, known),
        "challenges": _challenges(rev, known),
        "audit_log": _audit_log(),
        "audit_checkpoints": _audit_checkpoints(),
        "blocked_keys": _blocked_keys(w),
        "delegated_keys": _delegated_keys(w, rev, known),
        "banks": _banks(rev, known),            # 0010 makes them
        "bank_keys": _bank_keys(rev, known),
        "bank_certs": _bank_certs(rev, known),
        **_operator_rows(rev, known),           # 0011 makes them
        **_approval_rows(rev, known),           # 0012
        "enrollments": _enrollments(rev, known),    # 0013
        **_customer_rows(w, rev, known),               # 0014 (from 0013's enrollments, or as written)
        **_limit_rows(rev, known),                    # 0015
        "otp_credentials": _otp_rows(rev, known),     # 0016
    }


# Which revision makes each table: a database seeded before it has none of its rows.
MADE_BY = {"authorities": "0001", "certificates": "0001", "status_events": "0002", "counters": "0002",
           "crls": "0002", "evidence": "0003", "challenges": "0003", "audit_log": "0003",
           "audit_checkpoints": "0003", "blocked_keys": "0005", "delegated_keys": "0007",
           "banks": "0010", "bank_keys": "0010", "bank_certs": "0010", "operators": "0011",
           "operator_tokens": "0011", "operator_certs": "0011", "operator_sessions": "0011",
           "login_challenges": "0011", "approval_policies": "0012", "approvals": "0012", "approval_votes": "0012",
           "enrollments": "0013", "customers": "0013", "customer_accounts": "0013",
           "certificate_customers": "0013",     # 0014 makes these from 0013's enrollments
           "limits": "0015", "limit_usage": "0015", "otp_credentials": "0016"}


def expected(w: World, rev: str, known: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every head table after a database seeded at ``rev`` is upgraded."""
    rows = _rows(w, rev, known)
    out: dict[str, list[dict[str, Any]]] = {}
    for table, made_by in MADE_BY.items():
        before = not since(rev, made_by, known)
        if table == "blocked_keys":
            # 0005 blocks the keys already revoked for keyCompromise: none before 0002.
            out[table] = rows[table] if since(rev, "0002", known) else []
        elif table == "delegated_keys":
            out[table] = rows[table]          # 0007 seeds it from the ocsp and tsa authorities
        elif table == "counters":
            # 0003 makes audit_seq (0); counters of status and CRLs came with 0002.
            out[table] = ([r for r in rows[table] if r["name"] != "audit_seq"] if not before else []) + \
                         [{"name": "audit_seq", "value": seeded_audit_seq(rev, known) or 0}]
        else:
            out[table] = [] if before else rows[table]
        if table == "evidence" and not since(rev, "0004", known):
            out[table] = [{**r, "ca_revocation": None} for r in out[table]]
    return out
