"""`udun ca ...`: set up the CA and issue certificates."""
from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING

import click
from asn1crypto import pem

from ca.certquery import MAX_LIMIT, STATUSES, CertificateQuery, current_status, detail, summary
from pkicore.crlbuild import REVOKE_REASONS
from pkicore.algorithms import KeyType
from pkicore.errors import ErrorKind, PkiError
from udun.common import info, parse_time, pem_certs, read_input, settings, write_output

if TYPE_CHECKING:      # the CA's modules (SQLAlchemy, Alembic) load only when a command runs
    from ca.authority import CertificateAuthority
    from ca.revocation import Revocation
    from ca.storage.store import CertRecord


def _ca() -> CertificateAuthority:
    from ca.authority import CertificateAuthority

    return CertificateAuthority.open(settings())


@click.group("ca")
def ca_group() -> None:
    """The certificate authority: set-up, issuance, listing."""


@ca_group.command("init")
@click.option("--key-type", type=click.Choice(["ec-p256", "rsa-3072"]), default="ec-p256", show_default=True,
              help="Key type of the root and issuing CA keys.")
@click.option("--org", default="udun", show_default=True, help="Organisation (O=) in the CA names.")
@click.option("--root-cn", default="udun Root CA", show_default=True)
@click.option("--issuing-cn", default="udun Issuing CA", show_default=True)
def ca_init(key_type: str, org: str, root_cn: str, issuing_cn: str) -> None:
    """Create the root CA (own token, 10 years) and the issuing CA (5 years, pathLen 0).

    Also the online token (the delegated OCSP responder and TSA keys and their
    certificates) and a first CRL of each CA. With SoftHSM the tokens are created under
    $UDUN_HOME; the CA PIN is taken from UDUN_CA_PIN or generated into
    $UDUN_HOME/secrets/ca.pin, the online token's from UDUN_ONLINE_PIN or
    secrets/online.pin (mode 0600). `udun serve` needs only the online one.
    """
    ca = _ca()
    result = ca.init(KeyType.parse(key_type), org=org, root_cn=root_cn, issuing_cn=issuing_cn)
    info(f"root CA:    {result.root.subject} (token {result.root.token_label})")
    info(f"issuing CA: {result.issuing.subject} (token {result.issuing.token_label})")
    info(f"OCSP responder and TSA keys on the online token {ca.settings.online_token}; first CRLs published")
    info("trust anchors for banks: udun ca chain -o chain.pem")


@ca_group.command("issue")
@click.argument("request", metavar="REQ.pem")
@click.option("--profile", default="client", show_default=True, help="Certificate profile.")
@click.option("-o", "--out", "out", metavar="CERT.pem", help="Write the certificate here (default stdout).")
@click.option("--chain/--no-chain", default=False, help="Append the issuing CA and root certificates.")
@click.option("--customer", metavar="ID", help="Bind the certificate to this customer (udun customer add): it pays "
                                                "from that customer's accounts only, and from none without one.")
def ca_issue(request: str, profile: str, out: str | None, chain: bool, customer: str | None) -> None:
    """Issue a certificate from a PKCS#10 request (PEM or DER)."""
    ca = _ca()
    from ca.policy import load_csr_bytes

    rec = ca.issue(load_csr_bytes(read_input(request, "request")), profile, requester="cli", customer=customer)
    assert rec.der is not None
    data = pem_certs([rec.der] + (ca.chain_der() if chain else []))
    write_output(out, data)
    info(f"issued serial {rec.serial} to {rec.subject}, valid until {rec.not_after:%Y-%m-%d}"
         + (f", bound to customer {customer}" if customer else ", bound to no customer (pays from no account)"))


