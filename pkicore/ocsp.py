"""OCSP (RFC 6960) requests and responses, pure: no store, no token, no clock.

The responder (ca/ocsp.py) looks the status up and signs through the RawSigner seam.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import core, ocsp, x509

from pkicore.algorithms import RawSigner, SigScheme, sign, signature_algorithm

MAX_REQUEST_BYTES = 16 * 1024
MAX_CERTS_PER_REQUEST = 10
NONCE_MIN, NONCE_MAX = 1, 32                         # RFC 8954 §2.1
_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

# RFC 5280 §5.3.1 names (our store) -> asn1crypto CRLReason names
_REASON = {
    "unspecified": "unspecified", "keyCompromise": "key_compromise", "cACompromise": "ca_compromise",
    "affiliationChanged": "affiliation_changed", "superseded": "superseded",
    "cessationOfOperation": "cessation_of_operation", "certificateHold": "certificate_hold",
    "privilegeWithdrawn": "privilege_withdrawn", "aACompromise": "aa_compromise",
}


class OcspRefusal(Exception):
    """A request that gets an OCSPResponse with an error status rather than an answer."""

    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status = status            # malformed_request | unauthorized | internal_error | try_later


@dataclass(frozen=True)
class CertQuery:
    """One CertID asked about (RFC 6960 §4.1.1)."""

    cert_id: ocsp.CertId
    hash_name: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int


@dataclass(frozen=True)
class ParsedRequest:
    queries: tuple[CertQuery, ...]
    nonce: bytes | None


@dataclass(frozen=True)
class Answer:
    """The status of one certificate, as the responder found it."""

    query: CertQuery
    status: str                          # good | revoked | unknown
    revoked_at: datetime | None = None
    reason: str | None = None            # RFC 5280 name


def parse_request(der: bytes) -> ParsedRequest:
    """Decode an OCSPRequest; OcspRefusal("malformed_request") for anything we cannot answer."""
    if not der or len(der) > MAX_REQUEST_BYTES:
        raise OcspRefusal("malformed_request", "empty or too large")
    try:
        req = ocsp.OCSPRequest.load(der, strict=True)
        tbs = req["tbs_request"]
        queries = []
        for r in tbs["request_list"]:
            cid = r["req_cert"]
            hash_name = cid["hash_algorithm"]["algorithm"].native
            if hash_name not in _HASHES:
                raise OcspRefusal("malformed_request", f"unsupported CertID hash {hash_name}")
            queries.append(CertQuery(cid, hash_name, cid["issuer_name_hash"].native,
                                     cid["issuer_key_hash"].native, cid["serial_number"].native))
        nonce = None
        for ext in tbs["request_extensions"] or []:
            if ext["extn_id"].native == "nonce":
                nonce = ext["extn_value"].parsed.native
            elif ext["critical"].native:
                raise OcspRefusal("malformed_request", f"unknown critical extension {ext['extn_id'].dotted}")
    except OcspRefusal:
        raise
    except Exception as e:  # asn1crypto raises ValueError/TypeError/KeyError on garbage
        raise OcspRefusal("malformed_request", "not a DER OCSPRequest") from e
    if not queries or len(queries) > MAX_CERTS_PER_REQUEST:
        raise OcspRefusal("malformed_request", f"ask about 1 to {MAX_CERTS_PER_REQUEST} certificates")
    if nonce is not None and not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise OcspRefusal("malformed_request", f"the nonce must be {NONCE_MIN} to {NONCE_MAX} octets (RFC 8954)")
    return ParsedRequest(tuple(queries), nonce)


def issuer_hashes(issuer: x509.Certificate, hash_name: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of a CA certificate (RFC 6960 §4.1.1)."""
    h = _HASHES[hash_name]
    return h(issuer.subject.dump()).digest(), h(issuer.public_key["public_key"].contents[1:]).digest()


def build_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    """An OCSPRequest for one certificate, CertID with SHA-1 (what every responder takes)."""
    name_hash, key_hash = issuer_hashes(issuer, "sha1")
    tbs: dict[str, object] = {"request_list": [{"req_cert": {
        "hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": name_hash, "issuer_key_hash": key_hash,
        "serial_number": cert.serial_number}}]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def refusal(status: str) -> bytes:
    """An OCSPResponse carrying only an error status."""
    return ocsp.OCSPResponse({"response_status": status}).dump()


def build_response(signer: RawSigner, scheme: SigScheme, responder_cert: x509.Certificate,
                   chain: list[x509.Certificate], answers: list[Answer], nonce: bytes | None,
                   produced_at: datetime, this_update: datetime, next_update: datetime) -> bytes:
    """A successful OCSPResponse with a BasicOCSPResponse signed by the responder key."""
    responses = []
    for a in answers:
        if a.status == "good":
            status = ocsp.CertStatus(name="good", value=core.Null())
        elif a.status == "revoked":
            assert a.revoked_at is not None
            # RFC 5280 §4.1.2.5.2: GeneralizedTime without fractional seconds.
            info: dict[str, object] = {"revocation_time": a.revoked_at.replace(microsecond=0)}
            if a.reason and a.reason != "unspecified":
                info["revocation_reason"] = _REASON[a.reason]
            status = ocsp.CertStatus(name="revoked", value=info)
        else:
            status = ocsp.CertStatus(name="unknown", value=core.Null())
        single: dict[str, object] = {"cert_id": a.query.cert_id, "cert_status": status,
                                     "this_update": this_update}
        if a.status != "unknown":
            single["next_update"] = next_update
        responses.append(single)
    key_hash = hashlib.sha1(responder_cert.public_key["public_key"].contents[1:]).digest()  # §4.2.2.3
    data: dict[str, object] = {
        "responder_id": ocsp.ResponderId(name="by_key", value=key_hash),
        "produced_at": produced_at,
        "responses": responses,
    }
    if nonce is not None:
        data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    tbs = ocsp.ResponseData(data)
    signature, scheme = sign(signer, tbs.dump(), scheme)
    basic = ocsp.BasicOCSPResponse({
        "tbs_response_data": tbs,
        "signature_algorithm": signature_algorithm(scheme),
        "signature": signature,
        "certs": [responder_cert, *chain],
    })
    return ocsp.OCSPResponse({
        "response_status": "successful",
        "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
    }).dump()
