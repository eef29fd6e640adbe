"""Verifying a signed payment: CMS SignedData (RFC 5652), CAdES-BES, our transaction.

Built for speed: the CMS is read with a minimal DER reader (pkicore.cms_view), parsed
signer certificates and public keys are cached, and chains are validated once per
certificate (pkicore.pathval). The result is always a Report; only input that is not CMS
at all raises PkiError(BAD_INPUT).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import algos, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pkicore import der, oids
from pkicore import tx as txmod
from pkicore.cms_view import (DIGESTS, ID_CMS_ALGORITHM_PROTECTION, ID_CONTENT_TYPE, ID_DATA,
                              ID_MESSAGE_DIGEST, ID_SIGNING_CERTIFICATE_V2, ID_SIGNING_TIME, SIGNATURES,
                              SignerView, view)
from pkicore.der import DerError
from pkicore.errors import PkiError
from pkicore.pathval import ChainValidator
from pkicore.report import Check, Report, Sub, conclude

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
_DOCUMENT_SIGNING_OK = {"document_signing", oids.ID_KP_DOCUMENT_SIGNING, "any_extended_key_usage"}


@dataclass(frozen=True)
class SignerCert:
    """A parsed certificate and what verification needs from it (cached per DER)."""

    asn1: x509.Certificate
    der: bytes
    sha256: bytes
    public_key: Any
    identity: dict[str, Any]
    issuer_der: bytes
    serial: int
    ski: bytes | None
    key_usage: frozenset[str]
    ext_key_usage: frozenset[str] | None


def _parse_cert(der_bytes: bytes) -> SignerCert:
    asn1 = x509.Certificate.load(der_bytes)
    c = cx509.load_der_x509_certificate(der_bytes)
    ku = asn1.key_usage_value
    eku = asn1.extended_key_usage_value
    identity = {
        "subject": c.subject.rfc4514_string(),
        "issuer": c.issuer.rfc4514_string(),
        "serial": format(c.serial_number, "x"),
        "not_before": c.not_valid_before_utc.isoformat().replace("+00:00", "Z"),
        "not_after": c.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
        "certificate_sha256": hashlib.sha256(der_bytes).hexdigest(),
    }
    return SignerCert(
        asn1=asn1,
        der=der_bytes,
        sha256=hashlib.sha256(der_bytes).digest(),
        public_key=serialization.load_der_public_key(asn1.public_key.dump()),
        identity=identity,
        issuer_der=asn1.issuer.dump(),
        serial=asn1.serial_number,
        ski=asn1.key_identifier,
        key_usage=frozenset(ku.native) if ku is not None else frozenset(),
        ext_key_usage=frozenset(eku.native) if eku is not None else None,
    )


class _CertCache:
    """Parsed certificates by DER (bounded, least recently used out)."""

    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[bytes, SignerCert] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, der_bytes: bytes) -> SignerCert:
        with self._lock:
            hit = self._items.get(der_bytes)
            if hit is not None:
                return hit
        parsed = _parse_cert(der_bytes)
        with self._lock:
            self._items[der_bytes] = parsed
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return parsed


def _verify_signature(cert: SignerCert, s: SignerView, digest_name: str, data: bytes) -> str | None:
    """None when the signature verifies, else why not."""
    known = SIGNATURES.get(s.signature_oid)
    if known is None:
        return "unsupported signature algorithm"
    kind, implied = known
    key = cert.public_key
    try:
        if kind == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return "ECDSA signature but the certificate holds no EC key"
            key.verify(s.signature, data, ec.ECDSA(_HASHES[implied or digest_name]()))
        elif kind == "pkcs1":
            if not isinstance(key, rsa.RSAPublicKey):
                return "RSA signature but the certificate holds no RSA key"
            key.verify(s.signature, data, padding.PKCS1v15(), _HASHES[implied or digest_name]())
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                return "RSA-PSS signature but the certificate holds no RSA key"
            if s.signature_params is None:
                return "RSA-PSS without parameters"
            params = algos.RSASSAPSSParams.load(s.signature_params)
            hname = params["hash_algorithm"]["algorithm"].native
            mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            if hname not in _HASHES or mgf_hash not in _HASHES:
                return f"unsupported PSS hash {hname}/{mgf_hash}"
            pss = padding.PSS(mgf=padding.MGF1(_HASHES[mgf_hash]()), salt_length=params["salt_length"].native)
            key.verify(s.signature, data, pss, _HASHES[hname]())
    except InvalidSignature:
        return "the signature does not verify with the signer's public key"
    except (KeyError, ValueError, TypeError) as e:
        return f"malformed signature or parameters ({type(e).__name__})"
    return None


class _Checks:
    """The list of checks a verification makes, in order."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def ok(self, name: str, detail: str = "") -> None:
        self.items.append(Check(name, True, detail))

    def fail(self, name: str, detail: str, sub: Sub | None) -> None:
        self.items.append(Check(name, False, detail, sub))


