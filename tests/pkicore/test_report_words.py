"""Issue 10: verification reports carry udun's own words; the library's text goes to the
server log ("udun.verify") only.

Failing verifications are driven through the public functions (payment CMS, `udun cert
verify`, time-stamp tokens, evidence bundles) and every text a client or CLI user sees is
searched for phrases of pyhanko-certvalidator, asn1crypto, cryptography or Python itself.
The stable codes (sub-indications) stay as they were.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import x509

from helpers import SoftwareKey, issue_with, make_root, sample_tx
from pkicore import der, tsp
from pkicore.algorithms import default_scheme
from pkicore.bundle_check import verify_bundle
from pkicore.certcheck import PathReport, verify_path
from pkicore.cms_build import sign_data
from pkicore.cms_verify import Verifier
from pkicore.errors import PkiError
from pkicore.pathval import ChainValidator, TrustStore
from pkicore.report import Report
from pkicore.tsp_check import _path, _splice, _tlv
from certkit import ext
from pkicore.x509build import key_identifier
from test_cert_verify import NOW, Pki, _ocsp, _responder, authority_info_access, crl, make

DOC_SIGNING = "1.3.6.1.5.5.7.3.36"
# What the libraries' (and Python's) own sentences look like; none of it is udun's wording.
MARKERS = (
    "Traceback", "asn1crypto", "pyhanko", "cryptography",
    "Error",                                      # ValueError, TypeError, KeyError, ParseError, ...
    "BadZipFile", "Void", "object is not subscriptable", "object has no attribute", "while parsing",
    "is missing from structure", "Invalid", "Field \"",
    "The path could not be validated", "Unable to", "could not be", "no issuer matching", " indicates ",
    "due to a", "Common Name:", "Organization:", "+00:00",
)


def library_phrases(texts: Iterable[str]) -> list[str]:
    return [f"{m!r} in {t!r}" for t in texts for m in MARKERS if m in t]


def report_texts(report: Report) -> list[str]:
    out = [report.message]
    out += [c.detail for c in report.checks]
    out += [str(s.get("detail") or "") for s in report.statuses]
    if report.revocation:
        out.append(str(report.revocation.get("detail") or ""))
    return out


def path_texts(report: PathReport) -> list[str]:
    o = report.outcome
    return [o.error or "", o.rule or ""]


@dataclass
class World:
    p: Pki
    cms: bytes
    tx: bytes

    def verifier(self, status: list[tuple[str, bytes]], root: bytes | None = None) -> Verifier:
        return Verifier(ChainValidator(TrustStore([root or self.p.root], [])), clock=lambda: NOW,
                        status=lambda _c, _i: status)

    @property
    def good(self) -> list[tuple[str, bytes]]:
        return [("crl", c) for c in self.p.crls]


@pytest.fixture(scope="module")
def world() -> World:
    p = Pki()
    tx = sample_tx().canonical_bytes()
    return World(p, sign_data(p.leaf_key, p.leaf, [p.int], tx, signing_time=NOW), tx)


def _replace_certs(cms: bytes, certs: list[bytes]) -> bytes:
    """The CMS with another certificate set (the signature does not cover it)."""
    path = _path(cms)
    field = next(k for k in der.children(cms, path[2]) if k.tag == 0xA0)
    return _splice(cms, [*path[:3], field], _tlv(0xA0, b"".join(certs)))


def _replace_signature_algorithm(cms: bytes, alg_der: bytes) -> bytes:
    path = _path(cms)
    return _splice(cms, [*path, der.children(cms, path[-1])[4]], alg_der)


def _payment_cases(w: World) -> dict[str, tuple[bytes, Verifier, str | None]]:
    """name -> (CMS, verifier, expected sub-indication or None for 'any failure')."""
    p = w.p
    other = Pki()
    old = make(p.leaf_key, "CN=Old,O=Allowed Bank", issuer=(p.int_key, p.int), eku=[DOC_SIGNING],
               not_before=NOW - timedelta(days=400), days=200)
    expired = sign_data(p.leaf_key, old, [p.int], w.tx, signing_time=NOW - timedelta(days=250))
    broken = bytearray(w.cms)
    broken[-5] ^= 0xFF                                                   # inside the signature value
    bad_time = bytearray(p.leaf)
    bad_time[bad_time.find(b"\x17\x0d") + 2] = ord("x")                  # notBefore no longer a UTCTime
    bad_key = bytearray(p.leaf)
    bad_key[bad_key.find(b"\x03\x42\x00\x04") + 4] = 0x07                # not a point on the curve
    stale = crl(p.int_key, p.int, [], this_update=NOW - timedelta(days=3), hours=24)
    forged = crl(SoftwareKey(), p.int, [], number=3)
    revoked = crl(p.int_key, p.int, [p.leaf], number=2)
    ocsp_leaf = make(p.leaf_key, "CN=OCSP Leaf,O=Allowed Bank", issuer=(p.int_key, p.int), eku=[DOC_SIGNING],
                     extra=[authority_info_access("http://ocsp.example.invalid/ocsp", None)])
    ocsp_cms = sign_data(p.leaf_key, ocsp_leaf, [p.int], w.tx, signing_time=NOW)
    rogue_key, rogue = _responder(p.int_key, p.int, ocsp_signing=False)
    pss = bytes.fromhex("06092a864886f70d01010a")                          # id-RSASSA-PSS
    good = w.verifier(w.good)
    return {
        "broken signature": (bytes(broken), good, "SIG_CRYPTO_FAILURE"),
        "untrusted chain": (w.cms, w.verifier(w.good, other.root), "NO_CERTIFICATE_CHAIN_FOUND"),
        "expired signer": (expired, good, "OUT_OF_BOUNDS_NO_POE"),
        "junk in the certificate set": (_replace_certs(w.cms, [p.leaf, b"\x30\x03\x02\x01\x01"]), good,
                                        "FORMAT_FAILURE"),
        "signer certificate with a bad time": (_replace_certs(w.cms, [bytes(bad_time), p.int]), good,
                                               "FORMAT_FAILURE"),
        "signer certificate with a bad key": (_replace_certs(w.cms, [bytes(bad_key), p.int]), good,
                                              "FORMAT_FAILURE"),
        "malformed signature algorithm": (_replace_signature_algorithm(w.cms, _tlv(0x30, pss + b"\x02\x01\x05")),
                                          good, None),
        "PSS parameters of the wrong type": (
            _replace_signature_algorithm(w.cms, _tlv(0x30, pss + b"\x30\x03\x02\x01\x05")), good, None),
        "OCSP response without a body": (w.cms, w.verifier([("ocsp", b"\x30\x03\x0a\x01\x00"),
                                                             ("crl", p.crls[0])]), "TRY_LATER"),
        "unparsable CRL": (w.cms, w.verifier([("crl", b"\x30\x82\x01\x00" + bytes(10)), ("crl", p.crls[0])]),
                           "TRY_LATER"),
        "no status for the CA": (w.cms, w.verifier([]), "TRY_LATER"),
        "stale CRL": (w.cms, w.verifier([("crl", stale), ("crl", p.crls[0])]), "TRY_LATER"),
        "CRL by the wrong key": (w.cms, w.verifier([("crl", forged), ("crl", p.crls[0])]), "TRY_LATER"),
        "revoked signer": (w.cms, w.verifier([("crl", revoked), ("crl", p.crls[0])]), "REVOKED"),
        "OCSP by an unauthorised responder": (
            ocsp_cms, w.verifier([("ocsp", _ocsp(rogue_key, rogue, ocsp_leaf, p.int)), ("crl", p.crls[0])]),
            "TRY_LATER"),
    }


def test_payment_reports_carry_our_own_words(world: World) -> None:
    found: dict[str, list[str]] = {}
    for name, (cms, verifier, sub) in _payment_cases(world).items():
        report = verifier.verify(cms)
        assert not report.passed, name
        if sub is not None:
            assert report.sub_indication is not None and report.sub_indication.value == sub, (name, report.message)
        bad = library_phrases(report_texts(report))
        if bad:
            found[name] = bad
    assert not found, found


def test_payment_report_words_keep_their_meaning(world: World) -> None:
    p = world.p
    stale = crl(p.int_key, p.int, [], this_update=NOW - timedelta(days=3), hours=24)
    report = world.verifier([("crl", stale), ("crl", p.crls[0])]).verify(world.cms)
    assert "the signer" in report.message and "not recent enough" in report.message, report.message
    forged = crl(SoftwareKey(), p.int, [], number=3)
    report = world.verifier([("crl", forged), ("crl", p.crls[0])]).verify(world.cms)
    assert "signature" in report.message, report.message
    report = world.verifier(world.good, Pki().root).verify(world.cms)
    assert "no path to a trust anchor" in report.message, report.message


def test_not_cms_at_all_is_refused_in_our_words(world: World) -> None:
    for data in (b"garbage", world.cms[:-40], b"\x30\x03\x02\x01\x01"):
        with pytest.raises(PkiError) as err:
            world.verifier(world.good).verify(data)
        assert not library_phrases([err.value.message]), err.value.message


def test_the_library_text_goes_to_the_server_log(world: World, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="udun.verify"):
        report = world.verifier(world.good, Pki().root).verify(world.cms)
    assert report.sub_indication is not None and report.sub_indication.value == "NO_CERTIFICATE_CHAIN_FOUND"
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "udun.verify")
    assert "Unable to build a validation path" in logged, logged
    assert "Unable to build" not in report.message


def _path_cases(p: Pki) -> dict[str, tuple[dict[str, Any], str, str]]:
    """name -> (verify_path arguments, expected sub-indication, a word our text keeps)."""
    other = Pki()
    not_ca_key, k2 = SoftwareKey(), SoftwareKey()
    not_ca = make(not_ca_key, "CN=Not A CA,O=Allowed Bank", issuer=(p.root_key, p.root), ca=False,
                  key_usage={"key_cert_sign", "crl_sign"})
    int2 = make(k2, "CN=Second Issuing,O=Allowed Bank", issuer=(p.int_key, p.int), ca=True)
    odd = make(SoftwareKey(), "CN=Odd,O=Allowed Bank", issuer=(p.int_key, p.int),
               extra=[{"extn_id": "1.2.3.4.5.6.7", "critical": True, "extn_value": b"\x05\x00"}])
    bad_sig = bytearray(p.leaf)
    bad_sig[-3] ^= 1
    nc = ext("name_constraints", {"permitted_subtrees": [{"base": x509.GeneralName(
        name="directory_name", value=x509.Name.build({"organization_name": "Allowed Bank"}))}]}, critical=True)
    nc_key = SoftwareKey()
    nc_int = make(nc_key, "CN=NC Issuing,O=Allowed Bank", issuer=(p.root_key, p.root), ca=True, extra=[nc])
    outside = make(SoftwareKey(), "CN=Outside,O=Other Bank", issuer=(nc_key, nc_int))
    stale = crl(p.int_key, p.int, [], this_update=NOW - timedelta(days=3), hours=24)
    ocsp_leaf = make(p.leaf_key, "CN=OCSP Leaf,O=Allowed Bank", issuer=(p.int_key, p.int),
                     extra=[authority_info_access("http://ocsp.example.invalid/ocsp", None)])
    rogue_key, rogue = _responder(p.int_key, p.int, ocsp_signing=False)
    base: dict[str, Any] = {"leaf": p.leaf, "anchors": [p.root], "untrusted": [p.int], "revocation": "off"}
    return {
        "expired": ({**base, "moment": NOW + timedelta(days=400)}, "EXPIRED", "expired"),
        "not yet valid": ({**base, "moment": NOW - timedelta(days=400)}, "NOT_YET_VALID", "not yet valid"),
        "untrusted": ({**base, "anchors": [other.root]}, "NO_CERTIFICATE_CHAIN_FOUND", "trust anchor"),
        "not a CA": ({**base, "leaf": make(SoftwareKey(), "CN=Leaf,O=Allowed Bank", issuer=(not_ca_key, not_ca)),
                      "untrusted": [not_ca]}, "CHAIN_CONSTRAINTS_FAILURE", "CA"),
        "path length": ({**base, "leaf": make(SoftwareKey(), "CN=Deep,O=Allowed Bank", issuer=(k2, int2)),
                         "untrusted": [p.int, int2]}, "CHAIN_CONSTRAINTS_FAILURE", "path length"),
        "critical extension": ({**base, "leaf": odd}, "CHAIN_CONSTRAINTS_FAILURE", "critical"),
        "bad signature": ({**base, "leaf": bytes(bad_sig)}, "CHAIN_CONSTRAINTS_FAILURE", "signature"),
        "name constraints": ({**base, "leaf": outside, "untrusted": [nc_int]}, "CHAIN_CONSTRAINTS_FAILURE", "name"),
        "revoked": ({**base, "revocation": "soft", "crls": [p.crls[0], crl(p.int_key, p.int, [p.leaf], number=2)]},
                    "REVOKED", "revoked"),
        "revoked CA": ({**base, "revocation": "soft",
                        "crls": [crl(p.root_key, p.root, [p.int], number=2), p.crls[1]]}, "REVOKED", "revoked"),
        "stale CRL": ({**base, "revocation": "hard", "crls": [p.crls[0], stale]}, "TRY_LATER", "not recent enough"),
        "CRL by the wrong key": ({**base, "revocation": "hard",
                                  "crls": [p.crls[0], crl(SoftwareKey(), p.int, [], number=3)]},
                                 "TRY_LATER", "signature"),
        "no CRL": ({**base, "revocation": "hard", "crls": []}, "TRY_LATER", "revocation"),
        "garbage revocation data": ({**base, "revocation": "hard", "crls": [p.crls[0], b"<html>"],
                                     "ocsps": [b"<html>"]}, "TRY_LATER", "revocation"),
        "OCSP response without a body": ({**base, "leaf": ocsp_leaf, "revocation": "hard",
                                          "crls": [p.crls[0]], "ocsps": [b"\x30\x03\x0a\x01\x00"]},
                                         "CERTIFICATE_CHAIN_GENERAL_FAILURE", "cannot be processed"),
        "unauthorised OCSP responder": ({**base, "leaf": ocsp_leaf, "revocation": "hard", "crls": [p.crls[0]],
                                         "ocsps": [_ocsp(rogue_key, rogue, ocsp_leaf, p.int)]},
                                        "TRY_LATER", "OCSP"),
    }


def test_cert_verify_errors_carry_our_own_words(world: World) -> None:
    found: dict[str, list[str]] = {}
    for name, (args, sub, word) in _path_cases(world.p).items():
        args = dict(args)
        report = verify_path(args.pop("leaf"), args.pop("anchors"), args.pop("untrusted"),
                             moment=args.pop("moment", NOW), **args)
        assert not report.valid and report.outcome.sub is not None, name
        assert report.outcome.sub.value == sub, (name, report.outcome)
        assert word.lower() in (report.error or "").lower(), (name, report.error)
        bad = library_phrases(path_texts(report))
        if bad:
            found[name] = bad
    assert not found, found


def _tsa() -> tuple[tsp.TokenFactory, bytes]:
    root_key = SoftwareKey()
    root = make_root(root_key, cn="Words TSA Root")
    key = SoftwareKey()
    exts = [ext("basic_constraints", {"ca": False}, critical=True),
            ext("key_usage", {"digital_signature"}, critical=True),
            ext("extended_key_usage", ["time_stamping"], critical=True),
            ext("key_identifier", key_identifier(key.public_key_der)),
            ext("authority_key_identifier", {"key_identifier": x509.Certificate.load(root).key_identifier})]
    cert = issue_with(root_key, root, key.public_key_der, cn="Words TSA", extensions=exts)
    return tsp.TokenFactory(key, default_scheme(key.key_type), cert, [root], "1.3.6.1.4.1.99999.1.1"), cert


def test_time_stamp_token_problems_carry_our_own_words() -> None:
    factory, cert = _tsa()
    token = factory.token(hash_name="sha256", imprint=hashlib.sha256(b"x").digest(), serial=5,
                          gen_time=datetime(2026, 1, 1, tzinfo=UTC), nonce=None, cert_req=True)
    assert tsp.check_token(token).ok
    at = token.index(b"\x04\x20" + hashlib.sha256(cert).digest())        # the ESSCertIDv2 certHash
    problems = []
    for tag in (0x02, 0x30):                                             # still DER, no longer an ESSCertIDv2
        check = tsp.check_token(token[:at] + bytes([tag]) + token[at + 1:])
        assert not check.ok
        problems.append(check.problem)
    problems.append(tsp.check_token(b"garbage").problem)
    problems.append(tsp.check_token(token[:-30]).problem)
    assert not library_phrases(problems), problems


def test_bundle_problems_carry_our_own_words(world: World) -> None:
    problems = [*verify_bundle(b"garbage", [world.p.root], NOW).problems,
                *verify_bundle(b"PK\x03\x04" + bytes(40), [world.p.root], NOW).problems]
    assert problems and not library_phrases(problems), problems
