"""The customer's side of renewal and re-key (`udun token renew`, `udun token rekey`),
against the admin service's public routes (ca.rekey). The private keys never leave the
token; a refused re-key leaves the token as it was."""
from __future__ import annotations

import base64
from dataclasses import dataclass

from asn1crypto import keys as asn1keys
from asn1crypto import pem, x509

from config.settings import Settings
from keystore.token import TokenKey
from pkicore import names
from pkicore.adminsig import rekey_message, renew_message
from pkicore.algorithms import KeyType, sign
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import load_certs
from pkicore.x509build import build_csr
from signer import tokens
from signer.operator_client import Send, post

@dataclass(frozen=True)
class Renewed:
    old_serial: str
    serial: str
    not_after: str


def _post(send: Send, path: str, body: dict[str, str]) -> dict[str, str]:
    """The 201 answer; PkiError with the refusal's kind (UNAVAILABLE: no answer, or a 5xx:
    the outcome is not known)."""
    return post(send, path, body, path.rsplit("/", 1)[-1])


def _current(settings: Settings, label: tokens.Token, pin: str) -> tuple[TokenKey, x509.Certificate]:
    key, cert_der, _ = tokens.certificate_and_chain(settings, label, pin)
    return key, x509.Certificate.load(cert_der)


def _renewed(old: x509.Certificate, answer: dict[str, str]) -> tuple[Renewed, bytes]:
    der = load_certs(answer["certificate_pem"].encode())[0]
    new = x509.Certificate.load(der)
    return Renewed(format(old.serial_number, "x"), answer["serial"],
                   new["tbs_certificate"]["validity"]["not_after"].native.isoformat()), der


def renew(settings: Settings, send: Send, label: tokens.Token, pin: str) -> Renewed:
    """A new certificate for the token's key, onto the token."""
    key, cert = _current(settings, label, pin)
    serial = format(cert.serial_number, "x")
    csr_der = tokens.csr(settings, label, pin, names.rfc4514(cert.subject))
    signature, scheme = sign(key, renew_message(serial, csr_der))
    answer = _post(send, "/api/v1/renew", {"serial": serial, "csr": pem.armor("CERTIFICATE REQUEST", csr_der).decode(),
                                           "signature": base64.b64encode(signature).decode(), "scheme": scheme.value})
    done, _ = _renewed(cert, answer)
    tokens.import_certificates(settings, label, pin, (answer["certificate_pem"] + answer["chain_pem"]).encode())
    return done


def rekey(settings: Settings, send: Send, label: tokens.Token, pin: str, key_type: KeyType | None = None) -> Renewed:
    """A new key pair on the token and its certificate; the old key and certificate go (the
    CA revokes the old certificate as superseded)."""
    old_key, cert = _current(settings, label, pin)
    serial = format(cert.serial_number, "x")
    new_key = tokens.new_key_beside(settings, label, pin, key_type or old_key.key_type)
    try:
        csr_der = build_csr(new_key, names.parse(names.rfc4514(cert.subject)))
        signature, scheme = sign(old_key, rekey_message(serial, csr_der))
        answer = _post(send, "/api/v1/rekey", {"serial": serial, "csr": pem.armor("CERTIFICATE REQUEST", csr_der)
                                               .decode(), "signature": base64.b64encode(signature).decode(),
                                               "scheme": scheme.value})
        done, der = _renewed(cert, answer)
        if x509.Certificate.load(der).public_key.dump() != asn1keys.PublicKeyInfo.load(new_key.public_key_der).dump():
            raise PkiError(ErrorKind.BAD_INPUT, "the service answered a certificate for another key")
    except PkiError as e:
        if e.kind is ErrorKind.UNAVAILABLE:
            # No answer: the CA may have issued (and revoked the old certificate). The new
            # key stays on the token beside the old one; the bank can tell which holds.
            raise PkiError(ErrorKind.UNAVAILABLE, f"{e.message}; the outcome is not known, so the new key was kept "
                                                  f"on the token (id {new_key.key_id.hex()}): ask the bank whether "
                                                  f"certificate {serial} was replaced") from e
        tokens.drop_key(settings, label, pin, new_key.key_id)          # refused: the token as it was
        raise
    except BaseException:
        tokens.drop_key(settings, label, pin, new_key.key_id)
        raise
    tokens.finish_rekey(settings, label, pin, old_key.key_id, new_key, der)
    tokens.import_chain(settings, label, pin, answer["chain_pem"].encode())
    return done
