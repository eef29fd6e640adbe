"""Checking the audit log (ca.auditlog), pure: entries and checkpoints in, a verdict out.

Walks the entries in seq order (streaming: a million entries in flat memory) and names
the first one that was changed, deleted, inserted or moved; then checks every checkpoint:
its RFC 3161 token under udun's records policy, the TSA's chain at the token's time, and
its (seq, head hash) against the entries. ca.audit reads the database or an export and
calls verify_log.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509

from ca.auditlog import GENESIS, AuditEntry, CheckpointRecord, entry_hash
from pkicore.oids import RECORDS_POLICY
from pkicore.pathval import ChainValidator, TrustStore
from pkicore.tsp_check import check_token

STATEMENT = "udun-audit-checkpoint/1 seq=%d head=%s"
MAX_PROBLEMS = 50        # problems listed; the rest are counted
MOVE_WINDOW = 32         # how far a changed entry's content is looked for at another seq


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
    # No checkpoints need no trust anchors (a chain-only check, e.g. of a log not yet checkpointed).
    validator = ChainValidator(TrustStore.from_certs(list(trust))) if checkpoints else None
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
        assert validator is not None              # built whenever there are checkpoints
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
