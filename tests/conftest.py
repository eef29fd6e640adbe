"""Shared fixtures: one real SoftHSM home for the whole in-process session.

The PKCS#11 library reads SOFTHSM2_CONF once per process, so in-process tests share one
UDUN_HOME, set here before anything imports keystore.token. Tests that need a home of
their own run `udun` in a subprocess.

``--db postgresql`` (or UDUN_TEST_DB=postgresql) runs the suite on PostgreSQL: a
throwaway server (tests/pgserver.py), or the one of UDUN_TEST_POSTGRES_URL, with one
database per UDUN_HOME (helpers.home_env gives subprocesses theirs). ``make test`` runs
the suite once on each engine.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

_HOME = tempfile.mkdtemp(prefix="udun-test-")
os.environ["UDUN_HOME"] = _HOME
os.environ["UDUN_BASE_URL"] = "http://127.0.0.1:8080"
for _var in ("UDUN_DATABASE_URL", "UDUN_CA_PIN", "UDUN_PIN", "UDUN_SO_PIN", "UDUN_PKCS11_MODULE",
             "UDUN_TRUST_FILE", "UDUN_ADMIN_API_KEY", "SOFTHSM2_CONF", "UDUN_CONFIG", "UDUN_TLS_CERT",
             "UDUN_TLS_KEY", "UDUN_TLS_CLIENT_CA", "UDUN_TLS_CLIENT_AUTH", "UDUN_GUNICORN_CONFIG"):
    os.environ.pop(_var, None)
# Every in-process client is 127.0.0.1, and tests go as fast as they can: the session's apps
# and servers run without rate limits. tests/webapi/test_ratelimit.py sets its own, and
# checks the defaults on a server of its own.
os.environ["UDUN_RATE_LIMIT_PER_ADDRESS"] = os.environ["UDUN_RATE_LIMIT_PER_KEY"] = "0"
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from asn1crypto import pem  # noqa: E402

from helpers import CUSTOMER, PIN, SAMPLE, SO_PIN, USERS, Enrolled  # noqa: E402


_PG: list[Any] = []                   # the throwaway server of this run, if it started one
_LOG_DIR = Path(tempfile.mkdtemp(prefix="udun-test-log-"))
RUN_LOG = _LOG_DIR / "udun.log"       # every process's log lines of the run (logscan.py)
os.environ["UDUN_LOG_FILE"] = str(RUN_LOG)
_SCAN: list[str] = []                 # the log scan's lines for the terminal summary


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=("sqlite", "postgresql"), default=os.environ.get("UDUN_TEST_DB", "sqlite"),
                     help="the database engine the suite runs on (default: UDUN_TEST_DB or sqlite)")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["UDUN_TEST_SESSION_HOME"] = _HOME
    if config.getoption("--db") != "postgresql":
        return
    import pgserver

    admin = os.environ.get("UDUN_TEST_POSTGRES_URL")
    if not admin:
        server = pgserver.ThrowawayPostgres()
        _PG.append(server)
        admin = server.start()
    os.environ["UDUN_TEST_PG_ADMIN_URL"] = admin
    os.environ["UDUN_DATABASE_URL"] = pgserver.database_url(admin, _HOME)


def pytest_report_header(config: pytest.Config) -> str:
    return f"udun database engine: {config.getoption('--db')}"


def _scan_log(session: pytest.Session) -> None:
    """No PIN, API key, account number or private key in any log line of the run: a leak
    fails the run (its exit status; the lines name the kind of secret and the line)."""
    import logscan

    roots = [Path(_HOME)]
    factory = getattr(session.config, "_tmp_path_factory", None)   # where tests' homes live
    if factory is not None:
        roots.append(factory.getbasetemp())
    secrets = logscan.run_secrets(roots, {PIN: "user PIN", SO_PIN: "SO PIN"})
    lines, leaks = logscan.scan(RUN_LOG, secrets)
    if not leaks:
        _SCAN.append(f"log scan: {lines} log lines of the run, {len(secrets)} secrets looked for, none found")
        shutil.rmtree(_LOG_DIR, ignore_errors=True)
        return
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    _SCAN.append(f"LOG SCAN FAILED: {len(leaks)} secrets in the run's log {RUN_LOG} (kept):")
    _SCAN.extend(f"  line {leak.line_no}: {leak.what}" for leak in leaks[:50])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        _scan_log(session)
    finally:
        for server in _PG:
            server.stop()
        shutil.rmtree(_HOME, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _SCAN:
        terminalreporter.write_line(line, red=line.startswith("LOG SCAN FAILED"))


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
    from ca.customers import Customers

    # The customer every test certificate pays for: the sample payment's payer account.
    Customers(authority.store, authority.clock).add(CUSTOMER, "测试客户", [SAMPLE["payer"]["account"]],
                                                    actor="pytest")
    # The session pays many times a day: its own daily limit is far above the profile's.
    from ca.limits import Limit
    from ca.storage.limits import LimitStore

    LimitStore(authority.store).put(Limit("customer", CUSTOMER, "CNY", None, 10 ** 17), authority.clock(), "pytest")
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
        rec = ca.issue(csr, "client", requester="pytest", customer=CUSTOMER)
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

    return create_app(settings, ca=ca, verifier=verifier)


@pytest.fixture(scope="session")
def bank_key(ca) -> str:  # type: ignore[no-untyped-def]
    """The API key (every scope) of the session's bank, "testbank"."""
    from helpers import bank_key as new_key

    return new_key(ca.store, ca.clock)


@pytest.fixture()
def client(app, bank_key):  # type: ignore[no-untyped-def]
    """The bank-facing API as the session's bank: every request carries its key."""
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {bank_key}"
    return c


@pytest.fixture()
def anon_client(app):  # type: ignore[no-untyped-def]
    """The bank-facing API with no credential."""
    return app.test_client()


@pytest.fixture(scope="session")
def admin_app(settings, ca):  # type: ignore[no-untyped-def]
    from adminapi import create_admin_app

    return create_admin_app(settings, ca=ca, admin_api_key="udun-test-admin-key-0123456789abcdef")


@pytest.fixture()
def admin_client(admin_app):  # type: ignore[no-untyped-def]
    return admin_app.test_client()


@pytest.fixture()
def empty_db(tmp_path: Path) -> Iterator[Any]:
    """An empty database on the run's engine (no tables): a SQLite file in tmp_path with
    udun's pragmas, or a new database on the run's PostgreSQL server, dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    admin = os.environ.get("UDUN_TEST_PG_ADMIN_URL")
    if not admin:
        from ca.storage.engine import sqlite_pragmas

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        sa.event.listen(engine, "connect", sqlite_pragmas)
        yield engine
        engine.dispose()
        return
    import pgserver

    name = f"udun_empty_{uuid.uuid4().hex[:12]}"
    pgserver.create_database(admin, name)
    engine = sa.create_engine(sa.make_url(admin).set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        pgserver.drop_database(admin, name)
