"""OCSP (RFC 6960) requests and responses, pure: no store, no token, no clock.

The responder (ca/ocsp.py) looks the status up and signs through the RawSigner seam.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import core, ocsp, x509

from pkicore.algorithms import RawSigner, SigScheme, sign, signature_algorithm
from pkicore.der import BIT_STRING, GENERALIZED_TIME, OCTET_STRING, tlv_header
from pkicore.x509build import seq

MAX_REQUEST_BYTES = 16 * 1024
MAX_CERTS_PER_REQUEST = 10
NONCE_MIN, NONCE_MAX = 1, 32                         # RFC 8954 §2.1
_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}



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


_OID_BASIC = core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.1").dump()      # RFC 6960 §4.2.1 id-pkix-ocsp-basic
_OID_NONCE = core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.2").dump()      # RFC 6960 §4.4.1 id-pkix-ocsp-nonce
_GOOD = b"\x80\x00"                                                    # [0] IMPLICIT NULL
_UNKNOWN = b"\x82\x00"                                                 # [2] IMPLICIT NULL
_REASON_CODE = {name: code for code, name in enumerate([
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"]) if name}


def _gtime(moment: datetime) -> bytes:
    """GeneralizedTime, whole seconds, Z (RFC 5280 §4.1.2.5.2, as RFC 6960 asks)."""
    text = moment.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ").encode()
    return tlv_header(GENERALIZED_TIME, len(text)) + text


def _tagged(tag: int, body: bytes) -> bytes:
    return tlv_header(tag, len(body)) + body


def build_response(signer: RawSigner, scheme: SigScheme, responder_cert: x509.Certificate,
                   chain: list[x509.Certificate], answers: list[Answer], nonce: bytes | None,
                   produced_at: datetime, this_update: datetime, next_update: datetime) -> bytes:
    """A successful OCSPResponse with a BasicOCSPResponse signed by the responder key.

    Assembled as DER (RFC 6960 §4.2.1), like our CRLs: building it with asn1crypto cost
    over 1 ms, half of a nonce answer.
    """
    singles = []
    for a in answers:
        if a.status == "good":
            status = _GOOD
        elif a.status == "revoked":
            assert a.revoked_at is not None
            info = _gtime(a.revoked_at)
            if a.reason and a.reason != "unspecified":
                info += _tagged(0xA0, bytes([0x0A, 0x01, _REASON_CODE[a.reason]]))   # [0] EXPLICIT CRLReason
            status = _tagged(0xA1, info)                                            # [1] IMPLICIT RevokedInfo
        else:
            status = _UNKNOWN
        parts = [a.query.cert_id.dump(), status, _gtime(this_update)]
        if a.status != "unknown":
            parts.append(_tagged(0xA0, _gtime(next_update)))                        # [0] EXPLICIT nextUpdate
        singles.append(seq(*parts))
    key_hash = hashlib.sha1(responder_cert.public_key["public_key"].contents[1:]).digest()  # §4.2.2.3
    data = [
        _tagged(0xA2, _tagged(OCTET_STRING, key_hash)),                  # responderID byKey [2] EXPLICIT
        _gtime(produced_at),
        seq(*singles),
    ]
    if nonce is not None:
        value = _tagged(OCTET_STRING, nonce)                             # RFC 8954: Nonce ::= OCTET STRING
        data.append(_tagged(0xA1, seq(seq(_OID_NONCE, _tagged(OCTET_STRING, value)))))
    tbs = seq(*data)
    signature, scheme = sign(signer, tbs, scheme)
    certs = seq(responder_cert.dump(), *(c.dump() for c in chain))
    basic = seq(tbs, signature_algorithm(scheme).dump(), _tagged(BIT_STRING, b"\x00" + signature),
                _tagged(0xA0, certs))
    return seq(b"\x0a\x01\x00",                                          # responseStatus successful
               _tagged(0xA0, seq(_OID_BASIC, _tagged(OCTET_STRING, basic))))
