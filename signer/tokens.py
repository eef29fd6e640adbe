"""Token administration and enrollment: keys, CSRs and certificates on the client token."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from asn1crypto import keys as asn1keys
from asn1crypto import x509

from pkicore import names
from keystore import pinguard, softhsm, token
from pkicore.algorithms import KeyType, SigScheme
from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import load_certs
from pkicore.x509build import build_csr, key_identifier, parse_name

KEY_LABEL = "udun signing key"


@dataclass(frozen=True)
class TokenRef:
    """A client token, named by label or serial (never by slot number)."""

    label: str | None = None
    serial: str | None = None

    def __str__(self) -> str:
        return f"token {self.label!r}" if self.label else f"token with serial {self.serial!r}"


Token = TokenRef | str     # a plain string is a label


def _ref(t: Token) -> TokenRef:
    return TokenRef(label=t) if isinstance(t, str) else t


def _session(settings: Settings, t: Token, pin: str) -> Any:
    """The logged-in session, within the PIN retry limit (keystore.pinguard)."""
    ref = _ref(t)
    if settings.pin_tries <= 0:
        return token.session(settings, ref.label, pin, serial=ref.serial)
    return pinguard.attempt(settings, ref.label, ref.serial,
                            lambda: token.session(settings, ref.label, pin, serial=ref.serial))


def unblock(settings: Settings, t: Token, so_pin: str, new_pin: str) -> None:
    """The security officer sets a new user PIN (C_InitPIN); udun's count starts again. The
    SO PIN's own tries are counted too (SoftHSM never locks it either)."""
    ref = _ref(t)
    tok = token.find_token(settings, label=ref.label, serial=ref.serial)
    token.close_all()                    # C_Login as SO needs no user session of ours open
    serial = tok.serial.decode().strip()

    def as_so() -> None:
        softhsm.init_pin(settings, serial, so_pin, new_pin)

    if settings.pin_tries > 0:
        pinguard.attempt(settings, ref.label, ref.serial, as_so, counter=pinguard.SO, what="SO PIN")
    else:
        as_so()
    pinguard.reset(settings, ref.label, ref.serial)


def pin_state(settings: Settings, t: Token) -> pinguard.PinState:
    ref = _ref(t)
    return pinguard.state(settings, ref.label, ref.serial)


def init(settings: Settings, label: str, pin: str, so_pin: str) -> str:
    """Initialise a SoftHSM token (a USB key comes initialised from its vendor)."""
    return softhsm.init_token(settings, label, pin, so_pin)


def keygen(settings: Settings, label: Token, pin: str, key_type: KeyType) -> token.TokenKey:
    """Generate the token's signing key pair; a token holds one udun signing key."""
    s = _session(settings, label, pin)
    if token.private_keys(s):
        raise PkiError(ErrorKind.CONFLICT, f"{_ref(label)} already holds a private key")
    return token.generate_key(s, key_type, secrets.token_bytes(8), KEY_LABEL)


def _destroy_with_certificates(s: Any, key_id: bytes) -> None:
    token.destroy_key(s, key_id)
    token.destroy_certificates(s, key_id)


def replace_key(settings: Settings, label: Token, pin: str, key_type: KeyType) -> token.TokenKey:
    """`token keygen --replace`: destroy the token's signing key(s) and their certificates (CA
    certificates stay), then generate a new key. What the old key signed stays verifiable
    by its certificate; nothing can be signed with it any more."""
    s = _session(settings, label, pin)
    old = [bytes(k.id) for k in token.private_keys(s)]
    new = token.generate_key(s, key_type, secrets.token_bytes(8), KEY_LABEL)   # first: never a token without a key
    for key_id in old:
        _destroy_with_certificates(s, key_id)
    return new


def new_key_beside(settings: Settings, label: Token, pin: str, key_type: KeyType) -> token.TokenKey:
    """A second key pair on the token, for a re-key (the current key stays until
    ``finish_rekey`` or ``drop_key``)."""
    return token.generate_key(_session(settings, label, pin), key_type, secrets.token_bytes(8), KEY_LABEL)


def drop_key(settings: Settings, label: Token, pin: str, key_id: bytes) -> None:
    """Destroy one key pair and its certificate (a re-key that was refused)."""
    _destroy_with_certificates(_session(settings, label, pin), key_id)


