"""`udun`: the command line. See `udun --help` and README.md."""
from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import click

from keystore import token
from pkicore import tx as txmod
from pkicore.algorithms import SigScheme
from pkicore.cms_verify import Verifier
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import ChainValidator, TrustStore, load_certs, load_crls
from pkicore.report import Check, Sub, conclude
from pkicore.pathstatus import StatusSource
from udun.cli_audit import audit_group
from udun.cli_bank import bank_group
from udun.cli_operator import operator_group
from udun.cli_approval import approval_group
from udun.cli_enroll import enroll_cmd, enrollment_group
from udun.cli_ca import ca_group
from udun.cli_customer import customer_group
from udun.cli_limits import limits_group
from udun.cli_otp import otp_group
from udun.cli_cert import cert_group
from udun.cli_db import db_group
from udun.cli_evidence import evidence_group
from udun.cli_tsa import tsa_group
from signer.tokens import TokenRef
from udun.cli_token import token_group, token_ref
from udun.common import EXIT_ERROR, fail, info, read_input, settings, user_pin, write_output


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="udun")
def cli() -> None:
    """udun (U盾): PKI for bank USB-key signing.

    Configuration comes from the environment: UDUN_HOME (data directory), UDUN_DATABASE_URL,
    UDUN_PKCS11_MODULE, UDUN_BASE_URL, UDUN_PIN / UDUN_SO_PIN / UDUN_CA_PIN for scripts.
    """


cli.add_command(ca_group)
cli.add_command(token_group)
cli.add_command(cert_group)
cli.add_command(evidence_group)
cli.add_command(bank_group)
cli.add_command(operator_group)
cli.add_command(approval_group)
cli.add_command(enrollment_group)
cli.add_command(customer_group)
cli.add_command(limits_group)
cli.add_command(otp_group)
cli.add_command(enroll_cmd)
cli.add_command(audit_group)
cli.add_command(tsa_group)
cli.add_command(db_group)


@cli.command("sign")
@token_ref
@click.argument("transaction", metavar="TX.json")
@click.option("-o", "--out", "out", metavar="TX.p7s", help="Output (default: TX.p7s beside TX.json).")
@click.option("--detached", is_flag=True, help="Leave the content out of the CMS.")
@click.option("--content-out", metavar="FILE", help="With --detached: write the signed canonical bytes here.")
@click.option("--scheme", type=click.Choice([s.value for s in SigScheme]), default=None,
              help="Signature scheme (RSA keys: pkcs1 or pss).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (the payment is still shown; refused above "
                                           "the OTP threshold).")
@click.option("--otp", "otp_code", metavar="CODE", help="The one-time password (宝令), above UDUN_OTP_ABOVE (else "
                                                      "asked, or UDUN_OTP).")
def sign_cmd(token: TokenRef, transaction: str, out: str | None, detached: bool, content_out: str | None,
             scheme: str | None, yes: bool, otp_code: str | None) -> None:
    """Show a payment in plain words, ask for confirmation and the PIN, sign it as CMS.

    The signature covers the payment's RFC 8785 canonical bytes; with --detached, give
    those bytes (--content-out writes them) to whoever verifies.
    """
    from signer.signing import sign_transaction

    if content_out and not detached:
        raise click.UsageError("--content-out goes with --detached")
    if transaction == "-" and not out:
        raise click.UsageError("reading the payment from stdin: name the output with -o")
    tx = txmod.load(read_input(transaction, "transaction"))
    cfg = settings()
    above = cfg.otp_threshold(tx.currency)
    needs_otp = above is not None and tx.amount * 100 > above
    info("You are about to sign this payment:")
    for line in txmod.describe(tx, Decimal(above) / 100 if above is not None else None):
        info(f"  {line}")
    if needs_otp and yes:
        raise click.UsageError("--yes is refused above the OTP threshold: read the payment and confirm it yourself")
    if not yes and not click.confirm("Sign this payment?", default=False, err=True):
        info("not signed")
        sys.exit(1)
    if needs_otp and tx.otp is None:
        code = otp_code or os.environ.get("UDUN_OTP") or str(click.prompt("One-time password (宝令)", err=True))
        tx = txmod.validate({**tx.raw, "otp": code.strip()})          # signed with the payment
    pin = user_pin()
    cms = sign_transaction(cfg, token, pin, tx, detached=detached,
                           scheme=SigScheme.parse(scheme) if scheme else None)
    target = out or str(Path(transaction).with_suffix(".p7s"))
    write_output(target, cms)
    if content_out:
        write_output(content_out, tx.canonical_bytes())
    info(f"signed: {target}" + (" (detached)" if detached else ""))


