"""Acceptance 5: every way a signed payment can be wrong, through the verifier core,
the HTTP API and `udun verify`, each giving the right indication."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import cms as asn1cms
from asn1crypto import x509

from helpers import PIN, SoftwareKey, issue_with, make_root, now, sample_tx, udun, write


@dataclass(frozen=True)
class Case:
    cms: bytes
    content: bytes | None
    status: str
    sub: str | None
    # Through the API, whose verifier refuses signing times more than 5 minutes from its
    # clock before judging them (a bank's freshness rule): what it answers, if different.
    windowed: tuple[str, str] | None = None


WINDOW = ("INDETERMINATE", "SIGNING_TIME_OUT_OF_WINDOW")


def _flip_signature_byte(der: bytes) -> bytes:
    si = asn1cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    sig = si["signature"].native
    at = der.rfind(sig)
    assert at > 0
    return der[: at + len(sig) - 1] + bytes([der[at + len(sig) - 1] ^ 0x01]) + der[at + len(sig):]


@pytest.fixture(scope="session")
def cases(settings, ca, enrolled) -> dict[str, Case]:  # type: ignore[no-untyped-def]
    from pkicore.cms_build import assemble, signed_attributes, signer_info_algorithm, signing_certificate_v2
    from signer.signing import sign_transaction
    from signer.tokens import certificate_and_chain

    tx = sample_tx()
    content = tx.canonical_bytes()
    out: dict[str, Case] = {}
    for label, user in enrolled.items():
        # Each good payment has its own tx_id: the API accepts a tx_id once per signer.
        attached = sign_transaction(settings, label, PIN, sample_tx(), scheme=user.scheme)
        other = sample_tx()
        detached = sign_transaction(settings, label, PIN, other, scheme=user.scheme, detached=True)
        out[f"good-attached-{label}"] = Case(attached, None, "TOTAL_PASSED", None)
        out[f"good-detached-{label}"] = Case(detached, other.canonical_bytes(), "TOTAL_PASSED", None)

    good = sign_transaction(settings, "user-ec", PIN, tx)
    tampered = good.replace(b'"amount":"1234.50"', b'"amount":"1234.51"', 1)
    assert tampered != good
    out["changed-content-byte"] = Case(tampered, None, "TOTAL_FAILED", "HASH_FAILURE")
    broken = good.replace(b'{"amount"', b'["amount"', 1)      # no longer JSON, same length
    assert broken != good
    out["changed-content-breaks-json"] = Case(broken, None, "TOTAL_FAILED", "HASH_FAILURE")
    out["changed-signature-byte"] = Case(_flip_signature_byte(good), None, "TOTAL_FAILED", "SIG_CRYPTO_FAILURE")

    detached = sign_transaction(settings, "user-ec", PIN, tx, detached=True)
    out["detached-without-content"] = Case(detached, None, "INDETERMINATE", "SIGNED_DATA_NOT_FOUND")
    out["detached-wrong-content"] = Case(detached, sample_tx(amount="1.00").canonical_bytes(),
                                         "TOTAL_FAILED", "HASH_FAILURE")

    # A certificate from a CA the bank does not trust.
    from pkicore.cms_build import sign_data

    rogue_key, leaf_key = SoftwareKey(), SoftwareKey()
    rogue_root = make_root(rogue_key)
    rogue_leaf = issue_with(rogue_key, rogue_root, leaf_key.public_key_der)
    out["unknown-ca"] = Case(sign_data(leaf_key, rogue_leaf, [rogue_root], content, signing_time=now()),
                             None, "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")

    # A certificate from our CA that was valid for five days and expired five days ago;
    # the signer's (injected) clock says it signed yesterday, after the expiry.
    issuing = ca.issuer()
    old_key = SoftwareKey()
    old = issue_with(issuing.key, issuing.cert.dump(), old_key.public_key_der, days=5,
                     not_before=now() - timedelta(days=10))
    out["expired-at-signing-time"] = Case(
        sign_data(old_key, old, ca.chain_der(), content, signing_time=now() - timedelta(days=1)),
        None, "TOTAL_FAILED", "EXPIRED", ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE"))
    # The same certificate, a signing time inside its validity: but it has expired since,
    # and without a proof of existence (time-stamp) that cannot be accepted.
    out["expired-now-no-poe"] = Case(
        sign_data(old_key, old, ca.chain_der(), content, signing_time=now() - timedelta(days=7)),
        None, "INDETERMINATE", "OUT_OF_BOUNDS_NO_POE")
    cert = x509.Certificate.load(enrolled["user-ec"].cert_der)
    early = cert["tbs_certificate"]["validity"]["not_before"].native - timedelta(days=1)
    out["not-yet-valid-at-signing-time"] = Case(
        sign_transaction(settings, "user-ec", PIN, tx, signing_time=early), None, "TOTAL_FAILED", "NOT_YET_VALID",
        WINDOW)
    out["signing-time-in-the-future"] = Case(
        sign_transaction(settings, "user-ec", PIN, tx, signing_time=now() + timedelta(hours=1)),
        None, "INDETERMINATE", "SIG_CONSTRAINTS_FAILURE", WINDOW)

    # No signingCertificateV2, and one naming another certificate.
    key, cert_der, chain = certificate_and_chain(settings, "user-ec", PIN)
    cert_obj = x509.Certificate.load(cert_der)
    chain_obj = [x509.Certificate.load(c) for c in chain]
    from pkicore.algorithms import SigScheme

    alg = signer_info_algorithm(SigScheme.ECDSA_SHA256)
    attrs = [a for a in signed_attributes(cert_obj, content, now(), alg) if a["type"] != "signing_certificate_v2"]
    out["no-signing-certificate-v2"] = Case(
        assemble(key, cert_obj, chain_obj, content, attrs, detached=False, scheme=SigScheme.ECDSA_SHA256),
        None, "TOTAL_FAILED", "FORMAT_FAILURE")
    other = x509.Certificate.load(enrolled["user-rsa2048"].cert_der)
    attrs = [a if a["type"] != "signing_certificate_v2" else
             {"type": "signing_certificate_v2", "values": [signing_certificate_v2(other)]}
             for a in signed_attributes(cert_obj, content, now(), alg)]
    out["signing-certificate-v2-names-another"] = Case(
        assemble(key, cert_obj, chain_obj, content, attrs, detached=False, scheme=SigScheme.ECDSA_SHA256),
        None, "INDETERMINATE", "NO_SIGNING_CERTIFICATE_FOUND")

    # Issued by our CA, but without nonRepudiation.
    from ca import profiles
    from cryptography import x509 as cx509

    from certkit import ext
    from pkicore.x509build import key_identifier

    nr_key = SoftwareKey()
    exts = [e if not isinstance(e.value, cx509.KeyUsage) else ext("key_usage", {"digital_signature"}, critical=True)
            for e in profiles.client_extensions(settings, profiles.client_profile(settings),
                                                key_identifier(nr_key.public_key_der), issuing.cert.key_identifier)]
    no_nr = issue_with(issuing.key, issuing.cert.dump(), nr_key.public_key_der, extensions=exts)
    out["no-non-repudiation"] = Case(sign_data(nr_key, no_nr, ca.chain_der(), content, signing_time=now()),
                                     None, "INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE")

    # Signed content that is not a canonical payment.
    out["not-a-payment"] = Case(sign_data(key, cert_der, chain, b'{"hello":"world"}', signing_time=now()),
                                None, "TOTAL_FAILED", "FORMAT_FAILURE")
    return out


CASE_NAMES = [
    *(f"good-attached-{u}" for u in ("user-ec", "user-rsa2048", "user-rsa3072")),
    *(f"good-detached-{u}" for u in ("user-ec", "user-rsa2048", "user-rsa3072")),
    "changed-content-byte", "changed-content-breaks-json", "changed-signature-byte", "detached-without-content", "detached-wrong-content",
    "unknown-ca", "expired-at-signing-time", "expired-now-no-poe", "not-yet-valid-at-signing-time",
    "signing-time-in-the-future", "no-signing-certificate-v2",
    "signing-certificate-v2-names-another", "no-non-repudiation", "not-a-payment",
]


@pytest.fixture(scope="module")
def core_verifier(ca):  # type: ignore[no-untyped-def]
    """The verifier core without the API's signing-time window: the claims are judged."""
    from ca.ocsp import Responder, status_source
    from pkicore.cms_verify import Verifier
    from pkicore.pathval import ChainValidator, TrustStore

    return Verifier(ChainValidator(TrustStore.from_certs(ca.chain_der())), status=status_source(Responder(ca)))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_core(name: str, cases: dict[str, Case], core_verifier) -> None:  # type: ignore[no-untyped-def]
    case = cases[name]
    report = core_verifier.verify(case.cms, case.content)
    assert (report.status.value, report.sub_indication.value if report.sub_indication else None) == \
        (case.status, case.sub), report.message


