"""Checking the audit log (ca.auditlog): signed checkpoints of its head, verification, export.

A checkpoint is an RFC 3161 time-stamp token from our TSA (its key is on the CA token)
over SHA-256 of the statement ``udun-audit-checkpoint/1 seq=<n> head=<hash of entry n>``:
the TSA's signature and trusted time make it the checkpoint's signature. The hash chain
shows an entry was changed, removed or inserted; a checkpoint additionally pins the
log up to its seq, so a rewritten chain or a cut-off tail is caught too. Entries after
the last checkpoint are protected by the hash chain only.

Export format (JSON Lines, UTF-8, one object per line, streamable):
  line 1   {"format": "udun-audit-export/1", "exported_at", "root_pem", "issuing_pem",
            "statement", "entry_hash", "how_to_check": [...]}
  then     {"checkpoint": {"id", "seq", "head_hash", "at", "token": base64 DER}} lines,
  then     {"entry": {"seq", "at", "action", "actor", "subject", "details", "prev_hash",
            "hash"}} lines in seq order; ``details`` is the stored canonical JSON text.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from asn1crypto import pem, x509
from sqlalchemy import Table, exists, insert, select
from sqlalchemy.exc import OperationalError

from ca import auditlog
from ca.auditlog import GENESIS, AuditEntry, entry_hash
from ca.authority import CertificateAuthority
from ca.db import AuditCheckpointRow, AuditRow
from ca.store import _utc
from ca.tsa import TimeStampAuthority
from pkicore.config import RECORDS_POLICY
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import ChainValidator, TrustStore
from pkicore.tsp_check import check_token

STATEMENT = "udun-audit-checkpoint/1 seq=%d head=%s"
EXPORT_FORMAT = "udun-audit-export/1"
CHUNK = 5_000            # entries per query: memory stays flat whatever the log's length
MAX_PROBLEMS = 50        # problems listed; the rest are counted
MOVE_WINDOW = 32         # how far a changed entry's content is looked for at another seq

_log = cast(Table, AuditRow.__table__)
_cps = cast(Table, AuditCheckpointRow.__table__)
_entry_cols = (_log.c.seq, _log.c.at, _log.c.action, _log.c.actor, _log.c.subject, _log.c.details,
               _log.c.prev_hash, _log.c.hash)

HOW_TO_CHECK = [
    ("Line 1 is this header; then one {\"checkpoint\": ...} line per checkpoint; then one {\"entry\": ...} "
     "line per audit entry, in seq order."),
    ("Entries: hash = SHA-256 hex of the UTF-8 JSON array [seq, at, action, actor, subject, details, prev_hash] "
     "(Python: json.dumps(array, separators=(',', ':'), ensure_ascii=False)), details being the stored text. "
     "seq runs 1, 2, 3, ... without gaps; entry 1's prev_hash is 64 zeros, every other entry's prev_hash is "
     "the hash of the entry before it."),
    ("Checkpoints: statement = 'udun-audit-checkpoint/1 seq=<seq> head=<head_hash>' (ASCII, no newline); "
     "head_hash must equal the hash of entry <seq>; the token is an RFC 3161 time-stamp over SHA-256(statement)."),
    ("Check a token with OpenSSL: save root_pem as root.pem and issuing_pem as tsa-chain.pem, base64-decode "
     "the token into token.der, then run: openssl ts -verify -digest \"$(printf %s \"$STATEMENT\" | openssl dgst "
     "-sha256 -r | cut -d' ' -f1)\" -in token.der -token_in -CAfile root.pem -untrusted tsa-chain.pem"),
    ("Compare the root certificate's SHA-256 fingerprint with one you obtained independently: this file's "
     "own certificates prove nothing about who made it."),
    "Or run: udun audit verify --file THIS_FILE --trust root.pem",
]


@dataclass(frozen=True)
class CheckpointRecord:
    """One stored checkpoint; ``token`` is the RFC 3161 TimeStampToken (DER)."""

    id: int
    seq: int
    head_hash: str
    at: datetime
    token: bytes


@dataclass(frozen=True)
class Checkpoint:
    """What checkpoint() did: a new checkpoint, or the last one when the head had not moved."""

    record: CheckpointRecord
    created: bool


@dataclass(frozen=True)
class AuditProblem:
    """One thing wrong with the log; ``seq`` is the entry it names (None: none in particular)."""

    seq: int | None
    message: str


@dataclass(frozen=True)
class AuditVerdict:
    """The outcome of verify_log: a report, not an exception."""

    ok: bool
    entries: int
    last_seq: int
    checkpoints: int
    last_checkpoint_at: datetime | None   # the TSA's time in the newest valid checkpoint
    last_checkpoint_seq: int | None
    problems: tuple[AuditProblem, ...]    # the first is the headline
    omitted: int = 0                      # problems found beyond MAX_PROBLEMS

    @property
    def headline(self) -> str:
        return self.problems[0].message if self.problems else ""

    @property
    def uncovered(self) -> int:
        """Entries after the newest valid checkpoint (protected by the hash chain only)."""
        return max(0, self.last_seq - (self.last_checkpoint_seq or 0))


def statement(seq: int, head_hash: str) -> bytes:
    """What a checkpoint's time-stamp covers (its SHA-256 is the token's imprint)."""
    return (STATEMENT % (seq, head_hash)).encode("ascii")


def _db_error(e: OperationalError) -> PkiError:
    if "no such table" in str(e.orig) or "does not exist" in str(e.orig):
        return PkiError(ErrorKind.NOT_INITIALISED, "the database has no audit tables: run `udun ca init`")
    return PkiError(ErrorKind.UNAVAILABLE, "the database is not available")


# --- reading and writing ---------------------------------------------------------------

def load_entries(ca: CertificateAuthority, chunk: int = CHUNK) -> Iterator[AuditEntry]:
    """Every entry by seq, read in chunks (keyset paging: no long-lived cursor)."""
    after = None
    while True:
        query = select(*_entry_cols).order_by(_log.c.seq).limit(chunk)
        if after is not None:
            query = query.where(_log.c.seq > after)
        try:
            with ca.store.engine.connect() as conn:
                rows = conn.execute(query).all()
        except OperationalError as e:
            raise _db_error(e) from e
        for r in rows:
            yield AuditEntry(*r)
        if len(rows) < chunk:
            return
        after = rows[-1][0]


def _checkpoint(row: Any) -> CheckpointRecord:
    return CheckpointRecord(row.id, row.seq, row.head_hash, _utc(row.at), bytes(row.cms))


def load_checkpoints(ca: CertificateAuthority) -> list[CheckpointRecord]:
    """Every checkpoint, by seq."""
    try:
        with ca.store.engine.connect() as conn:
            rows = conn.execute(select(_cps).order_by(_cps.c.seq, _cps.c.id)).all()
    except OperationalError as e:
        raise _db_error(e) from e
    return [_checkpoint(r) for r in rows]


def latest_checkpoint(ca: CertificateAuthority) -> CheckpointRecord | None:
    """The checkpoint of the highest seq (the newest)."""
    try:
        with ca.store.engine.connect() as conn:
            row = conn.execute(select(_cps).order_by(_cps.c.seq.desc(), _cps.c.id.desc()).limit(1)).first()
    except OperationalError as e:
        raise _db_error(e) from e
    return _checkpoint(row) if row is not None else None


def _head(ca: CertificateAuthority, since: int | None) -> tuple[int, str, bool]:
    """(seq, hash) of the newest entry, and whether any entry but a checkpoint's came after ``since``."""
    try:
        with ca.store.engine.connect() as conn:
            row = conn.execute(select(_log.c.seq, _log.c.hash).order_by(_log.c.seq.desc()).limit(1)).first()
            moved = since is None or bool(conn.execute(select(exists().where(
                _log.c.seq > since, _log.c.action != "checkpoint"))).scalar())
    except OperationalError as e:
        raise _db_error(e) from e
    return (int(row[0]), str(row[1]), moved) if row is not None else (0, GENESIS, moved)


