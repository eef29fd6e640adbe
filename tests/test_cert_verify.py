"""Issue 4 acceptance 5: `udun cert verify` accepts valid chains and rejects each invalid one.

Every chain is generated here (software keys, our own builders), one rule broken at a time.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem, x509
from cryptography import x509 as cx509

from helpers import SoftwareKey, udun, write
from pkicore import names
from pkicore.algorithms import default_scheme
from pkicore.certcheck import verify_path
from pkicore.crlbuild import build_crl, entry
from certkit import authority_info_access, build_tbs, crl_distribution_points, ext, sign_tbs
from pkicore.x509build import key_identifier, name_of

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DP = "http://pki.example.invalid/crl/x.crl"


def make(key: SoftwareKey, subject: str, *, issuer: tuple[SoftwareKey, bytes] | None = None, ca: bool = False,
         path_len: int | None = None, eku: list[str] | None = None, extra: list[dict[str, Any]] | None = None,
         not_before: datetime | None = None, days: int = 365, serial: int | None = None,
         basic: bool = True, key_usage: set[str] | None = None) -> bytes:
    """One certificate; ``issuer`` = (key, certificate DER), None for self-signed."""
    subject_name = names.parse(subject)
    ski = key_identifier(key.public_key_der)
    signer, issuer_name, aki = (key, subject_name, ski) if issuer is None else (
        issuer[0], x509.Certificate.load(issuer[1]).subject, x509.Certificate.load(issuer[1]).key_identifier)
    exts: list[dict[str, Any]] = []
    if basic:
        bc: dict[str, Any] = {"ca": ca}
        if path_len is not None:
            bc["path_len_constraint"] = path_len
        exts.append(ext("basic_constraints", bc, critical=True))
    exts.append(ext("key_usage", key_usage or ({"key_cert_sign", "crl_sign"} if ca else
                                               {"digital_signature", "non_repudiation"}), critical=True))
    if eku:
        exts.append(ext("extended_key_usage", eku))
    if issuer is not None:
        exts.append(crl_distribution_points(DP))
    exts += [ext("key_identifier", ski), ext("authority_key_identifier", {"key_identifier": aki})]
    exts += extra or []
    nb = not_before or NOW - timedelta(days=1)
    scheme = default_scheme(signer.key_type)
    tbs = build_tbs(serial=serial or int.from_bytes(SoftwareKey().public_key_der[-8:], "big") | 1,
                    issuer=issuer_name, subject=subject_name, public_key_der=key.public_key_der,
                    not_before=nb, not_after=nb + timedelta(days=days), scheme=scheme, extensions=exts)
    return sign_tbs(signer, tbs, scheme)


def crl(key: SoftwareKey, issuer_cert: bytes, revoked: list[bytes], *, this_update: datetime | None = None,
        hours: int = 24, number: int = 1) -> bytes:
    cert = x509.Certificate.load(issuer_cert)
    tu = this_update or NOW - timedelta(minutes=5)
    return build_crl(key, default_scheme(key.key_type), issuer=name_of(issuer_cert),
                     issuer_ski=cert.key_identifier or key_identifier(key.public_key_der), number=number,
                     this_update=tu, next_update=tu + timedelta(hours=hours),
                     entries=[entry(x509.Certificate.load(r).serial_number, NOW - timedelta(minutes=10),
                                    "keyCompromise", None) for r in revoked])


class Pki:
    """root -> int (pathLen 0) -> leaf (clientAuth + documentSigning), with good CRLs."""

    def __init__(self) -> None:
        self.root_key, self.int_key, self.leaf_key = SoftwareKey(), SoftwareKey(), SoftwareKey()
        self.root = make(self.root_key, "CN=Test Root,O=Allowed Bank", ca=True)
        self.int = make(self.int_key, "CN=Test Issuing,O=Allowed Bank", issuer=(self.root_key, self.root),
                        ca=True, path_len=0)
        self.leaf = make(self.leaf_key, "CN=张三,O=Allowed Bank", issuer=(self.int_key, self.int),
                         eku=["client_auth", "1.3.6.1.5.5.7.3.36"])
        self.crls = [crl(self.root_key, self.root, []), crl(self.int_key, self.int, [])]

    def check(self, leaf: bytes | None = None, *, anchors: list[bytes] | None = None,
              untrusted: list[bytes] | None = None, crls: list[bytes] | None = None, purpose: str = "any",
              revocation: str = "soft", moment: datetime | None = None):  # type: ignore[no-untyped-def]
        return verify_path(leaf or self.leaf, anchors or [self.root], [self.int] if untrusted is None else untrusted,
                           moment=moment or NOW, purpose=purpose, revocation=revocation,
                           crls=self.crls if crls is None else crls)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.mark.parametrize("purpose", ["any", "client-auth", "document-signing"])
@pytest.mark.parametrize("revocation", ["off", "soft", "hard"])
def test_valid_chain_passes(pki: Pki, purpose: str, revocation: str) -> None:
    report = pki.check(purpose=purpose, revocation=revocation)
    assert report.valid, report.error
    assert len(report.path) == 3


def test_expired_trust_anchor(pki: Pki) -> None:
    old_root = make(pki.root_key, "CN=Test Root,O=Allowed Bank", ca=True, not_before=NOW - timedelta(days=400),
                    days=200)
    report = pki.check(anchors=[old_root], revocation="off")
    assert not report.valid and "expired" in (report.error or "")


@pytest.mark.parametrize("where", ["anchor", "intermediate"])
def test_name_constraints(pki: Pki, where: str) -> None:
    subtree = x509.Name.build({"organization_name": "Allowed Bank"})
    nc = ext("name_constraints", {"permitted_subtrees": [
        {"base": x509.GeneralName(name="directory_name", value=subtree)}]}, critical=True)
    root_key, int_key = SoftwareKey(), SoftwareKey()
    root = make(root_key, "CN=NC Root,O=Allowed Bank", ca=True, extra=[nc] if where == "anchor" else [])
    inter = make(int_key, "CN=NC Issuing,O=Allowed Bank", issuer=(root_key, root), ca=True, path_len=0,
                 extra=[nc] if where == "intermediate" else [])
    inside = make(SoftwareKey(), "CN=Inside,O=Allowed Bank", issuer=(int_key, inter))
    outside = make(SoftwareKey(), "CN=Outside,O=Other Bank", issuer=(int_key, inter))
    ok = verify_path(inside, [root], [inter], moment=NOW, revocation="off")
    bad = verify_path(outside, [root], [inter], moment=NOW, revocation="off")
    assert ok.valid, ok.error
    assert not bad.valid and "name" in (bad.error or "").lower(), bad.error


def test_ca_without_basic_constraints_ca(pki: Pki) -> None:
    not_ca_key = SoftwareKey()
    not_ca = make(not_ca_key, "CN=Not A CA,O=Allowed Bank", issuer=(pki.root_key, pki.root), ca=False,
                  key_usage={"key_cert_sign", "crl_sign"})
    leaf = make(SoftwareKey(), "CN=Leaf,O=Allowed Bank", issuer=(not_ca_key, not_ca))
    report = verify_path(leaf, [pki.root], [not_ca], moment=NOW, revocation="off")
    assert not report.valid and "CA" in (report.error or "")


def test_ca_without_basic_constraints_at_all(pki: Pki) -> None:
    k = SoftwareKey()
    bare = make(k, "CN=Bare,O=Allowed Bank", issuer=(pki.root_key, pki.root), basic=False,
                key_usage={"key_cert_sign", "crl_sign"})
    leaf = make(SoftwareKey(), "CN=Leaf,O=Allowed Bank", issuer=(k, bare))
    assert not verify_path(leaf, [pki.root], [bare], moment=NOW, revocation="off").valid


def test_path_length_exceeded(pki: Pki) -> None:
    k2 = SoftwareKey()
    int2 = make(k2, "CN=Second Issuing,O=Allowed Bank", issuer=(pki.int_key, pki.int), ca=True)
    leaf = make(SoftwareKey(), "CN=Deep,O=Allowed Bank", issuer=(k2, int2))
    report = verify_path(leaf, [pki.root], [pki.int, int2], moment=NOW, revocation="off")
    assert not report.valid and "path length" in (report.error or "").lower()


def test_leaf_without_the_asked_purpose(pki: Pki) -> None:
    client_only = make(SoftwareKey(), "CN=Client Only,O=Allowed Bank", issuer=(pki.int_key, pki.int),
                       eku=["client_auth"])
    assert pki.check(client_only, purpose="client-auth").valid
    report = pki.check(client_only, purpose="document-signing")
    assert not report.valid and "purpose" in (report.error or "")


def test_unknown_critical_extension(pki: Pki) -> None:
    odd = make(SoftwareKey(), "CN=Odd,O=Allowed Bank", issuer=(pki.int_key, pki.int),
               extra=[{"extn_id": "1.2.3.4.5.6.7", "critical": True, "extn_value": b"\x05\x00"}])
    report = pki.check(odd, revocation="off")
    assert not report.valid and "critical" in (report.error or "").lower()


def test_revoked_intermediate(pki: Pki) -> None:
    root_crl = crl(pki.root_key, pki.root, [pki.int], number=2)
    report = pki.check(crls=[root_crl, pki.crls[1]])
    assert not report.valid and "revoked" in (report.error or "").lower()


def test_revoked_leaf(pki: Pki) -> None:
    report = pki.check(crls=[pki.crls[0], crl(pki.int_key, pki.int, [pki.leaf], number=2)])
    assert not report.valid and "revoked" in (report.error or "").lower()


def test_crl_signed_by_the_wrong_key(pki: Pki) -> None:
    forged = crl(SoftwareKey(), pki.int, [], number=3)     # right name, wrong key, revokes nothing
    for mode in ("soft", "hard"):
        report = pki.check(crls=[pki.crls[0], forged], revocation=mode)
        assert not report.valid and "signature" in (report.error or ""), report.error


def test_crl_signed_by_a_separate_key_of_the_same_ca(pki: Pki) -> None:
    """RFC 5280 §6.3.3(f): the CA's CRL-signing key, certified by the same anchor."""
    crl_key = SoftwareKey()
    signer = make(crl_key, "CN=Test Issuing,O=Allowed Bank", issuer=(pki.root_key, pki.root), ca=False,
                  key_usage={"crl_sign"})
    by_other_key = crl(crl_key, signer, [pki.leaf], number=4)
    report = pki.check(untrusted=[pki.int, signer], crls=[pki.crls[0], by_other_key], revocation="hard")
    assert not report.valid and "revoked" in (report.error or "").lower(), report.error
    clean = crl(crl_key, signer, [], number=5)
    assert pki.check(untrusted=[pki.int, signer], crls=[pki.crls[0], clean], revocation="hard").valid


