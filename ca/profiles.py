"""Certificate profiles: which extensions each kind of certificate carries (RFC 5280 §4.2)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509 as cx509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from config.settings import Settings
from pkicore import oids
from pkicore.x509build import Extension, authority_info_access, crl_distribution_points, ext, identifiers


def _key_usage(*, digital_signature: bool = False, content_commitment: bool = False,
               cert_and_crl_sign: bool = False) -> cx509.KeyUsage:
    """RFC 5280 §4.2.1.3 KeyUsage with the bits udun sets (contentCommitment was nonRepudiation)."""
    return cx509.KeyUsage(digital_signature=digital_signature, content_commitment=content_commitment,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=cert_and_crl_sign, crl_sign=cert_and_crl_sign,
                          encipher_only=False, decipher_only=False)


@dataclass(frozen=True)
class Profile:
    """A named client profile."""

    name: str
    validity: timedelta
    key_usage: cx509.KeyUsage
    ext_key_usage: tuple[ObjectIdentifier, ...]


def client_profile(settings: Settings) -> Profile:
    return Profile(
        name="client",
        validity=timedelta(days=settings.client_days),
        key_usage=_key_usage(digital_signature=True, content_commitment=True),
        # RFC 5280 §4.2.1.12 clientAuth and RFC 9336 documentSigning.
        ext_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ObjectIdentifier(oids.ID_KP_DOCUMENT_SIGNING)),
    )


def ocsp_responder_profile(settings: Settings) -> Profile:
    """The delegated OCSP responder (RFC 6960 §4.2.2.2): short-lived, OCSPSigning only."""
    return Profile(
        name="ocsp-responder",
        validity=timedelta(days=settings.responder_days),
        key_usage=_key_usage(digital_signature=True),
        ext_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
    )


def tsa_profile(settings: Settings) -> Profile:
    """The time-stamping unit (RFC 3161 §2.3): extKeyUsage timeStamping only, critical."""
    return Profile(
        name="tsa",
        validity=timedelta(days=settings.tsa_days),
        key_usage=_key_usage(digital_signature=True),
        ext_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,),
    )


PROFILES = {"client": client_profile, "ocsp-responder": ocsp_responder_profile, "tsa": tsa_profile}
# What a CSR may ask for (API, `udun ca issue`). The delegated profiles are for the CA's
# own keys on the online token (ca.renewal): a certificate of theirs for anybody else's key
# would let that key sign "good" for revoked certificates, or time-stamp udun's records.
REQUESTABLE = ("client",)
DELEGATED = ("ocsp-responder", "tsa")


def profile(name: str, settings: Settings) -> Profile:
    from pkicore.errors import ErrorKind, PkiError

    maker = PROFILES.get(name)
    if maker is None:
        raise PkiError(ErrorKind.BAD_INPUT, f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return maker(settings)


_CA_KEY_USAGE = _key_usage(cert_and_crl_sign=True)


def root_extensions(ski: bytes) -> list[Extension]:
    """Self-signed root: CA without path length limit (RFC 5280 §4.2.1.9)."""
    return [
        ext(cx509.BasicConstraints(ca=True, path_length=None), critical=True),
        ext(_CA_KEY_USAGE, critical=True),
    ] + identifiers(ski, ski)


def issuing_ca_extensions(settings: Settings, ski: bytes, root_ski: bytes) -> list[Extension]:
    """The issuing CA: issues end-entity certificates only (pathLen 0)."""
    return [
        ext(cx509.BasicConstraints(ca=True, path_length=0), critical=True),
        ext(_CA_KEY_USAGE, critical=True),
        crl_distribution_points(settings.root_crl_url),
        authority_info_access(None, settings.root_issuers_url),
    ] + identifiers(ski, root_ski)


def extensions(settings: Settings, p: Profile, ski: bytes, issuer_ski: bytes) -> list[Extension]:
    """The extensions of a profile's certificates."""
    eku = cx509.ExtendedKeyUsage(list(p.ext_key_usage))
    if p.name == "ocsp-responder":
        return [
            ext(p.key_usage, critical=True),
            ext(eku),
            # RFC 6960 §4.2.2.2.1: relying parties need not check the responder's status.
            ext(cx509.OCSPNoCheck()),
        ] + identifiers(ski, issuer_ski)
    if p.name == "tsa":
        return [
            ext(cx509.BasicConstraints(ca=False, path_length=None), critical=True),
            ext(p.key_usage, critical=True),
            # RFC 3161 §2.3: "MUST contain only one instance of the extended key usage field
            # extension ... with KeyPurposeID having value id-kp-timeStamping ... MUST be critical".
            ext(eku, critical=True),
            crl_distribution_points(settings.crl_url),
            authority_info_access(settings.ocsp_url, settings.ca_issuers_url),
        ] + identifiers(ski, issuer_ski)
    return client_extensions(settings, p, ski, issuer_ski)


def client_extensions(settings: Settings, p: Profile, ski: bytes, issuer_ski: bytes) -> list[Extension]:
    """DESIGN.md client profile: signing and non-repudiation, status URLs."""
    return [
        ext(cx509.BasicConstraints(ca=False, path_length=None), critical=True),
        ext(p.key_usage, critical=True),
        ext(cx509.ExtendedKeyUsage(list(p.ext_key_usage))),
        crl_distribution_points(settings.crl_url),
        authority_info_access(settings.ocsp_url, settings.ca_issuers_url),
    ] + identifiers(ski, issuer_ski)
