"""pkicore.fastder's OCSP answers against cryptography's OCSPResponseBuilder (issue 11).

pkicore.ocsp.ResponseFactory.response (the fast path the responder sends) must give byte for
byte what ResponseFactory.reference_response (cryptography's builder) gives, for every
certStatus, revocation reason, CertID hash, nonce or none, serial size and key type. The
signatures are made equal by a signer that answers the same digest with the same signature
(tests/katkeys.Signer), so different bytes still get different signatures. Fixed bytes,
recorded once with the fixed RSA key (PKCS#1 v1.5 is deterministic), notice a change in both
at the same time; `openssl ocsp` reads and verifies a fast-path answer.
"""
from __future__ import annotations

import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem
from asn1crypto import x509 as asn1x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # tests/helpers.py when run as a script
import katkeys  # noqa: E402
from helpers import openssl, write  # noqa: E402
from katkeys import Signer, der, kat_rsa_key  # noqa: E402

from pkicore import fastder, ocsp  # noqa: E402
from pkicore.algorithms import KeyType, SigScheme, default_scheme  # noqa: E402
from pkicore.errors import PkiError  # noqa: E402

THIS_UPDATE = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
NEXT_UPDATE = THIS_UPDATE + timedelta(hours=1)
REVOKED_AT = datetime(2026, 11, 20, 8, 30, 15, 123_456, tzinfo=UTC)    # microseconds: OCSP times are to the second


def _responder_cert(ca_key: Any, ca: x509.Certificate, key: Any) -> bytes:
    """A delegated responder certificate: id-kp-OCSPSigning (RFC 6960 §4.2.2.2)."""
    return katkeys.delegated_cert(ca_key, ca, key, "Test OCSP responder", 0x0BADC0FFEE,
                                  ExtendedKeyUsageOID.OCSP_SIGNING, purpose_critical=False)


class Responder:
    def __init__(self, key: Any) -> None:
        ca_key = kat_rsa_key()
        self.ca = katkeys.root(ca_key, "OCSP Test CA", 0x1234567890ABCDEF)
        self.signer = Signer(key, memo={})
        self.cert = _responder_cert(ca_key, self.ca, key)
        self.factory = ocsp.ResponseFactory(self.signer, default_scheme(self.signer.key_type), self.cert,
                                            [der(self.ca)])

    def query(self, hash_name: str = "sha1", serial: int = 0x42) -> ocsp.CertQuery:
        name_hash, key_hash = ocsp.issuer_hashes(asn1x509.Certificate.load(der(self.ca)), hash_name)
        return ocsp.CertQuery(hash_name, name_hash, key_hash, serial)


@pytest.fixture(scope="module", params=[KeyType.EC_P256, KeyType.RSA_2048], ids=["p256", "rsa2048"])
def responder(request: pytest.FixtureRequest) -> Responder:
    return Responder(ec.generate_private_key(ec.SECP256R1()) if request.param is KeyType.EC_P256
                     else rsa.generate_private_key(65537, 2048))


ANSWERS: dict[str, dict[str, Any]] = {
    "good": {"status": "good"},
    "unknown": {"status": "unknown"},
    "revoked keyCompromise": {"status": "revoked", "revoked_at": REVOKED_AT, "reason": "keyCompromise"},
    "revoked unspecified": {"status": "revoked", "revoked_at": REVOKED_AT, "reason": "unspecified"},
    "revoked no reason": {"status": "revoked", "revoked_at": REVOKED_AT, "reason": None},
    "on hold": {"status": "revoked", "revoked_at": REVOKED_AT, "reason": "certificateHold"},
    "revoked aACompromise": {"status": "revoked", "revoked_at": REVOKED_AT, "reason": "aACompromise"},
}
NONCES = {"no nonce": None, "1 octet": b"\x00", "16 octets": bytes(range(16)), "32 octets": b"\xff" * 32}
QUERIES = {"sha1 small serial": ("sha1", 0x42), "sha256 serial with high bit": ("sha256", 0x80),
           "sha384 20-octet serial": ("sha384", (1 << 159) - 1), "sha512 serial 1": ("sha512", 1)}


def _both(r: Responder, answer: ocsp.Answer, nonce: bytes | None) -> tuple[bytes, bytes]:
    reference = r.factory.reference_response(answer, nonce, THIS_UPDATE, NEXT_UPDATE)
    produced_at = cocsp.load_der_ocsp_response(reference).produced_at_utc     # the builder takes the system clock
    return r.factory.response(answer, nonce, THIS_UPDATE, NEXT_UPDATE, produced_at=produced_at), reference


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("nonce", NONCES)
def test_fast_path_equals_builder(responder: Responder, answer: str, nonce: str) -> None:
    a = ocsp.Answer(responder.query(), **ANSWERS[answer])
    fast, reference = _both(responder, a, NONCES[nonce])
    assert fast == reference


