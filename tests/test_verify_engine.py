"""Review findings on payment verification under the one engine (issue 9), as tests:
a CA whose extendedKeyUsage excludes document signing, RSA-PSS over SHA-1, weak keys on
CRL signers, and revocation data that does not parse."""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from asn1crypto import cms as acms
from helpers import SoftwareKey, sample_tx
from pkicore.algorithms import KeyType, SigScheme
from pkicore.cms_build import sign_data
from pkicore.cms_verify import Verifier
from pkicore.pathval import ChainValidator, TrustStore
from test_cert_verify import NOW, Pki, crl, make

DOC_SIGNING = "1.3.6.1.5.5.7.3.36"


def _verifier(root: bytes, data: list[tuple[str, bytes]]) -> Verifier:
    return Verifier(ChainValidator(TrustStore([root], [])), clock=lambda: NOW, status=lambda c, i: data)


def test_payment_under_a_ca_whose_eku_excludes_document_signing() -> None:
    p = Pki()
    k, sk = SoftwareKey(), SoftwareKey()
    tls_ca = make(k, "CN=TLS Only CA,O=Allowed Bank", issuer=(p.root_key, p.root), ca=True, path_len=0,
                  eku=["server_auth"])
    leaf = make(sk, "CN=Signer,O=Allowed Bank", issuer=(k, tls_ca), eku=[DOC_SIGNING])
    cms = sign_data(sk, leaf, [tls_ca], sample_tx().canonical_bytes(), signing_time=NOW)
    report = _verifier(p.root, [("crl", crl(p.root_key, p.root, [])), ("crl", crl(k, tls_ca, []))]).verify(cms)
    assert report.sub_indication is not None and report.sub_indication.value == "CHAIN_CONSTRAINTS_FAILURE"
    assert "TLS Only CA" in report.message


def test_rsa_pss_over_sha1_is_refused() -> None:
    p = Pki()
    rk = SoftwareKey(KeyType.RSA_2048)
    leaf = make(rk, "CN=RSA Signer,O=Allowed Bank", issuer=(p.int_key, p.int), eku=[DOC_SIGNING])
    der = sign_data(rk, leaf, [p.int], sample_tx().canonical_bytes(), signing_time=NOW,
                    scheme=SigScheme.RSA_PSS_SHA256)
    ci = acms.ContentInfo.load(der)
    si = ci["content"]["signer_infos"][0]
    si["signature_algorithm"] = {"algorithm": "rsassa_pss", "parameters": {
        "hash_algorithm": {"algorithm": "sha1"},
        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha1"}},
        "salt_length": 20, "trailer_field": "trailer_field_bc"}}
    si["signed_attrs"] = acms.CMSAttributes([a for a in si["signed_attrs"]
                                            if a["type"].dotted != "1.2.840.113549.1.9.52"])
    signed = b"\x31" + si["signed_attrs"].dump()[1:]        # signed as a SET (RFC 5652 §5.4)
    si["signature"] = rk.private.sign(signed, padding.PSS(padding.MGF1(hashes.SHA1()), 20), hashes.SHA1())
    report = _verifier(p.root, [("crl", c) for c in p.crls]).verify(ci.dump(force=True))
    assert report.sub_indication is not None and report.sub_indication.value == "CRYPTO_CONSTRAINTS_FAILURE"
    assert "sha1" in report.message


def test_crl_signed_by_a_weak_key_does_not_count() -> None:
    p = Pki()
    weak = SoftwareKey(KeyType.RSA_2048)
    weak.private = rsa.generate_private_key(65537, 1024)
    signer = make(weak, "CN=Test Issuing,O=Allowed Bank", issuer=(p.root_key, p.root), ca=False,
                  key_usage={"crl_sign"})
    cms = sign_data(p.leaf_key, p.leaf, [p.int], sample_tx().canonical_bytes(), signing_time=NOW)
    report = Verifier(ChainValidator(TrustStore([p.root], [p.int, signer])), clock=lambda: NOW,
                      status=lambda c, i: [("crl", p.crls[0]), ("crl", crl(weak, signer, []))]).verify(cms)
    assert report.sub_indication is not None and report.sub_indication.value == "TRY_LATER", report.message


def test_garbage_status_data_is_no_status_not_a_failed_signature() -> None:
    p = Pki()
    cms = sign_data(p.leaf_key, p.leaf, [p.int], sample_tx().canonical_bytes(), signing_time=NOW)
    report = _verifier(p.root, [("crl", b"<html>502</html>"), ("ocsp", b"\x30\x03\x0a\x01")]).verify(cms)
    assert report.sub_indication is not None and report.sub_indication.value == "TRY_LATER", report.message
    assert _verifier(p.root, [("crl", b"junk")] + [("crl", c) for c in p.crls]).verify(cms).passed


def test_an_answer_signed_just_after_the_moment_counts() -> None:
    """Under load the in-process responder signs a few seconds after the verifier took "now":
    the library's default 1 s tolerance made that TRY_LATER (a flaky two-server test)."""
    from datetime import timedelta

    from pkicore.pathstatus import evaluate
    from test_cert_verify import _ocsp, _responder, authority_info_access

    p = Pki()
    leaf = make(p.leaf_key, "CN=Late,O=Allowed Bank", issuer=(p.int_key, p.int),
                extra=[authority_info_access("http://ocsp.example.invalid/ocsp", None)])
    key, responder = _responder(p.int_key, p.int, ocsp_signing=True)
    answer = _ocsp(key, responder, leaf, p.int)                 # thisUpdate NOW - 1 min
    early = NOW - timedelta(minutes=1, seconds=3)               # the verifier's "now", 3 s before
    status = evaluate((leaf, p.int, p.root), [[("ocsp", answer)], [("crl", p.crls[0])]], early)
    assert status.outcome.valid, status.outcome.error
