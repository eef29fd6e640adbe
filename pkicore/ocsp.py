"""OCSP (RFC 6960) requests and responses, pure: no store, no token, no clock.

The responder (ca/ocsp.py) looks the status up and signs through the RawSigner seam.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from typing import Sequence

from asn1crypto import algos, core, ocsp, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as cocsp

from pkicore import fastder, keyadapter
from pkicore.algorithms import RawSigner, SigScheme
from pkicore.crlbuild import FLAGS
from pkicore.errors import ErrorKind, PkiError

MAX_REQUEST_BYTES = 16 * 1024
# One certificate per request, the lightweight profile's rule (RFC 5019 §2.1.1) that Go's
# and Boulder's responders keep too: answers are pre-signed and cached per CertID, and
# cryptography's builder signs one SingleResponse per OCSPResponse.
MAX_CERTS_PER_REQUEST = 1
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
    """Decode an OCSPRequest; OcspRefusal("malformed_request") for anything we cannot answer.

    With cryptography's DER parser (Rust): asn1crypto took ~250 µs for a 120-byte request,
    half the cost of a nonced answer. It refuses more than one certificate per request
    itself (RFC 5019 §2.1.1), as udun does.
    """
    if not der or len(der) > MAX_REQUEST_BYTES:
        raise OcspRefusal("malformed_request", "empty or too large")
    try:
        req = cocsp.load_der_ocsp_request(der)
    except (ValueError, NotImplementedError) as e:     # NotImplementedError: several requests
        if "more than one request" in str(e):
            raise OcspRefusal("malformed_request", "ask about one certificate per request (RFC 5019 §2.1.1)") from e
        raise OcspRefusal("malformed_request", "not a DER OCSPRequest") from e
    try:
        hash_name = req.hash_algorithm.name
        extensions = req.extensions
    except Exception as e:  # noqa: BLE001  an unknown CertID hash or a malformed extension
        raise OcspRefusal("malformed_request", "unsupported CertID hash or a malformed extension") from e
    if hash_name not in _HASHES:
        raise OcspRefusal("malformed_request", f"unsupported CertID hash {hash_name}")
    nonce = None
    for ext in extensions:
        if isinstance(ext.value, cx509.OCSPNonce):
            nonce = ext.value.nonce
        elif ext.critical:
            raise OcspRefusal("malformed_request", f"unknown critical extension {ext.oid.dotted_string}")
    if req.serial_number < 0:                         # RFC 5280 §4.1.2.2: serials are positive
        raise OcspRefusal("malformed_request", "a certificate serial number is never negative")
    if nonce is not None and not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise OcspRefusal("malformed_request", f"the nonce must be {NONCE_MIN} to {NONCE_MAX} octets (RFC 8954)")
    query = CertQuery(hash_name, req.issuer_name_hash, req.issuer_key_hash, req.serial_number)
    return ParsedRequest((query,), nonce)


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


_HASH_OBJECTS: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
_STATUS = {"good": cocsp.OCSPCertStatus.GOOD, "revoked": cocsp.OCSPCertStatus.REVOKED,
           "unknown": cocsp.OCSPCertStatus.UNKNOWN}


def build_response(signer: RawSigner, scheme: SigScheme, responder_cert: cx509.Certificate,
                   chain: Sequence[cx509.Certificate], answer: Answer, nonce: bytes | None,
                   this_update: datetime, next_update: datetime) -> bytes:
    """A successful OCSPResponse with a BasicOCSPResponse signed by the responder key.

    Built with cryptography's OCSPResponseBuilder: responderID byKey (RFC 6960 §4.2.2.3),
    the responder certificate and ``chain``, the nonce echoed (RFC 8954), no nextUpdate
    for an unknown serial. producedAt is the moment of signing (the builder sets it).
    """
    if scheme is SigScheme.RSA_PSS_SHA256:
        raise PkiError(ErrorKind.UNSUPPORTED, "OCSP responses are signed with ECDSA or RSA PKCS#1 v1.5")
    q = answer.query
    revoked = answer.status == "revoked"
    reason = answer.reason if revoked and answer.reason != "unspecified" else None
    builder = cocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=q.issuer_name_hash, issuer_key_hash=q.issuer_key_hash, serial_number=q.serial,
        algorithm=_HASH_OBJECTS[q.hash_name], cert_status=_STATUS[answer.status], this_update=this_update,
        next_update=None if answer.status == "unknown" else next_update,
        revocation_time=answer.revoked_at if revoked else None,
        revocation_reason=FLAGS[reason] if reason else None,   # §5.3.1 (RFC 5280): unspecified is left out
    ).responder_id(cocsp.OCSPResponderEncoding.HASH, responder_cert).certificates([responder_cert, *chain])
    if nonce is not None:
        builder = builder.add_extension(cx509.OCSPNonce(nonce), critical=False)
    response = builder.sign(keyadapter.private_key(signer, scheme), hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


class ResponseFactory:
    """Signed answers of one responder key and certificate, the constant parts encoded once.

    ``response`` is what the responder sends: pkicore.fastder assembles the parts that change
    per answer (the bench figures ocsp_answer_fastder / ocsp_answer_builder say why). The
    reference is ``build_response`` (cryptography's builder); tests/pkicore/test_fastder.py
    checks the two agree byte for byte.
    """

    def __init__(self, signer: RawSigner, scheme: SigScheme, responder_cert_der: bytes,
                 chain_der: Sequence[bytes]) -> None:
        if scheme is SigScheme.RSA_PSS_SHA256:
            raise PkiError(ErrorKind.UNSUPPORTED, "OCSP responses are signed with ECDSA or RSA PKCS#1 v1.5")
        cert = x509.Certificate.load(responder_cert_der)
        # byKey: the SHA-1 of the responder's subjectPublicKey BIT STRING value (RFC 6960 §4.2.2.3)
        key_hash = hashlib.sha1(cert.public_key["public_key"].contents[1:]).digest()
        signature_algorithm = "sha256_ecdsa" if scheme is SigScheme.ECDSA_SHA256 else "sha256_rsa"
        self._signer = signer
        self._scheme = scheme
        self._template = fastder.OcspTemplate(
            responder_id=ocsp.ResponderId(name="by_key", value=key_hash).dump(),
            signature_algorithm=algos.SignedDigestAlgorithm({"algorithm": signature_algorithm}).dump(),
            certificates=b"".join((responder_cert_der, *chain_der)),
            # CertID's hashAlgorithm with NULL parameters, as cryptography writes it
            cert_id_algorithms={name: algos.DigestAlgorithm({"algorithm": name, "parameters": core.Null()}).dump()
                                for name in _HASHES})
        self._reference = (cx509.load_der_x509_certificate(responder_cert_der),
                           [cx509.load_der_x509_certificate(c) for c in chain_der])

    def response(self, answer: Answer, nonce: bytes | None, this_update: datetime, next_update: datetime,
                 produced_at: datetime) -> bytes:
        """The OCSPResponse for ``answer``: no nextUpdate for an unknown serial, the nonce
        echoed (RFC 8954), the revocation reason unless unspecified (RFC 5280 §5.3.1)."""
        return self.signed(self.to_be_signed(answer, nonce, this_update, next_update, produced_at))

    def to_be_signed(self, answer: Answer, nonce: bytes | None, this_update: datetime, next_update: datetime,
                     produced_at: datetime) -> bytes:
        """The ResponseData of ``response`` (what ``signed`` signs; several can be signed in a row)."""
        q = answer.query
        revoked = answer.status == "revoked"
        reason = answer.reason if revoked and answer.reason != "unspecified" else None
        return fastder.ocsp_response_data(
            self._template, hash_name=q.hash_name, issuer_name_hash=q.issuer_name_hash,
            issuer_key_hash=q.issuer_key_hash, serial=q.serial, status=answer.status,
            revoked_at=answer.revoked_at if revoked else None, reason=reason, this_update=this_update,
            next_update=None if answer.status == "unknown" else next_update, produced_at=produced_at, nonce=nonce)

    def signed(self, response_data: bytes) -> bytes:
        """The OCSPResponse of a ResponseData from ``to_be_signed``, signed by the responder key."""
        signature = self._signer.sign_digest(hashlib.sha256(response_data).digest(), self._scheme)
        return fastder.ocsp_response(self._template, response_data, signature)

    def reference_response(self, answer: Answer, nonce: bytes | None, this_update: datetime,
                           next_update: datetime) -> bytes:
        """The same answer through cryptography's builder (producedAt: the system clock)."""
        responder, chain = self._reference
        return build_response(self._signer, self._scheme, responder, chain, answer, nonce, this_update, next_update)
