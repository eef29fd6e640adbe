"""Self-test of tests/opensslca.py: the openssl-built third-party CA does what it promises."""
from __future__ import annotations

import contextlib
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, ObjectIdentifier

from opensslca import CrlServer, KeyKind, OpenSslCa, openssl_run, serve_crls

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
SUBJ = "/CN=李四/O=Partner Bank/C=CN"


@dataclass
class Partner:
    """A third-party CA and the CRL server its CDP URLs point at."""

    ca: OpenSslCa
    server: CrlServer


@contextlib.contextmanager
def build(directory: Path, key_type: KeyKind = "ec", rsa_bits: int = 2048) -> Iterator[Partner]:
    """Bind the server first (the CDP URL needs its port), then build the CA, then serve it."""
    with CrlServer() as server:
        ca = OpenSslCa(directory, "Partner CA", key_type=key_type, rsa_bits=rsa_bits, crl_base_url=server.url)
        server.serve(ca)
        yield Partner(ca, server)


@pytest.fixture(scope="module", params=["ec", "rsa"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partner]:
    """One CA per key type for the tests that only touch their own certificates (RSA keygen is slow)."""
    with build(tmp_path_factory.mktemp(f"partner-{request.param}") / "ca", request.param) as partner:
        yield partner


@pytest.fixture()
def partner(shared: Partner) -> Iterator[OpenSslCa]:
    # a test that changed the shared server's behaviour must not leak it into the next
    shared.server.requests.clear()
    shared.server.fail_status = None
    yield shared.ca
    shared.server.fail_status = None


@pytest.fixture()
def fresh(tmp_path: Path) -> Iterator[OpenSslCa]:
    """An EC CA of its own, for tests that change the CA itself (revoking the intermediate)."""
    with build(tmp_path / "ca", "ec") as partner:
        yield partner.ca


def fetch(url: str) -> tuple[str, bytes]:
    """GET without any proxy from the environment (the server is on 127.0.0.1)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return resp.headers["Content-Type"], resp.read()


def client_csr(tmp_path: Path, subj: str = SUBJ) -> bytes:
    """A software-key client CSR, made by openssl req like a customer's tool would."""
    key, csr = tmp_path / "client.key", tmp_path / "client.csr"
    openssl_run(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(key), "-subj", subj, "-utf8", "-out", str(csr)])
    return csr.read_bytes()


def verify(ca: OpenSslCa, cert_pem: bytes, tmp_path: Path, *, crls: bool = False) -> subprocess.CompletedProcess[str]:
    """`openssl verify -x509_strict` of a leaf against the CA's root (+ both published CRLs)."""
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(cert_pem)
    args = ["openssl", "verify", "-x509_strict", "-CAfile", str(ca.root_cert_path),
            "-untrusted", str(ca.issuing_cert_path)]
    if crls:
        ca.publish_crls()
        args += ["-crl_check_all", "-CRLfile", str(ca.crl_path("root")), "-CRLfile", str(ca.crl_path("issuing"))]
    return subprocess.run([*args, str(leaf)], capture_output=True, text=True, check=False, timeout=30)


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": OK"), proc.stdout + proc.stderr


