"""`udun cert verify`: path validation with revocation, for client signing certificates."""
from __future__ import annotations

import json
import sys

import click
from asn1crypto import x509

from pkicore.certcheck import MODES, PURPOSES, verify_path
from pkicore.clock import system_clock
from config.settings import Settings
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import is_self_signed, load_certs, load_crls
from pkicore.validation import ANY_POLICY, PolicyInputs, parse_policy_oid, parse_purpose
from udun.common import info, parse_time, read_input, settings
from ca.revfetch import crls_over_http


@click.group("cert")
def cert_group() -> None:
    """Certificates: check one like `openssl verify`, with revocation."""


def _home_chain(s: Settings) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(anchors, intermediates, CRLs) of this UDUN_HOME's CA."""
    from ca.authority import CertificateAuthority

    from ca.revocation import Revocation

    ca = CertificateAuthority.open(s)
    issuing, root = ca.chain_der()
    rev = Revocation(ca)
    return [root], [issuing], [rev.current(name).der for name in ("issuing", "root")]


def _purposes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        for v in values:
            parse_purpose(v)
    except PkiError as e:
        raise click.BadParameter(e.message) from None
    return values


@cert_group.command("verify")
@click.argument("leaf", metavar="LEAF.pem")
@click.option("--trust", "trust", multiple=True, metavar="ANCHORS.pem",
              help="Trust anchors (PEM or DER; any number, from any CA); repeatable. Default: this UDUN_HOME's "
                   "root CA. Certificates in the file that are not self-signed are used as intermediates.")
@click.option("--untrusted", "untrusted", multiple=True, metavar="CHAIN.pem",
              help="Intermediate certificates to build the path with; repeatable.")
@click.option("--crl", "crls", multiple=True, metavar="FILE",
              help="CRLs (PEM with any number of X509 CRL blocks, or DER); repeatable.")
@click.option("--ocsp-response", "responses", multiple=True, metavar="FILE", help="An OCSP response (DER); repeatable.")
@click.option("--at", "at", metavar="TIME", help="Validate at this RFC 3339 time instead of now.")
@click.option("--purpose", "purposes", multiple=True, callback=_purposes, metavar="PURPOSE",
              help=f"Required extendedKeyUsage: {', '.join(PURPOSES)} or a dotted OID; repeatable (all must be "
                   "allowed). A certificate without extendedKeyUsage is good for any purpose.  [default: any]")
@click.option("--revocation", type=click.Choice(list(MODES)), default="soft", show_default=True,
              help="off: no check; soft: use the valid data there is; hard: every certificate below the anchor "
                   "must be shown unrevoked by valid, fresh CRLs or OCSP responses (missing, unverifiable or "
                   "stale data fails).")
@click.option("--max-depth", type=click.IntRange(0, 32), default=None,
              help="At most this many intermediate CAs (like openssl -verify_depth).")
@click.option("--policy", "policies", multiple=True, metavar="OID",
              help="Acceptable certificate policy (RFC 5280 initial-policy-set); repeatable. The path must be "
                   "valid for at least one. Default: any policy.")
@click.option("--explicit-policy", is_flag=True, help="Require a valid policy on the path (initial-explicit-policy).")
@click.option("--inhibit-policy-mapping", is_flag=True, help="Forbid policy mapping (initial-policy-mapping-inhibit).")
@click.option("--inhibit-any-policy", is_flag=True, help="Do not accept anyPolicy in CA certificates "
                                                          "(initial-any-policy-inhibit).")
@click.option("--allow-weak-algorithms", is_flag=True,
              help="Accept legacy algorithms (SHA-1, RSA/DSA from 1024 bits) for old data; without it they fail "
                   "with CRYPTO_CONSTRAINTS_FAILURE.")
@click.option("--offline", is_flag=True, help="Do not fetch the CRLs named in the certificates' distribution points.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON (names the failing certificate and the RFC rule).")
def cert_verify(leaf: str, trust: tuple[str, ...], untrusted: tuple[str, ...], crls: tuple[str, ...],
                responses: tuple[str, ...], at: str | None, purposes: tuple[str, ...], revocation: str,
                max_depth: int | None, policies: tuple[str, ...], explicit_policy: bool,
                inhibit_policy_mapping: bool, inhibit_any_policy: bool, allow_weak_algorithms: bool,
                offline: bool, as_json: bool) -> None:
    """RFC 5280 path validation of LEAF.pem, exit code 0 only when valid (1: not valid, 2: bad input)."""
    s = settings()
    leaf_der = load_certs(read_input(leaf, "certificate"))[0]
    crl_ders = [d for f in crls for d in load_crls(read_input(f, "CRL"))]
    helpers: list[bytes] = []
    if trust:
        given = [d for f in trust for d in load_certs(read_input(f, "trust anchors"))]
        anchors = [d for d in given if is_self_signed(x509.Certificate.load(d))]
        helpers = [d for d in given if d not in anchors]
    else:
        anchors, helpers, home_crls = _home_chain(s)
        crl_ders += home_crls
    for f in untrusted:
        helpers += load_certs(read_input(f, "untrusted certificates"))
    if not anchors:
        raise PkiError(ErrorKind.BAD_INPUT, "no self-signed trust anchor given")
    if revocation != "off" and not offline:
        crl_ders += crls_over_http([leaf_der] + helpers)
    policy = PolicyInputs(frozenset(parse_policy_oid(p) for p in policies) or frozenset({ANY_POLICY}),
                          explicit_policy, inhibit_policy_mapping, inhibit_any_policy)
    moment = parse_time(at, "--at") if at else system_clock()
    report = verify_path(leaf_der, anchors, helpers, moment=moment, purpose=purposes or ("any",),
                         revocation=revocation, crls=crl_ders,
                         ocsps=[read_input(f, "OCSP response") for f in responses], policy=policy,
                         max_depth=max_depth, allow_weak=allow_weak_algorithms)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    elif report.valid:
        click.echo(f"OK: {' <- '.join(report.path)}")
        for c in report.checks:
            info(f"  [ok] {c}")
    else:
        o = report.outcome
        click.echo(f"FAILED: {o.error}")
        if o.failing:
            click.echo(f"  certificate  {o.failing.position}: {o.failing.subject} (serial {o.failing.serial})")
        click.echo(f"  rule         {o.rule}")
        if o.sub:
            click.echo(f"  indication   {o.sub.value}")
    sys.exit(0 if report.valid else 1)