@pytest.mark.parametrize("query", QUERIES)
def test_cert_ids_equal_builder(responder: Responder, query: str) -> None:
    for status in ("good", "revoked keyCompromise"):
        a = ocsp.Answer(responder.query(*QUERIES[query]), **ANSWERS[status])
        fast, reference = _both(responder, a, b"\x01" * 16)
        assert fast == reference


def test_fields_read_back(responder: Responder) -> None:
    """What cryptography's parser reads from a fast-path answer, field by field."""
    a = ocsp.Answer(responder.query(serial=0x1234), **ANSWERS["revoked keyCompromise"])
    when = THIS_UPDATE + timedelta(seconds=3, microseconds=999_999)
    got = cocsp.load_der_ocsp_response(responder.factory.response(a, b"n" * 16, when, NEXT_UPDATE, produced_at=when))
    assert got.response_status is cocsp.OCSPResponseStatus.SUCCESSFUL
    assert got.serial_number == 0x1234 and got.certificate_status is cocsp.OCSPCertStatus.REVOKED
    assert got.revocation_time_utc == REVOKED_AT.replace(microsecond=0)
    assert got.revocation_reason is x509.ReasonFlags.key_compromise
    assert got.this_update_utc == got.produced_at_utc == THIS_UPDATE + timedelta(seconds=3)
    assert got.next_update_utc == NEXT_UPDATE
    assert got.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
    assert [der(c) for c in got.certificates] == [responder.cert, der(responder.ca)]
    responder_key = x509.load_der_x509_certificate(responder.cert).public_key()
    if isinstance(responder_key, ec.EllipticCurvePublicKey):
        responder_key.verify(got.signature, got.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    else:
        from cryptography.hazmat.primitives.asymmetric import padding
        responder_key.verify(got.signature, got.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    unknown = cocsp.load_der_ocsp_response(responder.factory.response(
        ocsp.Answer(responder.query(), "unknown"), None, THIS_UPDATE, NEXT_UPDATE, produced_at=THIS_UPDATE))
    assert unknown.certificate_status is cocsp.OCSPCertStatus.UNKNOWN and unknown.next_update_utc is None


def test_refuses_what_it_cannot_encode(responder: Responder) -> None:
    with pytest.raises(ValueError, match="revoked needs revoked_at"):
        responder.factory.response(ocsp.Answer(responder.query(), "revoked"), None, THIS_UPDATE, NEXT_UPDATE,
                                   produced_at=THIS_UPDATE)
    with pytest.raises(PkiError, match="PKCS#1 v1.5"):
        ocsp.ResponseFactory(responder.signer, SigScheme.RSA_PSS_SHA256, responder.cert, [])


def test_reason_codes_are_rfc5280s() -> None:
    """fastder's CRLReason table is cryptography's (RFC 5280 §5.3.1), name for name."""
    from pkicore.crlbuild import FLAGS
    assert set(fastder.REASON_CODES) == set(FLAGS)
    for name, flag in FLAGS.items():
        assert x509.CRLReason(flag).public_bytes()[-1] == fastder.REASON_CODES[name], name


# Recorded once: the whole answer (good, 16-octet nonce, SHA-1 CertID, serial 0x42) with the fixed RSA key.
KAT_RESPONSE_SHA256 = "5bb77e36443df37da697150079a2e0c98ddc6a48e0d68328ee6421b3228e5c77"


def test_known_answer() -> None:
    r = Responder(kat_rsa_key())
    a = ocsp.Answer(r.query(), "good")
    fast = r.factory.response(a, bytes(range(16)), THIS_UPDATE, NEXT_UPDATE, produced_at=THIS_UPDATE)
    assert hashlib.sha256(fast).hexdigest() == KAT_RESPONSE_SHA256


def test_openssl_reads_and_verifies(responder: Responder, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    a = ocsp.Answer(responder.query(), "good")
    resp = write(tmp_path / "r.der", responder.factory.response(a, None, now, now + timedelta(hours=1), produced_at=now))
    ca = write(tmp_path / "ca.pem", pem.armor("CERTIFICATE", der(responder.ca)))
    out = openssl("ocsp", "-respin", str(resp), "-CAfile", str(ca), "-resp_text")
    text = out.stdout + out.stderr
    assert out.returncode == 0 and b"Response verify OK" in text, text
    assert b"Cert Status: good" in text and b"Response Type: Basic OCSP Response" in text, text
