"""The audit log's checkpoints, reading it for verification (ca.audit_check), and export.

A checkpoint is an RFC 3161 time-stamp token from our TSA (its key is on the CA token),
under udun's records policy, which the TSA grants to no outside request,
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
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from asn1crypto import pem

from ca import auditlog
from ca.audit_check import (STATEMENT, AuditVerdict, CheckpointRecord,  # noqa: F401  (re-exported)
                            statement, verify_log)
from ca.auditlog import AuditEntry
from ca.directory import CaDirectory
from ca.storage.audit import AuditStore
from ca.tsa import TimeStampAuthority
from pkicore.errors import ErrorKind, PkiError

EXPORT_FORMAT = "udun-audit-export/1"
CHUNK = 5_000            # entries per query: memory stays flat whatever the log's length

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
class Checkpoint:
    """What checkpoint() did: a new checkpoint, or the last one when the head had not moved."""

    record: CheckpointRecord
    created: bool


# --- reading and writing (ca.storage.audit) ---------------------------------------------

def load_entries(ca: CaDirectory, chunk: int = CHUNK) -> Iterator[AuditEntry]:
    """Every entry by seq, read in chunks (keyset paging: no long-lived cursor)."""
    store = AuditStore(ca.store)
    after = None
    while True:
        rows = store.entries(after, chunk)
        yield from rows
        if len(rows) < chunk:
            return
        after = rows[-1].seq


def load_checkpoints(ca: CaDirectory) -> list[CheckpointRecord]:
    """Every checkpoint, by seq."""
    return AuditStore(ca.store).checkpoints()


def latest_checkpoint(ca: CaDirectory) -> CheckpointRecord | None:
    """The checkpoint of the highest seq (the newest)."""
    return AuditStore(ca.store).latest_checkpoint()


def checkpoint(ca: CaDirectory, tsa: TimeStampAuthority, *, force: bool = False,
               actor: str = "udun") -> Checkpoint:
    """Time-stamp the log's head and store it, with a "checkpoint" entry, in one transaction.

    Nothing new is signed when only checkpoint entries came after the last checkpoint
    (each checkpoint adds its own entry, which the next one covers), unless ``force``.
    """
    tsa.certificate()           # a TSA key renewal appends entries: let it happen before the head is read
    store = AuditStore(ca.store)
    last = store.latest_checkpoint()
    seq, head, moved = store.head(last.seq if last else None)
    if last is not None and not moved and not force:
        return Checkpoint(last, False)
    stamp = tsa.stamp_record(statement(seq, head))
    details = {"seq": seq, "head_hash": head, "token_serial": format(stamp.serial, "x"),
               "gen_time": stamp.to_json()["gen_time"]}
    new_id = store.add_checkpoint(seq, head, stamp.gen_time, stamp.token, actor=actor, details=details,
                                  now=ca.clock())
    return Checkpoint(CheckpointRecord(new_id, seq, head, stamp.gen_time, stamp.token), True)


# --- verification (pure) ---------------------------------------------------------------


def verify(ca: CaDirectory, trust: Sequence[bytes] | None = None) -> AuditVerdict:
    """The database's log against ``trust`` (default: the CA certificates in the same database)."""
    checkpoints = load_checkpoints(ca)           # before the entries: each one's entries exist by then
    return verify_log(load_entries(ca), checkpoints, trust or ca.chain_der())


# --- export ------------------------------------------------------------------------------

def _line(f: IO[str], obj: dict[str, Any]) -> None:
    f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


def export(ca: CaDirectory, path: Path | str) -> tuple[int, int]:
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