def test_stale_crl(pki: Pki) -> None:
    """A CRL past its nextUpdate fails in both modes (soft forgives missing data, not bad
    data: a stale CRL may still be the only one listing a revocation)."""
    stale = crl(pki.int_key, pki.int, [], this_update=NOW - timedelta(days=3), hours=24)
    assert not pki.check(crls=[pki.crls[0], stale], revocation="soft").valid
    assert not pki.check(crls=[pki.crls[0], stale], revocation="hard").valid
    assert pki.check(crls=[pki.crls[0]], revocation="soft").valid          # missing: soft forgives


def test_soft_mode_revoked_wins(pki: Pki) -> None:
    """Review findings: soft mode must see a revocation on a CRL given, even for a leaf
    without a distribution point, and an OCSP 'good' must not hide a CRL that revokes."""
    no_cdp = make(SoftwareKey(), "CN=No CDP,O=Allowed Bank", issuer=(pki.int_key, pki.int), serial=424242)
    revoking = crl(pki.int_key, pki.int, [no_cdp], number=11)
    report = pki.check(no_cdp, crls=[pki.crls[0], revoking], revocation="soft")
    assert not report.valid and report.outcome.sub is not None and report.outcome.sub.value == "REVOKED"
    leaf = make(pki.leaf_key, "CN=Both,O=Allowed Bank", issuer=(pki.int_key, pki.int),
                extra=[authority_info_access("http://ocsp.example.invalid/ocsp", None)])
    key, responder = _responder(pki.int_key, pki.int, ocsp_signing=True)
    good = _ocsp(key, responder, leaf, pki.int)
    for mode in ("soft", "hard"):
        report = verify_path(leaf, [pki.root], [pki.int], moment=NOW, revocation=mode, ocsps=[good],
                             crls=[pki.crls[0], crl(pki.int_key, pki.int, [leaf], number=12)])
        assert not report.valid and report.outcome.sub is not None and report.outcome.sub.value == "REVOKED", mode