def assert_revoked(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "certificate revoked" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def check_keys(ca: OpenSslCa) -> None:
    """Root and issuing keys are of the CA's key type."""
    for pem in (ca.root_pem, ca.issuing_pem):
        key = x509.load_pem_x509_certificate(pem).public_key()
        if ca.key_type == "ec":
            assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        else:
            assert isinstance(key, rsa.RSAPublicKey) and key.key_size == ca.rsa_bits


def test_issued_certificate_verifies_strict_with_and_without_crls(partner: OpenSslCa, tmp_path: Path) -> None:
    cert = partner.issue(client_csr(tmp_path))
    assert_ok(verify(partner, cert, tmp_path))
    assert_ok(verify(partner, cert, tmp_path, crls=True))
    check_keys(partner)


def test_rsa3072_ca(tmp_path: Path) -> None:
    with build(tmp_path / "ca", "rsa", 3072) as partner:
        cert = partner.ca.issue(client_csr(tmp_path))
        assert_ok(verify(partner.ca, cert, tmp_path, crls=True))
        check_keys(partner.ca)


def test_revoke_client_then_crl_check_fails(partner: OpenSslCa, tmp_path: Path) -> None:
    cert = partner.issue(client_csr(tmp_path))
    partner.revoke(cert)
    assert partner.status(cert) == "revoked"
    assert_revoked(verify(partner, cert, tmp_path, crls=True))
    assert_ok(verify(partner, cert, tmp_path))  # without CRLs openssl does not know
    crl = x509.load_der_x509_crl(partner.crl_path("issuing").read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(x509.load_pem_x509_certificate(cert).serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise


def test_hold_then_release(partner: OpenSslCa, tmp_path: Path) -> None:
    cert = partner.issue(client_csr(tmp_path))
    serial = x509.load_pem_x509_certificate(cert).serial_number
    partner.hold(cert)
    assert partner.status(cert) == "hold"
    assert_revoked(verify(partner, cert, tmp_path, crls=True))
    entry = x509.load_der_x509_crl(partner.crl_path("issuing").read_bytes()).get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.certificate_hold
    partner.release(cert)
    assert partner.status(cert) == "valid"
    assert_ok(verify(partner, cert, tmp_path, crls=True))
    assert x509.load_der_x509_crl(partner.crl_path("issuing").read_bytes()).get_revoked_certificate_by_serial_number(serial) is None
    # and the released certificate can still be revoked for good afterwards
    partner.hold(cert)
    partner.revoke(cert, reason="superseded")
    assert partner.status(cert) == "revoked"
    assert_revoked(verify(partner, cert, tmp_path, crls=True))
    with pytest.raises(ValueError, match="not on hold"):
        partner.release(cert)


def test_revoking_the_intermediate_fails_the_client(fresh: OpenSslCa, tmp_path: Path) -> None:
    partner = fresh
    cert = partner.issue(client_csr(tmp_path))
    partner.revoke(partner.issuing_pem, reason="CACompromise")
    assert partner.status(partner.issuing_pem) == "revoked"
    assert_ok(verify(partner, cert, tmp_path))
    assert_revoked(verify(partner, cert, tmp_path, crls=True))
    root_crl = x509.load_der_x509_crl(partner.crl_path("root").read_bytes())
    assert root_crl.get_revoked_certificate_by_serial_number(
        x509.load_pem_x509_certificate(partner.issuing_pem).serial_number) is not None
    # hold/release works for the intermediate too (it lives in the root's database)
    partner.release(partner.issuing_pem, force=True)
    assert_ok(verify(partner, cert, tmp_path, crls=True))


def test_served_crl_equals_published_file(shared: Partner, partner: OpenSslCa, tmp_path: Path) -> None:
    server = shared.server
    cert = x509.load_pem_x509_certificate(partner.issue(client_csr(tmp_path)))
    revoked = x509.load_pem_x509_certificate(partner.issue(client_csr(tmp_path, "/CN=王五/C=CN")))
    partner.revoke(revoked.public_bytes(Encoding.PEM))
    fresh = partner.crl("issuing")
    url = _uri(cert)
    assert url == partner.crl_url("issuing") and url.startswith(server.url + "/")
    content_type, body = fetch(url)
    assert content_type == "application/pkix-crl"
    assert body == fresh == partner.crl_path("issuing").read_bytes()
    assert x509.load_der_x509_crl(body).get_revoked_certificate_by_serial_number(revoked.serial_number)
    assert server.requests == ["/partner-ca-issuing.crl"]
    for path in ("/", "/../openssl.cnf", "/nothing.crl"):  # no listings, nothing outside published/
        with pytest.raises(urllib.error.HTTPError) as err:
            fetch(server.url + path)
        assert err.value.code == 404
    server.fail_status = 503
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(url)
    assert err.value.code == 503
    with serve_crls(partner.published_dir) as base:
        assert base != server.url
        assert fetch(f"{base}/partner-ca-root.crl")[1] == partner.crl_path("root").read_bytes()


E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, cls: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(cls)


def _uri(cert: x509.Certificate) -> str:
    """The first CRL distribution point URI."""
    names = _ext(cert, x509.CRLDistributionPoints).value[0].full_name
    assert names is not None and isinstance(names[0], x509.UniformResourceIdentifier)
    return names[0].value


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_certificates_have_the_promised_extensions(partner: OpenSslCa, tmp_path: Path) -> None:
    root = x509.load_pem_x509_certificate(partner.root_pem)
    issuing = x509.load_pem_x509_certificate(partner.issuing_pem)
    leaf = x509.load_pem_x509_certificate(partner.issue(client_csr(tmp_path)))
    assert partner.chain_pem == partner.issuing_pem + partner.root_pem == partner.chain_path.read_bytes()

    for ca_cert, pathlen in ((root, None), (issuing, 0)):
        bc = _ext(ca_cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == pathlen
        ku = _ext(ca_cert, x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert root.subject == root.issuer
    assert _ext(root, x509.AuthorityKeyIdentifier).value.key_identifier == \
        _ext(root, x509.SubjectKeyIdentifier).value.digest
    with pytest.raises(x509.ExtensionNotFound):
        _ext(root, x509.CRLDistributionPoints)
    assert _ext(issuing, x509.AuthorityKeyIdentifier).value.key_identifier == \
        _ext(root, x509.SubjectKeyIdentifier).value.digest
    assert _uri(issuing) == partner.crl_url("root")

    ku = _ext(leaf, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH, DOCUMENT_SIGNING]
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == \
        _ext(issuing, x509.SubjectKeyIdentifier).value.digest
    _ext(leaf, x509.SubjectKeyIdentifier)
    assert _uri(leaf) == partner.crl_url("issuing")
    assert {e.oid for e in leaf.extensions} == {ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
                                                 ExtensionOID.SUBJECT_KEY_IDENTIFIER,
                                                 ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
                                                 ExtensionOID.CRL_DISTRIBUTION_POINTS}  # no AIA
    # the CSR's DN is kept as sent, CN as a UTF8String
    assert leaf.subject.rfc4514_string() == "C=CN,O=Partner Bank,CN=李四"
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "李四"
    assert b"\x0c\x06" + "李四".encode() in leaf.tbs_certificate_bytes  # UTF8String tag, 6 bytes
    # random serials, not 1, 2, 3
    assert min(root.serial_number, issuing.serial_number, leaf.serial_number) > 2 ** 64
    assert len({root.serial_number, issuing.serial_number, leaf.serial_number}) == 3
    # openssl reads the clock separately for notBefore and notAfter: allow a second's tick
    assert abs(leaf.not_valid_after_utc - leaf.not_valid_before_utc - timedelta(days=365)) <= timedelta(seconds=2)


def test_eku_none_and_custom_dates(partner: OpenSslCa, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    end = start + timedelta(days=10)
    leaf = x509.load_pem_x509_certificate(partner.issue(client_csr(tmp_path), eku=None, not_before=start,
                                                        not_after=end))
    with pytest.raises(x509.ExtensionNotFound):
        _ext(leaf, x509.ExtendedKeyUsage)
    assert leaf.not_valid_before_utc == start and leaf.not_valid_after_utc == end
    proc = verify(partner, leaf.public_bytes(Encoding.PEM), tmp_path)
    assert proc.returncode != 0 and "certificate has expired" in proc.stdout + proc.stderr


def test_crl_numbers_increment_and_nextupdate(partner: OpenSslCa) -> None:
    first = x509.load_der_x509_crl(partner.crl("issuing"))
    second = x509.load_der_x509_crl(partner.crl("issuing", days=7))
    root = x509.load_der_x509_crl(partner.crl("root"))
    assert _crl_number(second) == _crl_number(first) + 1
    assert first.next_update_utc is not None and second.next_update_utc is not None
    # (lastUpdate and nextUpdate come from two clock reads in openssl ca: allow a tick)
    assert abs(first.next_update_utc - first.last_update_utc - timedelta(days=1)) <= timedelta(seconds=2)
    assert abs(second.next_update_utc - second.last_update_utc - timedelta(days=7)) <= timedelta(seconds=2)
    issuing = x509.load_pem_x509_certificate(partner.issuing_pem)
    assert second.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == \
        issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert root.issuer == issuing.issuer
    stale = x509.load_der_x509_crl(partner.crl("issuing", last_update=datetime.now(UTC) - timedelta(days=3),
                                               next_update=datetime.now(UTC) - timedelta(days=2)))
    assert stale.next_update_utc is not None and stale.next_update_utc < datetime.now(UTC)


def test_openssl_failure_shows_stderr(partner: OpenSslCa, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"(?s)openssl failed.*stderr.*"):
        partner.issue(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    other = OpenSslCa(tmp_path / "other", "Other CA", crl_base_url=partner.crl_base_url)
    with pytest.raises(ValueError, match="not from Partner CA"):
        partner.revoke(other.issuing_pem)
    twin = OpenSslCa(tmp_path / "twin", "Partner CA", crl_base_url=partner.crl_base_url)
    with pytest.raises(ValueError, match="not from Partner CA"):  # same names, other keys
        partner.hold(twin.issuing_pem)
    with pytest.raises(FileExistsError):
        OpenSslCa(partner.directory, "Partner CA")
