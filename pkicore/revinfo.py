"""Revocation information, checked: OCSP responses (RFC 6960) and CRLs (RFC 5280 §6.3).

Pure: the caller hands in the bytes and the moment; nothing is fetched here. A response
or CRL only counts once its signature, its signer's authority and its freshness hold.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from asn1crypto import crl as asn1crl
from asn1crypto import ocsp, pem, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

CLOCK_SKEW = timedelta(minutes=5)
_HASH_CLASSES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

# asn1crypto CRLReason names -> RFC 5280 names used in reports
_REASONS = {
    "unspecified": "unspecified", "key_compromise": "keyCompromise", "ca_compromise": "cACompromise",
    "affiliation_changed": "affiliationChanged", "superseded": "superseded",
    "cessation_of_operation": "cessationOfOperation", "certificate_hold": "certificateHold",
    "remove_from_crl": "removeFromCRL", "privilege_withdrawn": "privilegeWithdrawn", "aa_compromise": "aACompromise",
}


@dataclass(frozen=True)
class StatusInfo:
    """A certificate's status as one piece of revocation information says."""

    status: str                        # good | revoked | on_hold | unknown | unusable
    source: str | None                 # OCSP | CRL
    this_update: datetime | None = None
    next_update: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    detail: str = ""
    raw: bytes = b""                   # the response or CRL, kept as evidence

    def to_json(self, now: datetime) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return v.isoformat().replace("+00:00", "Z") if v else None
        return {
            "source": self.source, "status": self.status, "this_update": t(self.this_update),
            "next_update": t(self.next_update),
            "age_seconds": int((now - self.this_update).total_seconds()) if self.this_update else None,
            "revoked_at": t(self.revoked_at), "reason": self.reason, "detail": self.detail,
        }


# A status source: (certificate DER, issuer DER) -> raw revocation data [("ocsp"|"crl", bytes)].
StatusSource = Callable[[bytes, bytes], list[tuple[str, bytes]]]


def _verify(public_key: Any, signature: bytes, data: bytes, algorithm: Any) -> None:
    """Verify a signature by an AlgorithmIdentifier (asn1crypto SignedDigestAlgorithm)."""
    hash_name = algorithm.hash_algo
    h = _HASH_CLASSES[hash_name]
    kind = algorithm.signature_algo
    if kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(h()))
    elif kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), h())
    elif kind == "rsassa_pss" and isinstance(public_key, rsa.RSAPublicKey):
        params = algorithm["parameters"]
        public_key.verify(signature, data, padding.PSS(padding.MGF1(h()), params["salt_length"].native), h())
    else:
        raise InvalidSignature(f"unsupported algorithm {kind}")


def _key(cert: x509.Certificate) -> Any:
    return serialization.load_der_public_key(cert.public_key.dump())


def _fresh(this_update: datetime, next_update: datetime | None, now: datetime) -> str | None:
    if this_update > now + CLOCK_SKEW:
        return "issued in the future"
    if next_update is None:
        return "has no nextUpdate"
    if now > next_update:
        return f"stale since {next_update:%Y-%m-%d %H:%M:%S}Z"
    return None


