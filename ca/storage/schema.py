"""The schema at the head revision (0016), stated once: every table as a SQLAlchemy Core Table.

The Alembic migrations (ca/migrations) make it; tests/ca/test_storage.py checks that they
agree. Every statement of the stores is built from these objects, the raw driver path's
too (ca.storage.raw compiles them). Migrations do not import this module: they describe
the schema of their own revision.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String,
                        Table, Text, UniqueConstraint, text)

metadata = MetaData()


def _time(name: str, nullable: bool = False) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


# A CA key and certificate: the root, the issuing CA, and the delegated OCSP responder and
# TSA keys (their current certificate; delegated_keys keeps every one).
authorities = Table(
    "authorities", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),        # root | issuing | ocsp | tsa
    Column("token_label", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),                   # CKA_ID, hex
    Column("key_type", String(16), nullable=False),
    Column("subject", Text, nullable=False),
    Column("cert_der", LargeBinary, nullable=False),
    _time("not_after"),
    _time("created_at"),
)

# One issued (or being issued) certificate. Two-phase issuance: the row is written as
# "pending" with the TBS hash and the key before the token signs, then completed with the
# DER. A crash in between leaves a known serial.
certificates = Table(
    "certificates", metadata,
    Column("serial", String(42), primary_key=True),                 # lowercase hex
    Column("authority_id", Integer, ForeignKey("authorities.id"), nullable=False),
    Column("state", String(16), nullable=False, index=True),        # pending | issued | failed
    Column("profile", String(32), nullable=False),
    Column("subject", Text, nullable=False),
    Column("requester", String(128), nullable=False),
    Column("tbs_sha256", String(64), nullable=False),
    _time("not_before"),
    _time("not_after"),
    _time("created_at"),
    _time("issued_at", nullable=True),
    Column("der", LargeBinary, nullable=True),
    Column("cert_sha256", String(64), nullable=True, index=True),
    # Status (RFC 5280 §5.3.1): good | on_hold | revoked. A hold is recorded like a
    # revocation with reason certificateHold, and undone by a release. (0002)
    Column("status", String(16), nullable=False, server_default="good"),
    _time("revoked_at", nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    _time("invalidity_date", nullable=True),
    # SHA-256 hex of the SubjectPublicKeyInfo DER (0005); NULL for rows 0005 could not read.
    Column("spki_sha256", String(64), nullable=True),
    Index("ix_certificates_status", "authority_id", "status"),
    Index("ix_certificates_spki_subject", "spki_sha256", "subject"),   # 0008
)

# Who changed a certificate's status, when, and how.
status_events = Table(
    "status_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("serial", String(42), ForeignKey("certificates.serial"), nullable=False, index=True),
    Column("action", String(16), nullable=False),                   # revoke | hold | release | abandon
    Column("reason", String(32), nullable=True),
    _time("invalidity_date", nullable=True),
    Column("actor", String(128), nullable=False),
    _time("at"),
)

# Monotonic counters shared by every process: CRL numbers, the status version, audit_seq.
counters = Table(
    "counters", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Every CRL published, newest by number.
crls = Table(
    "crls", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority_id", Integer, ForeignKey("authorities.id"), nullable=False),
    Column("number", BigInteger, nullable=False),
    _time("this_update"),
    _time("next_update"),
    Column("entries", Integer, nullable=False),
    Column("der", LargeBinary, nullable=False),
    UniqueConstraint("authority_id", "number", name="uq_crls_authority_number"),
)

# A bank (relying party) calling the verify API, by its handle (0010).
banks = Table(
    "banks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),        # lowercase handle: icbc, ccb-sh
    Column("display_name", Text, nullable=False),
    _time("created_at"),
    _time("disabled_at", nullable=True),                            # every key refused while set
)

# A bank's API key (0010): the id is part of the key's text, the secret only as a slow hash
# (pkicore.slowhash); scopes space-separated (ca.banks.SCOPES).
bank_keys = Table(
    "bank_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("bank_id", Integer, ForeignKey("banks.id"), nullable=False, index=True),
    Column("hash", String(256), nullable=False),
    Column("scopes", String(256), nullable=False),
    _time("created_at"),
    _time("expires_at", nullable=True),
    _time("revoked_at", nullable=True),
    Column("replaced_by", String(32), nullable=True),              # the key a rotation made
)

# A bank's TLS client certificate (0010): by its SHA-256, a credential with scopes of its own.
bank_certs = Table(
    "bank_certs", metadata,
    Column("cert_sha256", String(64), primary_key=True),
    Column("bank_id", Integer, ForeignKey("banks.id"), nullable=False, index=True),
    Column("subject", Text, nullable=False),
    Column("scopes", String(256), nullable=False),
    _time("not_after"),
    _time("created_at"),
    _time("removed_at", nullable=True),
)

# An operator (0011): a named identity with one role (ca.operators.ROLES).
operators = Table(
    "operators", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(32), nullable=False),                     # admin | operator | auditor | bank-manager
    Column("created_by", String(128), nullable=False),              # who made it (cannot approve with it)
    _time("created_at"),
    _time("disabled_at", nullable=True),                            # no login, no token, while set
)

# An operator's API token (0011): as a bank key, the id in its text, the secret a slow hash.
operator_tokens = Table(
    "operator_tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=False, index=True),
    Column("hash", String(256), nullable=False),
    Column("created_by", String(128), nullable=False),
    _time("created_at"),
    _time("expires_at", nullable=True),
    _time("revoked_at", nullable=True),
)

# A certificate of ours on an operator's token (0011): its key logs the operator in.
operator_certs = Table(
    "operator_certs", metadata,
    Column("serial", String(42), ForeignKey("certificates.serial"), primary_key=True),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=False, index=True),
    Column("created_by", String(128), nullable=False),
    _time("created_at"),
    _time("removed_at", nullable=True),
)

# A login (0011): the secret's SHA-256 (256 random bits need no slow hash); ``cert_serial``
# when the token signed the login (then every change must be signed too, ``last_seq``
# the highest request number seen: a signed request is accepted once).
operator_sessions = Table(
    "operator_sessions", metadata,
    Column("id", String(32), primary_key=True),
    Column("operator_id", Integer, ForeignKey("operators.id"), nullable=False, index=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("cert_serial", String(42), nullable=True),
    _time("created_at"),
    _time("expires_at"),
    _time("ended_at", nullable=True),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
)

# A login challenge (0011): single use, minutes long.
login_challenges = Table(
    "login_challenges", metadata,
    Column("id", String(32), primary_key=True),
    Column("nonce", String(64), nullable=False),
    Column("address", String(64), nullable=False, index=True),     # who asked: a quota per address
    _time("created_at"),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    _time("used_at", nullable=True),
)

# Dual control (0012): a policy per sensitive action (absent: ca.approvals.DEFAULT_POLICIES).
approval_policies = Table(
    "approval_policies", metadata,
    Column("action", String(32), primary_key=True),
    Column("approvals", Integer, nullable=False),                   # approvers needed besides the requester
    Column("roles", String(128), nullable=False),                   # who may approve, space-separated
    Column("expires_hours", Integer, nullable=False),
    Column("threshold", Integer, nullable=True),                    # bulk-revoke: more than this many
    Column("profiles", String(256), nullable=True),                 # sensitive-issue: these profiles
    _time("updated_at"),
    Column("updated_by", String(128), nullable=False),
)

# A request for a sensitive action, its parameters as stored and approved (0012).
approvals = Table(
    "approvals", metadata,
    Column("id", String(32), primary_key=True),
    Column("action", String(32), nullable=False),
    Column("params", Text, nullable=False),                         # canonical JSON (RFC 8785)
    Column("params_sha256", String(64), nullable=False),
    Column("requester", String(128), nullable=False),
    Column("required", Integer, nullable=False),                    # the policy when it was asked for
    Column("roles", String(128), nullable=False),
    Column("approved", Integer, nullable=False, server_default="0"),
    # pending | approved | executing | executed | failed | rejected | expired
    Column("state", String(16), nullable=False),
    _time("created_at"),
    _time("expires_at"),
    _time("decided_at", nullable=True),
    Column("result", Text, nullable=True),                          # JSON: what the execution returned
    Index("ix_approvals_state", "state", "created_at"),
)

# One operator's vote on a request (0012): one each, the requester never.
approval_votes = Table(
    "approval_votes", metadata,
    Column("approval_id", String(32), ForeignKey("approvals.id"), primary_key=True),
    Column("operator", String(128), primary_key=True),
    Column("vote", String(8), nullable=False),                      # approve | reject
    Column("comment", Text, nullable=True),
    _time("at"),
)

# A counter enrollment (0013): the one-time code only as a slow hash; ``accounts`` the payer
# accounts (JSON list) the certificate is for; ``serial`` the certificate it gave.
enrollments = Table(
    "enrollments", metadata,
    Column("id", String(16), primary_key=True),                     # the code's first part
    Column("code_hash", String(256), nullable=False),
    Column("subject", Text, nullable=False),                        # RFC 4514, as the CSR must carry it
    Column("profile", String(32), nullable=False),
    Column("accounts", Text, nullable=False),
    Column("created_by", String(128), nullable=False),
    _time("created_at"),
    _time("expires_at"),
    Column("attempts", Integer, nullable=False, server_default="0"),    # wrong codes so far
    _time("locked_at", nullable=True),
    _time("used_at", nullable=True),
    Column("serial", String(42), ForeignKey("certificates.serial"), nullable=True),
    Index("ix_enrollments_created", "created_at"),
    Column("customer_id", String(64), nullable=True),               # 0014: the customer it is for
    _time("approved_at", nullable=True),                            # 0014: NULL while awaiting dual control
)

# A customer of the bank (0014), by the bank's customer number.
customers = Table(
    "customers", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_by", String(128), nullable=False),
    _time("created_at"),
)

# A payer account a customer may pay from (0014): one customer per account.
customer_accounts = Table(
    "customer_accounts", metadata,
    Column("account", String(34), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, index=True),
    Column("added_by", String(128), nullable=False),
    _time("added_at"),
)

# Whose certificate it is (0014): a certificate pays only from its customer's accounts. By
# the certificate's SHA-256: one of another trusted CA (no serial here) can be bound too.
certificate_customers = Table(
    "certificate_customers", metadata,
    Column("cert_sha256", String(64), primary_key=True),
    Column("serial", String(42), ForeignKey("certificates.serial"), nullable=True, unique=True),  # ours
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, index=True),
    Column("bound_by", String(128), nullable=False),
    _time("bound_at"),
)

# What a bank needs in a dispute: the signed payment and everything that proved it.
evidence = Table(
    "evidence", metadata,
    Column("id", String(40), primary_key=True),
    _time("received_at"),
    Column("signer_cert_sha256", String(64), nullable=False),
    Column("signer_serial", String(42), nullable=False),
    Column("tx_id", String(128), nullable=False),
    Column("content", LargeBinary, nullable=False),                 # the canonical payment bytes
    Column("cms", LargeBinary, nullable=False),                     # as received
    Column("stamped_cms", LargeBinary, nullable=False),             # CAdES-T: with the signature time-stamp
    Column("time_stamp", LargeBinary, nullable=False),              # the RFC 3161 token alone
    Column("chain", LargeBinary, nullable=False),                   # PEM, signer first
    Column("revocation_kind", String(8), nullable=False),           # ocsp | crl
    Column("revocation", LargeBinary, nullable=False),
    Column("report", Text, nullable=False),                         # JSON
    # the CA certificates' revocation data, issuing CA first: JSON [[kind, base64 DER], ...]
    # (NULL in records stored before migration 0004)
    Column("ca_revocation", Text, nullable=True),
    # Replay protection (0006): one payment (tx_id) per signer public key, whichever of the
    # key's certificates signed it; SHA-256 hex of the canonical SPKI DER (or 0006's fallbacks).
    Column("signer_spki_sha256", String(128), nullable=False),
    # The bank whose verify call stored it (0010): only that bank reads it, and replay is
    # per bank (another bank's submission of a payment does not burn its tx_id). NULL in
    # records stored before 0010, which no bank reads.
    Column("bank_id", Integer, ForeignKey("banks.id", name="fk_evidence_bank"), nullable=True),
    UniqueConstraint("bank_id", "signer_spki_sha256", "tx_id", name="uq_evidence_bank_spki_tx"),
)

# A single-use challenge a bank asked for, to be carried inside a signed payment.
challenges = Table(
    "challenges", metadata,
    Column("value", String(64), primary_key=True),
    _time("created_at"),
    _time("expires_at"),
    _time("used_at", nullable=True),
    Column("evidence_id", String(40), nullable=True),
    # The bank that asked for it (0010): only its payments may use it (NULL before 0010: none).
    Column("bank_id", Integer, ForeignKey("banks.id", name="fk_challenges_bank"), nullable=True),
    Index("ix_challenges_bank_expires", "bank_id", "expires_at"),      # 0010: the open-challenge quota
)

# One audit log entry; ``hash`` covers every field and ``prev_hash`` (ca.auditlog).
audit_log = Table(
    "audit_log", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),                       # RFC 3339 text: hashed exactly as stored
    Column("action", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("details", Text, nullable=False),                        # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# A signed, time-stamped statement of the log's head at some sequence number.
audit_checkpoints = Table(
    "audit_checkpoints", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    _time("at"),
    Column("cms", LargeBinary, nullable=False),
)

# One row per public key revoked for keyCompromise, with the serial that caused it (0005).
blocked_keys = Table(
    "blocked_keys", metadata,
    Column("spki_sha256", String(64), primary_key=True),
    Column("reason", String(32), nullable=False),
    _time("blocked_at"),
    Column("serial", String(42), ForeignKey("certificates.serial"), nullable=True),
)

# The CA's own delegated keys (OCSP responder, TSA) and every certificate they had (0007).
delegated_keys = Table(
    "delegated_keys", metadata,
    Column("cert_sha256", String(64), primary_key=True),
    Column("name", String(32), nullable=False, index=True),         # ocsp | tsa
    Column("token_label", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),                   # CKA_ID, hex
    Column("cert_der", LargeBinary, nullable=False),
    _time("not_after"),
    _time("created_at"),
    _time("destroyed_at", nullable=True),                           # key removed from the token
)


# A profile's or a customer's transaction limits in one currency (0015, ca.limits), in
# hundredths; NULL: not set at this level (a customer's falls back to the profile's).
limits = Table(
    "limits", metadata,
    Column("scope", String(16), primary_key=True),                  # profile | customer
    Column("subject", String(64), primary_key=True),                # the profile's name, the customer's id
    Column("currency", String(3), primary_key=True),
    Column("per_payment", BigInteger, nullable=True),
    Column("per_day", BigInteger, nullable=True),
    Column("set_by", String(128), nullable=False),
    _time("set_at"),
)

# What a customer paid on one day in one currency (0015): reserved with the evidence record.
limit_usage = Table(
    "limit_usage", metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("day", String(10), primary_key=True),                    # YYYY-MM-DD in UDUN_LIMIT_TIMEZONE
    Column("used", BigInteger, nullable=False),                     # hundredths
    Column("payments", Integer, nullable=False),
)

# A customer's TOTP credential (0016, ca.otp): the secret only encrypted (ca.otpkey);
# ``last_step`` the time step of the last code accepted (each code once).
otp_credentials = Table(
    "otp_credentials", metadata,
    Column("id", String(16), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),                     # baoling (60 s) | mobile (30 s)
    Column("period", Integer, nullable=False),
    Column("digits", Integer, nullable=False),
    Column("secret", Text, nullable=False),                         # base64(nonce | AES-GCM ciphertext)
    Column("created_by", String(128), nullable=False),
    _time("created_at"),
    Column("failures", Integer, nullable=False, server_default="0"),   # consecutive
    _time("locked_at", nullable=True),
    Column("last_step", BigInteger, nullable=False, server_default="0"),
    _time("revoked_at", nullable=True),
    Index("uq_otp_active_customer", "customer_id", unique=True, sqlite_where=text("revoked_at IS NULL"),
          postgresql_where=text("revoked_at IS NULL")),          # one active credential per customer
)

def utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def opt_utc(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None
