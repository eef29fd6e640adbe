"""Issuance over HTTP from 8 clients: a distinct PKCS#10 request each time, every
certificate stored before it is answered.

The same pool of CSRs goes to udun (`udun serve-admin`, POST /api/v1/certificates, the
DER CSR as the body, the admin bearer key) and to its peer (`cfssl serve`, POST
/api/v1/cfssl/sign, the PEM CSR in cfssl's JSON). Each CSR has its own software P-256
key and its own subject (CN=bench issuance N), generated before anything is timed. wrk
reads the pool from one file of length-prefixed records (Lua `request`); each run starts
where the previous one of the same server stopped, so a server sees a CSR at most once
unless it gets through the whole pool (logged: udun then takes it as a renewal, the same
key for the same subject, which its policy allows; cfssl issues again).

Counted: udun's 201 with a certificate, cfssl's 200 with `"success":true`. Checked
first, in full, on one answer of each: the certificate verifies under the issuing CA,
carries the CSR's key and subject. Checked after: the server's database holds at least
as many new certificate rows as answers were counted (persistence, not just signing).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.evidence_load import READ_RECORDS
from bench.http_load import WRK_TAIL, LoadResult, Side, Target, load_python, load_wrk
from bench.measure import log

SUBJECT_O = "udun bench bank"
POOL_RATE = 5000          # req/s the CSR pool is sized for (per side, measured time + warm-up)

# Records: 8 decimal digits of length, then that many bytes. `start` (1-based) is where
# this run begins; past the end it wraps around (counted in `wrapped`, logged by Python).
RECORDS_SCRIPT = READ_RECORDS + r"""local headers = %(headers)s
local n = %(start)d - 1
wrk.method = "POST"

function request()
  n = n %% #bodies + 1
  return wrk.format("POST", nil, headers, bodies[n])
end
"""

UDUN_OK = r"""
function ok(status, body)
  return status == 201 and string.find(body, '"certificate_pem"', 1, true) ~= nil
end
"""

CFSSL_OK = r"""
function ok(status, body)
  return status == 200 and string.find(body, '"success":true', 1, true) ~= nil
end
"""


def _lua_table(headers: dict[str, str]) -> str:
    return "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()) + "}"


def make_csrs(n: int) -> list[bytes]:
    """``n`` DER CSRs, each with a fresh software P-256 key and a subject of its own."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, SUBJECT_O),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"bench issuance {i}")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        out.append(csr.public_bytes(serialization.Encoding.DER))
    return out


def pem_csr(der: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()


def check_certificate(cert_pem: str, issuer_der: bytes, csr_der: bytes, what: str) -> None:
    """The answer's certificate: signed by the issuing CA, the CSR's key and subject."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    issuer = x509.load_der_x509_certificate(issuer_der)
    csr = x509.load_der_x509_csr(csr_der)
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception as e:   # ValueError, InvalidSignature, TypeError
        raise RuntimeError(f"{what}: the certificate does not verify under the issuing CA: {e}") from e
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != csr.public_key().public_bytes(*spki):
        raise RuntimeError(f"{what}: the certificate is not for the CSR's key")
    want = str(csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
    got = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not got or got[0].value != want:
        raise RuntimeError(f"{what}: subject {cert.subject.rfc4514_string()}, the CSR asked for CN={want}")


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class IssuanceLoad:
    """One server's issuance load: ``side()`` for measure_sides, ``check_persisted(result)`` after."""

    label: str                        # "udun" or "cfssl"
    target: Target
    port: int
    path: str
    work: Path
    csrs: list[bytes]                 # DER, the shared pool
    issuer_der: bytes                 # the CA certificate the answers must verify under
    headers: dict[str, str]           # Content-Type and, for udun, Authorization
    encode: Callable[[bytes], bytes]  # DER CSR -> request body
    ok_lua: str
    answer_pem: Callable[[bytes], str]   # answer body -> certificate PEM (raises if not one)
    rows: Callable[[], int]           # certificate rows in the server's database now
    wrk: str | None
    clients: int = 8
    sent: int = 0                     # requests so far (where the next run starts)
    rows_before: int = 0
    counted: int = 0                  # answers counted, warm-up included
    extra: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def side(self, probe_csr: bytes) -> Side:
        """One request (``probe_csr``, outside the pool) checked in full, then the Side."""
        status, data = _post(self.url, self.encode(probe_csr), self.headers)
        try:
            pem = self.answer_pem(data) if status in (200, 201) else None
        except (ValueError, KeyError, TypeError) as e:
            raise RuntimeError(f"{self.label}: unreadable answer to a CSR: {data[:300]!r}") from e
        if pem is None:
            raise RuntimeError(f"{self.label}: POST {self.path} answered {status}: {data[:300]!r}")
        check_certificate(pem, self.issuer_der, probe_csr, self.label)
        body_path = self.work / f"issuance-{self.label}.bin"
        bodies = [self.encode(c) for c in self.csrs]
        body_path.write_bytes(b"".join(b"%08d" % len(b) + b for b in bodies))
        script = self.work / f"issuance-{self.label}.lua"
        self.rows_before = self.rows()
        log(f"issuance ({self.label}): a sample certificate checks out; {len(bodies)} CSRs ready; "
            f"{self.rows_before} certificate rows in its database")

        def prepare(_secs: float) -> None:
            script.write_text(RECORDS_SCRIPT % {"body": json.dumps(str(body_path)), "headers": _lua_table(self.headers),
                                                "start": self.sent % len(bodies) + 1} + self.ok_lua + WRK_TAIL)

        def ok(status: int, data: bytes) -> bool:
            return status in (200, 201) and (b'"certificate_pem"' in data or b'"success":true' in data)

        def run(secs: float) -> LoadResult:
            if self.wrk:
                result = load_wrk(self.wrk, self.url, script, self.clients, secs, label=self.label)
            else:
                rotated = bodies[self.sent % len(bodies):] + bodies[:self.sent % len(bodies)]
                result = load_python(self.port, self.path, rotated, self.headers["Content-Type"], ok, self.clients,
                                     secs, extra_headers={k: v for k, v in self.headers.items() if k != "Content-Type"})
            before = self.sent
            self.sent += result.passed + result.errors + self.clients   # in flight at the end: skipped
            self.counted += result.passed
            if self.sent // len(bodies) != before // len(bodies):
                log(f"issuance ({self.label}): went round the pool of {len(bodies)} CSRs (some sent again)")
            return result

        return Side(self.label, self.target, run, prepare)

    def check_persisted(self) -> None:
        """Every counted answer has its row in the server's database."""
        stored = self.rows() - self.rows_before
        log(f"issuance ({self.label}): {self.counted} certificates answered, {stored} new rows in its database")
        if stored < self.counted:
            raise RuntimeError(f"{self.label}: {self.counted} certificates answered but only {stored} stored")


def pool_size(seconds: float, warmup: float, segments: int) -> int:
    """CSRs for one side's warm-up and runs at POOL_RATE (wrk runs whole seconds, at least 1)."""
    wall = max(1, round(warmup)) + segments * max(1, round(seconds / segments))
    return max(2000, int(POOL_RATE * wall))


def udun_answer_pem(data: bytes) -> str:
    return str(json.loads(data)["certificate_pem"])


def cfssl_answer_pem(data: bytes) -> str:
    answer = json.loads(data)
    if not answer.get("success"):
        raise ValueError(f"cfssl refused: {answer.get('errors')}")
    return str(answer["result"]["certificate"])


def cfssl_body(der: bytes) -> bytes:
    return json.dumps({"certificate_request": pem_csr(der)}).encode()
