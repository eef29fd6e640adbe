"""Banks (the relying parties) and their API keys: issue, rotate, revoke, authenticate.

A key's text is ``udun_<id>_<secret>``: the id (public, in logs and the audit log) finds
the row, the 256-bit secret is stored only as a slow hash (ca.credentials) and shown
once. A key has scopes (``SCOPES``), an expiry, and can be revoked or rotated (the new key
at once, the old one until a grace period ends). Disabling a bank refuses all its keys.

Every request reads the key's row, so a revocation, an expiry or a disabled bank counts on
the next request, on every node.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ca.storage.banks import BankCertRecord, BankCertStore, BankKeyRecord, BankRecord, BankStore
from ca.storage.store import Store
from pkicore.clock import Clock, rfc3339
from pkicore.errors import ErrorKind, PkiError
from ca.credentials import SecretChecker, new_text

# What a bank key may be allowed to do; every bank route names one (webapi.auth).
SCOPES: dict[str, str] = {
    "verify": "POST /api/v1/verify: verify signed payments and keep their evidence",
    "challenges": "POST /api/v1/challenges: single-use challenges for the next payments",
    "evidence:read": "GET /api/v1/evidence/{id}: this bank's own evidence bundles",
    "certificates:read": "GET /api/v1/certificates/{serial}: a certificate and its status",
}
DEFAULT_SCOPES = ("verify", "challenges", "evidence:read")
DEFAULT_DAYS = 365
MAX_DAYS = 3650
PREFIX = "udun_"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
_KEY = re.compile(r"udun_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class Principal:
    """The bank a request was authenticated as, and by which key."""

    bank_id: int
    bank: str
    key_id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        """How the audit log names it."""
        return f"bank:{self.bank}/{self.key_id}"


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``text`` is shown once and stored nowhere."""

    record: BankKeyRecord
    text: str


def key_state(key: BankKeyRecord, now: datetime) -> str:
    """active | expired | revoked | bank-disabled."""
    if key.revoked_at is not None:
        return "revoked"
    if key.bank_disabled_at is not None:
        return "bank-disabled"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise PkiError(ErrorKind.BAD_INPUT, "a bank's name is 1-64 lowercase letters, digits and inner "
                                            "hyphens (e.g. icbc, ccb-shanghai)", field="name")
    return name


