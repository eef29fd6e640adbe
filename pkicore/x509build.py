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
from cryptography import x509 as cx509

from pkicore import oids  # noqa: F401  (registers documentSigning, signingCertificateV2)
from pkicore.algorithms import RawSigner, SigScheme, default_scheme, sign, signature_algorithm
from pkicore.errors import ErrorKind, PkiError

# RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
_GENERALIZED_FROM = datetime(2050, 1, 1, tzinfo=timezone.utc)


def parse_name(text: str) -> x509.Name:
    """An RFC 4514 string ("CN=张三,O=Bank,C=CN") as an X.501 Name (UTF8String values)."""
    try:
        name = cx509.Name.from_rfc4514_string(text)
    except ValueError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"subject {text!r} is not an RFC 4514 name: {e}") from e
    if not name.rdns:
        raise PkiError(ErrorKind.BAD_INPUT, "the subject must not be empty")
    try:
        der = name.public_bytes()
    except ValueError as e:  # e.g. a country code that is not 2 letters
        raise PkiError(ErrorKind.BAD_INPUT, f"subject: {e}") from e
    return x509.Name.load(der)


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
) -> x509.TbsCertificate:
    """A v3 TBSCertificate ready for signing."""
    return x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial,
        "signature": signature_algorithm(scheme),
        "issuer": issuer,
        "validity": {"not_before": x509_time(not_before), "not_after": x509_time(not_after)},
        "subject": subject,
        "subject_public_key_info": asn1keys.PublicKeyInfo.load(public_key_der),
        "extensions": extensions,
    })


def sign_tbs(signer: RawSigner, tbs: x509.TbsCertificate, scheme: SigScheme) -> bytes:
    """Sign a TBSCertificate; the result is the certificate's DER."""
    signature, _ = sign(signer, tbs.dump(), scheme)
    return x509.Certificate({
        "tbs_certificate": tbs,
        "signature_algorithm": signature_algorithm(scheme),
        "signature_value": signature,
    }).dump()


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