def _trust(trust: str | None) -> TrustStore:
    if trust:
        return TrustStore.from_certs(load_certs(read_input(trust, "trust file")))
    from ca.directory import CaDirectory

    return TrustStore.from_certs(CaDirectory.open(settings()).chain_der())


def _status_source(crls: tuple[str, ...], responses: tuple[str, ...], trust: str | None,
                   offline: bool) -> StatusSource:
    """Given files win; else this home's own responder and root CRL (no --trust); else, or
    for other CAs' certificates, the OCSP/CRL URLs in the certificates (not --offline)."""
    given = [("crl", d) for f in crls for d in load_crls(read_input(f, "CRL"))] + \
            [("ocsp", read_input(f, "OCSP response")) for f in responses]
    if (crls or responses) and trust:
        return lambda cert, issuer: given
    from ca.revfetch import HttpStatus, first_of

    sources: list[StatusSource] = []
    if not trust:
        from ca.delegates import screened
        from ca.directory import CaDirectory
        from ca.ocsp import Responder, status_source

        # This home's CA: its own responder in-process; answers from elsewhere (given files,
        # fetched) count only when a responder the CA made signed them.
        ca = CaDirectory.open(settings())
        if crls or responses:
            return screened(ca, lambda cert, issuer: given)
        sources.append(status_source(Responder(ca)))
        if not offline:
            sources.append(screened(ca, HttpStatus()))
    elif not offline:
        sources.append(HttpStatus())
    return first_of(*sources)      # nothing at all: the answer will be TRY_LATER


@cli.command("verify")
@click.argument("signature", metavar="TX.p7s")
@click.option("--content", metavar="TX.json", help="The signed content, for a detached signature.")
@click.option("--trust", metavar="FILE", help="Trust anchors (PEM); default: this UDUN_HOME's CA chain.")
@click.option("--crl", "crls", multiple=True, metavar="FILE",
              help="CRLs (PEM with any number of X509 CRL blocks, or DER) to check status with; give one for "
                   "every CA of the path (the issuing CA's and the root's).")
@click.option("--ocsp-response", "responses", multiple=True, metavar="FILE", help="An OCSP response (DER).")
@click.option("--offline", is_flag=True, help="Do not fetch status from the OCSP/CRL URLs in the certificates.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def verify_cmd(signature: str, content: str | None, trust: str | None, crls: tuple[str, ...],
               responses: tuple[str, ...], offline: bool, as_json: bool) -> None:
    """Verify a signed payment, including the status now of the signer and of every CA above
    it. Exit code 0 only for TOTAL_PASSED.

    Status comes from --crl/--ocsp-response files, else from this UDUN_HOME's OCSP
    responder and root CRL (without --trust), else from the OCSP/CRL URLs in the
    certificates (other CAs' certificates too; not with --offline).
    """
    cms = read_input(signature, "signature")
    data = read_input(content, "content") if content else None
    verifier = Verifier(ChainValidator(_trust(trust)), status=_status_source(crls, responses, trust, offline))
    try:
        report = verifier.verify(cms, data)
    except PkiError as e:
        if e.kind is not ErrorKind.BAD_INPUT:
            raise
        report = conclude([Check("structure", False, e.message, Sub.FORMAT_FAILURE)])
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        sub = f" / {report.sub_indication.value}" if report.sub_indication else ""
        click.echo(f"{report.status.value}{sub}: {report.message}")
        if report.signer:
            click.echo(f"  signer   {report.signer['subject']} (serial {report.signer['serial']})")
        if report.signing_time:
            click.echo(f"  signed   {report.signing_time.isoformat()} (claimed)")
        for r in report.statuses:
            click.echo(f"  status   {r['certificate']}: {r['status']} from {r['source'] or 'nowhere'}"
                       + (f", thisUpdate {r['this_update']} ({r['age_seconds']} s old)" if r["this_update"] else ""))
        for c in report.checks:
            click.echo(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}")
    sys.exit(0 if report.passed else 1)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Default: one per core.")
def serve_cmd(host: str, port: int, workers: int | None) -> None:
    """Run the bank-facing API under gunicorn: verify, challenges, evidence, OCSP, TSA,
    CRL and CA certificate downloads.

    It holds only the online token's PIN (the delegated OCSP and TSA keys) and never
    opens a CA key: issuance is `udun serve-admin` or `udun ca ...` where the CA key is.
    """
    from ca.delegated import check_at_start
    from ca.directory import CaDirectory
    from udun.server import serve
    from webapi.app import trust_store

    # Fail here, with one clear line, rather than in every worker after fork.
    s = settings()
    ca = CaDirectory.open(s)
    trust_store(s, ca, str(s.trust_file) if s.trust_file else None)
    for warning in check_at_start(ca):
        info(f"udun: warning: {warning} (serving anyway: 503 until it is back)")
    token.finalize_before_fork()    # each worker initialises the module and logs in after fork
    info(f"udun API on http://{host}:{port}  (POST /api/v1/verify, GET /healthz)")
    serve(host, port, workers)


