"""`udun audit ...`: check the hash-chained audit log and its signed checkpoints, export it."""
from __future__ import annotations

import getpass
import hashlib
import sys

import click

from typing import TYPE_CHECKING

from pkicore.pathval import load_certs
from udun.common import info, read_input, settings

if TYPE_CHECKING:      # the CA's modules (SQLAlchemy, Alembic) load only when a command runs
    from ca import audit
    from ca.authority import CertificateAuthority

SHOWN = 20          # problems printed after the headline


def _ca() -> CertificateAuthority:
    from ca.authority import CertificateAuthority

    return CertificateAuthority.open(settings())


def _n(count: int, word: str) -> str:
    plural = "entries" if word == "entry" else word + "s"
    return f"{count} {word if count == 1 else plural}"


def _when(verdict: audit.AuditVerdict) -> str:
    if verdict.last_checkpoint_at is None:
        return "no valid checkpoint yet"
    return (f"last checkpoint at {verdict.last_checkpoint_at:%Y-%m-%dT%H:%M:%SZ} "
            f"(seq {verdict.last_checkpoint_seq})")


def _report(verdict: audit.AuditVerdict) -> None:
    if verdict.ok:
        click.echo(f"audit log OK: {_n(verdict.entries, 'entry')}, {_n(verdict.checkpoints, 'checkpoint')}, "
                   f"{_when(verdict)}")
        if verdict.uncovered:
            click.echo(f"  not covered by a checkpoint yet (the hash chain only): {_n(verdict.uncovered, 'entry')} "
                       f"after seq {verdict.last_checkpoint_seq or 0}")
        return
    click.echo(f"audit log FAILED: {verdict.headline}")
    rest = verdict.problems[1:]
    for p in rest[:SHOWN]:
        click.echo(f"  also: {p.message}")
    more = max(0, len(rest) - SHOWN) + verdict.omitted
    if more:
        click.echo(f"  ... and {more} more problems")
    click.echo(f"  ({_n(verdict.entries, 'entry')}, {_n(verdict.checkpoints, 'checkpoint')} read; {_when(verdict)})")


@click.group("audit")
def audit_group() -> None:
    """The audit log: verify its hash chain and signed checkpoints, export it for auditors."""


@audit_group.command("verify")
@click.option("--file", "export_file", metavar="EXPORT.jsonl", help="Check an export instead of the database.")
@click.option("--trust", metavar="FILE",
              help="Root (and issuing) CA certificates, PEM. Default: the CA in the database, or the export's own.")
def audit_verify(export_file: str | None, trust: str | None) -> None:
    """Check every entry's hash and link, and every checkpoint's time-stamp. Exit code 0 only when all hold."""
    from ca import audit

    anchors = load_certs(read_input(trust, "trust file")) if trust else None
    if export_file:
        if anchors is None:
            root = audit.read_export_header(export_file).root_der
            info(f"trusting the export's own root CA, SHA-256 fingerprint {hashlib.sha256(root).hexdigest()}: "
                 f"compare it with one you know, or pass --trust")
        verdict = audit.verify_export(export_file, anchors)
    else:
        verdict = audit.verify(_ca(), anchors)
    _report(verdict)
    sys.exit(0 if verdict.ok else 1)


@audit_group.command("export")
@click.option("-o", "--out", "out", required=True, metavar="FILE.jsonl", help="Write the export here.")
def audit_export(out: str) -> None:
    """Write every entry and checkpoint, and the CA certificates, as JSON Lines for an outside auditor."""
    from ca import audit

    entries, checkpoints = audit.export(_ca(), out)
    info(f"exported {_n(entries, 'entry')} and {_n(checkpoints, 'checkpoint')} to {out}; "
         f"check it with: udun audit verify --file {out} --trust root.pem")


@audit_group.command("checkpoint")
@click.option("--force", is_flag=True, help="Sign one even if no entry came after the last checkpoint.")
def audit_checkpoint(force: bool) -> None:
    """Time-stamp the log's head now with the TSA key (needs the CA PIN: UDUN_CA_PIN or the PIN file)."""
    from ca import audit
    from ca.tsa import TimeStampAuthority

    ca = _ca()
    done = audit.checkpoint(ca, TimeStampAuthority(ca), force=force, actor=f"cli:{getpass.getuser()}")
    r = done.record
    if done.created:
        at = r.at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        info(f"checkpoint {r.id}: seq {r.seq}, head {r.head_hash}, time-stamped at {at}")
    else:
        info(f"nothing new since checkpoint {r.id} (seq {r.seq}, {r.at:%Y-%m-%dT%H:%M:%SZ}); --force signs anyway")