def import_chain(settings: Settings, label: Token, pin: str, pem_data: bytes) -> None:
    """CA certificates onto the token (a new chain after a re-key)."""
    s = _session(settings, label, pin)
    for der in load_certs(pem_data):
        ca = x509.Certificate.load(der)
        token.store_certificate(s, der, ca.subject.dump(), key_identifier(ca.public_key.dump()), "udun CA certificate")


def finish_rekey(settings: Settings, label: Token, pin: str, old_key_id: bytes, new_key: token.TokenKey,
                 cert_der: bytes) -> None:
    """Store the new key's certificate first, then destroy the old key and its certificate:
    the token is never left without a key that has a certificate."""
    s = _session(settings, label, pin)
    cert = x509.Certificate.load(cert_der)
    token.store_certificate(s, cert_der, cert.subject.dump(), new_key.key_id, "udun certificate")
    _destroy_with_certificates(s, old_key_id)


def signing_key(settings: Settings, label: Token, pin: str) -> token.TokenKey:
    """The token's one signing key."""
    s = _session(settings, label, pin)
    keys = token.private_keys(s)
    if not keys:
        raise PkiError(ErrorKind.NOT_FOUND, f"{_ref(label)} holds no key: run `udun token keygen`")
    if len(keys) > 1:
        raise PkiError(ErrorKind.CONFLICT, f"{_ref(label)} holds {len(keys)} keys; udun expects one")
    return token.load_key(s, key_id=bytes(keys[0].id))


def csr(settings: Settings, label: Token, pin: str, subject: str, scheme: SigScheme | None = None) -> bytes:
    """A PKCS#10 request signed on the token (proof of possession)."""
    name = parse_name(subject)
    return build_csr(signing_key(settings, label, pin), name, scheme)


def import_certificates(settings: Settings, label: Token, pin: str, pem_or_der: bytes) -> x509.Certificate:
    """Write the key's certificate (and any CA certificates in the file) onto the token."""
    key = signing_key(settings, label, pin)
    certs = [x509.Certificate.load(d) for d in load_certs(pem_or_der)]
    own = [c for c in certs if c.public_key.dump() == asn1keys.PublicKeyInfo.load(key.public_key_der).dump()]
    if not own:
        raise PkiError(ErrorKind.BAD_INPUT, "no certificate in the file matches the key on the token")
    s = _session(settings, label, pin)
    token.store_certificate(s, own[0].dump(), own[0].subject.dump(), key.key_id, "udun certificate")
    for ca in (c for c in certs if c is not own[0]):
        ca_id = key_identifier(ca.public_key.dump())
        token.store_certificate(s, ca.dump(), ca.subject.dump(), ca_id, "udun CA certificate")
    return own[0]


def certificate_and_chain(settings: Settings, label: Token, pin: str) -> tuple[token.TokenKey, bytes, list[bytes]]:
    """The signing key, its certificate and the CA certificates stored with it."""
    key = signing_key(settings, label, pin)
    s = _session(settings, label, pin)
    stored = token.certificates(s)
    own = [der for kid, der in stored if kid == key.key_id]
    if not own:
        raise PkiError(ErrorKind.NOT_FOUND, f"{_ref(label)} has no certificate: run `udun token import`")
    chain = [der for kid, der in stored if kid != key.key_id]
    return key, own[0], chain


@dataclass(frozen=True)
class TokenReport:
    """What `udun token show` prints."""

    label: str
    serial: str
    keys: list[dict[str, Any]]
    certificates: list[dict[str, str]]


def show(settings: Settings, label: Token, pin: str) -> TokenReport:
    ref = _ref(label)
    tok = token.find_token(settings, label=ref.label, serial=ref.serial)
    s = _session(settings, ref, pin)
    keys = []
    for k in sorted(token.private_keys(s), key=lambda k: bytes(k.id)):
        info = token.key_attributes(k)
        info["type"] = token.load_key(s, key_id=bytes(k.id)).key_type.value
        keys.append(info)
    certs = []
    own_ids = {k["id"] for k in keys}
    # The key's own certificate first, then CA certificates; stable across calls.
    for kid, der in sorted(token.certificates(s), key=lambda item: (item[0].hex() not in own_ids, item[0])):
        c = x509.Certificate.load(der)
        certs.append({"id": kid.hex(), "subject": names.rfc4514(c.subject),
                      "serial": format(c.serial_number, "x"),
                      "not_after": c["tbs_certificate"]["validity"]["not_after"].native.isoformat()})
    return TokenReport(tok.label, tok.serial.decode(errors="replace"), keys, certs)
