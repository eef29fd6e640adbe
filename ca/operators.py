"""Operators: named identities with a role, how they log in, and what each role may do.

Two credentials (issue 12 point 2):
- **their token**: a certificate udun issued, registered to the operator, whose key is on
  the operator's own token. The admin service hands out a single-use challenge; the token
  signs ``pkicore.adminsig.login_message`` (a raw signature, SHA-256); a valid signature by a certificate
  that is good *now* in the CA's own database (not revoked, not on hold, not expired)
  opens a session of ``session_minutes``. In such a session every change must be signed
  by the same key too (``request_message``: method, path, body hash, session, a request
  number taken once), and the audit log keeps that signed request: an admin action can be
  proved to be the operator's, not only the server's word.
- **an API token** (``udunop_<id>_<secret>``, shown once, a slow hash at rest), where a
  token cannot be used; with an expiry and revocable.

Always at least one admin who can log in (ca.storage.operators).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509 as asn1x509

from ca.credentials import SecretChecker, new_text
from ca.directory import CaDirectory
from ca.storage.operators import (ADMIN, OperatorCertRecord, OperatorRecord, OperatorStore, OperatorTokenRecord,
                                  SessionRecord)
from pkicore.adminsig import login_message, request_message
from pkicore.algorithms import SigScheme
from pkicore.clock import Clock, rfc3339
from pkicore.errors import ErrorKind, PkiError
from pkicore.sigverify import SignatureError, verify_scheme

# What may be done through the admin API; every admin route names one (webapi.auth).
PERMISSIONS: dict[str, str] = {
    "self": "see who one is logged in as; log out",
    "service:read": "liveness, readiness and metrics of the admin service",
    "certificates:read": "list, search and show certificates with their history",
    "certificates:issue": "issue a certificate from a CSR",
    "certificates:status": "hold (挂失), release (解挂) and revoke certificates",
    "crl:publish": "publish a CRL now",
    "evidence:read": "search evidence records (metadata: who, when, what verdict)",
    "audit:read": "read and verify the audit log",
    "banks:read": "list and show banks, their keys and certificates",
    "banks:manage": "add, disable and enable banks; issue, rotate and revoke their keys and certificates",
    "operators:read": "list and show operators",
    "operators:manage": "add operators, change their roles, disable them, issue and revoke their credentials",
    "approvals:read": "list and show dual-control requests and the approval policies",
    "approvals:decide": "approve or reject dual-control requests (where the request's policy allows the role)",
    "policies:manage": "ask for a change of an approval policy",
    "ca:revoke": "ask for the revocation of the issuing CA",
    "enrollments:read": "list and show counter enrollments",
    "enrollments:manage": "make counter enrollments with their activation codes (柜台激活码), cancel them",
    "customers:read": "list and show customers with their accounts and certificates",
    "customers:manage": "add customers, bind accounts and certificates to them (under dual control), remove accounts",
    "limits:read": "list transaction limits and customers' daily usage",
    "limits:manage": "set customers' transaction limits (a raise above the profile's under dual control)",
    "limits:profile": "set a certificate profile's transaction limits (a raise under dual control)",
    "otp:read": "list customers' one-time password credentials (never their secrets)",
    "otp:manage": "enroll customers' one-time password credentials, unlock and revoke them",
}
_ALL = frozenset(PERMISSIONS)
ROLES: dict[str, frozenset[str]] = {
    "admin": _ALL,
    "operator": frozenset({"self", "service:read", "certificates:read", "certificates:issue", "certificates:status",
                           "crl:publish", "approvals:read", "approvals:decide", "enrollments:read",
                           "enrollments:manage", "customers:read", "customers:manage", "limits:read",
                           "limits:manage", "otp:read", "otp:manage"}),
    "auditor": frozenset({"self", "service:read", "certificates:read", "evidence:read", "audit:read", "banks:read",
                          "operators:read", "approvals:read", "enrollments:read", "customers:read", "limits:read",
                          "otp:read"}),
    "bank-manager": frozenset({"self", "service:read", "banks:read", "banks:manage"}),
}
_log = logging.getLogger("udun.operators")
TOKEN_PREFIX = "udunop_"
SESSION_PREFIX = "udunsess_"
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 730
CHALLENGE_SECONDS = 120
OPEN_CHALLENGES = 10_000
OPEN_CHALLENGES_PER_ADDRESS = 20
_SEQ = re.compile(r"[1-9][0-9]{0,17}")
LOGIN_REFUSED = "login refused: the challenge, certificate or signature is not valid (ask an admin if it should be)"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
_TOKEN = re.compile(r"udunop_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_SESSION = re.compile(r"udunsess_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class OperatorPrincipal:
    """Who an admin request was authenticated as, and by what."""

    name: str
    role: str
    via: str                                 # token:<id> | session:<id> | admin-key
    session: SessionRecord | None = None     # a token login: changes must be signed
    # Who made this operator and the credential in use: neither can have this operator
    # approve their dual-control requests (ca.approvals).
    made_by: frozenset[str] = frozenset()

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES.get(self.role, frozenset())

    @property
    def actor(self) -> str:
        """How the audit log names it."""
        return f"operator:{self.name}" if self.via != "admin-key" else "admin-key"


@dataclass(frozen=True)
class Challenge:
    id: str
    nonce: str
    expires_at: datetime


@dataclass(frozen=True)
class NewSecret:
    """A token or session just made: ``text`` is shown once and stored nowhere."""

    id: str
    text: str
    expires_at: datetime | None


def checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise PkiError(ErrorKind.BAD_INPUT, "an operator's name is 1-64 lowercase letters, digits and inner . _ -",
                       field="name")
    return name


def checked_role(role: str) -> str:
    if role not in ROLES:
        raise PkiError(ErrorKind.BAD_INPUT, f"role is one of {', '.join(ROLES)}", field="role")
    return role


def _unauthorized(detail: str) -> PkiError:
    return PkiError(ErrorKind.UNAUTHORIZED, detail)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise PkiError(ErrorKind.BAD_INPUT, f"{what} is base64", field=what) from None


class Operators:
    """The operator registry of one CA's database."""

    def __init__(self, ca: CaDirectory, clock: Clock, session_minutes: int = 15) -> None:
        self.ca = ca
        self.store = OperatorStore(ca.store)
        self.clock = clock
        self.session_minutes = session_minutes
        self._secrets = SecretChecker()

    # --- administration -------------------------------------------------------------

    def add(self, name: str, role: str, *, actor: str) -> OperatorRecord:
        return self.store.add(checked_name(name), checked_role(role), self.clock(), actor)

    def operator(self, name: str) -> OperatorRecord:
        return self.store.operator(name)

    def all(self) -> list[OperatorRecord]:
        return self.store.operators()

    def eligible(self, roles: tuple[str, ...], excluding: str) -> int:
        """Enabled operators with one of ``roles``, not the one audited as ``excluding``."""
        return sum(1 for op in self.store.operators() if op.role in roles and op.disabled_at is None
                   and f"operator:{op.name}" != excluding)

    def set_role(self, name: str, role: str, *, actor: str) -> OperatorRecord:
        return self.store.change(name, self.clock(), actor, role=checked_role(role))

    def set_disabled(self, name: str, disabled: bool, *, actor: str) -> OperatorRecord:
        return self.store.change(name, self.clock(), actor, disabled=disabled)

    def issue_token(self, name: str, days: int | None = DEFAULT_TOKEN_DAYS, *, actor: str) -> NewSecret:
        if days is not None and not 1 <= days <= MAX_TOKEN_DAYS:
            raise PkiError(ErrorKind.BAD_INPUT, f"a token lives 1 to {MAX_TOKEN_DAYS} days", field="days")
        now = self.clock()
        token_id, text, hashed = new_text(TOKEN_PREFIX)
        expires = now + timedelta(days=days) if days is not None else None
        self.store.add_token(name, {"id": token_id, "hash": hashed, "expires_at": expires}, now, actor)
        return NewSecret(token_id, text, expires)

    def revoke_token(self, token_id: str, *, actor: str) -> OperatorTokenRecord:
        self._secrets.forget(token_id)
        return self.store.revoke_token(token_id, self.clock(), actor)

    def add_cert(self, name: str, serial: str, *, actor: str) -> OperatorCertRecord:
        """Register a certificate udun issued (its key on the operator's token)."""
        rec = self.ca.get(serial)
        der = self._good(rec.serial)
        spki = hashlib.sha256(asn1x509.Certificate.load(der).public_key.dump()).hexdigest()
        return self.store.add_cert(name, rec.serial, spki, self.clock(), actor)

    def check_status_change(self, serial: str, who: OperatorPrincipal) -> None:
        """Before a hold or revoke of ``serial``: a certificate that logs an operator in is
        an admin's business (operators:manage), and the last admin's last one is refused."""
        bound = self.store.cert(serial.lower().removeprefix("0x"))
        if bound is None or bound.removed_at is not None:
            return
        if "operators:manage" not in who.permissions:
            raise PkiError(ErrorKind.FORBIDDEN, f"certificate {bound.serial} logs in operator {bound.operator.name}: "
                                                "only an admin may hold or revoke it")
        if bound.operator.role == ADMIN and bound.operator.disabled_at is None and \
                self.store.usable_admin_credentials(self.clock(), except_serial=bound.serial) == 0:
            raise PkiError(ErrorKind.CONFLICT, f"certificate {bound.serial} is the last credential any admin can log "
                                               "in with: give an admin another one first")

    def remove_cert(self, serial: str, *, actor: str) -> OperatorCertRecord:
        return self.store.remove_cert(serial.lower().removeprefix("0x"), self.clock(), actor)

    # --- login ----------------------------------------------------------------------

    def challenge(self, address: str | None = None) -> Challenge:
        now = self.clock()
        ch = Challenge(secrets.token_hex(8), secrets.token_hex(32), now + timedelta(seconds=CHALLENGE_SECONDS))
        self.store.add_challenge({"id": ch.id, "nonce": ch.nonce, "address": (address or "-")[:64],
                                  "expires_at": ch.expires_at}, now, OPEN_CHALLENGES, OPEN_CHALLENGES_PER_ADDRESS)
        return ch

    def login(self, challenge_id: str, serial: str, signature_b64: str, scheme: str) -> NewSecret:
        """A session for the operator whose registered certificate ``serial`` signed the
        challenge; UNAUTHORIZED (one message, whichever check failed) otherwise."""
        signature = _b64(signature_b64, "signature")
        sig_scheme = SigScheme.parse(scheme)
        serial = serial.lower().removeprefix("0x")
        nonce = self.store.take_challenge(challenge_id, self.clock())      # used even when the rest fails
        bound = self.store.cert(serial)
        # One answer whichever check failed (an anonymous caller learns nothing of which
        # serials log in whom); the reason goes to the log.
        try:
            if nonce is None or bound is None or bound.removed_at is not None:
                raise _unauthorized("unknown or used challenge, or a certificate of no operator")
            cert_der = self._good(serial, unauthorized=True)
            self._verify(cert_der, signature, login_message(challenge_id, nonce, serial), sig_scheme)
            if bound.operator.disabled_at is not None:
                raise _unauthorized(f"operator {bound.operator.name} is disabled")
        except PkiError as e:
            _log.info("operator login with certificate %s refused: %s", serial[:42], e.message)
            raise _unauthorized(LOGIN_REFUSED) from None
        op = bound.operator
        now = self.clock()
        session_id = secrets.token_hex(16)
        text = f"{SESSION_PREFIX}{session_id}_{secrets.token_urlsafe(32)}"
        expires = now + timedelta(minutes=self.session_minutes)
        self.store.add_session({"id": session_id, "secret_sha256": hashlib.sha256(text.encode()).hexdigest(),
                                "cert_serial": serial, "expires_at": expires}, op, now,
                               {"certificate": serial, "challenge": challenge_id, "scheme": sig_scheme.value,
                                "signature": signature_b64, "expires_at": rfc3339(expires)})
        return NewSecret(session_id, text, expires)

    def logout(self, who: OperatorPrincipal) -> None:
        if who.session is None:
            raise PkiError(ErrorKind.BAD_INPUT, "only a session (token login) can log out; revoke an API token instead")
        self.store.end_session(who.session, self.clock())

    def _good(self, serial: str, *, unauthorized: bool = False) -> bytes:
        """The DER of a certificate of our issuing CA that is good now, usable to sign."""
        rec = self.ca.get(serial)
        problem = self.ca.unusable(rec, self.clock())
        if problem is None and rec.der is not None:
            usage = asn1x509.Certificate.load(rec.der).key_usage_value
            if usage is None or "digital_signature" not in usage.native:
                problem = "does not allow digitalSignature"
        if problem is not None:
            raise PkiError(ErrorKind.UNAUTHORIZED if unauthorized else ErrorKind.BAD_INPUT,
                           f"certificate {rec.serial} {problem}")
        assert rec.der is not None
        return rec.der

    @staticmethod
    def _verify(cert_der: bytes, signature: bytes, message: bytes, scheme: SigScheme) -> None:
        try:
            verify_scheme(asn1x509.Certificate.load(cert_der).public_key.dump(), signature, message, scheme)
        except SignatureError:
            raise _unauthorized("the signature does not verify with the operator's certificate") from None

    # --- requests -------------------------------------------------------------------

    def authenticate(self, text: str | None, client: str | None = None) -> OperatorPrincipal:
        """The operator behind a bearer text (an API token or a session); UNAUTHORIZED else.
        ``client``: the caller's address (the slow-hash budget is per address)."""
        if not text:
            raise _unauthorized("an operator API token or session is required (Authorization: Bearer udunop_... "
                                "or udunsess_...)")
        now = self.clock()
        token = _TOKEN.fullmatch(text)
        if token:
            rec = self.store.token(token.group(1))
            if rec is None or not self._secrets.ok(rec.id, text, rec.hash, client):
                raise _unauthorized("the API token is not valid")
            if rec.revoked_at is not None or (rec.expires_at is not None and rec.expires_at <= now):
                raise _unauthorized("the API token is " + ("revoked" if rec.revoked_at else "expired"))
            return self._active(OperatorPrincipal(rec.operator.name, rec.operator.role, f"token:{rec.id}",
                                                  made_by=frozenset({rec.operator.created_by, rec.created_by})),
                                rec.operator)
        session = _SESSION.fullmatch(text)
        found = self.store.session(session.group(1)) if session else None
        if found is None or not secrets.compare_digest(found.secret_sha256,
                                                       hashlib.sha256(text.encode()).hexdigest()):
            raise _unauthorized("the token is not valid")
        if found.ended_at is not None or found.expires_at <= now:
            raise _unauthorized("the session has " + ("ended" if found.ended_at else "expired") + ": log in again")
        made_by = {found.operator.created_by}
        if found.cert_serial is not None:
            self._good(found.cert_serial, unauthorized=True)      # revoked or held: the session ends with it
            bound = self.store.cert(found.cert_serial)
            if bound is None or bound.removed_at is not None:
                raise _unauthorized("the session's certificate was removed from its operator: log in again")
            made_by.add(bound.created_by)
        return self._active(OperatorPrincipal(found.operator.name, found.operator.role, f"session:{found.id}",
                                              found, frozenset(made_by)), found.operator)

    @staticmethod
    def _active(who: OperatorPrincipal, op: OperatorRecord) -> OperatorPrincipal:
        if op.disabled_at is not None:
            raise _unauthorized(f"operator {op.name} is disabled")
        return who

    def signed_request(self, who: OperatorPrincipal, method: str, path: str, body: bytes,
                       seq_text: str | None, signature_b64: str | None, scheme: str | None) -> dict[str, object]:
        """Check the token's signature over a change made in a token session; what the audit
        log keeps of it. UNAUTHORIZED when missing, wrong or replayed."""
        session = who.session
        if session is None or session.cert_serial is None:
            raise PkiError(ErrorKind.INTERNAL, "signed_request outside a token session")
        if not seq_text or not signature_b64:
            raise _unauthorized("a change in a token session must be signed: Udun-Request-Seq and "
                                "Udun-Request-Signature headers")
        if not _SEQ.fullmatch(seq_text):
            raise PkiError(ErrorKind.BAD_INPUT, "Udun-Request-Seq is a positive integer (at most 18 digits)",
                           field="Udun-Request-Seq")
        seq = int(seq_text)
        sig_scheme = SigScheme.parse(scheme or "ecdsa")
        message = request_message(method, path, body, session.id, seq)
        signature = _b64(signature_b64, "Udun-Request-Signature")
        self._verify(self._good(session.cert_serial, unauthorized=True), signature, message, sig_scheme)
        if not self.store.advance(session.id, seq):
            raise _unauthorized(f"request number {seq} was used already in this session (a replay?)")
        # The body itself too (as text, or base64 when it is not UTF-8): with it the entry
        # proves what was asked for on its own, against the certificate.
        try:
            shown: dict[str, object] = {"body": body.decode()}
        except UnicodeDecodeError:
            shown = {"body_base64": base64.b64encode(body).decode()}
        return {"certificate": session.cert_serial, "scheme": sig_scheme.value,
                "message": message.decode(), "signature": signature_b64, **shown}


# --- how lists and shows print them (CLI --json and the admin API alike) ----------------

def operator_json(op: OperatorRecord) -> dict[str, object]:
    return {"name": op.name, "role": op.role, "state": "disabled" if op.disabled_at else "enabled",
            "created_at": rfc3339(op.created_at), "disabled_at": rfc3339(op.disabled_at) if op.disabled_at else None,
            "permissions": sorted(ROLES[op.role])}


def token_json(rec: OperatorTokenRecord, now: datetime) -> dict[str, object]:
    state = "revoked" if rec.revoked_at else "expired" if rec.expires_at and rec.expires_at <= now else "active"
    return {"token_id": rec.id, "operator": rec.operator.name, "state": state, "created_at": rfc3339(rec.created_at),
            "expires_at": rfc3339(rec.expires_at) if rec.expires_at else None,
            "revoked_at": rfc3339(rec.revoked_at) if rec.revoked_at else None}


def cert_json(rec: OperatorCertRecord) -> dict[str, object]:
    return {"serial": rec.serial, "operator": rec.operator.name, "state": "removed" if rec.removed_at else "active",
            "created_at": rfc3339(rec.created_at), "removed_at": rfc3339(rec.removed_at) if rec.removed_at else None}
