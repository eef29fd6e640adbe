"""The customer's side of counter enrollment (`udun enroll`): the activation code opens the
enrollment (what the subject must be), the token makes the key (if it has none) and the
CSR, the admin service's public enrollment route issues, and the certificate and the CA
chain go onto the token. The private key never leaves the token."""
from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import pem

from config.settings import Settings
from pkicore.algorithms import KeyType
from pkicore.errors import ErrorKind, PkiError
from signer import tokens
from signer.operator_client import Send, post


@dataclass(frozen=True)
class Enrolled:
    serial: str
    subject: str
    new_key: bool


def _post(send: Send, path: str, body: dict[str, str]) -> dict[str, str]:
    return post(send, path, body, "enrollment", (200, 201))


def enroll(settings: Settings, send: Send, label: tokens.Token, pin: str, code: str,
           key_type: KeyType = KeyType.EC_P256) -> Enrolled:
    opened = _post(send, "/api/v1/enroll/lookup", {"code": code})
    new_key = False
    try:
        tokens.signing_key(settings, label, pin)
    except PkiError as e:
        if e.kind is not ErrorKind.NOT_FOUND:
            raise
        tokens.keygen(settings, label, pin, key_type)
        new_key = True
    csr_der = tokens.csr(settings, label, pin, opened["subject"])
    issued = _post(send, "/api/v1/enroll", {"code": code, "csr": pem.armor("CERTIFICATE REQUEST", csr_der).decode()})
    tokens.import_certificates(settings, label, pin, (issued["certificate_pem"] + issued["chain_pem"]).encode())
    return Enrolled(issued["serial"], opened["subject"], new_key)