def checkpoint(ca: CertificateAuthority, tsa: TimeStampAuthority, *, force: bool = False,
               actor: str = "udun") -> Checkpoint:
    """Time-stamp the log's head and store it, with a "checkpoint" entry, in one transaction.

    Nothing new is signed when only checkpoint entries came after the last checkpoint
    (each checkpoint adds its own entry, which the next one covers), unless ``force``.
    """
    tsa.certificate()           # a TSA key renewal appends entries: let it happen before the head is read
    last = latest_checkpoint(ca)
    seq, head, moved = _head(ca, last.seq if last else None)
    if last is not None and not moved and not force:
        return Checkpoint(last, False)
    stamp = tsa.stamp_record(statement(seq, head))
    details = {"seq": seq, "head_hash": head, "token_serial": format(stamp.serial, "x"),
               "gen_time": stamp.to_json()["gen_time"]}
    try:
        with ca.store.engine.begin() as conn:
            # append() first: its counter UPDATE takes the write lock before anything else is written.
            auditlog.append(conn, action="checkpoint", actor=actor, subject=f"seq {seq}", details=details,
                            now=ca.clock())
            new_id = conn.execute(insert(_cps).values(seq=seq, head_hash=head, at=stamp.gen_time,
                                                      cms=stamp.token)).inserted_primary_key
    except OperationalError as e:
        raise _db_error(e) from e
    assert new_id is not None
    return Checkpoint(CheckpointRecord(int(new_id[0]), seq, head, stamp.gen_time, stamp.token), True)


