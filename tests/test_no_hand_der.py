"""Issue 10 point 5: certificates, CSRs, CRLs and OCSP responses come from cryptography's
builders, CMS and TSP from asn1crypto's types; hand-written DER only where it is allowed.

A DER element is written by hand by putting a tag and a length in front of bytes. In udun
that is pkicore.der.tlv_header or a module's own ``_tlv``; this test finds every use in
the product's code and allows it only in the modules below, each for its reason.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pkicore", "ca", "webapi", "signer", "keystore", "config", "adminapi", "udun")
WRITERS = {"tlv_header", "_tlv", "as_set"}
ALLOWED = {
    "pkicore/der.py": "defines the writers (and the DER reader)",
    "pkicore/fastder.py": "the one fast-path module: the per-token part of time-stamp tokens (bench: tsa_c8) "
                          "and the per-answer part of OCSP responses (bench: ocsp_front_nonce_c8)",
    "pkicore/tsp_check.py": "verification: the signed-attributes SET and messageDigest as signed, "
                            "and adding an unsigned attribute without re-encoding what was signed",
    "pkicore/cms_verify.py": "verification: the signed attributes re-tagged as the SET they were signed as",
    "pkicore/bundle_check.py": "verification: a token's DER form compared with the bytes stored",
}


def _writer_uses(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name in WRITERS:
            lines.append(node.lineno)
        if isinstance(node, ast.FunctionDef) and node.name in WRITERS:
            lines.append(node.lineno)
    return lines


def test_hand_written_der_only_where_allowed() -> None:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel:
                continue
            uses = _writer_uses(path)
            if uses:
                found[rel] = uses
    unexpected = {rel: lines for rel, lines in found.items() if rel not in ALLOWED}
    assert not unexpected, f"DER written by hand outside the allowed modules: {unexpected}"
    # The builders of certificates, CSRs, CRLs and OCSP responses write no DER themselves.
    for builder in ("pkicore/x509build.py", "pkicore/crlbuild.py", "pkicore/ocsp.py", "pkicore/names.py",
                    "pkicore/tsp.py", "pkicore/cms_build.py"):
        assert builder not in found, builder
    assert "pkicore/fastder.py" in found      # the fast path is where the issue says it is


def test_the_writer_finder_finds_a_writer(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from pkicore import der\n\nx = der.tlv_header(0x30, 0)\n")
    assert _writer_uses(sample) == [3]
