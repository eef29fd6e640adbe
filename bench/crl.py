"""The CRL figures: build and sign the issuing CA's CRL with 100,000 and 1,000,000 revoked
entries through udun's own path (Revocation.publish -> Store.publish_crl -> build_crl,
signed on the CA token), and `openssl ca -gencrl` on the same 100,000 entries.

The revoked rows are written straight into the `certificates` table of the bench's SQLite
database (the sqlite3 module, one transaction): issuing them one by one would take hours.
Run this after the server has stopped: the rows bypass the status counter that tells
running OCSP responders to drop their cached answers.
"""
from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from bench.measure import log

Figure = tuple[str, float, str]
ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "crl_child.py"

_TIME_SLOTS = 10_007            # distinct revocation times, spread over the last year
_SQL_TIME = "%Y-%m-%d %H:%M:%S.000000"   # how SQLAlchemy stores DateTime in SQLite (UTC, naive)
_COLUMNS = ("serial", "authority_id", "state", "profile", "subject", "requester", "tbs_sha256", "not_before",
            "not_after", "created_at", "issued_at", "status", "revoked_at", "revocation_reason",
            "invalidity_date")


@dataclass(frozen=True)
class Population:
    """A deterministic set of revoked certificates: entry ``i`` is the same in SQLite and
    in OpenSSL's index.txt. Serials are random 127-bit positive integers, like udun's
    (ca.authority.new_serial), with a 128-bit random part kept apart from real ones by
    a fixed seed."""

    now: datetime
    seed: int = 20261122

    def serials(self, start: int, stop: int) -> Iterator[int]:
        rng = random.Random(self.seed * 1_000_003 + start)
        for _ in range(start, stop):
            yield rng.getrandbits(126) | (1 << 126)

    def revoked_at(self, i: int) -> datetime:
        return self.now - timedelta(seconds=1 + (i % _TIME_SLOTS) * (365 * 86400 // _TIME_SLOTS))

    @staticmethod
    def reason(i: int) -> tuple[str | None, bool]:
        """(reason, with an invalidity date): a mix of what operators record."""
        k = i % 10
        if k == 0:
            return "keyCompromise", True
        if k == 1:
            return "keyCompromise", False
        if k == 2:
            return "superseded", False
        if k == 3:
            return "unspecified", False   # left out of the CRL entry (RFC 5280 §5.3.1)
        return None, False

    @property
    def not_after(self) -> datetime:
        return self.now + timedelta(days=365)


def _sql_rows(pop: Population, authority_id: int, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    times: dict[int, tuple[str, str]] = {}
    not_before = (pop.now - timedelta(days=365)).strftime(_SQL_TIME)
    not_after = pop.not_after.strftime(_SQL_TIME)
    tbs = "ab" * 32
    for i, serial in zip(range(start, stop), pop.serials(start, stop)):
        slot = i % _TIME_SLOTS
        t = times.get(slot)
        if t is None:
            at = pop.revoked_at(i)
            t = times[slot] = (at.strftime(_SQL_TIME), (at - timedelta(days=1)).strftime(_SQL_TIME))
        reason, with_invalidity = pop.reason(i)
        yield (format(serial, "x"), authority_id, "issued", "client", f"CN=bench revoked {i}", "bench", tbs,
               not_before, not_after, not_before, not_before, "revoked", t[0], reason,
               t[1] if with_invalidity else None)


def database_path(settings: Any) -> Path:
    url = settings.database_url
    if not url.startswith("sqlite:///"):
        raise RuntimeError(f"the CRL figures write rows with sqlite3; UDUN_DATABASE_URL is {url.split(':')[0]}")
    return Path(url[len("sqlite:///"):])


def listed(db: Path, authority_id: int) -> int:
    """Rows the next CRL of ``authority_id`` lists (what Store.publish_crl selects)."""
    with sqlite3.connect(db, timeout=60) as conn:
        return int(conn.execute("SELECT count(*) FROM certificates WHERE authority_id = ? "
                                "AND status IN ('revoked', 'on_hold')", (authority_id,)).fetchone()[0])


def insert_revoked(db: Path, pop: Population, authority_id: int, start: int, stop: int) -> None:
    """Entries ``start`` to ``stop`` as revoked certificate rows, one transaction."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(db, timeout=60)
    try:
        conn.execute("PRAGMA synchronous=OFF")   # bench data: this connection only
        sql = (f"INSERT INTO certificates ({', '.join(_COLUMNS)}) "
               f"VALUES ({', '.join('?' for _ in _COLUMNS)})")
        with conn:
            conn.executemany(sql, _sql_rows(pop, authority_id, start, stop))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    log(f"crl: inserted {stop - start:,} revoked rows in {time.perf_counter() - t0:.1f}s")


def check_crl(der: bytes, issuer_der: bytes, expected: int, what: str) -> None:
    """An independent parser (cryptography) counts the entries and checks the signature."""
    from cryptography import x509 as cx509

    crl = cx509.load_der_x509_crl(der)
    issuer = cx509.load_der_x509_certificate(issuer_der)
    if len(crl) != expected:
        raise RuntimeError(f"{what}: {len(crl):,} entries in the CRL, expected {expected:,}")
    if not crl.is_signature_valid(issuer.public_key()):   # type: ignore[arg-type]
        raise RuntimeError(f"{what}: the CRL signature does not verify under the issuing CA")
    if crl.issuer != issuer.subject:
        raise RuntimeError(f"{what}: CRL issuer {crl.issuer.rfc4514_string()} is not the issuing CA")


def openssl_verify(crl_path: Path, issuer_pem: Path, inform: str) -> None:
    proc = subprocess.run(["openssl", "crl", "-inform", inform, "-in", str(crl_path), "-CAfile", str(issuer_pem),
                           "-noout"], capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 or "verify OK" not in (proc.stdout + proc.stderr):
        raise RuntimeError(f"openssl crl -verify refused {crl_path.name}: {(proc.stderr or proc.stdout).strip()[-300:]}")


# --- OpenSSL ----------------------------------------------------------------------------

OPENSSL_CNF = """\
[ ca ]
default_ca = bench

[ bench ]
dir = {dir}
database = $dir/index.txt
crlnumber = $dir/crlnumber
serial = $dir/serial
certificate = $dir/ca.pem
private_key = $dir/ca.key
new_certs_dir = $dir
default_md = sha256
default_days = 365
default_crl_hours = {hours}
crl_extensions = crl_ext
unique_subject = no
policy = any

[ any ]
commonName = supplied

[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""


def _openssl_reason(reason: str | None, invalidity: datetime | None) -> str:
    """index.txt's revocation field after the time: `,reason` or `,keyTime,GENERALIZEDTIME`."""
    if invalidity is not None:
        return f",keyTime,{invalidity:%Y%m%d%H%M%SZ}"
    if reason in (None, "unspecified"):
        return ""
    return f",{reason}"


def write_openssl_ca(ca_dir: Path, pop: Population, count: int, crl_hours: int) -> None:
    """A software P-256 CA and an index.txt that lists entries 0 to ``count`` revoked."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(ca_dir / "ca.key"), "-out", str(ca_dir / "ca.pem"), "-subj",
                    "/O=udun bench/CN=openssl bench CA", "-days", "30"],
                   check=True, capture_output=True, timeout=60)
    (ca_dir / "ca.cnf").write_text(OPENSSL_CNF.format(dir=ca_dir, hours=crl_hours))
    (ca_dir / "crlnumber").write_text("01\n")
    (ca_dir / "serial").write_text("01\n")
    expiry = f"{pop.not_after:%y%m%d%H%M%SZ}"
    times: dict[int, str] = {}
    lines = []
    for i, serial in zip(range(count), pop.serials(0, count)):
        at = pop.revoked_at(i)
        slot = i % _TIME_SLOTS
        if slot not in times:
            times[slot] = f"{at:%y%m%d%H%M%SZ}"
        reason, with_invalidity = pop.reason(i)
        extra = _openssl_reason(reason, at - timedelta(days=1) if with_invalidity else None)
        lines.append(f"R\t{expiry}\t{times[slot]}{extra}\t{serial:X}\tunknown\t/CN=bench revoked {i}\n")
    (ca_dir / "index.txt").write_text("".join(lines))


def openssl_gencrl(ca_dir: Path, expected: int) -> float:
    """Seconds for `openssl ca -gencrl` (the whole process), checked by counting entries."""
    out = ca_dir / "crl.pem"
    cmd = ["openssl", "ca", "-gencrl", "-config", str(ca_dir / "ca.cnf"), "-out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"openssl ca -gencrl failed: {proc.stderr.strip()[-300:]}")
    from cryptography import x509 as cx509

    crl = cx509.load_pem_x509_crl(out.read_bytes())
    ca = cx509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    if len(crl) != expected or not crl.is_signature_valid(ca.public_key()):   # type: ignore[arg-type]
        raise RuntimeError(f"openssl's CRL lists {len(crl):,} entries (expected {expected:,}) or does not verify")
    log(f"openssl ca -gencrl: {expected:,} entries in {seconds:.2f}s, {out.stat().st_size / 1e6:.1f} MB PEM")
    return seconds


# --- the figures ------------------------------------------------------------------------

@dataclass
class CrlBench:
    """Runs in order: udun and OpenSSL on the same 100k, then udun on 1M (900k rows more)."""

    ca: Any          # ca.authority.CertificateAuthority of the bench
    work: Path
    pop: Population
    inserted: int = 0                  # entries 0 .. inserted are in the database

    @classmethod
    def create(cls, ca: Any, work: Path) -> "CrlBench":
        return cls(ca, work, Population(datetime.now(timezone.utc).replace(microsecond=0)))

    @property
    def db(self) -> Path:
        return database_path(self.ca.settings)

    @property
    def issuing(self) -> Any:
        return self.ca.authority("issuing")

    def pair_100k(self, count: int = 100_000, rounds: int = 3) -> list[Figure]:
        """udun and `openssl ca -gencrl` on the same ``count`` entries, alternating
        (udun, openssl, openssl, udun, ...) ``rounds`` times each; the median of each."""
        import statistics

        before = listed(self.db, self.issuing.id)
        insert_revoked(self.db, self.pop, self.issuing.id, self.inserted, count)
        self.inserted = count
        ca_dir = self.work / "openssl-ca"
        write_openssl_ca(ca_dir, self.pop, count, self.ca.settings.crl_hours)
        udun: list[float] = []
        openssl: list[float] = []
        for r in range(rounds):
            steps = ["udun", "openssl"] if r % 2 == 0 else ["openssl", "udun"]
            for step in steps:
                if step == "udun":
                    res = self._publish_in_child(self.work / f"crl-100k-{r}.der", before + count)
                    udun.append(float(res["seconds"]))
                else:
                    openssl.append(openssl_gencrl(ca_dir, count))
        u, o = statistics.median(udun), statistics.median(openssl)
        log(f"crl {count:,}: udun {', '.join(f'{x:.2f}' for x in udun)} s; openssl "
            f"{', '.join(f'{x:.2f}' for x in openssl)} s; medians {u:.2f} / {o:.2f}")
        k = count // 1000
        return [(f"crl_build_{k}k", u, "s"), (f"openssl_gencrl_{k}k", o, "s"),
                (f"crl_build_{k}k_vs_openssl_ratio", o / u, "ratio")]

    def build_1m(self, total: int = 1_000_000) -> list[Figure]:
        insert_revoked(self.db, self.pop, self.issuing.id, self.inserted, total)
        self.inserted = total
        res = self._publish_in_child(self.work / "crl-1m.der", listed(self.db, self.issuing.id))
        return [
            (f"crl_build_{total // 1_000_000}m", float(res["seconds"]), "s"),
            (f"crl_build_{total // 1_000_000}m_rss", res["maxrss_kib"] / 1024, "MiB"),
        ]

    def _publish_in_child(self, out: Path, expected: int) -> dict[str, Any]:
        """Revocation.publish("issuing") in a fresh process (bench/crl_child.py): a heap of
        its own (this process carries the whole bench) and a peak RSS of its own. The CRL
        is then checked here: entry count, signature, `openssl crl -verify`."""
        from keystore.ca_access import ca_pin

        env = dict(os.environ, UDUN_CA_PIN=ca_pin(self.ca.settings))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(CHILD), str(out)], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=900, check=False)
        wall = time.perf_counter() - t0
        m = re.search(r"^UDUN_CRL_RESULT (.*)$", proc.stdout, re.M)
        if proc.returncode != 0 or m is None:
            raise RuntimeError(f"the CRL child failed (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}")
        res: dict[str, Any] = json.loads(m.group(1))
        log(f"crl child: {res['entries']:,} entries, CRL number {res['number']}, {res['bytes'] / 1e6:.1f} MB DER "
            f"in {res['seconds']:.2f}s (process {wall:.1f}s, start-up and login {res['startup_seconds']:.1f}s); "
            f"peak RSS {res['maxrss_kib'] / 1024:.0f} MiB ({res['start_rss_kib'] / 1024:.0f} MiB before the build)")
        if res["entries"] != expected:
            raise RuntimeError(f"the child's CRL has {res['entries']:,} entries, expected {expected:,}")
        t1 = time.perf_counter()
        check_crl(out.read_bytes(), self.issuing.cert_der, expected, out.name)
        openssl_verify(out, self._issuer_pem(), "DER")
        log(f"crl: {out.name} checked (cryptography: entry count and signature; openssl crl -verify) "
            f"in {time.perf_counter() - t1:.1f}s")
        return res

    def _issuer_pem(self) -> Path:
        from asn1crypto import pem

        path = self.work / "issuing-ca.pem"
        if not path.exists():
            path.write_bytes(pem.armor("CERTIFICATE", self.issuing.cert_der))
        return path