# --- verification (pure) ---------------------------------------------------------------

def _missing(first: int, last: int) -> str:
    return f"entry {first} is missing (deleted)" if first == last else \
        f"entries {first}-{last} are missing (deleted)"


def _hash_at(e: AuditEntry, seq: int) -> str:
    return entry_hash(seq, e.at, e.action, e.actor, e.subject, e.details, e.prev_hash)


class _Walk:
    """Walks entries in order, keeping only what later checks need (constant memory)."""

    def __init__(self, wanted: set[int], max_problems: int) -> None:
        self.wanted = wanted                    # seqs checkpoints name: their stored hashes are kept
        self.heads: dict[int, str] = {}
        self.logged: dict[str, int] = {}        # token serial -> seq of the "checkpoint" entry
        self.max_problems = max_problems
        self.problems: list[AuditProblem] = []
        self.omitted = 0
        self.count = 0
        self.prev_seq = 0
        self.prev_hash = GENESIS
        self.prev_bad = False                   # the previous entry failed its own hash
        self.last_bad = 0                       # highest seq a problem was found at
        self.run: int | None = None             # offset of a run of entries moved to other seqs

    def flag(self, seq: int | None, message: str, upto: int | None = None) -> None:
        self.last_bad = max(self.last_bad, upto or seq or 0)
        if len(self.problems) < self.max_problems:
            self.problems.append(AuditProblem(seq, message))
        else:
            self.omitted += 1

    def step(self, e: AuditEntry) -> None:
        self.count += 1
        s = e.seq
        if s <= self.prev_seq:
            self.flag(s, f"entry {s} appears twice (one was inserted)" if s == self.prev_seq else
                      f"entry {s} is out of order: it comes after entry {self.prev_seq}", self.prev_seq)
            return
        gap = s > self.prev_seq + 1
        if gap:
            self.flag(self.prev_seq + 1, _missing(self.prev_seq + 1, s - 1), s - 1)
        bad = _hash_at(e, s) != e.hash
        if bad:
            self._changed(e)
        else:
            self.run = None
            expected = GENESIS if s == 1 else self.prev_hash
            if not gap and not self.prev_bad and e.prev_hash != expected:
                self.flag(s, "entry 1 does not start the chain: its prev_hash is not the genesis value" if s == 1
                          else f"entry {s} does not follow entry {s - 1}: entry {s - 1} was replaced, or "
                               f"entry {s} was inserted")
            if e.action == "checkpoint":
                self._note_checkpoint(e)
        if s in self.wanted:
            self.heads[s] = e.hash
        self.prev_seq, self.prev_hash, self.prev_bad = s, e.hash, bad

    def _note_checkpoint(self, e: AuditEntry) -> None:
        try:
            serial = json.loads(e.details).get("token_serial")
        except (ValueError, AttributeError):
            return
        if isinstance(serial, str):
            self.logged[serial] = e.seq

    def _changed(self, e: AuditEntry) -> None:
        """A hash that does not match: content edited or forged, or an entry moved to another seq."""
        s = e.seq
        if self.run is not None and s - self.run >= 1 and _hash_at(e, s - self.run) == e.hash:
            self.last_bad = s
            return                               # the same renumbering as the entry before: reported
        self.run = None
        origin = self._origin(e) if len(self.problems) < self.max_problems else None
        if origin is None:
            self.flag(s, f"entry {s} was changed or forged: its hash does not match its content")
            return
        self.run = s - origin
        if origin < s and self.last_bad < origin:
            what = f"entry {origin} was" if origin == s - 1 else f"entries {origin}-{s - 1} were"
            self.flag(origin, f"{what} inserted: the original entry {origin} was renumbered to {s}", s)
        else:
            self.flag(s, f"entry {s} was replaced: it holds what was entry {origin} (entries were reordered, "
                         f"or deleted and renumbered)")

    @staticmethod
    def _origin(e: AuditEntry) -> int | None:
        """The seq this entry's content was hashed at, when it is near its current one."""
        for d in range(1, MOVE_WINDOW + 1):
            for seq in (e.seq - d, e.seq + d):
                if seq >= 1 and _hash_at(e, seq) == e.hash:
                    return seq
        return None


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_checkpoints(walk: _Walk, checkpoints: Sequence[CheckpointRecord],
                       trust: Sequence[bytes]) -> tuple[datetime | None, int | None]:
    """Every checkpoint's token, TSA chain and head; (time, seq) of the newest valid one."""
    validator = ChainValidator(TrustStore.from_certs(list(trust)))
    newest: tuple[datetime | None, int | None] = (None, None)
    matched = 0                                  # seq of the last checkpoint whose head matches
    beyond: tuple[CheckpointRecord, datetime] | None = None
    serials: set[str] = set()
    first_bad = min((p.seq for p in walk.problems if p.seq is not None), default=walk.prev_seq + 1)
    for cp in sorted(checkpoints, key=lambda c: (c.seq, c.id)):
        name = f"checkpoint {cp.id} (seq {cp.seq})"
        tok = check_token(cp.token, imprint=hashlib.sha256(statement(cp.seq, cp.head_hash)).digest(),
                          hash_name="sha256", policy=RECORDS_POLICY)
        if not tok.ok or tok.info is None or tok.tsa_cert_der is None:
            walk.flag(cp.seq, f"{name} does not verify: {tok.problem}")
            continue
        at = tok.info.gen_time
        chain = validator.validate(x509.Certificate.load(tok.tsa_cert_der), list(tok.certificates), at)
        if not chain.ok:
            walk.flag(cp.seq, f"{name}: the TSA certificate is not valid at {_when(at)}: {chain.detail}")
            continue
        serials.add(format(tok.info.serial, "x"))
        if newest[0] is None or at >= newest[0]:
            newest = (at, cp.seq)
        if cp.seq > walk.prev_seq:
            beyond = (cp, at)
            continue
        head = GENESIS if cp.seq == 0 else walk.heads.get(cp.seq)
        if head is None:
            continue                             # entry cp.seq is missing: reported by the walk
        if head != cp.head_hash and first_bad <= cp.seq:
            walk.flag(cp.seq, f"{name}, signed at {_when(at)}, does not match entry {cp.seq}: the log was "
                              f"altered under it (see above)")
        elif head != cp.head_hash:
            walk.flag(cp.seq, f"entries {matched + 1}-{cp.seq} were rewritten after {name} was signed at "
                              f"{_when(at)}: it signed another hash for entry {cp.seq}")
        else:
            matched = cp.seq
    if beyond is not None:
        cp, at = beyond
        walk.flag(walk.prev_seq + 1, f"{_missing(walk.prev_seq + 1, cp.seq)}: the log was truncated; "
                                     f"checkpoint {cp.id} signed at {_when(at)} covers entries up to {cp.seq}")
    for serial, seq in walk.logged.items():
        if serial not in serials:
            walk.flag(seq, f"the checkpoint logged in entry {seq} (time-stamp serial {serial}) is missing "
                           f"or does not verify")
    return newest


