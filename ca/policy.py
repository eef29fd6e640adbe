"""The registration authority: decides whether a CSR is acceptable. Signs nothing."""
from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import csr as asn1csr
from asn1crypto import pem, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca.profiles import PROFILES
from pkicore import names
from pkicore import sigverify
from pkicore.errors import ErrorKind, PkiError

MAX_CSR_BYTES = 64 * 1024
ALLOWED_RSA_BITS = (2048, 3072, 4096)

# The subject attribute types (asn1crypto names) each profile takes; any other is refused,
# even one pkicore.names knows how to encode. A profile missing here takes no request.
_PERSON = frozenset({"country_name", "state_or_province_name", "locality_name", "organization_name",
                     "organizational_unit_name", "common_name", "serial_number", "email_address"})
_SERVICE = frozenset({"country_name", "organization_name", "organizational_unit_name", "common_name"})
SUBJECT_ATTRIBUTES: dict[str, frozenset[str]] = {
    "client": _PERSON,
    "ocsp-responder": _SERVICE,     # the CA's delegated keys: O and CN (ca.renewal)
    "tsa": _SERVICE,
}


@dataclass(frozen=True)
class CheckedRequest:
    """A CSR that passed policy: proof of possession, key and subject (re-encoded)."""

    subject: x509.Name
    public_key_der: bytes
    subject_text: str
    subject_name: cx509.Name        # the same subject as cryptography's Name, for its builder


def load_csr_bytes(data: bytes) -> bytes:
    """DER from a PEM or DER CSR file."""
    if len(data) > MAX_CSR_BYTES:
        raise PkiError(ErrorKind.BAD_CSR, "the CSR is too large")
    if pem.detect(data):
        try:
            kind, _, der = pem.unarmor(data)
        except ValueError as e:
            raise PkiError(ErrorKind.BAD_CSR, "the CSR PEM is malformed") from e
        if kind not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
            raise PkiError(ErrorKind.BAD_CSR, f"expected a CERTIFICATE REQUEST, got {kind}")
        return bytes(der)
    return data


def _proof_of_possession(parsed: asn1csr.CertificationRequest) -> bool:
    """The CSR's signature with its own key (RFC 2986 §4.2), by the one signature check."""
    info = parsed["certification_request_info"]
    try:
        sigverify.verify_info(info["subject_pk_info"], parsed["signature"].native, info.dump(),
                              parsed["signature_algorithm"])
    except sigverify.SignatureError:
        return False
    return True


def _attribute_label(atv: x509.NameTypeAndValue) -> str:
    """An attribute type as people read it: CN, O, ..., else its name and OID."""
    kind = atv["type"]
    name = kind.native
    if name in names.ATTRIBUTES:
        return names.short_name(name)
    return f"{name} ({kind.dotted})" if name != kind.dotted else name


def _check_subject_attributes(subject: x509.Name, profile: str) -> None:
    """Every attribute of the requested subject is one the profile takes."""
    allowed = SUBJECT_ATTRIBUTES.get(profile)
    if allowed is None:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    for rdn in subject.chosen:
        for atv in rdn:
            if atv["type"].native not in allowed:
                raise PkiError(ErrorKind.POLICY, f"subject attribute {_attribute_label(atv)} is not allowed "
                                                 f"in the {profile} profile")


def check_csr(der: bytes, profile: str = "client") -> CheckedRequest:
    """Proof of possession, an acceptable key, and a subject the profile allows."""
    try:
        req = cx509.load_der_x509_csr(der)
        parsed = asn1csr.CertificationRequest.load(der)
        info = parsed["certification_request_info"]
        valid = _proof_of_possession(parsed)
        subject = info["subject"]
        subject.native  # noqa: B018  full parse: garbage raises here
        public = req.public_key()
    except PkiError:
        raise
    except Exception as e:  # cryptography/asn1crypto raise ValueError and friends
        raise PkiError(ErrorKind.BAD_CSR, "not a valid PKCS#10 certificate request") from e
    if not valid:
        raise PkiError(ErrorKind.BAD_CSR, "the CSR signature does not verify (no proof of possession)")
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name != "secp256r1":
            raise PkiError(ErrorKind.POLICY, f"EC curve {public.curve.name} is not allowed; use P-256")
    elif isinstance(public, rsa.RSAPublicKey):
        if public.key_size not in ALLOWED_RSA_BITS:
            raise PkiError(ErrorKind.POLICY, f"RSA-{public.key_size} is not allowed; use 2048, 3072 or 4096")
    else:
        raise PkiError(ErrorKind.POLICY, "only EC P-256 and RSA keys are allowed")
    _check_subject_attributes(subject, profile)
    subject, subject_name = names.canonical(subject)
    # Re-encode the key canonically rather than copying the CSR's bytes (e.g. an RSA key
    # whose NULL parameters were left out would otherwise land in the certificate).
    canonical = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return CheckedRequest(subject=subject, public_key_der=canonical, subject_text=names.rfc4514(subject),
                          subject_name=subject_name)
