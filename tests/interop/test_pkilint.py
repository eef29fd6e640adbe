"""Acceptance 3: pkilint's RFC 5280 linter finds nothing at WARNING or above."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from asn1crypto import pem

from helpers import LINTER, USERS, lint, write



def test_linter_is_installed() -> None:
    assert Path(LINTER).exists() or shutil.which("lint_pkix_cert")


@pytest.mark.parametrize("which", ["issuing", "root"])
def test_ca_certificates_lint_clean(which: str, ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    der = dict(zip(["issuing", "root"], ca.chain_der()))[which]
    proc = lint(write(tmp_path / f"{which}.pem", pem.armor("CERTIFICATE", der)))
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


@pytest.mark.parametrize("label", list(USERS))
def test_client_certificates_lint_clean(label: str, enrolled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = lint(write(tmp_path / "leaf.pem", pem.armor("CERTIFICATE", enrolled[label].cert_der)))
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_linter_does_report_a_bad_certificate(ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The lint check can fail: a certificate without keyUsage on a CA is reported."""
    from helpers import SoftwareKey, issue_with
    from certkit import ext

    key = SoftwareKey()
    issuing = ca.issuer()
    bad = issue_with(issuing.key, issuing.cert.dump(), key.public_key_der,
                     extensions=[ext("basic_constraints", {"ca": True}, critical=False)])
    proc = lint(write(tmp_path / "bad.pem", pem.armor("CERTIFICATE", bad)))
    assert proc.returncode != 0 and proc.stdout.strip() != ""