class Verifier:
    """Verifies signed payments against one set of trust anchors."""

    def __init__(self, chains: ChainValidator) -> None:
        self.chains = chains
        self._certs = _CertCache()

    def verify(self, cms_der: bytes, content: bytes | None = None) -> Report:
        """Verify; raises PkiError(BAD_INPUT) only if ``cms_der`` is not CMS."""
        cms = view(cms_der)
        checks = _Checks()
        try:
            return self._verify(cms.econtent_type, cms.content, cms.certificates, cms.signers, content, checks)
        except (DerError, ValueError, TypeError, KeyError) as e:
            # The outer structure parsed but something inside is malformed.
            checks.fail("structure", f"malformed CMS ({e})", Sub.FORMAT_FAILURE)
            return conclude(checks.items)

    def _verify(self, econtent_type: bytes, attached: bytes | None, certs_der: tuple[bytes, ...],
                signers: tuple[SignerView, ...], external: bytes | None, c: _Checks) -> Report:
        if len(signers) != 1:
            c.fail("structure", f"expected exactly one signer, found {len(signers)}", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        s = signers[0]
        if econtent_type != ID_DATA:
            c.fail("structure", "the encapsulated content type is not id-data", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        if s.signed_attrs is None:
            c.fail("signed attributes", "missing (CAdES-BES requires them)", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        if s.duplicate_attribute:
            c.fail("signed attributes", "an attribute appears twice (RFC 5652 §5.3)", Sub.FORMAT_FAILURE)

        # The content: attached, or handed in for a detached signature.
        if attached is not None:
            content = attached
            if external is not None and external != attached:
                c.fail("content", "the content given differs from the attached content", Sub.HASH_FAILURE)
        elif external is not None:
            content = external
        else:
            c.fail("content", "detached signature and no content given", Sub.SIGNED_DATA_NOT_FOUND)
            return conclude(c.items)

        def single(oid: bytes, name: str) -> tuple[bytes, der.Tlv] | None:
            values = s.attributes.get(oid)
            if values is None:
                return None
            if len(values) != 1:
                c.fail("signed attributes", f"{name} must have exactly one value", Sub.FORMAT_FAILURE)
            return values[0], der.top(values[0])

        ct = single(ID_CONTENT_TYPE, "content-type")
        if ct is None or ct[1].tag != der.OID or der.contents(*ct) != econtent_type:
            c.fail("content type", "content-type attribute missing or not matching", Sub.FORMAT_FAILURE)

        digest_name = DIGESTS.get(s.digest_oid)
        if digest_name is None:
            c.fail("message digest", "unsupported digest algorithm", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        md = single(ID_MESSAGE_DIGEST, "message-digest")
        if md is None or md[1].tag != der.OCTET_STRING:
            c.fail("message digest", "message-digest attribute missing", Sub.FORMAT_FAILURE)
        elif hashlib.new(digest_name, content).digest() != der.contents(*md):
            c.fail("message digest", "the content does not match the signed digest", Sub.HASH_FAILURE)
        else:
            c.ok("message digest", digest_name)

        certs = [self._certs.get(d) for d in certs_der]
        signer = self._find_signer(s, certs)
        if signer is None:
            c.fail("signer certificate", "the signer's certificate is not in the CMS", Sub.NO_SIGNING_CERTIFICATE_FOUND)
            return conclude(c.items)

        why = _verify_signature(signer, s, digest_name, der.as_set(s.signed_attrs))
        if why:
            c.fail("signature", why, Sub.SIG_CRYPTO_FAILURE)
        else:
            c.ok("signature", SIGNATURES[s.signature_oid][0])

        self._check_algorithm_protection(single(ID_CMS_ALGORITHM_PROTECTION, "cmsAlgorithmProtection"), s, c)
        self._check_signing_certificate(single(ID_SIGNING_CERTIFICATE_V2, "signingCertificateV2"), signer, c)

        st = single(ID_SIGNING_TIME, "signing-time")
        signing_time: datetime | None = der.time(*st) if st is not None else None
        if signing_time is None:
            c.fail("signing time", "signing-time attribute missing", Sub.FORMAT_FAILURE)
        else:
            c.ok("signing time", "claimed by the signer (not proven)")
            others = [x.asn1 for x in certs if x is not signer]
            chain = self.chains.validate(signer.asn1, others, signing_time, leaf_sha256=signer.sha256)
            if chain.ok:
                c.ok("certificate chain", f"{chain.detail}, valid at the signing time")
            else:
                c.fail("certificate chain", chain.detail, chain.failure)

        if "non_repudiation" not in signer.key_usage:
            c.fail("key usage", "the certificate does not allow nonRepudiation", Sub.SIG_CONSTRAINTS_FAILURE)
        elif signer.ext_key_usage is not None and not (_DOCUMENT_SIGNING_OK & signer.ext_key_usage):
            c.fail("key usage", "extendedKeyUsage lacks documentSigning (RFC 9336)", Sub.SIG_CONSTRAINTS_FAILURE)
        else:
            c.ok("key usage", "nonRepudiation")

        transaction = None
        try:
            transaction = txmod.load_canonical(content).raw
            c.ok("transaction", "valid canonical payment (version 1)")
        except PkiError as e:
            c.fail("transaction", e.message, Sub.FORMAT_FAILURE)

        return conclude(c.items, signer=signer.identity, signing_time=signing_time,
                        transaction=transaction, signer_cert_der=signer.der)

    @staticmethod
    def _find_signer(s: SignerView, certs: list[SignerCert]) -> SignerCert | None:
        """The certificate the SignerIdentifier names (RFC 5652 §5.3)."""
        if s.sid_ski is not None:
            return next((x for x in certs if x.ski == s.sid_ski), None)
        for x in certs:
            if x.serial == s.sid_serial:
                # Byte equality first (the usual case); RFC 5280 name matching as a fallback.
                if x.issuer_der == s.sid_issuer or x.asn1.issuer == x509.Name.load(s.sid_issuer):
                    return x
        return None

    @staticmethod
    def _check_signing_certificate(value: tuple[bytes, der.Tlv] | None, signer: SignerCert, c: _Checks) -> None:
        """RFC 5035 §3 / EN 319 122-1 §5.2.2: the signed attribute must name this certificate."""
        name = "signing certificate"
        if value is None:
            c.fail(name, "signingCertificateV2 attribute missing (CAdES-BES requires it)", Sub.FORMAT_FAILURE)
            return
        buf, top = value
        certs = der.children(buf, der.expect(der.children(buf, top)[0], der.SEQUENCE, "certs"))
        fields = der.children(buf, der.expect(certs[0], der.SEQUENCE, "ESSCertIDv2"))
        hash_name = "sha256"                      # the DEFAULT (RFC 5035 §4)
        if fields and fields[0].tag == der.SEQUENCE:
            alg = der.children(buf, fields[0])
            hash_name = DIGESTS.get(der.contents(buf, alg[0]), "")
            fields = fields[1:]
        if not hash_name:
            c.fail(name, "unsupported hash in signingCertificateV2", Sub.FORMAT_FAILURE)
            return
        cert_hash = der.contents(buf, der.expect(fields[0], der.OCTET_STRING, "certHash"))
        digest = signer.sha256 if hash_name == "sha256" else hashlib.new(hash_name, signer.der).digest()
        if digest != cert_hash:
            c.fail(name, "signingCertificateV2 names another certificate", Sub.NO_SIGNING_CERTIFICATE_FOUND)
            return
        if len(fields) > 1:                       # IssuerSerial
            issuer_serial = der.children(buf, der.expect(fields[1], der.SEQUENCE, "IssuerSerial"))
            if der.integer(buf, issuer_serial[1]) != signer.serial:
                c.fail(name, "signingCertificateV2 issuerSerial names another certificate",
                       Sub.NO_SIGNING_CERTIFICATE_FOUND)
                return
        c.ok(name, "signingCertificateV2 matches the signer certificate")

    @staticmethod
    def _check_algorithm_protection(value: tuple[bytes, der.Tlv] | None, s: SignerView, c: _Checks) -> None:
        """RFC 6211 §3: if present, the protected algorithms must be the ones used."""
        if value is None:
            return
        buf, top = value
        parts = der.children(buf, der.expect(top, der.SEQUENCE, "CMSAlgorithmProtection"))
        digest_oid = der.contents(buf, der.children(buf, parts[0])[0])
        sig = next((p for p in parts[1:] if p.tag == 0xA1), None)    # [1] IMPLICIT signatureAlgorithm
        sig_oid = der.contents(buf, der.children(buf, sig)[0]) if sig is not None else None
        if digest_oid == s.digest_oid and sig_oid == s.signature_oid:
            c.ok("algorithm protection", "cmsAlgorithmProtection matches")
        else:
            c.fail("algorithm protection", "cmsAlgorithmProtection does not match the algorithms used",
                   Sub.FORMAT_FAILURE)
