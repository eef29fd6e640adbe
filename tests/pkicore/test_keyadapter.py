"""cryptography's builders signing through the RawSigner seam (pkicore.keyadapter), and
what udun builds with them: certificates, CSRs, CRLs and OCSP responses (issue 10 point 5)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import crl as asn1crl
from asn1crypto import ocsp as asn1ocsp
from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization

from helpers import SoftwareKey
from pkicore import keyadapter, names, ocsp
from pkicore.algorithms import KeyType, SigScheme, signature_algorithm
from pkicore.crlbuild import build_crl, entry
from pkicore.errors import ErrorKind, PkiError
from pkicore.x509build import (
    build_csr,
    certificate_builder,
    der_of,
    identifiers,
    key_identifier,
    sign_certificate,
    tbs_certificate,
)

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=timezone.utc)
SCHEMES = [(KeyType.EC_P256, SigScheme.ECDSA_SHA256), (KeyType.RSA_2048, SigScheme.RSA_PKCS1_SHA256),
           (KeyType.RSA_2048, SigScheme.RSA_PSS_SHA256)]


class Counting(SoftwareKey):
    """A software RawSigner that counts what it was asked to sign."""

    def __init__(self, key_type: KeyType) -> None:
        super().__init__(key_type)
        self.digests: list[bytes] = []

    def sign_digest(self, digest: bytes, scheme: SigScheme) -> bytes:
        self.digests.append(digest)
        return super().sign_digest(digest, scheme)


def _builder(key: SoftwareKey, serial: int = 0x1234) -> cx509.CertificateBuilder:
    name = names.to_cryptography(names.parse("CN=Adapter Test,O=udun tests,C=CN"))
    return certificate_builder(serial=serial, issuer=name, subject=name, public_key_der=key.public_key_der,
                               not_before=NOW, not_after=NOW + timedelta(days=1),
                               extensions=identifiers(key_identifier(key.public_key_der), None))


@pytest.mark.parametrize("key_type, scheme", SCHEMES, ids=["ecdsa", "pkcs1", "pss"])
def test_certificates_are_signed_through_the_seam(key_type: KeyType, scheme: SigScheme) -> None:
    key = Counting(key_type)
    builder = _builder(key)
    tbs = tbs_certificate(builder, key, scheme)
    assert key.digests == []                                   # taking the TBS signs nothing
    cert = sign_certificate(builder, key, scheme, tbs=tbs)
    assert key.digests == [hashlib.sha256(tbs).digest()]       # one signature, over exactly that TBS
    der = der_of(cert)
    assert cert.tbs_certificate_bytes == tbs
    cert.verify_directly_issued_by(cert)
    # The AlgorithmIdentifier is udun's own (RFC 5758 / RFC 4055 parameters, PSS salt 32).
    parsed = x509.Certificate.load(der)
    assert parsed["signature_algorithm"].dump() == signature_algorithm(scheme).dump()


def test_the_adapter_signs_only_the_recorded_tbs() -> None:
    key = Counting(KeyType.EC_P256)
    recorded = tbs_certificate(_builder(key, serial=1), key, SigScheme.ECDSA_SHA256)
    with pytest.raises(PkiError) as err:                     # another serial: other bytes
        sign_certificate(_builder(key, serial=2), key, SigScheme.ECDSA_SHA256, tbs=recorded)
    assert err.value.kind is ErrorKind.INTERNAL and "recorded TBS" in err.value.message
    assert key.digests == []                                   # the token was never asked


def test_the_private_key_never_leaves() -> None:
    for key_type in (KeyType.EC_P256, KeyType.RSA_2048):
        adapter = keyadapter.private_key(SoftwareKey(key_type))
        for attempt in (lambda: adapter.private_bytes(serialization.Encoding.DER,  # type: ignore[call-arg]
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()),
                        adapter.private_numbers):
            with pytest.raises(PkiError) as err:
                attempt()
            assert err.value.kind is ErrorKind.UNSUPPORTED


def test_a_scheme_that_does_not_fit_the_key_is_refused() -> None:
    with pytest.raises(PkiError) as err:
        keyadapter.private_key(SoftwareKey(KeyType.EC_P256), SigScheme.RSA_PKCS1_SHA256)
    assert err.value.kind is ErrorKind.UNSUPPORTED


@pytest.mark.parametrize("key_type, scheme", SCHEMES, ids=["ecdsa", "pkcs1", "pss"])
def test_csr_proof_of_possession(key_type: KeyType, scheme: SigScheme) -> None:
    from ca.policy import check_csr

    key = SoftwareKey(key_type)
    subject = names.parse("CN=张三,O=udun tests,C=CN")
    der = build_csr(key, subject, scheme)
    req = cx509.load_der_x509_csr(der)
    assert req.is_signature_valid and req.subject.public_bytes() == subject.dump()
    assert check_csr(der).subject.dump() == subject.dump()


def test_csr_subjects_are_udun_names_only() -> None:
    odd = x509.Name.build({"common_name": "x" * 65})           # longer than RFC 5280 allows
    with pytest.raises(PkiError) as err:
        build_csr(SoftwareKey(), odd)
    assert err.value.kind is ErrorKind.INTERNAL


def test_crl_entries_reasons_and_extensions() -> None:
    key = SoftwareKey()
    issuer = names.to_cryptography(names.parse("CN=CRL Test CA,O=udun tests"))
    ski = key_identifier(key.public_key_der)
    der = build_crl(key, SigScheme.ECDSA_SHA256, issuer=issuer, issuer_ski=ski, number=7, this_update=NOW,
                    next_update=NOW + timedelta(hours=24), entries=[
                        entry(11, NOW - timedelta(hours=1), "keyCompromise", NOW - timedelta(days=2)),
                        entry(12, NOW - timedelta(hours=1), "unspecified", None),
                        entry(13, NOW - timedelta(hours=1), None, None),
                        entry(14, NOW.astimezone(timezone(timedelta(hours=8))), None, None)])
    crl = cx509.load_der_x509_crl(der)
    assert crl.is_signature_valid(key.private.public_key())  # type: ignore[arg-type]
    parsed = asn1crl.CertificateList.load(der)
    assert parsed["tbs_cert_list"]["version"].native == "v2" and parsed.crl_number_value.native == 7
    assert parsed.authority_key_identifier == ski
    got = {e["user_certificate"].native: {x["extn_id"].native: x["extn_value"].native
                                          for x in e["crl_entry_extensions"]}
           for e in parsed["tbs_cert_list"]["revoked_certificates"]}
    # RFC 5280 §5.3.1: unspecified is left out; §5.3.2: invalidityDate as GeneralizedTime.
    assert got == {11: {"crl_reason": "key_compromise", "invalidity_date": NOW - timedelta(days=2)}, 12: {}, 13: {},
                   14: {}}
    dates = {e["user_certificate"].native: e["revocation_date"].native
             for e in parsed["tbs_cert_list"]["revoked_certificates"]}
    assert dates[14] == NOW and dates[11] == NOW - timedelta(hours=1)     # times of any zone, in UTC
    with pytest.raises(ValueError):
        entry(0, NOW, None, None)                                          # RFC 5280 §4.1.2.2


def test_empty_crl_has_no_revoked_certificates_field() -> None:
    key = SoftwareKey()
    der = build_crl(key, SigScheme.ECDSA_SHA256, issuer=names.to_cryptography(names.parse("CN=Empty CA")),
                    issuer_ski=key_identifier(key.public_key_der), number=1, this_update=NOW,
                    next_update=NOW + timedelta(hours=1), entries=[])
    assert asn1crl.CertificateList.load(der)["tbs_cert_list"]["revoked_certificates"].native is None  # §5.1.2.6


@pytest.mark.parametrize("status, reason", [("good", None), ("revoked", "keyCompromise"),
                                            ("revoked", "unspecified"), ("unknown", None)])
@pytest.mark.parametrize("nonce", [None, b"\x01" * 16])
def test_ocsp_answers(status: str, reason: str | None, nonce: bytes | None) -> None:
    key = SoftwareKey()
    responder_der = der_of(sign_certificate(_builder(key), key, SigScheme.ECDSA_SHA256))
    issuer = x509.Certificate.load(responder_der)
    request = ocsp.parse_request(ocsp.build_request(issuer, issuer, nonce=nonce))
    answer = ocsp.Answer(request.queries[0], status, NOW - timedelta(hours=2) if status == "revoked" else None,
                         reason)
    der = ocsp.build_response(key, SigScheme.ECDSA_SHA256, cx509.load_der_x509_certificate(responder_der), [],
                              answer, request.nonce, this_update=NOW, next_update=NOW + timedelta(hours=1))
    basic = asn1ocsp.OCSPResponse.load(der).basic_ocsp_response
    data = basic["tbs_response_data"]
    single = data["responses"][0]
    assert single["cert_id"]["serial_number"].native == issuer.serial_number
    assert single["cert_id"]["issuer_key_hash"].native == request.queries[0].issuer_key_hash
    assert data["responder_id"].name == "by_key"
    assert data["responder_id"].native == hashlib.sha1(issuer.public_key["public_key"].contents[1:]).digest()
    kind = single["cert_status"].name
    assert kind == status
    if status == "revoked":
        info = single["cert_status"].chosen
        assert info["revocation_time"].native == NOW - timedelta(hours=2)
        assert info["revocation_reason"].native == ("key_compromise" if reason == "keyCompromise" else None)
    assert (single["next_update"].native is None) == (status == "unknown")   # never cache an unknown
    exts = {e["extn_id"].native: e["extn_value"].parsed.native for e in data["response_extensions"] or []}
    assert exts == ({"nonce": nonce} if nonce else {})                       # RFC 8954: echoed as sent
    cx509.load_der_x509_certificate(responder_der).public_key().verify(  # type: ignore[union-attr, call-arg]
        basic["signature"].native, data.dump(), *_ecdsa())


def _ecdsa() -> tuple[object]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return (ec.ECDSA(hashes.SHA256()),)


def test_ocsp_requests_ask_about_one_certificate() -> None:
    """RFC 5019 §2.1.1, as Go's and Boulder's responders: two CertIDs are a malformed request."""
    key = SoftwareKey()
    cert = x509.Certificate.load(der_of(sign_certificate(_builder(key), key, SigScheme.ECDSA_SHA256)))
    one = asn1ocsp.OCSPRequest.load(ocsp.build_request(cert, cert))
    req_cert = one["tbs_request"]["request_list"][0]["req_cert"]
    two = asn1ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": req_cert}, {"req_cert": req_cert}]}})
    with pytest.raises(ocsp.OcspRefusal) as err:
        ocsp.parse_request(two.dump())
    assert err.value.status == "malformed_request" and "one certificate" in str(err.value)


def test_a_long_chinese_cn_is_a_name_udun_encodes() -> None:
    """RFC 5280's 64 for commonName counts characters: 64 CJK characters are 192 UTF-8 bytes."""
    name = names.build([("common_name", "中" * 64), ("country_name", "CN")])
    assert names.to_cryptography(name).public_bytes() == name.dump()
    from asn1crypto import csr as asn1csr

    from ca.policy import check_csr

    der = build_csr(SoftwareKey(), name)
    assert asn1csr.CertificationRequest.load(der)["certification_request_info"]["subject"].dump() == name.dump()
    assert check_csr(der).subject.dump() == name.dump()


def test_a_negative_serial_is_a_malformed_request() -> None:
    key = SoftwareKey()
    cert = x509.Certificate.load(der_of(sign_certificate(_builder(key), key, SigScheme.ECDSA_SHA256)))
    req = asn1ocsp.OCSPRequest.load(ocsp.build_request(cert, cert))
    cid = req["tbs_request"]["request_list"][0]["req_cert"]
    bad = asn1ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": {
        "hash_algorithm": cid["hash_algorithm"], "issuer_name_hash": cid["issuer_name_hash"],
        "issuer_key_hash": cid["issuer_key_hash"], "serial_number": -5}}]}})
    with pytest.raises(ocsp.OcspRefusal) as err:
        ocsp.parse_request(bad.dump())
    assert err.value.status == "malformed_request"