def from_ocsp(der: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> StatusInfo:
    """Check an OCSPResponse about ``cert`` (issued by ``issuer``) and read its answer."""
    def unusable(why: str) -> StatusInfo:
        return StatusInfo("unusable", "OCSP", detail=why, raw=der)

    try:
        resp = ocsp.OCSPResponse.load(der, strict=True)
        if resp["response_status"].native != "successful":
            return unusable(f"responder said {resp['response_status'].native}")
        basic = resp.basic_ocsp_response
        tbs = basic["tbs_response_data"]
        responder = _responder_cert(basic, issuer)
        if responder is None:
            return unusable("no authorised responder certificate")
        validity = responder["tbs_certificate"]["validity"]
        if not validity["not_before"].native - CLOCK_SKEW <= now <= validity["not_after"].native + CLOCK_SKEW:
            return unusable("the responder certificate is not valid at this time")
        _verify(_key(responder), basic["signature"].native, tbs.dump(), basic["signature_algorithm"])
        for single in tbs["responses"]:
            cid = single["cert_id"]
            hname = cid["hash_algorithm"]["algorithm"].native
            h = getattr(hashlib, hname)
            if (cid["serial_number"].native == cert.serial_number
                    and cid["issuer_name_hash"].native == h(issuer.subject.dump()).digest()
                    and cid["issuer_key_hash"].native == h(issuer.public_key["public_key"].contents[1:]).digest()):
                this_update = single["this_update"].native
                next_update = single["next_update"].native
                stale = _fresh(this_update, next_update, now)
                if stale:
                    return StatusInfo("unusable", "OCSP", this_update, next_update, detail=f"response {stale}", raw=der)
                status = single["cert_status"]
                if status.name == "good":
                    return StatusInfo("good", "OCSP", this_update, next_update, raw=der)
                if status.name == "revoked":
                    reason = _REASONS.get(status.chosen["revocation_reason"].native or "unspecified", "unspecified")
                    return StatusInfo("on_hold" if reason == "certificateHold" else "revoked", "OCSP", this_update,
                                      next_update, status.chosen["revocation_time"].native, reason, raw=der)
                return StatusInfo("unknown", "OCSP", this_update, next_update, detail="the responder does not "
                                  "know this certificate", raw=der)
        return unusable("the response does not answer for this certificate")
    except (InvalidSignature, ValueError, TypeError, KeyError, AttributeError) as e:
        return unusable(f"bad response ({type(e).__name__})")


def _responder_cert(basic: ocsp.BasicOCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    """The issuer itself, or a certificate it issued for OCSPSigning (RFC 6960 §4.2.2.2)."""
    rid = basic["tbs_response_data"]["responder_id"]
    candidates = [issuer] + [c for c in (basic["certs"] or [])]
    for c in candidates:
        key_hash = hashlib.sha1(c.public_key["public_key"].contents[1:]).digest()
        if (rid.name == "by_key" and rid.native != key_hash) or (rid.name == "by_name" and rid.chosen != c.subject):
            continue
        if c.dump() == issuer.dump():
            return c
        eku = c.extended_key_usage_value
        if eku is None or "ocsp_signing" not in eku.native:
            continue
        try:
            cx509.load_der_x509_certificate(c.dump()).verify_directly_issued_by(
                cx509.load_der_x509_certificate(issuer.dump()))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return c
    return None


def from_crl(der: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: datetime) -> StatusInfo:
    """Check a full CRL (DER or PEM) signed by ``issuer``'s key and look ``cert`` up in it."""
    if pem.detect(der):
        der = pem.unarmor(der)[2]
    try:
        lst = asn1crl.CertificateList.load(der, strict=True)
        tbs = lst["tbs_cert_list"]
        if tbs["issuer"] != issuer.subject:
            return StatusInfo("unusable", "CRL", detail="CRL from another issuer", raw=der)
        _verify(_key(issuer), lst["signature"].native, tbs.dump(), lst["signature_algorithm"])
        this_update, next_update = tbs["this_update"].native, tbs["next_update"].native
        stale = _fresh(this_update, next_update, now)
        if stale:
            return StatusInfo("unusable", "CRL", this_update, next_update, detail=f"CRL {stale}", raw=der)
        for entry in tbs["revoked_certificates"]:
            if entry["user_certificate"].native == cert.serial_number:
                reason = _REASONS.get(entry.crl_reason_value.native if entry.crl_reason_value else "unspecified",
                                      "unspecified")
                return StatusInfo("on_hold" if reason == "certificateHold" else "revoked", "CRL", this_update,
                                  next_update, entry["revocation_date"].native, reason, raw=der)
        return StatusInfo("good", "CRL", this_update, next_update, raw=der)
    except (InvalidSignature, ValueError, TypeError, KeyError) as e:
        return StatusInfo("unusable", "CRL", detail=f"bad CRL ({type(e).__name__})", raw=der)


def best(infos: list[StatusInfo]) -> StatusInfo:
    """The most telling usable answer: revoked/on hold first, then good, else why not."""
    usable = [i for i in infos if i.status not in ("unusable", "unknown")]
    for status in ("revoked", "on_hold", "good"):
        found = [i for i in usable if i.status == status]
        if found:
            return max(found, key=lambda i: i.this_update.timestamp() if i.this_update else 0.0)
    if infos:
        return infos[0]
    return StatusInfo("unusable", None, detail="no revocation information")
