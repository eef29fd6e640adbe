"""Building and signing X.509 certificates and PKCS#10 requests with asn1crypto.

cryptography's builders cannot sign with a token key, so every structure is built here
and signed through the RawSigner seam.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from asn1crypto import csr as asn1csr
from asn1crypto import keys as asn1keys
from asn1crypto import x509

from pkicore import names, oids  # noqa: F401  (oids registers documentSigning, signingCertificateV2)
from pkicore.algorithms import RawSigner, SigScheme, default_scheme, sign, signature_algorithm
from pkicore.der import BIT_STRING, GENERALIZED_TIME, INTEGER, SEQUENCE, UTC_TIME, tlv_header

# RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
_GENERALIZED_FROM = datetime(2050, 1, 1, tzinfo=timezone.utc)


def parse_name(text: str) -> x509.Name:
    """An RFC 4514 string as a checked Name (see pkicore.names)."""
    return names.parse(text)


def x509_time(moment: datetime) -> x509.Time:
    """A Time in the encoding RFC 5280 asks for that year (whole seconds)."""
    moment = moment.astimezone(timezone.utc).replace(microsecond=0)
    if moment >= _GENERALIZED_FROM:
        return x509.Time({"general_time": moment})
    return x509.Time({"utc_time": moment})


def key_identifier(public_key_der: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING."""
    info = asn1keys.PublicKeyInfo.load(public_key_der)
    return hashlib.sha1(info["public_key"].contents[1:]).digest()


def ext(name: str, value: Any, critical: bool = False) -> dict[str, Any]:
    """One Extension entry for asn1crypto."""
    return {"extn_id": name, "critical": critical, "extn_value": value}


def uri(url: str) -> x509.GeneralName:
    return x509.GeneralName(name="uniform_resource_identifier", value=url)


def crl_distribution_points(url: str) -> dict[str, Any]:
    return ext("crl_distribution_points", [{"distribution_point": {"full_name": [uri(url)]}}])


def authority_info_access(ocsp_url: str | None, ca_issuers_url: str | None) -> dict[str, Any]:
    entries = []
    if ocsp_url:
        entries.append({"access_method": "ocsp", "access_location": uri(ocsp_url)})
    if ca_issuers_url:
        entries.append({"access_method": "ca_issuers", "access_location": uri(ca_issuers_url)})
    return ext("authority_information_access", entries)


def encode_integer(n: int) -> bytes:
    """DER INTEGER (X.690 §8.3): minimal two's complement."""
    body = n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True)
    return tlv_header(INTEGER, len(body)) + body


def encode_time(moment: datetime) -> bytes:
    """RFC 5280 §4.1.2.5 Time: UTCTime through 2049, GeneralizedTime after, 'Z', seconds."""
    moment = moment.astimezone(timezone.utc)
    if moment >= _GENERALIZED_FROM:
        text = moment.strftime("%Y%m%d%H%M%SZ").encode()
        return tlv_header(GENERALIZED_TIME, len(text)) + text
    text = moment.strftime("%y%m%d%H%M%SZ").encode()
    return tlv_header(UTC_TIME, len(text)) + text


def seq(*parts: bytes, tag: int = SEQUENCE) -> bytes:
    body = b"".join(parts)
    return tlv_header(tag, len(body)) + body


_V3 = seq(encode_integer(2), tag=0xA0)   # [0] EXPLICIT Version v3


def encode_extensions(extensions: list[dict[str, Any]]) -> list[bytes]:
    """Each Extension as DER (asn1crypto knows the value types)."""
    return [x509.Extension(e).dump() for e in extensions]


def assemble_tbs(*, serial: int, scheme: SigScheme, issuer_der: bytes, subject_der: bytes,
                 public_key_der: bytes, not_before: datetime, not_after: datetime,
                 extensions_der: list[bytes]) -> bytes:
    """A v3 TBSCertificate (RFC 5280 §4.1) from DER parts.

    Issuance assembles bytes rather than asn1crypto objects: building the object tree
    costs ~2 ms a certificate, joining cached parts a few µs.
    """
    return seq(
        _V3,
        encode_integer(serial),
        signature_algorithm(scheme).dump(),
        issuer_der,
        seq(encode_time(not_before), encode_time(not_after)),
        subject_der,
        public_key_der,
        seq(seq(*extensions_der), tag=0xA3),   # [3] EXPLICIT Extensions
    )


def build_tbs(
    *,
    serial: int,
    issuer: x509.Name,
    subject: x509.Name,
    public_key_der: bytes,
    not_before: datetime,
    not_after: datetime,
    scheme: SigScheme,
    extensions: list[dict[str, Any]],
) -> bytes:
    """A v3 TBSCertificate (DER) ready for signing."""
    return assemble_tbs(serial=serial, scheme=scheme, issuer_der=issuer.dump(), subject_der=subject.dump(),
                        public_key_der=public_key_der, not_before=not_before, not_after=not_after,
                        extensions_der=encode_extensions(extensions))


def sign_tbs(signer: RawSigner, tbs: bytes, scheme: SigScheme) -> bytes:
    """Sign a to-be-signed structure: SEQUENCE {tbs, signatureAlgorithm, BIT STRING} is both
    a Certificate (RFC 5280 §4.1.1) and a CertificateList (§5.1.1)."""
    signature, _ = sign(signer, tbs, scheme)
    bits = b"\x00" + signature                        # BIT STRING, no unused bits
    return seq(tbs, signature_algorithm(scheme).dump(), tlv_header(BIT_STRING, len(bits)) + bits)


def build_csr(signer: RawSigner, subject: x509.Name, scheme: SigScheme | None = None) -> bytes:
    """A PKCS#10 request (RFC 2986) signed by the token key: proof of possession."""
    scheme = scheme or default_scheme(signer.key_type)
    info = asn1csr.CertificationRequestInfo({
        "version": "v1",
        "subject": subject,
        "subject_pk_info": asn1keys.PublicKeyInfo.load(signer.public_key_der),
        "attributes": [],
    })
    signature, scheme = sign(signer, info.dump(), scheme)
    return asn1csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": signature_algorithm(scheme),
        "signature": signature,
    }).dump()