def test_unreadable_revocation_data_is_missing_not_a_crash(pki: Pki) -> None:
    html = b"<html>502 Bad Gateway</html>"
    report = pki.check(crls=[pki.crls[0], pki.crls[1], html], revocation="hard")
    assert report.valid, report.error                    # the garbage is ignored, the real CRLs count
    report = verify_path(pki.leaf, [pki.root], [pki.int], moment=NOW, revocation="hard", crls=[pki.crls[0], html],
                         ocsps=[html])
    assert not report.valid and report.outcome.sub is not None and report.outcome.sub.value == "TRY_LATER"


def test_no_crl_under_hard(pki: Pki) -> None:
    assert not pki.check(crls=[], revocation="hard").valid


def test_cli(pki: Pki, tmp_path: Path) -> None:
    root = write(tmp_path / "root.pem", pem.armor("CERTIFICATE", pki.root))
    inter = write(tmp_path / "int.pem", pem.armor("CERTIFICATE", pki.int))
    leaf = write(tmp_path / "leaf.pem", pem.armor("CERTIFICATE", pki.leaf))
    crls = [write(tmp_path / f"{i}.crl", d) for i, d in enumerate(pki.crls)]
    base = ["cert", "verify", str(leaf), "--trust", str(root), "--untrusted", str(inter), "--offline"]
    ok = udun(*base, "--crl", str(crls[0]), "--crl", str(crls[1]), "--revocation", "hard", "--purpose",
              "document-signing")
    assert ok.returncode == 0 and ok.stdout.startswith(b"OK:"), ok.stdout + ok.stderr
    revoked = write(tmp_path / "rev.crl", crl(pki.int_key, pki.int, [pki.leaf], number=9))
    bad = udun(*base, "--crl", str(crls[0]), "--crl", str(revoked), "--json")
    assert bad.returncode == 1 and b'"valid": false' in bad.stdout
    later = udun(*base, "--revocation", "off", "--at", (NOW + timedelta(days=400)).isoformat())
    assert later.returncode == 1 and b"expired" in later.stdout
    assert udun("cert", "verify", str(tmp_path / "missing.pem")).returncode == 2


