"""Certificate profiles: which extensions each kind of certificate carries (RFC 5280 §4.2)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pkicore import oids
from config.settings import Settings
from pkicore.x509build import authority_info_access, crl_distribution_points, ext

@dataclass(frozen=True)
class Profile:
    """A named client profile."""

    name: str
    validity: timedelta
    key_usage: frozenset[str]
    ext_key_usage: tuple[str, ...]


def client_profile(settings: Settings) -> Profile:
    return Profile(
        name="client",
        validity=timedelta(days=settings.client_days),
        key_usage=frozenset({"digital_signature", "non_repudiation"}),
        # RFC 5280 §4.2.1.12 clientAuth and RFC 9336 documentSigning.
        ext_key_usage=("client_auth", oids.ID_KP_DOCUMENT_SIGNING),
    )


def ocsp_responder_profile(settings: Settings) -> Profile:
    """The delegated OCSP responder (RFC 6960 §4.2.2.2): short-lived, OCSPSigning only."""
    return Profile(
        name="ocsp-responder",
        validity=timedelta(days=settings.responder_days),
        key_usage=frozenset({"digital_signature"}),
        ext_key_usage=("ocsp_signing",),
    )


def tsa_profile(settings: Settings) -> Profile:
    """The time-stamping unit (RFC 3161 §2.3): extKeyUsage timeStamping only, critical."""
    return Profile(
        name="tsa",
        validity=timedelta(days=settings.tsa_days),
        key_usage=frozenset({"digital_signature"}),
        ext_key_usage=("time_stamping",),
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


def identifiers(ski: bytes, aki: bytes | None) -> list[dict[str, Any]]:
    out = [ext("key_identifier", ski)]
    if aki is not None:
        out.append(ext("authority_key_identifier", {"key_identifier": aki}))
    return out


def root_extensions(ski: bytes) -> list[dict[str, Any]]:
    """Self-signed root: CA without path length limit (RFC 5280 §4.2.1.9)."""
    return [
        ext("basic_constraints", {"ca": True}, critical=True),
        ext("key_usage", {"key_cert_sign", "crl_sign"}, critical=True),
    ] + identifiers(ski, ski)


def issuing_ca_extensions(settings: Settings, ski: bytes, root_ski: bytes) -> list[dict[str, Any]]:
    """The issuing CA: issues end-entity certificates only (pathLen 0)."""
    return [
        ext("basic_constraints", {"ca": True, "path_len_constraint": 0}, critical=True),
        ext("key_usage", {"key_cert_sign", "crl_sign"}, critical=True),
        crl_distribution_points(settings.root_crl_url),
        authority_info_access(None, settings.root_issuers_url),
    ] + identifiers(ski, root_ski)


def extensions(settings: Settings, p: Profile, ski: bytes, issuer_ski: bytes) -> list[dict[str, Any]]:
    """The extensions of a profile's certificates."""
    if p.name == "ocsp-responder":
        return [
            ext("key_usage", set(p.key_usage), critical=True),
            ext("extended_key_usage", list(p.ext_key_usage)),
            # RFC 6960 §4.2.2.2.1: relying parties need not check the responder's status.
            ext("ocsp_no_check", None),
        ] + identifiers(ski, issuer_ski)
    if p.name == "tsa":
        return [
            ext("basic_constraints", {"ca": False}, critical=True),
            ext("key_usage", set(p.key_usage), critical=True),
            # RFC 3161 §2.3: "MUST contain only one instance of the extended key usage field
            # extension ... with KeyPurposeID having value id-kp-timeStamping ... MUST be critical".
            ext("extended_key_usage", list(p.ext_key_usage), critical=True),
            crl_distribution_points(settings.crl_url),
            authority_info_access(settings.ocsp_url, settings.ca_issuers_url),
        ] + identifiers(ski, issuer_ski)
    return client_extensions(settings, p, ski, issuer_ski)


def client_extensions(settings: Settings, p: Profile, ski: bytes, issuer_ski: bytes) -> list[dict[str, Any]]:
    """DESIGN.md client profile: signing and non-repudiation, status URLs."""
    return [
        ext("basic_constraints", {"ca": False}, critical=True),
        ext("key_usage", set(p.key_usage), critical=True),
        ext("extended_key_usage", list(p.ext_key_usage)),
        crl_distribution_points(settings.crl_url),
        authority_info_access(settings.ocsp_url, settings.ca_issuers_url),
    ] + identifiers(ski, issuer_ski)
