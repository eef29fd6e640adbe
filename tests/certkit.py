"""Certificates and CRLs of any shape for tests, built with asn1crypto's declarative types.

udun itself builds with cryptography's builders (pkicore.x509build, pkicore.crlbuild),
which refuse much of what tests need to make on purpose (a negative serial, a duplicate
extension, an AKI that matches nothing, odd name constraints). Extensions are asn1crypto
dicts (``ext(...)``) or cryptography Extensions (udun's profiles), mixed freely.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from asn1crypto import keys, x509
from cryptography import x509 as cx509

from pkicore.algorithms import RawSigner, SigScheme, sign, signature_algorithm
from pkicore.x509build import x509_time


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


def _extension(e: dict[str, Any] | cx509.Extension[Any]) -> x509.Extension:
    if isinstance(e, dict):
        return x509.Extension(e)
    oid = e.oid.dotted_string
    spec = x509.Extension._oid_specs[x509.ExtensionId.map(oid)]
    return x509.Extension({"extn_id": oid, "critical": e.critical, "extn_value": spec.load(e.value.public_bytes())})


def build_tbs(*, serial: int, issuer: x509.Name, subject: x509.Name, public_key_der: bytes, not_before: datetime,
              not_after: datetime, scheme: SigScheme, extensions: Iterable[Any]) -> bytes:
    """A v3 TBSCertificate (DER)."""
    return x509.TbsCertificate({
        "version": "v3", "serial_number": serial, "signature": signature_algorithm(scheme),
        "issuer": issuer, "validity": {"not_before": x509_time(not_before), "not_after": x509_time(not_after)},
        "subject": subject, "subject_public_key_info": keys.PublicKeyInfo.load(public_key_der),
        "extensions": [_extension(e) for e in extensions],
    }).dump()


def sign_tbs(signer: RawSigner, tbs: bytes, scheme: SigScheme) -> bytes:
    """The Certificate (DER) of a TBSCertificate signed by ``signer``."""
    signature, scheme = sign(signer, tbs, scheme)
    return x509.Certificate({"tbs_certificate": x509.TbsCertificate.load(tbs),
                             "signature_algorithm": signature_algorithm(scheme), "signature_value": signature}).dump()



def build_csr(signer: RawSigner, subject: x509.Name, scheme: SigScheme | None = None) -> bytes:
    """A PKCS#10 request for any subject, even one udun would never encode (policy tests)."""
    from asn1crypto import csr

    info = csr.CertificationRequestInfo({"version": "v1", "subject": subject,
                                         "subject_pk_info": keys.PublicKeyInfo.load(signer.public_key_der),
                                         "attributes": []})
    signature, scheme = sign(signer, info.dump(), scheme)
    return csr.CertificationRequest({"certification_request_info": info,
                                     "signature_algorithm": signature_algorithm(scheme),
                                     "signature": signature}).dump()
