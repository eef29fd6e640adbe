"""The issuer: signs what policy prepared and lint accepted, nothing else."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import core, x509
from cryptography import x509 as cx509

from pkicore import der, oids, sigverify
from pkicore.algorithms import RawSigner, SigScheme, default_scheme, signature_algorithm
from pkicore.der import DerError
from pkicore.errors import ErrorKind, PkiError
from pkicore.x509build import der_of, name_of, sign_certificate


@dataclass(frozen=True)
class Prepared:
    """A certificate waiting to be signed: its builder, the TBS (DER) it makes, and the
    facts the store records."""

    builder: cx509.CertificateBuilder
    tbs: bytes
    serial: int
    not_before: datetime
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    @property
    def tbs_sha256(self) -> str:
        return hashlib.sha256(self.tbs).hexdigest()


_AKI_OID = core.ObjectIdentifier(oids.ID_CE_AUTHORITY_KEY_IDENTIFIER).contents
_ALLOWED_SIGNATURES = {core.ObjectIdentifier(o).contents
                       for o in (oids.ECDSA_WITH_SHA256, oids.SHA256_WITH_RSA, oids.RSASSA_PSS)}


class LintFacts:
    """What the CA knows about itself, read once: lint compares the TBS against it."""

    def __init__(self, issuer_cert: x509.Certificate) -> None:
        self.subject_der = issuer_cert.subject.dump()
        self.ski = issuer_cert.key_identifier
        self.not_after = issuer_cert["tbs_certificate"]["validity"]["not_after"].native


def lint(tbs_der: bytes, facts: LintFacts) -> None:
    """Pre-signing checks on the exact bytes about to be signed (RFC 5280 §4.1).

    Read with the DER reader, independently of the code that assembled the bytes; pkilint
    runs on top in the tests.
    """
    def bad(why: str) -> PkiError:
        return PkiError(ErrorKind.INTERNAL, f"lint: {why}")

    try:
        top = der.top(tbs_der)
        f = der.children(tbs_der, der.expect(top, der.SEQUENCE, "TBSCertificate"))
        version = der.integer(tbs_der, der.children(tbs_der, der.expect(f[0], 0xA0, "version"))[0])
        serial_tlv = der.expect(f[1], der.INTEGER, "serialNumber")
        serial = der.integer(tbs_der, serial_tlv)
        sig_oid = der.contents(tbs_der, der.children(tbs_der, f[2])[0])
        issuer = der.whole(tbs_der, der.expect(f[3], der.SEQUENCE, "issuer"))
        nb_tlv, na_tlv = der.children(tbs_der, der.expect(f[4], der.SEQUENCE, "validity"))
        not_before, not_after = der.time(tbs_der, nb_tlv), der.time(tbs_der, na_tlv)
        der.expect(f[5], der.SEQUENCE, "subject")
        der.expect(f[6], der.SEQUENCE, "subjectPublicKeyInfo")
        exts = der.children(tbs_der, der.children(tbs_der, der.expect(f[-1], 0xA3, "extensions"))[0])
        ext_ids: list[bytes] = []
        aki = None
        for e in exts:
            parts = der.children(tbs_der, e)
            oid = der.contents(tbs_der, parts[0])
            ext_ids.append(oid)
            if oid == _AKI_OID:
                octets = der.contents(tbs_der, parts[-1])
                keyid = der.children(octets, der.top(octets))[0]
                aki = der.contents(octets, keyid) if keyid.tag == 0x80 else None
    except (DerError, ValueError, IndexError) as e:
        raise bad(f"the TBS certificate does not parse ({e})") from e
    if version != 2:
        raise bad("version must be v3")
    if serial <= 0 or serial_tlv.end - serial_tlv.cstart > 20:
        raise bad("serial must be positive and at most 20 octets (§4.1.2.2)")
    if not not_before < not_after:
        raise bad("notBefore must precede notAfter")
    if issuer != facts.subject_der:
        raise bad("issuer name differs from the CA subject (§4.1.2.4)")
    if not_after > facts.not_after:
        raise bad("validity outlasts the issuing CA")
    if len(ext_ids) != len(set(ext_ids)):
        raise bad("duplicate extension (§4.2)")
    if aki is None or aki != facts.ski:
        raise bad("AKI must match the issuer's SKI (§4.2.1.1)")
    if sig_oid not in _ALLOWED_SIGNATURES:
        raise bad("unexpected signature algorithm")


class Issuer:
    """Signs prepared certificates with one CA key."""

    def __init__(self, key: RawSigner, cert_der: bytes, scheme: SigScheme | None = None) -> None:
        self.key = key
        self.cert = x509.Certificate.load(cert_der)
        self.scheme = scheme or default_scheme(key.key_type)
        self.lint_facts = LintFacts(self.cert)
        self.subject_name = name_of(cert_der)          # the issuer name of what it signs, as encoded
        # The one signature check (pkicore.sigverify), with the CA's key and scheme read once.
        self._ca_key = sigverify.load_key(self.cert.public_key.dump())
        self._alg = sigverify.cached_identifier(signature_algorithm(self.scheme).dump())

    def sign(self, prepared: Prepared) -> bytes:
        """Sign exactly the TBS that was linted and recorded (the key adapter refuses any
        other bytes), then check the signature with the CA certificate before anyone sees
        it: a token fault or a stale key handle must never produce a bad certificate."""
        cert = sign_certificate(prepared.builder, self.key, self.scheme, tbs=prepared.tbs)
        try:
            sigverify.verify(self._ca_key, cert.signature, prepared.tbs, self._alg)
        except (ValueError, TypeError, sigverify.SignatureError) as e:
            raise PkiError(ErrorKind.TOKEN, "the token produced a signature that does not verify") from e
        return der_of(cert)