def test_weak_key_is_refused(pki: Pki) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pkicore.algorithms import KeyType

    weak = SoftwareKey(KeyType.RSA_2048)
    weak.private = rsa.generate_private_key(65537, 1024)
    leaf = make(weak, "CN=Weak,O=Allowed Bank", issuer=(pki.int_key, pki.int))
    report = pki.check(leaf, revocation="off")
    assert not report.valid and "RSA-1024" in (report.error or "")


def test_weak_signature_hash_is_refused(pki: Pki) -> None:
    """A certificate signed with SHA-1 (the validator's algorithm policy refuses it)."""
    from asn1crypto import algos
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    leaf = x509.Certificate.load(pki.leaf)
    tbs = leaf["tbs_certificate"].copy()
    tbs["signature"] = algos.SignedDigestAlgorithm({"algorithm": "sha1_ecdsa"})
    sig = pki.int_key.private.sign(tbs.dump(), ec.ECDSA(hashes.SHA1()))
    sha1_leaf = x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": {"algorithm": "sha1_ecdsa"},
                                  "signature_value": sig}).dump()
    report = pki.check(sha1_leaf, revocation="off")
    assert not report.valid, report


# --- Issue 9: the one engine, generated chains ------------------------------------------------

def _nc(kind: str, value: Any, mode: str) -> dict[str, Any]:
    """A critical nameConstraints extension with one subtree of ``kind``."""
    name = x509.GeneralName(name=kind, value=value)
    key = "permitted_subtrees" if mode == "permitted" else "excluded_subtrees"
    return ext("name_constraints", {key: [{"base": name}]}, critical=True)


