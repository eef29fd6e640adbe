"""The one module of hand-written DER fast paths in udun: the per-token part of RFC 3161
time-stamp tokens, and the per-answer part of OCSP responses (its own section below, with
its figures).

Why it exists (issue 10): a TSA answer is one token, and its cost is the TSA's throughput.
Measured in process (software P-256 key, signature included, cert_req and a nonce set,
2-core development machine, medians of 5 runs; `make bench` prints the same comparison with
the CA's TSA key on its token as tsa_token_fastder / tsa_token_asn1crypto):

    asn1crypto declarative builder (pkicore.tsp.TokenFactory.reference_token)   ~2,300 tokens/s
    this module                          (pkicore.tsp.TokenFactory.token)      ~26,000 tokens/s
    (the ECDSA signature alone                                                  ~42,000 per s)

With the CA's real TSA certificate and chain, `make bench` measured tsa_token_fastder 14,305
and tsa_token_asn1crypto 111 tokens/s (2026-12-02; asn1crypto copies and re-walks the parsed
certificates of a token it builds). The declarative builder costs ~0.4 ms of CPU more per
token at best, even with every constant part pre-encoded. `make bench`'s tsa_c8 is ~3,200 resp/s on 2 cores, ~0.6 ms of CPU per request in
all, so it would fall to ~2,000 resp/s (-39%; the issue allows ~10%). The TimeStampResp around
the token is asn1crypto's (pkicore.tsp.granted, ~11 µs, under 2%); everything else udun encodes
but OCSP answers goes through asn1crypto or cryptography.

What is hand-written is only the assembly of the parts that change per token (TSTInfo fields,
the messageDigest attribute, the lengths of the enclosing SignerInfo, SignedData and
ContentInfo). Every constant part of a TSA's tokens (algorithm identifiers, attributes, the
signer identifier, the certificates, the OIDs) is encoded once by asn1crypto in pkicore.tsp and
handed here as a TokenTemplate. The output is byte for byte the output of the declarative builder
pkicore.tsp.TokenFactory.reference_token: tests/pkicore/test_fastder.py checks that for every
shape of token, plus fixed known-answer bytes.

Self-contained on purpose (only asn1crypto for OID constants): the fast path must not change
when a general-purpose DER helper elsewhere does.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import core

from pkicore.oids import ID_CT_TSTINFO, ID_MESSAGE_DIGEST, ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE, ID_SIGNED_DATA

__all__ = ["OcspTemplate", "REASON_CODES", "TokenTemplate", "generalized_time", "ocsp_response",
           "ocsp_response_data", "signed_attributes", "tst_info", "token"]

# X.690 §8.1.2 identifier octets (universal class, or context-specific [n] constructed).
_INTEGER = 0x02
_OCTET_STRING = 0x04
_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_SET = 0x31
_CONTEXT_0 = 0xA0               # [0] constructed: EXPLICIT content, IMPLICIT signedAttrs / certificates

_OID_SIGNED_DATA = core.ObjectIdentifier(ID_SIGNED_DATA).dump()        # RFC 5652 §5.1 ContentInfo type
_OID_TSTINFO = core.ObjectIdentifier(ID_CT_TSTINFO).dump()             # RFC 3161 §2.4.2 eContentType
_OID_MESSAGE_DIGEST = core.ObjectIdentifier(ID_MESSAGE_DIGEST).dump()  # RFC 5652 §11.2
_V1 = b"\x02\x01\x01"           # INTEGER 1: TSTInfo v1 (RFC 3161 §2.4.2), SignerInfo v1 (issuerAndSerialNumber)
_V3 = b"\x02\x01\x03"           # INTEGER 3: SignedData v3, eContentType not id-data (RFC 5652 §5.1)


def _tlv(tag: int, body: bytes) -> bytes:
    """Tag, definite length in the shortest form (X.690 §10.1), contents."""
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + body


def _integer(n: int) -> bytes:
    """INTEGER in the minimal two's complement octets (X.690 §8.3.2)."""
    return _tlv(_INTEGER, n.to_bytes((n if n >= 0 else ~n).bit_length() // 8 + 1, "big", signed=True))


@dataclass(frozen=True)
class TokenTemplate:
    """The constant DER of one TSA key's tokens, each part encoded by asn1crypto (pkicore.tsp)."""

    accuracy: bytes                  # Accuracy, or b"" when left out
    tsa_name: bytes                  # tsa [0] EXPLICIT GeneralName, or b""
    attributes: tuple[bytes, ...]    # the signed attributes other than messageDigest (Attribute DER each)
    signer_id: bytes                 # SignerIdentifier (issuerAndSerialNumber)
    digest_algorithm: bytes          # the SHA-256 AlgorithmIdentifier of the signer
    signature_algorithm: bytes       # SignerInfo.signatureAlgorithm
    certificates: bytes              # the contents of the CertificateSet, DER-sorted (X.690 §11.6)


def generalized_time(moment: datetime) -> bytes:
    """GeneralizedTime in milliseconds, 'Z', no trailing zeros in the fraction (RFC 3161 §2.4.2)."""
    t = moment.astimezone(UTC)
    text = f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"
    ms = t.microsecond // 1000
    if ms:
        text += "." + f"{ms:03d}".rstrip("0")
    return _tlv(_GENERALIZED_TIME, (text + "Z").encode())


def tst_info(t: TokenTemplate, *, policy_oid: bytes, imprint_algorithm: bytes, imprint: bytes, serial: int,
             gen_time: datetime, nonce: int | None) -> bytes:
    """TSTInfo (RFC 3161 §2.4.2), fields in their ASN.1 order; ordering is DEFAULT FALSE, so absent."""
    return _tlv(_SEQUENCE, b"".join((
        _V1, policy_oid, _tlv(_SEQUENCE, imprint_algorithm + _tlv(_OCTET_STRING, imprint)),
        _integer(serial), generalized_time(gen_time), t.accuracy,
        _integer(nonce) if nonce is not None else b"", t.tsa_name)))


def signed_attributes(t: TokenTemplate, tst_digest: bytes) -> bytes:
    """The signed attributes as the SET OF the signature covers (RFC 5652 §5.4), DER-sorted (X.690 §11.6)."""
    digest = _tlv(_SEQUENCE, _OID_MESSAGE_DIGEST + _tlv(_SET, _tlv(_OCTET_STRING, tst_digest)))
    return _tlv(_SET, b"".join(sorted((digest, *t.attributes))))


def token(t: TokenTemplate, *, tst: bytes, attributes: bytes, signature: bytes, cert_req: bool) -> bytes:
    """The TimeStampToken: ContentInfo of a SignedData v3 with one SignerInfo v1 (RFC 3161 §2.4.2)."""
    signer_info = _tlv(_SEQUENCE, b"".join((
        _V1, t.signer_id, t.digest_algorithm,
        bytes((_CONTEXT_0,)) + attributes[1:],          # signedAttrs [0] IMPLICIT: the SET re-tagged
        t.signature_algorithm, _tlv(_OCTET_STRING, signature))))
    signed_data = _tlv(_SEQUENCE, b"".join((
        _V3, _tlv(_SET, t.digest_algorithm),
        _tlv(_SEQUENCE, _OID_TSTINFO + _tlv(_CONTEXT_0, _tlv(_OCTET_STRING, tst))),   # [0] EXPLICIT eContent
        _tlv(_CONTEXT_0, t.certificates) if cert_req else b"",                       # [0] IMPLICIT
        _tlv(_SET, signer_info))))
    return _tlv(_SEQUENCE, _OID_SIGNED_DATA + _tlv(_CONTEXT_0, signed_data))


# --- OCSP answers (RFC 6960 §4.2.1) -------------------------------------------------------
#
# Why (issue 11): a nonced OCSP answer is signed per request; cryptography's OCSPResponseBuilder
# took ~120 µs of the ~210 µs of such an answer in process (the token signature ~50 µs); with
# this module ~100 µs, and `udun serve-ocsp`'s ocsp_front_nonce_c8 went from 3,150 to 4,238
# resp/s (make bench prints ocsp_answer_fastder / ocsp_answer_builder in process). What
# changes per answer is the SingleResponse, the times and the nonce; the ResponderID, the
# signature algorithm and the certificates are encoded once (pkicore.ocsp.ResponseFactory, by
# asn1crypto). The output is byte for byte the output of cryptography's builder:
# tests/pkicore/test_fastder.py checks that for every status, CertID hash, nonce or none, and
# key type, plus fixed known-answer bytes.

_ENUMERATED = 0x0A
_CONTEXT_0_PRIMITIVE = 0x80     # certStatus good [0] IMPLICIT NULL
_CONTEXT_1 = 0xA1               # revoked [1] IMPLICIT RevokedInfo; responseExtensions [1] EXPLICIT
_CONTEXT_2_PRIMITIVE = 0x82     # certStatus unknown [2] IMPLICIT NULL
_BIT_STRING = 0x03
_OID_OCSP_BASIC = core.ObjectIdentifier(ID_PKIX_OCSP_BASIC).dump()     # RFC 6960 §4.2.1 responseType
_OID_OCSP_NONCE = core.ObjectIdentifier(ID_PKIX_OCSP_NONCE).dump()     # RFC 8954 §2.1
_SUCCESSFUL = b"\x0a\x01\x00"   # OCSPResponseStatus successful (0)
# CRLReason codes (RFC 5280 §5.3.1); 7 is not used.
REASON_CODES = {"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3,
                "superseded": 4, "cessationOfOperation": 5, "certificateHold": 6, "removeFromCRL": 8,
                "privilegeWithdrawn": 9, "aACompromise": 10}


@dataclass(frozen=True)
class OcspTemplate:
    """The constant DER of one responder key's answers, each part encoded by asn1crypto (pkicore.ocsp)."""

    responder_id: bytes              # ResponderID, byKey [2] EXPLICIT (RFC 6960 §4.2.2.3)
    signature_algorithm: bytes       # BasicOCSPResponse.signatureAlgorithm
    certificates: bytes              # the Certificate DER of the responder and its chain, concatenated
    cert_id_algorithms: Mapping[str, bytes]   # hash name -> CertID hashAlgorithm DER


def _ocsp_time(moment: datetime) -> bytes:
    """GeneralizedTime to the second, as cryptography's builder writes OCSP times."""
    return generalized_time(moment.replace(microsecond=0))


def ocsp_response_data(t: OcspTemplate, *, hash_name: str, issuer_name_hash: bytes, issuer_key_hash: bytes,
                       serial: int, status: str, revoked_at: datetime | None, reason: str | None,
                       this_update: datetime, next_update: datetime | None, produced_at: datetime,
                       nonce: bytes | None) -> bytes:
    """ResponseData v1 (version DEFAULT, absent) with one SingleResponse (RFC 6960 §4.2.1).

    ``reason`` is left out of RevokedInfo when None; the caller leaves out "unspecified"
    (RFC 5280 §5.3.1 says to)."""
    algorithm = t.cert_id_algorithms[hash_name]
    cert_id = _tlv(_SEQUENCE, algorithm + _tlv(_OCTET_STRING, issuer_name_hash)
                   + _tlv(_OCTET_STRING, issuer_key_hash) + _integer(serial))
    if status == "good":
        cert_status = bytes((_CONTEXT_0_PRIMITIVE, 0))
    elif status == "unknown":
        cert_status = bytes((_CONTEXT_2_PRIMITIVE, 0))
    elif status == "revoked" and revoked_at is not None:
        why = _tlv(_CONTEXT_0, _tlv(_ENUMERATED, bytes((REASON_CODES[reason],)))) if reason is not None else b""
        cert_status = _tlv(_CONTEXT_1, _ocsp_time(revoked_at) + why)
    else:
        raise ValueError(f"no OCSP certStatus for {status!r} (revoked needs revoked_at)")
    single = _tlv(_SEQUENCE, b"".join((
        cert_id, cert_status, _ocsp_time(this_update),
        _tlv(_CONTEXT_0, _ocsp_time(next_update)) if next_update is not None else b"")))
    extensions = b""
    if nonce is not None:       # Extension {extnID, extnValue OCTET STRING (Nonce ::= OCTET STRING)}
        extension = _tlv(_SEQUENCE, _OID_OCSP_NONCE + _tlv(_OCTET_STRING, _tlv(_OCTET_STRING, nonce)))
        extensions = _tlv(_CONTEXT_1, _tlv(_SEQUENCE, extension))
    return _tlv(_SEQUENCE, b"".join((t.responder_id, _ocsp_time(produced_at), _tlv(_SEQUENCE, single), extensions)))


def ocsp_response(t: OcspTemplate, response_data: bytes, signature: bytes) -> bytes:
    """OCSPResponse successful, responseBytes id-pkix-ocsp-basic: a BasicOCSPResponse with
    the certificates (RFC 6960 §4.2.1); ``signature`` is over ``response_data``."""
    basic = _tlv(_SEQUENCE, b"".join((
        response_data, t.signature_algorithm, _tlv(_BIT_STRING, b"\x00" + signature),
        _tlv(_CONTEXT_0, _tlv(_SEQUENCE, t.certificates)))))
    response_bytes = _tlv(_SEQUENCE, _OID_OCSP_BASIC + _tlv(_OCTET_STRING, basic))
    return _tlv(_SEQUENCE, _SUCCESSFUL + _tlv(_CONTEXT_0, response_bytes))