@pytest.mark.parametrize("name", CASE_NAMES)
def test_api(name: str, cases: dict[str, Case], client) -> None:  # type: ignore[no-untyped-def]
    case = cases[name]
    if case.content is None:
        resp = client.post("/api/v1/verify", data=case.cms, content_type="application/pkcs7-mime")
    else:
        resp = client.post("/api/v1/verify", json={"cms": base64.b64encode(case.cms).decode(),
                                                   "content": base64.b64encode(case.content).decode()})
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["status"], body["sub_indication"]) == (case.windowed or (case.status, case.sub)), body["message"]
    if case.status == "TOTAL_PASSED":
        assert body["transaction"]["amount"] == "1234.50"
        assert body["signer"]["subject"].startswith("CN=Test ")
        assert all(c["result"] == "passed" for c in body["checks"])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cli(name: str, cases: dict[str, Case], chain_pem: Path, tmp_path: Path) -> None:
    case = cases[name]
    args = ["verify", str(write(tmp_path / "tx.p7s", case.cms)), "--json"]   # status from this home's responder
    if case.content is not None:
        args += ["--content", str(write(tmp_path / "tx.json", case.content))]
    proc = udun(*args)
    report = json.loads(proc.stdout)
    assert (report["status"], report["sub_indication"]) == (case.status, case.sub), proc.stderr
    assert proc.returncode == (0 if case.status == "TOTAL_PASSED" else 1)


