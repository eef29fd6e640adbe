"""The CA: policy checks, the client profile, two-phase issuance, serials."""
from __future__ import annotations

import hashlib

import pytest
from asn1crypto import csr as asn1csr
from asn1crypto import x509

from helpers import PIN, SoftwareKey
from pkicore.algorithms import KeyType
from pkicore.errors import ErrorKind, PkiError


def _csr(key, subject: str | x509.Name) -> bytes:  # type: ignore[no-untyped-def]
    import certkit
    from pkicore.x509build import build_csr, parse_name

    # A Name object is a subject udun would not encode itself: the test kit's CSR builder.
    return build_csr(key, parse_name(subject)) if isinstance(subject, str) else certkit.build_csr(key, subject)


def test_client_profile(enrolled) -> None:  # type: ignore[no-untyped-def]
    cert = x509.Certificate.load(enrolled["user-ec"].cert_der)
    assert cert.key_usage_value.native == {"digital_signature", "non_repudiation"}
    assert set(cert.extended_key_usage_value.native) == {"client_auth", "document_signing"}
    exts = {e["extn_id"].native: e for e in cert["tbs_certificate"]["extensions"]}
    assert exts["key_usage"]["critical"].native is True
    assert cert.crl_distribution_points_value is not None and cert.ocsp_urls
    assert cert.authority_key_identifier and cert.key_identifier
    assert 64 <= cert.serial_number.bit_length() <= 159 and cert.serial_number > 0
    validity = cert["tbs_certificate"]["validity"]
    days = (validity["not_after"].native - validity["not_before"].native).days
    assert 729 <= days <= 731


def test_serials_are_unique_and_random(ca, settings) -> None:  # type: ignore[no-untyped-def]
    csr = _csr(SoftwareKey(), "CN=Serial Test")
    serials = {int(ca.issue(csr).serial, 16) for _ in range(20)}
    assert len(serials) == 20
    assert len({s >> 64 for s in serials}) == 20    # the high bits vary too


def test_two_phase_records_intent_before_signing(ca) -> None:  # type: ignore[no-untyped-def]
    rec = ca.issue(_csr(SoftwareKey(), "CN=Two Phase"))
    cert = x509.Certificate.load(rec.der)
    assert rec.state == "issued"
    assert rec.tbs_sha256 == hashlib.sha256(cert["tbs_certificate"].dump()).hexdigest()
    assert format(cert.serial_number, "x") == rec.serial


