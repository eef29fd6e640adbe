"""The audit log: signed checkpoints, verification, export; every kind of tampering is named.

Tampering happens on copies of a database made from the session CA's (tests/dbcopy.py,
on either engine), so the session database is never touched.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import subprocess
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dbcopy import copy_database, execute, fetchall, fetchone
from helpers import SoftwareKey, openssl, udun

COLS = "at, action, actor, subject, details, prev_hash, hash"


def _open(settings, url: str):  # type: ignore[no-untyped-def]
    """A CA over a database copy (the CA tokens and their one session are shared)."""
    from ca.authority import CertificateAuthority
    from ca.storage.engine import make_engine
    from ca.storage.store import Store

    s = dataclasses.replace(settings, database_url=url)
    return CertificateAuthority(s, Store(make_engine(s)))


def _close(cca) -> None:  # type: ignore[no-untyped-def]
    """Let go of every connection to the copy (this thread's raw one too): on PostgreSQL a
    database can be a template only while nobody is connected to it."""
    cca.store.raw.close()
    cca.store.engine.dispose()


def _issue(ca, cn: str):  # type: ignore[no-untyped-def]
    from pkicore.x509build import build_csr, parse_name

    return ca.issue(build_csr(SoftwareKey(), parse_name(f"CN={cn},O=audit tests")), requester="audit-test")


@dataclasses.dataclass(frozen=True)
class Base:
    url: str            # the copy's database
    hold: int           # seq of the first "hold" entry (covered by both checkpoints)
    cp1: int            # seq checkpoint 1 covers
    cp2: int            # seq checkpoint 2 covers
    last: int


@pytest.fixture(scope="module")
def base(ca, settings, tmp_path_factory) -> Base:  # type: ignore[no-untyped-def]
    """A history: issues, hold, release, revoke (with CRLs), two checkpoints, entries after them."""
    from ca import audit
    from ca.revocation import Revocation
    from ca.tsa import TimeStampAuthority

    url = copy_database(settings.database_url, tmp_path_factory.mktemp("audit") / "base.db")
    cca = _open(settings, url)
    rev = Revocation(cca)
    tsa = TimeStampAuthority(cca)
    a, b = _issue(cca, "Audit A"), _issue(cca, "Audit B")
    rev.hold(a.serial, actor="teller-1")
    rev.release(a.serial, actor="teller-2")
    first = audit.checkpoint(cca, tsa, actor="test")
    rev.revoke(b.serial, "keyCompromise", actor="officer")
    second = audit.checkpoint(cca, tsa, actor="test")
    _issue(cca, "Audit C")
    _close(cca)
    hold = fetchone(url, "SELECT min(seq) FROM audit_log WHERE action = 'hold'")[0]
    last = fetchone(url, "SELECT max(seq) FROM audit_log")[0]
    assert first.created and second.created and hold < first.record.seq < second.record.seq < last
    return Base(url, hold, first.record.seq, second.record.seq, last)


def _variant(base: Base, tmp_path: Path, *sql: tuple[str, tuple[Any, ...]]) -> str:
    url = copy_database(base.url, tmp_path / "tampered.db")
    execute(url, *sql)
    return url


def _row(url: str, seq: int) -> tuple[Any, ...]:
    return fetchone(url, f"SELECT {COLS} FROM audit_log WHERE seq = ?", (seq,))


def audit_cli(*args: str, db: str | None = None) -> subprocess.CompletedProcess[bytes]:
    """`udun audit ...`, on a copy of the database when ``db`` (its URL) is given."""
    env = {"UDUN_DATABASE_URL": db} if db else {}
    return udun("audit", *args, env=env)


def _failed(proc: subprocess.CompletedProcess[bytes]) -> str:
    out = proc.stdout.decode()
    assert proc.returncode == 1, out + proc.stderr.decode()
    first = out.splitlines()[0]
    assert first.startswith("audit log FAILED: "), out
    return first.removeprefix("audit log FAILED: ")


# --- through the command line ----------------------------------------------------------

def test_untouched_log_verifies(base: Base) -> None:
    proc = audit_cli("verify", db=base.url)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert out.startswith(f"audit log OK: {base.last} entries, 2 checkpoints, last checkpoint at ")
    assert f"(seq {base.cp2})" in out


def test_changed_entry_is_named(base: Base, tmp_path: Path) -> None:
    edit = "UPDATE audit_log SET details = replace(details, 'on_hold', 'good') WHERE seq = ?"
    db = _variant(base, tmp_path, (edit, (base.hold,)))
    assert _row(db, base.hold) != _row(base.url, base.hold)
    assert _failed(audit_cli("verify", db=db)) == \
        f"entry {base.hold} was changed or forged: its hash does not match its content"


def test_deleted_entry_is_named(base: Base, tmp_path: Path) -> None:
    db = _variant(base, tmp_path, ("DELETE FROM audit_log WHERE seq = ?", (base.hold + 1,)))
    assert _failed(audit_cli("verify", db=db)) == f"entry {base.hold + 1} is missing (deleted)"


def test_forged_entry_at_the_end_is_named(base: Base, tmp_path: Path) -> None:
    n = base.last + 1
    db = _variant(base, tmp_path, (f"INSERT INTO audit_log (seq, {COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                   (n, "2026-01-01T00:00:00.000000Z", "revoke", "intruder", "abc", "{}",
                                    _row(base.url, base.last)[-1], hashlib.sha256(b"forged").hexdigest())))
    assert _failed(audit_cli("verify", db=db)).startswith(f"entry {n} was changed or forged")


def test_entry_inserted_by_renumbering_is_named(base: Base, tmp_path: Path) -> None:
    """A forger who knows the hash rule: the chain links, but the entries after it moved."""
    from ca.auditlog import entry_hash

    k = base.hold
    prev = _row(base.url, k - 1)[-1]
    forged = ("2026-01-01T00:00:00.000000Z", "release", "intruder", "abc", "{}", prev)
    db = _variant(base, tmp_path,
                  ("UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= ?", (k,)),
                  ("UPDATE audit_log SET seq = -seq WHERE seq < 0", ()),
                  (f"INSERT INTO audit_log (seq, {COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (k, *forged, entry_hash(k, *forged))))
    proc = audit_cli("verify", db=db)
    assert _failed(proc) == f"entry {k} was inserted: the original entry {k} was renumbered to {k + 1}"
    assert f"(seq {base.cp1}), signed at " in proc.stdout.decode()          # the checkpoints agree


def test_swapped_entries_are_named(base: Base, tmp_path: Path) -> None:
    a, b = base.hold, base.hold + 1
    ra, rb = _row(base.url, a), _row(base.url, b)
    sets = ", ".join(f"{c.strip()} = ?" for c in COLS.split(","))
    db = _variant(base, tmp_path, (f"UPDATE audit_log SET {sets} WHERE seq = ?", (*rb, a)),
                  (f"UPDATE audit_log SET {sets} WHERE seq = ?", (*ra, b)))
    proc = audit_cli("verify", db=db)
    assert _failed(proc).startswith(f"entry {a} was replaced: it holds what was entry {b}")
    assert f"entry {b} was replaced: it holds what was entry {a}" in proc.stdout.decode()


def test_altered_checkpoint_token_fails(base: Base, tmp_path: Path) -> None:
    token = bytearray(fetchone(base.url, "SELECT cms FROM audit_checkpoints WHERE seq = ?", (base.cp1,))[0])
    token[-1] ^= 0x01                                          # the last octet of the ECDSA signature
    db = _variant(base, tmp_path, ("UPDATE audit_checkpoints SET cms = ? WHERE seq = ?", (bytes(token), base.cp1)))
    head = _failed(audit_cli("verify", db=db))
    assert head.startswith("checkpoint ") and f"(seq {base.cp1}) does not verify: the signature does not " \
                                              f"verify" in head, head


def test_altered_checkpoint_head_fails(base: Base, tmp_path: Path) -> None:
    db = _variant(base, tmp_path, ("UPDATE audit_checkpoints SET head_hash = ? WHERE seq = ?",
                                   (_row(base.url, base.cp1 - 1)[-1], base.cp1)))
    head = _failed(audit_cli("verify", db=db))
    assert f"(seq {base.cp1}) does not verify: the token time-stamps another imprint" in head


def test_truncation_covered_by_a_checkpoint_is_detected(base: Base, tmp_path: Path) -> None:
    cut = base.cp2 - 1
    db = _variant(base, tmp_path, ("DELETE FROM audit_log WHERE seq >= ?", (cut,)))
    assert _failed(audit_cli("verify", db=db)).startswith(
        f"entries {cut}-{base.cp2} are missing (deleted): the log was truncated")


def test_export_verifies_outside_and_with_openssl(base: Base, tmp_path: Path, chain_pem: Path) -> None:
    from ca import audit

    out = tmp_path / "audit.jsonl"
    proc = audit_cli("export", "-o", str(out), db=base.url)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = out.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "udun-audit-export/1" and len(lines) == 1 + 2 + base.last

    proc = audit_cli("verify", "--file", str(out), "--trust", str(chain_pem))
    assert proc.returncode == 0 and proc.stdout.decode().startswith(f"audit log OK: {base.last} entries"), proc

    # The instructions in the header work with plain OpenSSL.
    cp = json.loads(lines[2])["checkpoint"]
    (tmp_path / "root.pem").write_text(header["root_pem"])
    (tmp_path / "tsa-chain.pem").write_text(header["issuing_pem"])
    (tmp_path / "token.der").write_bytes(base64.b64decode(cp["token"]))
    digest = hashlib.sha256(audit.statement(cp["seq"], cp["head_hash"])).hexdigest()
    done = openssl("ts", "-verify", "-digest", digest, "-in", "token.der", "-token_in", "-CAfile", "root.pem",
                   "-untrusted", "tsa-chain.pem", cwd=tmp_path)
    assert done.returncode == 0 and b"Verification: OK" in done.stdout, done
    bad = openssl("ts", "-verify", "-digest", hashlib.sha256(b"other").hexdigest(), "-in", "token.der",
                  "-token_in", "-CAfile", "root.pem", "-untrusted", "tsa-chain.pem", cwd=tmp_path)
    assert bad.returncode != 0

    # An edited export is caught the same way (in-process: same verify_log).
    edited = tmp_path / "edited.jsonl"
    with edited.open("w", encoding="utf-8") as f:
        for line in lines:
            obj = json.loads(line)
            if obj.get("entry", {}).get("seq") == base.hold:
                obj["entry"]["actor"] = "someone-else"
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    verdict = audit.verify_export(edited)
    assert not verdict.ok and verdict.problems[0].seq == base.hold
    assert verdict.headline == f"entry {base.hold} was changed or forged: its hash does not match its content"


def test_checkpoint_command(base: Base, tmp_path: Path) -> None:
    db = copy_database(base.url, tmp_path / "cp.db")
    proc = audit_cli("checkpoint", db=db)
    assert proc.returncode == 0 and f"seq {base.last}," in proc.stderr.decode(), proc
    again = audit_cli("checkpoint", db=db)                       # only its own entry since: nothing new
    assert again.returncode == 0 and "nothing new since checkpoint 3" in again.stderr.decode(), again


# --- in-process: the library --------------------------------------------------------------

def test_rewritten_chain_is_caught_by_its_checkpoint(ca, settings, base: Base, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Edit an entry and re-hash everything after it: only a checkpoint can tell."""
    from ca import audit
    from ca.auditlog import entry_hash

    db = copy_database(base.url, tmp_path / "rewritten.db")
    prev, edits = "", []
    for seq, at, action, actor, subject, details, prev_hash, stored in \
            fetchall(db, f"SELECT seq, {COLS} FROM audit_log ORDER BY seq"):
        if seq >= base.hold:
            actor = "nobody" if seq == base.hold else actor
            stored = entry_hash(seq, at, action, actor, subject, details, prev)
            edits.append(("UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                          (actor, prev, stored, seq)))
        prev = stored
    execute(db, *edits)
    cca = _open(settings, db)
    verdict = audit.verify(cca, ca.chain_der())
    _close(cca)
    assert not verdict.ok
    assert verdict.headline.startswith(f"entries 1-{base.cp1} were rewritten after checkpoint 1 ")
    assert verdict.problems[0].seq == base.cp1


def test_deleted_checkpoint_is_named(settings, base: Base, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ca import audit

    db = _variant(base, tmp_path, ("DELETE FROM audit_checkpoints WHERE seq = ?", (base.cp2,)))
    cca = _open(settings, db)
    verdict = audit.verify(cca)
    _close(cca)
    assert not verdict.ok and verdict.problems[0].seq == base.cp2 + 1
    assert verdict.headline.startswith(f"the checkpoint logged in entry {base.cp2 + 1} ")


def test_checkpoint_only_when_the_log_moved(settings, base: Base, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ca import audit
    from ca.tsa import TimeStampAuthority
    from pkicore.clock import system_clock
    from webapi import scheduler

    cca = _open(settings, copy_database(base.url, tmp_path / "moved.db"))
    tsa = TimeStampAuthority(cca)
    assert not scheduler.checkpoint_due(cca)                  # the base's newest is seconds old
    done = audit.checkpoint(cca, tsa)
    assert done.created and done.record.seq == base.last
    assert not audit.checkpoint(cca, tsa).created             # only its own entry came after
    assert audit.checkpoint(cca, tsa, force=True).created
    assert scheduler.checkpoint_tick(cca, tsa) is None        # the newest is fresh
    _issue(cca, "Audit D")
    cca.clock = lambda: system_clock() + timedelta(minutes=settings.audit_checkpoint_minutes + 1)
    ticked = scheduler.checkpoint_tick(cca, tsa)
    assert ticked is not None and ticked.record.seq == base.last + 3   # two checkpoint entries, one issue
    verdict = audit.verify(cca)
    _close(cca)
    assert verdict.ok and verdict.checkpoints == 5 and verdict.uncovered == 1, verdict


# --- pure: verify_log on synthetic logs --------------------------------------------------

def _chain(n: int, change: int = 0, drop: int = 0) -> Iterator[Any]:
    from ca.auditlog import GENESIS, AuditEntry, entry_hash

    prev = GENESIS
    for seq in range(1, n + 1):
        fields = ("2026-11-22T10:00:00.000000Z", "verify", "api", f"ev-{seq}", '{"status":"TOTAL_PASSED"}', prev)
        h = entry_hash(seq, *fields)
        if seq == change:
            fields = (*fields[:4], '{"status":"TOTAL_FAILED"}', prev)
        if seq != drop:
            yield AuditEntry(seq, *fields, h)
        prev = h


def test_verify_log_streams_a_long_log(ca) -> None:  # type: ignore[no-untyped-def]
    from ca import audit

    tracemalloc.start()
    verdict = audit.verify_log(_chain(30_000, change=15_001, drop=18_000), [], ca.chain_der())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [p.message for p in verdict.problems] == [
        "entry 15001 was changed or forged: its hash does not match its content",
        "entry 18000 is missing (deleted)"]
    assert verdict.entries == 29_999 and verdict.last_seq == 30_000
    assert peak < 2_000_000, peak                 # a list of the 30,000 entries alone would be ~10 MB


def test_verify_log_order_and_genesis(ca) -> None:  # type: ignore[no-untyped-def]
    from ca import audit
    from ca.auditlog import entry_hash

    entries = list(_chain(6))
    assert audit.verify_log(entries, [], ca.chain_der()).ok
    dup = audit.verify_log(entries[:3] + [entries[2]] + entries[3:], [], ca.chain_der())
    assert dup.headline == "entry 3 appears twice (one was inserted)"
    late = audit.verify_log(entries[:2] + entries[3:5] + [entries[2]] + entries[5:], [], ca.chain_der())
    assert late.headline == "entry 3 is missing (deleted)"
    assert "entry 3 is out of order: it comes after entry 5" in [p.message for p in late.problems]
    no_start = audit.verify_log(entries[2:], [], ca.chain_der())
    assert no_start.headline == "entries 1-2 are missing (deleted)"
    e = entries[0]
    bad_genesis = dataclasses.replace(e, prev_hash="1" * 64,
                                      hash=entry_hash(1, e.at, e.action, e.actor, e.subject, e.details, "1" * 64))
    assert audit.verify_log([bad_genesis], [], ca.chain_der()).headline.startswith("entry 1 does not start the chain")
