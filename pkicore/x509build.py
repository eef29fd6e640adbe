"""X.509 certificates and PKCS#10 requests through cryptography's builders.

The builders sign through the RawSigner seam (pkicore.keyadapter), so a certificate is
signed where its issuer's key lives. Issuance takes the to-be-signed bytes first
(tbs_certificate), lints and records them, and then signs exactly those bytes.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Sequence

from asn1crypto import keys as asn1keys
from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID

from pkicore import keyadapter, names
from pkicore.algorithms import RawSigner, SigScheme, default_scheme
from pkicore.errors import ErrorKind, PkiError

# RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
_GENERALIZED_FROM = datetime(2050, 1, 1, tzinfo=timezone.utc)

Extension = cx509.Extension[cx509.ExtensionType]


def parse_name(text: str) -> x509.Name:
    """An RFC 4514 string as a checked Name (see pkicore.names)."""
    return names.parse(text)


def x509_time(moment: datetime) -> x509.Time:
    """A Time in the encoding RFC 5280 asks for that year (whole seconds), for CMS signingTime."""
    moment = moment.astimezone(timezone.utc).replace(microsecond=0)
    if moment >= _GENERALIZED_FROM:
        return x509.Time({"general_time": moment})
    return x509.Time({"utc_time": moment})


def key_identifier(public_key_der: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING."""
    info = asn1keys.PublicKeyInfo.load(public_key_der)
    return hashlib.sha1(info["public_key"].contents[1:]).digest()


# --- extensions (RFC 5280 §4.2), as cryptography's types --------------------------

def ext(value: cx509.ExtensionType, critical: bool = False) -> Extension:
    return cx509.Extension(value.oid, critical, value)


def identifiers(ski: bytes, aki: bytes | None) -> list[Extension]:
    """subjectKeyIdentifier, and authorityKeyIdentifier by key identifier only (§4.2.1.1)."""
    out = [ext(cx509.SubjectKeyIdentifier(ski))]
    if aki is not None:
        out.append(ext(cx509.AuthorityKeyIdentifier(aki, None, None)))
    return out


def crl_distribution_points(url: str) -> Extension:
    return ext(cx509.CRLDistributionPoints([cx509.DistributionPoint(
        full_name=[cx509.UniformResourceIdentifier(url)], relative_name=None, reasons=None, crl_issuer=None)]))


def authority_info_access(ocsp_url: str | None, ca_issuers_url: str | None) -> Extension:
    entries = []
    if ocsp_url:
        entries.append(cx509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                               cx509.UniformResourceIdentifier(ocsp_url)))
    if ca_issuers_url:
        entries.append(cx509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                               cx509.UniformResourceIdentifier(ca_issuers_url)))
    return ext(cx509.AuthorityInformationAccess(entries))


# --- certificates -----------------------------------------------------------------

def certificate_builder(*, serial: int, issuer: cx509.Name, subject: cx509.Name, public_key_der: bytes,
                        not_before: datetime, not_after: datetime,
                        extensions: Sequence[Extension]) -> cx509.CertificateBuilder:
    """A v3 certificate, not yet signed (times in whole seconds, extensions in order)."""
    if not_before.microsecond or not_after.microsecond:
        raise PkiError(ErrorKind.INTERNAL, "certificate times are whole seconds")
    public = serialization.load_der_public_key(public_key_der)
    if not isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise PkiError(ErrorKind.UNSUPPORTED, "udun certifies EC and RSA keys only")
    builder = (cx509.CertificateBuilder().issuer_name(issuer).subject_name(subject).public_key(public)
               .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after))
    for e in extensions:
        builder = builder.add_extension(e.value, e.critical)
    return builder


def tbs_certificate(builder: cx509.CertificateBuilder, signer: RawSigner, scheme: SigScheme) -> bytes:
    """The TBSCertificate the builder makes for this issuer key and scheme, unsigned."""
    return keyadapter.to_be_signed(lambda key: builder.sign(key, **keyadapter.builder_args(scheme)),
                                   signer, scheme)


def sign_certificate(builder: cx509.CertificateBuilder, signer: RawSigner, scheme: SigScheme,
                     tbs: bytes | None = None) -> cx509.Certificate:
    """The certificate signed by ``signer``; with ``tbs``, only if it is those bytes."""
    only = hashlib.sha256(tbs).digest() if tbs is not None else None
    return builder.sign(keyadapter.private_key(signer, scheme, only=only), **keyadapter.builder_args(scheme))


def der_of(cert: cx509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def build_csr(signer: RawSigner, subject: x509.Name, scheme: SigScheme | None = None) -> bytes:
    """A PKCS#10 request (RFC 2986) signed by the token key: proof of possession."""
    scheme = scheme or default_scheme(signer.key_type)
    builder = cx509.CertificateSigningRequestBuilder(subject_name=names.to_cryptography(subject))
    csr = builder.sign(keyadapter.private_key(signer, scheme), **keyadapter.builder_args(scheme))
    return csr.public_bytes(serialization.Encoding.DER)


def name_of(cert_der: bytes, which: str = "subject") -> cx509.Name:
    """A certificate's subject or issuer as cryptography's Name, keeping its encoding."""
    cert = cx509.load_der_x509_certificate(cert_der)
    return cert.subject if which == "subject" else cert.issuer