def test_failed_signing_leaves_a_known_failed_serial(ca, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    issuer = ca.issuer()

    def broken(prepared):  # type: ignore[no-untyped-def]
        raise PkiError(ErrorKind.TOKEN, "token removed")

    monkeypatch.setattr(issuer, "sign", broken)
    before = ca.store.count()
    with pytest.raises(PkiError):
        ca.issue(_csr(SoftwareKey(), "CN=Crash Test"))
    rows = ca.store.certificates(limit=5)
    assert ca.store.count() == before + 1
    failed = [r for r in rows if r.subject == "CN=Crash Test"]
    assert failed and failed[0].state == "failed" and failed[0].der is None and failed[0].tbs_sha256


def _raw_name(*rdns: list[tuple[str, str, str]]) -> x509.Name:
    """A Name exactly as given: (attribute, string type, value) per RDN, no checks."""
    return x509.Name(name="", value=x509.RDNSequence([
        x509.RelativeDistinguishedName([
            {"type": t, "value": x509.DirectoryString(name=kind, value=v)} for t, kind, v in rdn])
        for rdn in rdns]))


@pytest.mark.parametrize("subject, message", [
    (x509.Name.build({"organization_name": "No Common Name"}), "needs a CN"),
    (x509.Name.build({"common_name": "Someone", "domain_component": "example"}), "DC is not allowed"),
    (x509.Name.build({"common_name": "x" * 65}, use_printable=False), "CN is longer than 64"),
    (x509.Name.build({"common_name": "Someone", "country_name": "China"}), "C "),
    (x509.Name.build({"common_name": "abc\u202edef"}), "invisible or control character U+202E"),
    (x509.Name.build({"common_name": " padded "}), "leading or trailing spaces"),
    (x509.Name.build({"common_name": "Zoe\u0308"}), "NFC"),
    (_raw_name([("common_name", "utf8_string", "A")], [("common_name", "utf8_string", "B")]), "twice"),
    (_raw_name([("common_name", "utf8_string", "A"), ("organization_name", "utf8_string", "B")]), "multi-valued"),
], ids=["no-cn", "dc", "long-cn", "bad-country", "bidi", "spaces", "nfd", "two-cn", "multi-valued-rdn"])
def test_policy_refuses_subjects(ca, subject: x509.Name, message: str) -> None:  # type: ignore[no-untyped-def]
    before = ca.store.count()
    with pytest.raises(PkiError) as err:
        ca.issue(_csr(SoftwareKey(), subject))
    assert err.value.kind is ErrorKind.POLICY and message in err.value.message
    assert ca.store.count() == before


def test_subject_is_re_encoded_with_rfc5280_string_types(ca, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A requester's odd string types (BMPString CN, UTF8String C) never reach a certificate."""
    from asn1crypto import pem

    from helpers import lint, write

    odd = _raw_name([("country_name", "utf8_string", "CN")], [("common_name", "bmp_string", "张三")])
    cert = x509.Certificate.load(ca.issue(_csr(SoftwareKey(), odd)).der)
    kinds = {rdn[0]["type"].native: rdn[0]["value"] for rdn in cert.subject.chosen}
    assert kinds["common_name"].name == "utf8_string" and kinds["common_name"].native == "张三"
    assert kinds["country_name"].native == "CN" and kinds["country_name"].name == "printable_string"
    proc = lint(write(tmp_path / "odd.pem", pem.armor("CERTIFICATE", cert.dump())))
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout


def test_policy_refuses_a_forged_proof_of_possession(ca) -> None:  # type: ignore[no-untyped-def]
    """A CSR whose key was swapped after signing (someone else's public key)."""
    good = asn1csr.CertificationRequest.load(_csr(SoftwareKey(), "CN=Victim"))
    other = SoftwareKey()
    from asn1crypto import keys

    info = good["certification_request_info"].copy()
    info["subject_pk_info"] = keys.PublicKeyInfo.load(other.public_key_der)
    forged = asn1csr.CertificationRequest({"certification_request_info": info,
                                           "signature_algorithm": good["signature_algorithm"],
                                           "signature": good["signature"].native}).dump()
    with pytest.raises(PkiError) as err:
        ca.issue(forged)
    assert err.value.kind is ErrorKind.BAD_CSR and "proof of possession" in err.value.message


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x03\x02\x01\x01"])
def test_policy_refuses_garbage(ca, data: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PkiError) as err:
        ca.issue(data)
    assert err.value.kind is ErrorKind.BAD_CSR


def test_policy_refuses_weak_rsa(ca) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = SoftwareKey(KeyType.RSA_2048)
    key.private = rsa.generate_private_key(65537, 1024)
    with pytest.raises(PkiError) as err:
        ca.issue(_csr(key, "CN=Weak"))
    assert err.value.kind is ErrorKind.POLICY and "RSA-1024" in err.value.message


def test_ca_init_twice_is_refused(ca) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PkiError) as err:
        ca.init()
    assert err.value.kind is ErrorKind.CONFLICT


def test_issuance_survives_a_token_reinitialisation(settings, ca) -> None:  # type: ignore[no-untyped-def]
    """Creating a token elsewhere resets PKCS#11 sessions; the CA reopens its key."""
    from keystore import token

    ca.issuer()
    token.refresh(settings)
    assert ca.issue(_csr(SoftwareKey(), "CN=After Refresh")).state == "issued"


def test_import_refuses_a_certificate_for_another_key(settings, enrolled) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import pem

    from signer import tokens

    with pytest.raises(PkiError) as err:
        tokens.import_certificates(settings, "user-ec", PIN, pem.armor("CERTIFICATE", enrolled["user-rsa2048"].cert_der))
    assert err.value.kind is ErrorKind.BAD_INPUT


def test_a_bad_token_signature_never_becomes_a_certificate(ca, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The issuer checks each signature with the CA certificate; a fault marks the serial failed."""
    issuer = ca.issuer()
    real = issuer.key.sign_digest

    def faulty(digest: bytes, scheme):  # type: ignore[no-untyped-def]
        return real(bytes(32), scheme)          # a valid signature, over the wrong bytes

    monkeypatch.setattr(issuer.key, "sign_digest", faulty)
    with pytest.raises(PkiError) as err:
        ca.issue(_csr(SoftwareKey(), "CN=Faulty Token"))
    assert err.value.kind is ErrorKind.TOKEN
    row = next(r for r in ca.store.certificates(limit=5) if r.subject == "CN=Faulty Token")
    assert row.state == "failed" and row.der is None


@pytest.mark.parametrize("change, message", [
    ({"serial": -5}, "serial must be positive"),
    ({"serial": 1 << 170}, "at most 20 octets"),
    ({"swap_dates": True}, "notBefore must precede"),
    ({"issuer": "CN=Someone Else"}, "issuer name differs"),
    ({"years": 30}, "outlasts the issuing CA"),
    ({"duplicate": True}, "duplicate extension"),
    ({"aki": b"\x01" * 20}, "AKI must match"),
], ids=["negative-serial", "long-serial", "dates", "issuer", "too-long", "duplicate-ext", "aki"])
def test_lint_refuses_what_must_not_be_signed(ca, change: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta, timezone

    from ca import profiles
    from ca.issuer import lint
    from pkicore import names
    from certkit import build_tbs, ext
    from pkicore.x509build import key_identifier

    issuer = ca.issuer()
    key = SoftwareKey()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    nb, na = now, now + timedelta(days=365 * change.get("years", 1))
    if change.get("swap_dates"):
        nb, na = na, nb
    exts = profiles.client_extensions(ca.settings, profiles.client_profile(ca.settings),
                                      key_identifier(key.public_key_der),
                                      change.get("aki", issuer.cert.key_identifier))
    if change.get("duplicate"):
        exts.append(ext("key_usage", {"digital_signature"}, critical=True))
    issuer_name = names.parse(change["issuer"]) if "issuer" in change else issuer.cert.subject
    tbs = build_tbs(serial=change.get("serial", 12345), scheme=issuer.scheme, issuer=issuer_name,
                    subject=names.parse("CN=Lint Test"), public_key_der=key.public_key_der,
                    not_before=nb, not_after=na, extensions=exts)
    with pytest.raises(PkiError) as err:
        lint(tbs, issuer.lint_facts)
    assert message in err.value.message


@pytest.mark.parametrize("scheme", ["pkcs1", "pss"])
def test_csr_proof_of_possession_through_the_one_signature_check(scheme: str) -> None:
    """RSA CSRs signed with PKCS#1 v1.5 and with PSS pass proof of possession (pkicore.sigverify);
    one changed signature byte fails it."""
    from helpers import SoftwareKey
    from pkicore.algorithms import KeyType, SigScheme
    from pkicore.errors import PkiError as Err
    from pkicore.x509build import build_csr, parse_name

    from ca.policy import check_csr

    key = SoftwareKey(KeyType.RSA_2048)
    csr = build_csr(key, parse_name("CN=PoP,O=udun tests,C=CN"), SigScheme(scheme))
    check_csr(csr)
    broken = csr[:-5] + bytes([csr[-5] ^ 0x01]) + csr[-4:]
    with pytest.raises(Err, match="proof of possession"):
        check_csr(broken)