@ca_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only this current status.")
@click.option("--profile", metavar="NAME", help="Only this profile (client, ocsp-responder, tsa).")
@click.option("--subject", metavar="TEXT", help="Subject DN contains TEXT (any case).")
@click.option("--serial", metavar="HEX", help="Serial starts with HEX.")
@click.option("--issued-after", metavar="TIME", help="Issued at or after (2026-12-31 or RFC 3339).")
@click.option("--issued-before", metavar="TIME", help="Issued before.")
@click.option("--expiring-after", metavar="TIME", help="notAfter at or after.")
@click.option("--expiring-before", metavar="TIME", help="notAfter before (e.g. renewals due).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, MAX_LIMIT))
@click.option("--cursor", metavar="TOKEN", help="Continue after the page that printed it.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one certificate a line) instead of a table.")
def ca_list(status: str | None, profile: str | None, subject: str | None, serial: str | None,
            issued_after: str | None, issued_before: str | None, expiring_after: str | None,
            expiring_before: str | None, limit: int, cursor: str | None, as_json: bool) -> None:
    """Certificates, newest first, with their current status (good, on-hold, revoked,
    expired; pending and failed issuance intents). Filters combine; the same as
    GET /api/v1/certificates on the admin API."""
    query = CertificateQuery.build(subject=subject, serial=serial, status=status, profile=profile,
                                   issued_after=issued_after, issued_before=issued_before,
                                   expiring_after=expiring_after, expiring_before=expiring_before,
                                   limit=limit, cursor=cursor)
    directory = _ca()
    page = directory.search(query)
    now = directory.clock()
    for rec in page.items:
        if as_json:
            click.echo(json.dumps(summary(rec, now), ensure_ascii=False))
        else:
            click.echo(f"{rec.serial:34} {current_status(rec, now):8} {rec.not_after:%Y-%m-%d}  {rec.subject}")
    if page.next_cursor:
        info(f"more: --cursor {page.next_cursor}")


@ca_group.command("show")
@click.argument("serial")
@click.option("--pem", "as_pem", is_flag=True, help="Print the certificate PEM only.")
@click.option("--json", "as_json", is_flag=True, help="JSON: the fields, current status and history.")
def ca_show(serial: str, as_pem: bool, as_json: bool) -> None:
    """One certificate: state, subject, validity, requester, status and its history."""
    ca = _ca()
    rec = ca.get(serial)
    if as_pem:
        if not rec.der:
            raise PkiError(ErrorKind.CONFLICT, f"certificate {rec.serial} is {rec.state}, not issued")
        click.echo(pem.armor("CERTIFICATE", rec.der).decode(), nl=False)
        return
    if as_json:
        click.echo(json.dumps(detail(rec, ca.store.history(rec.serial), ca.clock()), ensure_ascii=False))
        return
    click.echo(f"serial      {rec.serial}")
    click.echo(f"state       {rec.state}")
    click.echo(f"subject     {rec.subject}")
    click.echo(f"profile     {rec.profile}")
    click.echo(f"not before  {rec.not_before.isoformat()}")
    click.echo(f"not after   {rec.not_after.isoformat()}")
    click.echo(f"requested   {rec.created_at.isoformat()} by {rec.requester}")
    if rec.issued_at:
        click.echo(f"issued      {rec.issued_at.isoformat()}")
    click.echo(f"tbs sha256  {rec.tbs_sha256}")
    since = f" since {rec.revoked_at.isoformat()}" if rec.revoked_at else ""
    click.echo(f"status      {current_status(rec, ca.clock())}{since}"
               + (f" ({rec.revocation_reason})" if rec.revocation_reason else ""))
    if rec.invalidity_date:
        click.echo(f"invalid     since {rec.invalidity_date.isoformat()} (compromise time)")
    for ev in ca.store.history(rec.serial):
        why = f" {ev.reason}" if ev.reason else ""
        click.echo(f"  {ev.at.isoformat()}  {ev.action}{why} by {ev.actor}")


@ca_group.command("chain")
@click.option("-o", "--out", "out", metavar="FILE", help="Write here (default stdout).")
def ca_chain(out: str | None) -> None:
    """The issuing CA and root certificates (PEM): a bank's trust anchors."""
    write_output(out, pem_certs(_ca().chain_der()))


def _revocation() -> Revocation:
    return _revocation_of(_ca())


def _revocation_of(ca: CertificateAuthority) -> Revocation:
    from ca.revocation import Revocation

    return Revocation(ca)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _status_line(rev: Revocation, rec: CertRecord) -> None:
    crl = rev.last_published
    info(f"certificate {rec.serial} is now {rec.status}"
         + (f" ({rec.revocation_reason})" if rec.revocation_reason else "")
         + (f"; published CRL number {crl.number}" if crl else ""))


@ca_group.command("revoke")
@click.argument("serial")
@click.option("--reason", type=click.Choice(REVOKE_REASONS), default="unspecified", show_default=True,
              help="RFC 5280 reason code.")
@click.option("--at", "at", metavar="TIME", default=None,
              help="When the key was compromised (RFC 3339, e.g. 2026-11-22T08:00:00Z): the invalidityDate.")
def ca_revoke(serial: str, reason: str, at: str | None) -> None:
    """Revoke a certificate for good. A revoked certificate cannot be held, released or revoked again."""
    invalidity = parse_time(at, "--at") if at else None
    rev = _revocation()
    _status_line(rev, rev.revoke(serial, reason, invalidity, actor=_actor()))


@ca_group.command("hold")
@click.argument("serial")
def ca_hold(serial: str) -> None:
    """Suspend a certificate (挂失, certificateHold) until `udun ca release`."""
    rev = _revocation()
    _status_line(rev, rev.hold(serial, actor=_actor()))


@ca_group.command("release")
@click.argument("serial")
def ca_release(serial: str) -> None:
    """Release a hold (解挂): the certificate is good again."""
    rev = _revocation()
    _status_line(rev, rev.release(serial, actor=_actor()))


@ca_group.command("crl")
@click.option("--ca", "which", type=click.Choice(["issuing", "root"]), default="issuing", show_default=True,
              help="Whose CRL: the issuing CA's (client certificates) or the root's (CA certificates).")
@click.option("-o", "--out", "out", metavar="FILE", help="Write the CRL here (default stdout).")
@click.option("--pem", "as_pem", is_flag=True, help="PEM instead of DER.")
@click.option("--new", "fresh", is_flag=True, help="Publish a new CRL now (otherwise only when due).")
@click.option("--due", "due_only", is_flag=True,
              help="A job: publish a new CRL of each CA whose current one is due, write nothing to stdout.")
def ca_crl(which: str, out: str | None, as_pem: bool, fresh: bool, due_only: bool) -> None:
    """The current CRL (published afresh when a quarter of its validity is left, or with --new)."""
    rev = _revocation()
    if due_only:
        for name in ("issuing", "root"):
            if rev.due(name):
                crl = rev.publish(name)
                info(f"{name} CRL number {crl.number} published, next update {crl.next_update.isoformat()}")
        return
    crl = rev.publish(which) if fresh else rev.current(which)
    write_output(out, pem.armor("X509 CRL", crl.der) if as_pem else crl.der)
    info(f"CRL number {crl.number}, {crl.entries} entries, next update {crl.next_update.isoformat()}")


@ca_group.command("renew-delegated")
@click.option("--force", is_flag=True, help="Renew both now, whatever their validity.")
def ca_renew_delegated(force: bool) -> None:
    """Renew the delegated OCSP responder and TSA keys when due (new key on the online
    token, new certificate), and destroy delegated keys whose certificates have expired.
    Servers pick the new ones up from the database within 30 s."""
    from ca import renewal

    ca = _ca()
    for r in renewal.renew_all(ca, force=force):
        info(f"{r.name}: new key and certificate {r.serial}, valid until {r.not_after}")
    gone = renewal.destroy_expired(ca)
    if gone:
        info(f"destroyed {gone} expired delegated key(s)")


@ca_group.command("reconcile")
@click.option("--older-than", default=10, show_default=True, type=click.IntRange(1, 10080), metavar="MINUTES",
              help="Only intents pending for longer than this (a running issuance takes well under a second).")
def ca_reconcile(older_than: int) -> None:
    """Issuance intents a crash left pending: mark them failed and list their serials on the
    CRL (the token may have signed before the crash; nobody was given the certificate)."""
    from datetime import timedelta

    from ca.reconcile import reconcile

    serials = reconcile(_ca(), older_than=timedelta(minutes=older_than), actor=_actor())
    for serial in serials:
        click.echo(serial)
    info(f"{len(serials)} pending intent(s) marked failed" + ("; their serials are on the new CRL" if serials else ""))


@ca_group.command("jobs")
@click.option("--every", default=300, show_default=True, type=click.IntRange(10, 86400), metavar="SECONDS",
              help="How often to look.")
@click.option("--once", is_flag=True, help="One round, then exit (for a systemd timer or cron).")
def ca_jobs(every: int, once: bool) -> None:
    """The CA side's periodic work: stale pending intents (`ca reconcile`), CRLs when due
    (`ca crl --due`) and the delegated keys (`ca renew-delegated`). Runs where the CA key
    is; see hsm-config/udun-ca-jobs.timer."""
    import logging
    import time

    from ca import renewal

    from ca.reconcile import reconcile

    log = logging.getLogger("udun.jobs")
    ca = _ca()
    rev = _revocation_of(ca)
    while True:
        abandoned = reconcile(ca, actor="jobs")
        if abandoned:
            info(f"{len(abandoned)} stale pending intent(s) marked failed and listed on the CRL")
        for name in ("issuing", "root"):
            try:
                if rev.due(name):
                    crl = rev.publish(name)
                    info(f"{name} CRL number {crl.number} published")
            except PkiError as e:
                info(f"{name} CRL: {e.message}")
        try:
            for r in renewal.renew_all(ca):
                info(f"{r.name}: new key and certificate {r.serial}")
            renewal.destroy_expired(ca)
        except PkiError as e:
            info(f"delegated keys: {e.message}")
        except Exception:  # noqa: BLE001  a job loop reports and tries again next round
            log.exception("renewing the delegated keys failed")
        if once:
            return
        time.sleep(every)