def verify_log(entries: Iterable[AuditEntry], checkpoints: Sequence[CheckpointRecord], trust: Sequence[bytes],
               *, max_problems: int = MAX_PROBLEMS) -> AuditVerdict:
    """Check the hash chain (streaming, in the order given) and every checkpoint against ``trust``
    (root and issuing CA DER). No database: the caller hands entries in."""
    walk = _Walk({cp.seq for cp in checkpoints}, max_problems)
    for e in entries:
        walk.step(e)
    at, seq = _check_checkpoints(walk, checkpoints, trust)
    problems = tuple(walk.problems)
    return AuditVerdict(not problems, walk.count, walk.prev_seq, len(checkpoints), at, seq, problems,
                        walk.omitted)


def verify(ca: CertificateAuthority, trust: Sequence[bytes] | None = None) -> AuditVerdict:
    """The database's log against ``trust`` (default: the CA certificates in the same database)."""
    checkpoints = load_checkpoints(ca)           # before the entries: each one's entries exist by then
    return verify_log(load_entries(ca), checkpoints, trust or ca.chain_der())


# --- export ------------------------------------------------------------------------------

def _line(f: IO[str], obj: dict[str, Any]) -> None:
    f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


def export(ca: CertificateAuthority, path: Path | str) -> tuple[int, int]:
    """Write the log for an outside auditor (format in the module docstring); (entries, checkpoints)."""
    checkpoints = load_checkpoints(ca)
    issuing, root = ca.chain_der()
    header = {"format": EXPORT_FORMAT, "exported_at": auditlog.timestamp(ca.clock()),
              "root_pem": pem.armor("CERTIFICATE", root).decode(),
              "issuing_pem": pem.armor("CERTIFICATE", issuing).decode(),
              "statement": STATEMENT, "entry_hash": "sha256 of [seq, at, action, actor, subject, details, prev_hash]",
              "how_to_check": HOW_TO_CHECK}
    count = 0
    try:
        with open(path, "w", encoding="utf-8") as f:
            _line(f, header)
            for cp in checkpoints:
                _line(f, {"checkpoint": {"id": cp.id, "seq": cp.seq, "head_hash": cp.head_hash,
                                         "at": auditlog.timestamp(cp.at),
                                         "token": base64.b64encode(cp.token).decode()}})
            for e in load_entries(ca):
                _line(f, {"entry": {"seq": e.seq, "at": e.at, "action": e.action, "actor": e.actor,
                                    "subject": e.subject, "details": e.details, "prev_hash": e.prev_hash,
                                    "hash": e.hash}})
                count += 1
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"cannot write {path}: {e.strerror}") from e
    return count, len(checkpoints)