def test_garbage_through_api_is_400(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/api/v1/verify", data=b"\x30\x03garbage, not CMS", content_type="application/pkcs7-mime")
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["code"] == "bad-input" and "CMS" in body["detail"]
    assert "Traceback" not in resp.get_data(as_text=True)


def test_garbage_through_cli_is_format_failure(chain_pem: Path, tmp_path: Path) -> None:
    proc = udun("verify", str(write(tmp_path / "junk.p7s", b"garbage, not CMS")), "--trust", str(chain_pem))
    assert proc.returncode == 1
    assert proc.stdout.decode().startswith("TOTAL_FAILED / FORMAT_FAILURE")
    assert b"Traceback" not in proc.stderr


def test_verify_uses_udun_home_trust_by_default(cases: dict[str, Case], tmp_path: Path) -> None:
    """Without --trust, `udun verify` trusts this UDUN_HOME's own CA chain."""
    proc = udun("verify", str(write(tmp_path / "tx.p7s", cases["good-attached-user-ec"].cms)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(b"TOTAL_PASSED")


def test_expiry_with_an_injected_verifier_clock(settings, ca, enrolled, cases) -> None:  # type: ignore[no-untyped-def]
    """Verify years later (injected clock): a signature claimed after the certificate's
    expiry is EXPIRED; one claimed within it has no proof of existence."""
    from pkicore.clock import fixed
    from pkicore.cms_verify import Verifier
    from pkicore.pathval import ChainValidator, TrustStore
    from signer.signing import sign_transaction

    cert = x509.Certificate.load(enrolled["user-ec"].cert_der)
    not_after = cert["tbs_certificate"]["validity"]["not_after"].native
    later = Verifier(ChainValidator(TrustStore.from_certs(ca.chain_der())), clock=fixed(not_after + timedelta(days=30)))
    after_expiry = sign_transaction(settings, "user-ec", PIN, sample_tx(), signing_time=not_after + timedelta(days=1))
    report = later.verify(after_expiry)
    assert (report.status.value, report.sub_indication.value) == ("TOTAL_FAILED", "EXPIRED")
    report = later.verify(cases["good-attached-user-ec"].cms)
    assert (report.status.value, report.sub_indication.value) == ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE")


def test_certificate_the_library_cannot_read_is_a_report(settings, ca, enrolled, verifier) -> None:  # type: ignore[no-untyped-def]
    """A certificate in the set with an unknown key algorithm: a FORMAT_FAILURE report, no crash."""
    from asn1crypto import keys

    from pkicore.cms_build import sign_data

    key = SoftwareKey()
    issuing = ca.issuer()
    leaf = x509.Certificate.load(issue_with(issuing.key, issuing.cert.dump(), key.public_key_der))
    tbs = leaf["tbs_certificate"].copy()
    tbs["subject_public_key_info"] = keys.PublicKeyInfo({
        "algorithm": {"algorithm": "1.2.3.4.5"}, "public_key": b"\x00" * 32})
    odd = x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": leaf["signature_algorithm"],
                            "signature_value": leaf["signature_value"].native}).dump()
    cms = sign_data(key, odd, [], sample_tx().canonical_bytes(), signing_time=now())
    report = verifier.verify(cms)
    assert report.status.value != "TOTAL_PASSED" and report.sub_indication is not None
