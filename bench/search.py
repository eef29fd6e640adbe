"""The certificate-search figures (issue 12): 10,000 certificates in a CA database of their
own, and the time to list every revoked one (1,000) through `udun ca list --status revoked
--json` (the whole process) and through the admin API's GET /api/v1/certificates
(in process, Flask's test client, the admin key), each checked to return exactly the
revoked set. A database of its own: the CRL figures count the bench home's revoked rows.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.measure import log

Figure = tuple[str, float, str]
ROOT = Path(__file__).resolve().parent.parent
TOTAL, REVOKED = 10_000, 1_000


def _home(work: Path) -> tuple[Path, set[str]]:
    """A UDUN_HOME with only a database: one issuing authority, TOTAL certificates, of
    which REVOKED revoked (and some on hold, some expired); the revoked serials."""
    import sqlalchemy as sa

    from ca.storage.engine import make_engine
    from ca.storage.migrate import alembic
    from ca.storage.schema import certificates
    from ca.storage.store import NewAuthority, Store
    from config.settings import load_settings

    home = Path(tempfile.mkdtemp(prefix="search-", dir=work))
    engine = make_engine(load_settings({"UDUN_HOME": str(home)}))
    with engine.begin() as conn:
        alembic(conn, "upgrade", "head")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    (issuing,) = Store(engine).add_authorities([NewAuthority("issuing", "t", b"k", "ec-p256", "CN=bench", b"der",
                                                             now + timedelta(days=3650))], now=now)
    rows: list[dict[str, Any]] = []
    revoked: set[str] = set()
    for i in range(TOTAL):
        created = now - timedelta(minutes=TOTAL - i)
        serial = format((1 << 126) | i, "x")
        row = {"serial": serial, "authority_id": issuing.id, "state": "issued", "profile": "client",
               "subject": f"CN=Customer {i},O=Example Bank,C=CN", "requester": "bench", "tbs_sha256": "ab" * 32,
               "not_before": created, "not_after": created + timedelta(days=365), "created_at": created,
               "issued_at": created, "der": b"\x30\x00", "status": "good"}
        if i % 10 == 3:
            row.update(status="revoked", revoked_at=now, revocation_reason="keyCompromise")
            revoked.add(serial)
        elif i % 20 == 7:
            row.update(status="on_hold", revoked_at=now, revocation_reason="certificateHold")
        elif i % 20 == 9:
            row.update(not_after=now - timedelta(days=1))
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(sa.insert(certificates), rows)
    engine.dispose()
    return home, revoked


def _cli(home: Path, revoked: set[str]) -> float:
    env = {**os.environ, "UDUN_HOME": str(home)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "udun.cli", "ca", "list", "--status", "revoked", "--json",
                           "--limit", str(REVOKED)], env=env, cwd=ROOT, capture_output=True, timeout=120, check=False)
    seconds = time.perf_counter() - t0
    got = {json.loads(line)["serial"] for line in proc.stdout.decode().splitlines()}
    if proc.returncode != 0 or got != revoked:
        raise RuntimeError(f"ca list --status revoked: exit {proc.returncode}, {len(got)} serials "
                           f"({len(got & revoked)} right): {proc.stderr.decode()[-300:]}")
    return seconds


def _api(home: Path, revoked: set[str]) -> float:
    from adminapi import create_admin_app
    from config.settings import load_settings

    key = secrets.token_urlsafe(32)
    client = create_admin_app(load_settings({"UDUN_HOME": str(home)}), admin_api_key=key).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    t0 = time.perf_counter()
    got: set[str] = set()
    cursor = ""
    while True:
        resp = client.get(f"/api/v1/certificates?status=revoked&limit=500{cursor}", headers=headers)
        body = resp.get_json()
        if resp.status_code != 200:
            raise RuntimeError(f"GET /api/v1/certificates: {resp.status_code} {body}")
        got |= {c["serial"] for c in body["items"] if c["status"] == "revoked"}
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    seconds = time.perf_counter() - t0
    if got != revoked:
        raise RuntimeError(f"GET /api/v1/certificates?status=revoked: {len(got)} serials, expected {len(revoked)}")
    return seconds


def figures(work: Path) -> list[Figure]:
    t0 = time.perf_counter()
    home, revoked = _home(work)
    log(f"search: {TOTAL:,} certificates ({len(revoked):,} revoked) written in {time.perf_counter() - t0:.1f}s")
    cli = min(_cli(home, revoked) for _ in range(3))
    api = min(_api(home, revoked) for _ in range(3))
    log(f"search: ca list --status revoked {cli:.2f}s (whole process), API {api:.3f}s (2 pages of 500)")
    return [("search_ca_list_revoked_10k", cli, "s"), ("search_api_revoked_10k", api, "s")]