def _san(kind: str, value: Any) -> dict[str, Any]:
    return ext("subject_alt_name", [x509.GeneralName(name=kind, value=value)])


# kind -> (constraint value, a name inside it, a name outside it)
NAME_CASES: dict[str, tuple[Any, Any, Any]] = {
    "dns_name": ("bank.example", "pay.bank.example", "pay.evil.example"),
    "rfc822_name": ("bank.example", "zhang@bank.example", "zhang@evil.example"),
    "ip_address": ("10.1.0.0/16", "10.1.2.3", "192.0.2.1"),
    "directory_name": (None, "CN=A,O=Allowed Bank", "CN=B,O=Other Bank"),
}
# DN subtrees (RFC 5280 §7.1: a name is inside when it starts with the base's RDNs): the
# permitted one holds the intermediate too; the excluded one only part of the leaves.
DN_PERMITTED = x509.Name.build({"organization_name": "Allowed Bank"})
DN_EXCLUDED = x509.Name.build({"organization_name": "Allowed Bank", "organizational_unit_name": "Blocked"})


@pytest.mark.parametrize("where", ["anchor", "intermediate"])
@pytest.mark.parametrize("mode", ["permitted", "excluded"])
@pytest.mark.parametrize("kind", list(NAME_CASES))
def test_name_constraints_by_kind(kind: str, mode: str, where: str) -> None:
    """RFC 5280 §4.2.1.10 / §6.1.3(b)(c): DNS, email, IP, DN; permitted and excluded; on the
    intermediate and (udun: the anchor's constraints apply) on the anchor."""
    constraint, inside, outside = NAME_CASES[kind]
    if kind == "directory_name":
        constraint = DN_PERMITTED if mode == "permitted" else DN_EXCLUDED
        if mode == "excluded":
            inside, outside = "CN=B,OU=Blocked,O=Allowed Bank", "CN=A,O=Allowed Bank"
    nc = _nc(kind, constraint, mode)
    root_key, int_key = SoftwareKey(), SoftwareKey()
    root = make(root_key, "CN=NC Root,O=Allowed Bank", ca=True, extra=[nc] if where == "anchor" else [])
    inter = make(int_key, "CN=NC Issuing,O=Allowed Bank", issuer=(root_key, root), ca=True, path_len=0,
                 extra=[nc] if where == "intermediate" else [])

    def leaf(value: Any, subject: str) -> bytes:
        return make(SoftwareKey(), subject, issuer=(int_key, inter),
                    extra=[_san(kind, value)] if value is not None else [])

    if kind == "directory_name":
        a, b = leaf(None, inside), leaf(None, outside)
    else:
        a, b = leaf(inside, "CN=A,O=Allowed Bank"), leaf(outside, "CN=B,O=Allowed Bank")
    in_name, out_name = (a, b) if mode == "permitted" else (b, a)
    ok = verify_path(in_name, [root], [inter], moment=NOW, revocation="off")
    bad = verify_path(out_name, [root], [inter], moment=NOW, revocation="off")
    assert ok.valid, ok.error
    assert not bad.valid and bad.outcome.rule is not None, bad.error
    assert f"§6.1.3({'b' if mode == 'permitted' else 'c'})" in bad.outcome.rule, bad.outcome
    assert bad.outcome.failing is not None and bad.outcome.failing.position == "end-entity"