@dataclass(frozen=True)
class ExportHeader:
    """The first line of an export: its CA certificates (DER) and when it was made."""

    exported_at: str
    root_der: bytes
    issuing_der: bytes


def _bad(path: Path | str, n: int, why: str) -> PkiError:
    return PkiError(ErrorKind.BAD_INPUT, f"{path} line {n}: {why}")


def _pem_der(text: Any) -> bytes:
    kind, _, der = pem.unarmor(text.encode())
    if kind != "CERTIFICATE":
        raise ValueError("not a certificate")
    return bytes(der)


def _header(path: Path | str, line: str) -> ExportHeader:
    try:
        h = json.loads(line)
        if h.get("format") != EXPORT_FORMAT:
            raise ValueError("format")
        return ExportHeader(str(h["exported_at"]), _pem_der(h["root_pem"]), _pem_der(h["issuing_pem"]))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise _bad(path, 1, f"not a {EXPORT_FORMAT} header") from e


_ENTRY_FIELDS = (("seq", int), ("at", str), ("action", str), ("actor", str), ("subject", str),
                 ("details", str), ("prev_hash", str), ("hash", str))


def _entry(obj: dict[str, Any]) -> AuditEntry:
    values = [obj[k] for k, _ in _ENTRY_FIELDS]
    if any(type(v) is not t for v, (_, t) in zip(values, _ENTRY_FIELDS)):
        raise TypeError("field of the wrong type")
    return AuditEntry(*values)


def _checkpoint_line(obj: dict[str, Any]) -> CheckpointRecord:
    at = datetime.fromisoformat(obj["at"])   # Python 3.11 reads a trailing Z
    if type(obj["id"]) is not int or type(obj["seq"]) is not int or not isinstance(obj["head_hash"], str):
        raise TypeError("field of the wrong type")
    return CheckpointRecord(obj["id"], obj["seq"], obj["head_hash"], at, base64.b64decode(obj["token"],
                                                                                          validate=True))


def _read(path: Path | str, f: IO[str]) -> tuple[ExportHeader, list[CheckpointRecord], Iterator[AuditEntry]]:
    """The header and checkpoints at once; the entries as a stream."""
    header = _header(path, f.readline())
    checkpoints: list[CheckpointRecord] = []
    n = 1
    first: AuditEntry | None = None
    for line in f:
        n += 1
        try:
            obj = json.loads(line)
            if "checkpoint" in obj:
                checkpoints.append(_checkpoint_line(obj["checkpoint"]))
                continue
            first = _entry(obj["entry"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise _bad(path, n, "not a checkpoint or entry line") from e
        break

    def rest(n: int) -> Iterator[AuditEntry]:
        if first is not None:
            yield first
        for line in f:
            n += 1
            try:
                yield _entry(json.loads(line)["entry"])
            except (ValueError, KeyError, TypeError) as e:
                raise _bad(path, n, "not an entry line (checkpoints come before entries)") from e

    return header, checkpoints, rest(n)


def read_export_header(path: Path | str) -> ExportHeader:
    try:
        with open(path, encoding="utf-8") as f:
            return _header(path, f.readline())
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise _bad(path, 1, "not UTF-8 text") from e


def verify_export(path: Path | str, trust: Sequence[bytes] | None = None) -> AuditVerdict:
    """Re-check an export with verify_log; ``trust`` defaults to the export's own root and issuing CA."""
    try:
        with open(path, encoding="utf-8") as f:
            header, checkpoints, entries = _read(path, f)
            return verify_log(entries, checkpoints, trust or [header.root_der, header.issuing_der])
    except OSError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"{path} is not UTF-8 text") from e
