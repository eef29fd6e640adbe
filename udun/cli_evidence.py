"""`udun evidence ...`: export and check evidence bundles of verified payments."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pkicore.clock import system_clock
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import load_certs
from udun.common import info, read_input, settings, write_output


@click.group("evidence")
def evidence_group() -> None:
    """Evidence of verified payments: list, export as a bundle, verify a bundle offline."""


@evidence_group.command("list")
@click.option("--bank", metavar="NAME", help="Only this bank's records.")
@click.option("--tx-id", metavar="TX", help="Only this tx_id.")
@click.option("--signer-serial", metavar="HEX", help="Only payments signed under this certificate.")
@click.option("--received-after", metavar="TIME", help="Received at or after (2026-12-31 or RFC 3339).")
@click.option("--received-before", metavar="TIME", help="Received before.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--cursor", metavar="ID", help="Continue after the page that printed it.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one record a line) instead of a table.")
def evidence_list(bank: str | None, tx_id: str | None, signer_serial: str | None, received_after: str | None,
                  received_before: str | None, limit: int, cursor: str | None, as_json: bool) -> None:
    """Evidence records, newest first: id, receipt time, bank, signer serial, tx_id. Filters
    combine; the same as GET /api/v1/evidence on the admin API. A next page's --cursor is
    printed on stderr."""
    from ca.authority import CertificateAuthority
    from ca.evidencequery import EvidenceQuery, summary_json
    from ca.storage.evidence import EvidenceStore

    q = EvidenceQuery.build(bank=bank, tx_id=tx_id, signer_serial=signer_serial, received_after=received_after,
                            received_before=received_before, limit=limit, cursor=cursor)
    page = EvidenceStore(CertificateAuthority.open(settings()).store).search(q, bank_id=None)
    for s in page.items:
        if as_json:
            click.echo(json.dumps(summary_json(s), ensure_ascii=False))
        else:
            click.echo(f"{s.id}  {s.received_at:%Y-%m-%d %H:%M:%S}Z  {s.bank or '-'}  {s.signer_serial}  {s.tx_id}")
    if page.next_cursor:
        info(f"more: --cursor {page.next_cursor}")


@evidence_group.command("export")
@click.argument("evidence_id")
@click.option("-o", "--out", metavar="BUNDLE.zip", help="Output file (default: EVIDENCE_ID.zip).")
def evidence_export(evidence_id: str, out: str | None) -> None:
    """Write the evidence bundle (zip) of one verified payment, as GET /api/v1/evidence/ID does."""
    from ca import bundle
    from ca.authority import CertificateAuthority
    from ca.tsa import TimeStampAuthority

    ca = CertificateAuthority.open(settings())
    data = bundle.export(ca, TimeStampAuthority(ca), evidence_id, bank_id=None)      # an operator: any bank's
    path = out or f"{evidence_id}.zip"
    write_output(path, data)
    info(f"wrote {path} ({len(data)} bytes); unzip it and follow README.txt, or: udun evidence verify {path}")


def _home_root() -> list[bytes] | None:
    """This UDUN_HOME's root certificate, if it holds a CA (never creates a database)."""
    from ca.directory import CaDirectory

    conf = settings()
    url = conf.database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return None
    try:
        return CaDirectory.open(conf, migrate_schema=False).chain_der()[1:]
    except PkiError:
        return None


@evidence_group.command("verify")
@click.argument("bundle_path", metavar="BUNDLE.zip")
@click.option("--trust", metavar="ROOT.pem", help="Your own copy of the CA root (default: this UDUN_HOME's root).")
@click.option("--tsa-trust", metavar="ROOT.pem",
              help="The root of udun's TSA, whose time-stamps alone make evidence (default: this UDUN_HOME's "
                   "root, or --trust when it holds one root). Needed when --trust holds several CAs' roots.")
@click.option("--trust-bundle-root", is_flag=True,
              help="Trust the root.pem inside the bundle (only after comparing its fingerprint).")
def evidence_verify(bundle_path: str, trust: str | None, tsa_trust: str | None, trust_bundle_root: bool) -> None:
    """Check a bundle offline: every file against the time-stamped manifest, both time-stamps,
    and the signature re-validated at the time-stamped moment with the bundle's OCSP/CRL.
    Where UDUN_HOME holds the CA, also against its record: the evidence id and payment, and
    that the TSA and OCSP responder certificates are ones the CA made for its own keys.

    Exit 0 when it holds; 1 naming the first file that fails.
    """
    from pkicore.bundle_check import verify_bundle

    anchors = load_certs(read_input(trust, "trust anchors")) if trust else None
    if anchors is None and not trust_bundle_root:
        anchors = _home_root()
        if anchors is None:
            raise PkiError(ErrorKind.BAD_INPUT, "no trust anchor: pass --trust ROOT.pem (your own copy of the CA "
                                                "root), or run where UDUN_HOME holds the CA")
    tsa_anchors = load_certs(read_input(tsa_trust, "TSA trust anchor")) if tsa_trust else None
    if tsa_anchors is None and anchors is not None and len(anchors) > 1:
        tsa_anchors = _home_root()          # a bank's machine with udun's CA: its root stamps evidence
    data = read_input(bundle_path, "bundle")
    verdict = verify_bundle(data, anchors, system_clock(), tsa_anchors)
    home_root = _home_root() if verdict.ok else None
    if home_root and home_root[0] in (tsa_anchors or anchors or []):
        # Where the CA's database is: the bundle must also match the CA's own record.
        from ca.bundle_record import record_problems
        from ca.directory import CaDirectory

        verdict.problems.extend(record_problems(CaDirectory.open(settings(), migrate_schema=False), data, verdict))
        if verdict.ok:
            verdict.facts.append("matches this CA's record: the evidence id, the payment, the TSA and OCSP "
                                 "responder certificates (the CA's own)")
    for fact in verdict.facts:
        click.echo(f"  {fact}")
    if verdict.ok:
        click.echo(f"evidence bundle {verdict.evidence_id} OK: the payment was signed by a certificate that "
                   "was valid and not revoked at the time-stamped moment")
        return
    click.echo(f"evidence bundle {verdict.evidence_id or bundle_path} FAILED: {verdict.problems[0]}")
    for p in verdict.problems[1:]:
        click.echo(f"  also: {p}")
    sys.exit(1)