def test_path_length_allows_what_it_says(pki: Pki) -> None:
    """pathLenConstraint 1 on the intermediate allows one more CA below it (§6.1.4(l)-(m))."""
    k1, k2 = SoftwareKey(), SoftwareKey()
    int1 = make(k1, "CN=PL1,O=Allowed Bank", issuer=(pki.root_key, pki.root), ca=True, path_len=1)
    int2 = make(k2, "CN=PL2,O=Allowed Bank", issuer=(k1, int1), ca=True, path_len=0)
    leaf = make(SoftwareKey(), "CN=Leaf,O=Allowed Bank", issuer=(k2, int2))
    assert verify_path(leaf, [pki.root], [int1, int2], moment=NOW, revocation="off").valid
    # and --max-depth counts the intermediate CAs like openssl -verify_depth
    assert verify_path(leaf, [pki.root], [int1, int2], moment=NOW, revocation="off", max_depth=2).valid
    deep = verify_path(leaf, [pki.root], [int1, int2], moment=NOW, revocation="off", max_depth=1)
    assert not deep.valid and "--max-depth" in (deep.outcome.rule or "")
    int3_key = SoftwareKey()
    int3 = make(int3_key, "CN=PL3,O=Allowed Bank", issuer=(k2, int2), ca=True)
    too_deep = make(SoftwareKey(), "CN=Too Deep,O=Allowed Bank", issuer=(int3_key, int3))
    report = verify_path(too_deep, [pki.root], [int1, int2, int3], moment=NOW, revocation="off")
    assert not report.valid and "§6.1.4(l)" in (report.outcome.rule or ""), report.outcome


@pytest.mark.parametrize("purpose", ["client-auth", "server-auth", "document-signing", "time-stamping",
                                     "ocsp-signing", "1.2.3.4.5"])
def test_no_eku_means_any_purpose(pki: Pki, purpose: str) -> None:
    """RFC 5280 §4.2.1.12: without extendedKeyUsage a certificate is good for any purpose."""
    plain = make(SoftwareKey(), "CN=No EKU,O=Allowed Bank", issuer=(pki.int_key, pki.int))
    assert pki.check(plain, purpose=purpose, revocation="off").valid


def test_purposes_by_name_and_oid(pki: Pki) -> None:
    server = make(SoftwareKey(), "CN=Server,O=Allowed Bank", issuer=(pki.int_key, pki.int),
                  eku=["server_auth", "1.2.3.4.5"])
    assert verify_path(server, [pki.root], [pki.int], moment=NOW, revocation="off",
                       purpose=["server-auth", "1.2.3.4.5"]).valid
    both = verify_path(server, [pki.root], [pki.int], moment=NOW, revocation="off",
                       purpose=["server-auth", "client-auth"])
    assert not both.valid and "client-auth" in (both.error or "")     # every purpose must be allowed
    with pytest.raises(Exception, match="purpose"):
        verify_path(server, [pki.root], [pki.int], moment=NOW, purpose="not-a-purpose")


def test_eku_chaining(pki: Pki) -> None:
    """An EKU on a CA constrains the certificates below it (OpenSSL and the CA/B Forum do)."""
    k = SoftwareKey()
    tls_ca = make(k, "CN=TLS Only CA,O=Allowed Bank", issuer=(pki.root_key, pki.root), ca=True, path_len=0,
                  eku=["server_auth"])
    leaf = make(SoftwareKey(), "CN=Client,O=Allowed Bank", issuer=(k, tls_ca), eku=["client_auth"])
    assert verify_path(leaf, [pki.root], [tls_ca], moment=NOW, revocation="off", purpose="any").valid
    report = verify_path(leaf, [pki.root], [tls_ca], moment=NOW, revocation="off", purpose="client-auth")
    assert not report.valid and report.outcome.failing is not None
    assert report.outcome.failing.position == "intermediate 1" and "chaining" in (report.outcome.rule or "")
    client_ca = make(k, "CN=Client CA,O=Allowed Bank", issuer=(pki.root_key, pki.root), ca=True, path_len=0,
                     eku=["client_auth"])
    leaf2 = make(SoftwareKey(), "CN=Client 2,O=Allowed Bank", issuer=(k, client_ca), eku=["client_auth"])
    assert verify_path(leaf2, [pki.root], [client_ca], moment=NOW, revocation="off", purpose="client-auth").valid


