"""`udun cert verify`: path validation with revocation, for client signing certificates."""
from __future__ import annotations

import json
import sys

import click
from asn1crypto import pem, x509

from pkicore.certcheck import MODES, PURPOSES, verify_path
from pkicore.clock import system_clock
from pkicore.config import Settings
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import is_self_signed, load_certs
from udun.common import info, parse_time, read_input, settings
from udun.fetch import crls_over_http


@click.group("cert")
def cert_group() -> None:
    """Certificates: check one like `openssl verify`, with revocation."""


def _der(data: bytes) -> bytes:
    return bytes(pem.unarmor(data)[2]) if pem.detect(data) else data


def _home_chain(s: Settings) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(anchors, intermediates, CRLs) of this UDUN_HOME's CA."""
    from ca.authority import CertificateAuthority

    from ca.revocation import Revocation

    ca = CertificateAuthority.open(s)
    issuing, root = ca.chain_der()
    rev = Revocation(ca)
    return [root], [issuing], [rev.current(name).der for name in ("issuing", "root")]


@cert_group.command("verify")
@click.argument("leaf", metavar="LEAF.pem")
@click.option("--trust", metavar="ANCHORS.pem", help="Trust anchors; default: this UDUN_HOME's root CA.")
@click.option("--untrusted", metavar="CHAIN.pem", help="Intermediate certificates to build the path with.")
@click.option("--crl", "crls", multiple=True, metavar="FILE", help="A CRL (DER or PEM); repeat for several.")
@click.option("--ocsp-response", "responses", multiple=True, metavar="FILE", help="An OCSP response (DER).")
@click.option("--at", "at", metavar="TIME", help="Validate at this RFC 3339 time instead of now.")
@click.option("--purpose", type=click.Choice(list(PURPOSES)), default="any", show_default=True)
@click.option("--revocation", type=click.Choice(list(MODES)), default="soft", show_default=True,
              help="off: no check; soft: use what is there; hard: a certificate whose status can't be "
                   "established (no or stale CRL/OCSP) fails.")
@click.option("--offline", is_flag=True, help="Do not fetch CRLs from our own services.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def cert_verify(leaf: str, trust: str | None, untrusted: str | None, crls: tuple[str, ...],
                responses: tuple[str, ...], at: str | None, purpose: str, revocation: str, offline: bool,
                as_json: bool) -> None:
    """RFC 5280 path validation of LEAF.pem, exit code 0 only when valid."""
    s = settings()
    leaf_der = load_certs(read_input(leaf, "certificate"))[0]
    crl_ders = [_der(read_input(f, "CRL")) for f in crls]
    if trust:
        given = load_certs(read_input(trust, "trust anchors"))
        anchors = [d for d in given if is_self_signed(x509.Certificate.load(d))]
        helpers = [d for d in given if d not in anchors]
    else:
        anchors, helpers, home_crls = _home_chain(s)
        crl_ders += home_crls
    if untrusted:
        helpers += load_certs(read_input(untrusted, "untrusted certificates"))
    if not anchors:
        raise PkiError(ErrorKind.BAD_INPUT, "no self-signed trust anchor given")
    if revocation != "off" and not offline:
        crl_ders += crls_over_http([leaf_der] + helpers, s.base_url)
    moment = parse_time(at, "--at") if at else system_clock()
    report = verify_path(leaf_der, anchors, helpers, moment=moment, purpose=purpose, revocation=revocation,
                         crls=crl_ders, ocsps=[read_input(f, "OCSP response") for f in responses])
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    elif report.valid:
        click.echo(f"OK: {' <- '.join(report.path)}")
        for c in report.checks:
            info(f"  [ok] {c}")
    else:
        click.echo(f"FAILED: {report.error}")
    sys.exit(0 if report.valid else 1)