@cli.command("serve-admin")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 16))
def serve_admin_cmd(host: str, port: int, workers: int) -> None:
    """Run the admin API (issuance, status, banks, operators, approvals) where the CA key
    is: its own process and port, for operators (`udun operator add`).

    Needs the CA PIN (UDUN_CA_PIN or secrets/ca.pin). UDUN_ADMIN_API_KEY, if set (at least
    32 random characters), acts as an admin named admin-key. Bind it to an operators'
    network, not to the banks'.
    """
    from ca.authority import CertificateAuthority
    from udun.server import serve
    from webapi.auth import checked_key

    s = settings()
    key = checked_key(os.environ.get("UDUN_ADMIN_API_KEY"), required=False)
    from ca.operators import Operators
    from ca.reconcile import reconcile

    ca = CertificateAuthority.open(s)
    if not key and Operators(ca, ca.clock).store.count_admins() == 0:
        info("no admin operator yet: make one with `udun operator add NAME --role admin` and "
             "`udun operator token add NAME`")
    ca.issuer()
    abandoned = reconcile(ca, actor="serve-admin")       # intents a crash left pending
    if abandoned:
        info(f"{len(abandoned)} stale pending intent(s) marked failed and listed on the CRL")
    token.finalize_before_fork()
    info(f"udun admin API on http://{host}:{port}  (POST /api/v1/certificates)")
    serve(host, port, workers, admin=True)


@cli.command("serve-ocsp")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8082, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=None, type=click.IntRange(1, 64), help="Default: one per core.")
def serve_ocsp_cmd(host: str, port: int, workers: int | None) -> None:
    """Run OCSP alone on a keep-alive HTTP/1.1 front (POST /ocsp, GET /ocsp/{request}).

    The same answers as `udun serve`'s /ocsp, several times faster for clients that keep
    their connection: point the certificates' OCSP URL (or your proxy's /ocsp) here. Holds
    the online token's PIN only (the delegated OCSP key), like `udun serve`. Plain HTTP, as
    RFC 5019 expects of OCSP (the answers are signed). GET /metrics sums every process's
    counts (firewall it to your scraper, as on `udun serve`).
    """
    from udun.server import MetricsDir

    metrics = MetricsDir.create()   # before any metric exists: the workers' values go to its files
    try:
        _serve_ocsp(host, port, workers)
    finally:
        metrics.remove()


def _serve_ocsp(host: str, port: int, workers: int | None) -> None:
    from ca.delegated import DelegatedKey
    from ca.directory import CaDirectory
    from ca.ocsp import Responder
    from pkicore.errors import ErrorKind as Kind
    from webapi.observability import configure_logging, watch_pool
    from webapi.ocspfront import Front, make_app, run

    s = settings()
    ca = CaDirectory.open(s)
    try:
        DelegatedKey(ca, "ocsp", "OCSP responder").current()
    except PkiError as e:
        if e.kind is not Kind.UNAVAILABLE:
            raise
        info(f"udun: warning: the OCSP responder key cannot be used now: {e.message} (serving anyway: "
             "tryLater until it is back)")
    token.finalize_before_fork()    # each worker initialises the module and logs in after fork

    def make() -> Front:
        configure_logging(s)
        directory = CaDirectory.open(s, migrate_schema=False)
        watch_pool(directory.store.engine)
        return make_app(Responder(directory))

    count = workers or os.cpu_count() or 1
    info(f"udun OCSP on http://{host}:{port}  ({count} processes, keep-alive; POST /ocsp, GET /ocsp/...)")
    run(host, port, count, make)


@cli.command("demo")
@click.option("--keep", is_flag=True, help="Keep the temporary UDUN_HOME and print where it is.")
def demo_cmd(keep: bool) -> None:
    """The whole story in a fresh temporary home: CA, token, certificate, payment, API."""
    from udun.demo import run

    sys.exit(run(keep=keep))


def main() -> None:
    """Console entry: PkiError becomes one line on stderr and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except PkiError as e:
        fail(e)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except Exception as e:
        if os.environ.get("UDUN_DEBUG"):
            raise
        click.echo(f"udun: internal error ({type(e).__name__}); set UDUN_DEBUG=1 for details", err=True)
        sys.exit(3)
    finally:
        token.close_all()
    sys.exit(0)


if __name__ == "__main__":
    main()