def test_crl_issuer_needs_crl_sign(pki: Pki) -> None:
    """RFC 5280 §6.3.3(f): a CRL signed by a key whose certificate lacks cRLSign is not usable."""
    crl_key = SoftwareKey()
    no_crl_sign = make(crl_key, "CN=Test Issuing,O=Allowed Bank", issuer=(pki.root_key, pki.root), ca=False,
                       key_usage={"digital_signature"})
    listing_nothing = crl(crl_key, no_crl_sign, [], number=6)
    report = pki.check(untrusted=[pki.int, no_crl_sign], crls=[pki.crls[0], listing_nothing], revocation="hard")
    assert not report.valid and report.outcome.sub is not None, report.outcome
    assert report.outcome.sub.value == "TRY_LATER" and "§6.3" in (report.outcome.rule or "")


def _ocsp(responder_key: SoftwareKey, responder: bytes, cert: bytes, issuer: bytes, status: str = "good",
          hours: int = 4) -> bytes:
    """A signed OCSP response about ``cert`` (issued by ``issuer``)."""
    from asn1crypto import ocsp as asn1ocsp

    from pkicore import ocsp as ocspmod

    q = ocspmod.parse_request(ocspmod.build_request(x509.Certificate.load(cert), x509.Certificate.load(issuer)))
    answer = ocspmod.Answer(q.queries[0], status, NOW - timedelta(hours=1) if status == "revoked" else None,
                            "keyCompromise" if status == "revoked" else None)
    der = ocspmod.build_response(responder_key, default_scheme(responder_key.key_type),
                                 cx509.load_der_x509_certificate(responder), [], answer, None,
                                 NOW - timedelta(minutes=1), NOW + timedelta(hours=hours))
    asn1ocsp.OCSPResponse.load(der).native  # noqa: B018  well-formed
    return der


def _responder(issuer_key: SoftwareKey, issuer: bytes, *, ocsp_signing: bool) -> tuple[SoftwareKey, bytes]:
    k = SoftwareKey()
    nocheck = {"extn_id": "1.3.6.1.5.5.7.48.1.5", "critical": False, "extn_value": b"\x05\x00"}
    cert = make(k, "CN=Responder,O=Allowed Bank", issuer=(issuer_key, issuer), key_usage={"digital_signature"},
                eku=["ocsp_signing"] if ocsp_signing else ["client_auth"], extra=[nocheck])
    return k, cert


def test_ocsp_from_an_authorised_and_an_unauthorised_responder(pki: Pki) -> None:
    """RFC 6960 §4.2.2.2: only the CA or a responder it certified for OCSPSigning may answer.

    (The library uses OCSP for certificates that name a responder in their AIA, as ours do.)"""
    leaf = make(pki.leaf_key, "CN=OCSP Leaf,O=Allowed Bank", issuer=(pki.int_key, pki.int),
                extra=[authority_info_access("http://ocsp.example.invalid/ocsp", None)])
    good_key, good_responder = _responder(pki.int_key, pki.int, ocsp_signing=True)
    ok = _ocsp(good_key, good_responder, leaf, pki.int)
    report = verify_path(leaf, [pki.root], [pki.int], moment=NOW, revocation="hard", crls=[pki.crls[0]])
    assert not report.valid                                              # the leaf has no status yet
    report = verify_path(leaf, [pki.root], [pki.int], moment=NOW, revocation="hard", crls=[pki.crls[0]],
                         ocsps=[ok])
    assert report.valid, report.error
    revoked = _ocsp(good_key, good_responder, leaf, pki.int, "revoked")
    report = verify_path(leaf, [pki.root], [pki.int], moment=NOW, revocation="hard", crls=[pki.crls[0]],
                         ocsps=[revoked])
    assert not report.valid and report.outcome.sub is not None and report.outcome.sub.value == "REVOKED"
    for bad_key, bad_cert in (_responder(pki.int_key, pki.int, ocsp_signing=False),     # no OCSPSigning
                              _responder(SoftwareKey(), pki.int, ocsp_signing=True)):  # not certified by the CA
        forged = _ocsp(bad_key, bad_cert, leaf, pki.int)
        report = verify_path(leaf, [pki.root], [pki.int], moment=NOW, revocation="hard", crls=[pki.crls[0]],
                             ocsps=[forged])
        assert not report.valid and report.outcome.sub is not None and report.outcome.sub.value == "TRY_LATER", \
            report.outcome


