"""Shared fixtures: one real SoftHSM home for the whole in-process session.

The PKCS#11 library reads SOFTHSM2_CONF once per process, so in-process tests share one
UDUN_HOME, set here before anything imports keystore.token. Tests that need a home of
their own run `udun` in a subprocess.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

_HOME = tempfile.mkdtemp(prefix="udun-test-")
os.environ["UDUN_HOME"] = _HOME
os.environ["UDUN_BASE_URL"] = "http://127.0.0.1:8080"
for _var in ("UDUN_DATABASE_URL", "UDUN_CA_PIN", "UDUN_PIN", "UDUN_SO_PIN", "UDUN_PKCS11_MODULE",
             "UDUN_TRUST_FILE", "UDUN_ADMIN_API_KEY", "SOFTHSM2_CONF"):
    os.environ.pop(_var, None)
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from asn1crypto import pem  # noqa: E402

from helpers import PIN, SO_PIN, USERS, Enrolled  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def home() -> Path:
    return Path(_HOME)


@pytest.fixture(scope="session")
def settings():  # type: ignore[no-untyped-def]
    from config.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def ca(settings):  # type: ignore[no-untyped-def]
    from ca.authority import CertificateAuthority

    authority = CertificateAuthority.open(settings)
    authority.init()
    return authority


@pytest.fixture(scope="session")
def enrolled(settings, ca) -> dict[str, Enrolled]:  # type: ignore[no-untyped-def]
    """One enrolled client token per key type (all tokens created first: creating a
    token re-initialises PKCS#11 and ends open sessions)."""
    from signer import tokens

    for label in USERS:
        tokens.init(settings, label, PIN, SO_PIN)
    out: dict[str, Enrolled] = {}
    for label, (key_type, scheme) in USERS.items():
        tokens.keygen(settings, label, PIN, key_type)
        csr = tokens.csr(settings, label, PIN, f"CN=Test {label},O=udun tests,C=CN")
        rec = ca.issue(csr, "client", requester="pytest")
        assert rec.der is not None
        tokens.import_certificates(settings, label, PIN, pem.armor("CERTIFICATE", rec.der)
                                   + b"".join(pem.armor("CERTIFICATE", d) for d in ca.chain_der()))
        out[label] = Enrolled(label, key_type, scheme, csr, rec.der, rec.serial)
    return out


@pytest.fixture(scope="session")
def chain_pem(ca, home) -> Path:  # type: ignore[no-untyped-def]
    path = home / "chain.pem"
    path.write_bytes(b"".join(pem.armor("CERTIFICATE", d) for d in ca.chain_der()))
    return path


@pytest.fixture(scope="session")
def verifier(ca, settings):  # type: ignore[no-untyped-def]
    """The verifier the API uses: our chain, status from our OCSP responder in-process."""
    from ca.ocsp import Responder, status_source
    from pkicore.cms_verify import Verifier
    from pkicore.pathval import ChainValidator, TrustStore

    from datetime import timedelta

    return Verifier(ChainValidator(TrustStore.from_certs(ca.chain_der())), status=status_source(Responder(ca)),
                    signing_window=timedelta(minutes=settings.signing_window_minutes))


@pytest.fixture(scope="session")
def app(settings, ca, verifier):  # type: ignore[no-untyped-def]
    from webapi import create_app

    return create_app(settings, ca=ca, verifier=verifier, admin_api_key="udun-test-admin-key-0123456789abcdef")


@pytest.fixture()
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture(scope="session")
def admin_app(settings, ca):  # type: ignore[no-untyped-def]
    from adminapi import create_admin_app

    return create_admin_app(settings, ca=ca, admin_api_key="udun-test-admin-key-0123456789abcdef")


@pytest.fixture()
def admin_client(admin_app):  # type: ignore[no-untyped-def]
    return admin_app.test_client()
