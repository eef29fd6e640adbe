"""Issue 4 acceptance 5: `udun cert verify` accepts valid chains and rejects each invalid one.

Every chain is generated here (software keys, our own builders), one rule broken at a time.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem, x509

from helpers import SoftwareKey, udun, write
from pkicore import names
from pkicore.algorithms import default_scheme
from pkicore.certcheck import verify_path
from pkicore.crlbuild import build_crl, entry
from pkicore.x509build import authority_info_access, build_tbs, crl_distribution_points, ext, key_identifier, sign_tbs

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
    return build_crl(key, default_scheme(key.key_type), issuer_der=cert.subject.dump(),
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
    stale = crl(pki.int_key, pki.int, [], this_update=NOW - timedelta(days=3), hours=24)
    assert pki.check(crls=[pki.crls[0], stale], revocation="soft").valid
    assert not pki.check(crls=[pki.crls[0], stale], revocation="hard").valid


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