def test_hard_needs_the_intermediates_status_too(pki: Pki) -> None:
    """The false accept of issue 9: an intermediate without any CRL passed --revocation hard."""
    report = pki.check(crls=[pki.crls[1]], revocation="hard")           # the leaf's CRL only
    assert not report.valid and report.outcome.failing is not None
    assert report.outcome.failing.position == "intermediate 1", report.outcome
    # Several CRLs in one PEM file, one of them revoking the intermediate: REVOKED, naming it.
    from pkicore.pathval import load_crls

    bundle = b"".join(pem.armor("X509 CRL", d) for d in (crl(pki.root_key, pki.root, [pki.int], number=7),
                                                          pki.crls[1]))
    report = pki.check(crls=load_crls(bundle), revocation="hard")
    assert not report.valid and report.outcome.sub is not None and report.outcome.sub.value == "REVOKED"
    assert report.outcome.failing is not None and report.outcome.failing.position == "intermediate 1"


def test_weak_algorithms_only_when_allowed(pki: Pki) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from pkicore.algorithms import KeyType

    weak = SoftwareKey(KeyType.RSA_2048)
    weak.private = rsa.generate_private_key(65537, 1024)
    leaf = make(weak, "CN=Weak,O=Allowed Bank", issuer=(pki.int_key, pki.int))
    strict = verify_path(leaf, [pki.root], [pki.int], moment=NOW, revocation="off")
    assert not strict.valid and strict.outcome.sub is not None
    assert strict.outcome.sub.value == "CRYPTO_CONSTRAINTS_FAILURE"
    assert verify_path(leaf, [pki.root], [pki.int], moment=NOW, revocation="off", allow_weak=True).valid


def test_cli_json_names_the_certificate_and_rule(pki: Pki, tmp_path: Path) -> None:
    root = write(tmp_path / "root.pem", pem.armor("CERTIFICATE", pki.root))
    inter = write(tmp_path / "int.pem", pem.armor("CERTIFICATE", pki.int))
    leaf = write(tmp_path / "leaf.pem", pem.armor("CERTIFICATE", pki.leaf))
    crls = write(tmp_path / "all.pem", b"".join(pem.armor("X509 CRL", d) for d in
                                                 (crl(pki.root_key, pki.root, [pki.int], number=8), pki.crls[1])))
    proc = udun("cert", "verify", str(leaf), "--trust", str(root), "--untrusted", str(inter), "--offline",
                "--crl", str(crls), "--revocation", "hard", "--purpose", "client-auth", "--purpose",
                "1.3.6.1.5.5.7.3.36", "--json")
    import json

    verdict = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    assert verdict["sub_indication"] == "REVOKED" and verdict["failing_certificate"]["position"] == "intermediate 1"
    assert verdict["failing_certificate"]["subject"] == "CN=Test Issuing,O=Allowed Bank"
    assert verdict["rule"].startswith("RFC 5280 §6.3.3")
    text = udun("cert", "verify", str(leaf), "--trust", str(root), "--untrusted", str(inter), "--offline",
                "--crl", str(crls), "--revocation", "hard")
    assert text.returncode == 1 and b"intermediate 1: CN=Test Issuing" in text.stdout, text.stdout
    bad = udun("cert", "verify", str(leaf), "--trust", str(root), "--purpose", "nonsense")
    assert bad.returncode == 2 and b"nonsense" in bad.stderr and b"Traceback" not in bad.stderr