def checked_scopes(scopes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise PkiError(ErrorKind.BAD_INPUT, f"scopes are some of {', '.join(SCOPES)}"
                       + (f" (not {unknown[0]!r})" if unknown else ""), field="scopes")
    return tuple(s for s in SCOPES if s in scopes)          # the table's order, once each


def checked_days(days: int | None) -> int | None:
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise PkiError(ErrorKind.BAD_INPUT, f"a key lives 1 to {MAX_DAYS} days", field="days")
    return days


def _unauthorized(detail: str) -> PkiError:
    return PkiError(ErrorKind.UNAUTHORIZED, detail)


class Banks:
    """The bank registry of one database."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = BankStore(store)
        self.certs = BankCertStore(store)
        self.clock = clock
        self._secrets = SecretChecker()

    # --- administration -------------------------------------------------------------

    def add(self, name: str, display_name: str | None, *, actor: str) -> BankRecord:
        display = (display_name or name).strip()
        if not display or len(display) > 200:
            raise PkiError(ErrorKind.BAD_INPUT, "a bank's display name is 1-200 characters", field="display_name")
        return self.store.add_bank(checked_name(name), display, self.clock(), actor)

    def bank(self, name: str) -> BankRecord:
        return self.store.bank(name)

    def all(self) -> list[BankRecord]:
        return self.store.banks()

    def set_disabled(self, name: str, disabled: bool, *, actor: str) -> BankRecord:
        return self.store.set_disabled(name, disabled, self.clock(), actor)

    def keys(self, bank: str) -> list[BankKeyRecord]:
        return self.store.keys(bank)

    def issue_key(self, bank: str, scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
                  days: int | None = DEFAULT_DAYS, *, actor: str) -> NewKey:
        """A new key of ``bank``; ``days`` None for one that never expires."""
        now = self.clock()
        key_id, text, row = self._new(now, checked_scopes(scopes), checked_days(days))
        return NewKey(self.store.add_key(bank, row, now, actor), text)

    def rotate_key(self, key_id: str, grace: timedelta, days: int | None = DEFAULT_DAYS, *, actor: str) -> NewKey:
        """A new key with the old one's scopes; the old one ends after ``grace`` (or its expiry)."""
        if grace < timedelta(0) or grace > timedelta(days=30):
            raise PkiError(ErrorKind.BAD_INPUT, "the grace period is 0 to 30 days", field="grace")
        old = self.store.key(key_id)
        now = self.clock()
        if old is None:
            raise PkiError(ErrorKind.NOT_FOUND, f"no bank key {key_id}")
        if key_state(old, now) in ("revoked", "expired"):
            raise PkiError(ErrorKind.CONFLICT, f"key {key_id} is {key_state(old, now)}: issue a new key instead")
        if old.replaced_by is not None:
            raise PkiError(ErrorKind.CONFLICT, f"key {key_id} was rotated already (to {old.replaced_by}): rotate "
                                               "that one")
        ends = now + grace
        if old.expires_at is not None:
            ends = min(ends, old.expires_at)
        _, text, row = self._new(now, old.scopes, checked_days(days))
        return NewKey(self.store.add_key(old.bank, row, now, actor, replaces=key_id, old_expires_at=ends), text)

    def revoke_key(self, key_id: str, *, actor: str) -> BankKeyRecord:
        self._secrets.forget(key_id)
        return self.store.revoke_key(key_id, self.clock(), actor)

    def add_cert(self, bank: str, data: bytes, scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES, *,
                 actor: str) -> BankCertRecord:
        """Register a TLS client certificate (PEM or DER) of ``bank``: a request over TLS that
        presents it (verified against UDUN_TLS_CLIENT_CA by the server) is that bank's."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        try:
            cert = x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") \
                else x509.load_der_x509_certificate(data)
        except ValueError as e:
            raise PkiError(ErrorKind.BAD_INPUT, "not a certificate (PEM or DER)", field="certificate") from e
        now = self.clock()
        if cert.not_valid_after_utc <= now:
            raise PkiError(ErrorKind.BAD_INPUT, "the certificate has expired", field="certificate")
        return self.certs.add(bank, {"cert_sha256": cert.fingerprint(hashes.SHA256()).hex(),
                                     "subject": cert.subject.rfc4514_string(),
                                     "scopes": " ".join(checked_scopes(scopes)),
                                     "not_after": cert.not_valid_after_utc}, now, actor)

    def remove_cert(self, sha256: str, *, actor: str) -> BankCertRecord:
        return self.certs.remove(sha256.lower().replace(":", ""), self.clock(), actor)

    @staticmethod
    def _new(now: datetime, scopes: tuple[str, ...], days: int | None) -> tuple[str, str, dict[str, object]]:
        key_id, text, hashed = new_text(PREFIX)
        return key_id, text, {"id": key_id, "hash": hashed, "scopes": " ".join(scopes),
                              "expires_at": now + timedelta(days=days) if days is not None else None}

    # --- requests -------------------------------------------------------------------

    def authenticate(self, text: str | None, scope: str, client_cert: str | None = None,
                     client: str | None = None) -> Principal:
        """The bank behind a bearer key text, allowed ``scope``; PkiError UNAUTHORIZED when
        there is no valid key (which check failed is said only to the key's holder: after
        the secret matched), FORBIDDEN when the key lacks the scope, RATE_LIMITED when this
        process checked too many new texts for the key id from ``client`` (the caller's
        address; ca.credentials.SLOW_CHECKS).

        ``client_cert``: the SHA-256 (hex) of the TLS client certificate the server verified.
        Without a key, a registered one is the credential; with a key, one registered to
        another bank refuses the request (a key stolen from one bank is not usable from
        another bank's connection)."""
        cert = self.certs.get(client_cert) if client_cert else None
        if not text:
            if cert is not None:
                return self._by_cert(cert, scope)
            raise _unauthorized("a bank API key or client certificate is required (Authorization: Bearer udun_...)")
        found = _KEY.fullmatch(text)
        key = self.store.key(found.group(1)) if found else None
        if key is None or not self._secrets.ok(key.id, text, key.hash, client):
            raise _unauthorized("the API key is not valid")
        state = key_state(key, self.clock())
        if state != "active":
            raise _unauthorized(f"the API key is {state}" if state != "bank-disabled" else "the bank is disabled")
        if cert is not None and cert.removed_at is None and cert.bank_id != key.bank_id:
            raise _unauthorized("the TLS client certificate belongs to another bank than the API key")
        if scope not in key.scopes:
            raise PkiError(ErrorKind.FORBIDDEN, f"this key does not have the {scope!r} scope")
        return Principal(key.bank_id, key.bank, key.id, frozenset(key.scopes))

    def _by_cert(self, cert: BankCertRecord, scope: str) -> Principal:
        if cert.removed_at is not None:
            raise _unauthorized("the client certificate was removed from its bank")
        if cert.bank_disabled_at is not None:
            raise _unauthorized("the bank is disabled")
        if cert.not_after <= self.clock():
            raise _unauthorized("the client certificate is expired")
        if scope not in cert.scopes:
            raise PkiError(ErrorKind.FORBIDDEN, f"this client certificate does not have the {scope!r} scope")
        return Principal(cert.bank_id, cert.bank, f"cert-{cert.sha256[:16]}", frozenset(cert.scopes))


# --- how lists and shows print them (CLI --json and the admin API alike) ----------------

def _when(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


def bank_json(bank: BankRecord) -> dict[str, object]:
    return {"name": bank.name, "display_name": bank.display_name, "created_at": rfc3339(bank.created_at),
            "disabled_at": _when(bank.disabled_at), "state": "disabled" if bank.disabled_at else "enabled"}


def cert_json(cert: BankCertRecord, now: datetime) -> dict[str, object]:
    state = "removed" if cert.removed_at else "expired" if cert.not_after <= now else \
        "bank-disabled" if cert.bank_disabled_at else "active"
    return {"sha256": cert.sha256, "bank": cert.bank, "subject": cert.subject, "scopes": list(cert.scopes),
            "state": state, "not_after": rfc3339(cert.not_after), "created_at": rfc3339(cert.created_at),
            "removed_at": _when(cert.removed_at)}


def key_json(key: BankKeyRecord, now: datetime) -> dict[str, object]:
    """A key's public facts (never its hash)."""
    return {"key_id": key.id, "bank": key.bank, "scopes": list(key.scopes), "state": key_state(key, now),
            "created_at": rfc3339(key.created_at), "expires_at": _when(key.expires_at),
            "revoked_at": _when(key.revoked_at), "replaced_by": key.replaced_by}
