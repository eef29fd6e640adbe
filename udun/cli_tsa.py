"""`udun tsa ...`: ask a time-stamp authority (RFC 3161) from the shell, check a reply."""
from __future__ import annotations

import hashlib
import http.client
import re
import secrets
import sys
import urllib.error
import urllib.request

import click
from asn1crypto import x509

from pkicore import tsp
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import ChainValidator, TrustStore, load_certs
from udun.common import info, pem_certs, read_input, settings, write_output


@click.group("tsa")
def tsa_group() -> None:
    """The time-stamp authority: query it, check replies, show its certificate."""


@tsa_group.command("query")
@click.argument("data_file", metavar="FILE")
@click.option("--url", help="TSA URL (default: $UDUN_BASE_URL/tsa).")
@click.option("-o", "--out", metavar="REPLY.tsr", help="Write the TimeStampResp here (default: FILE.tsr).")
@click.option("--no-nonce", is_flag=True, help="Send no nonce.")
@click.option("--no-cert", is_flag=True, help="Do not ask for the TSA certificate in the token.")
@click.option("--policy", metavar="OID", help="Ask for this TSA policy.")
def tsa_query(data_file: str, url: str | None, out: str | None, no_nonce: bool, no_cert: bool,
              policy: str | None) -> None:
    """Time-stamp FILE: send its SHA-256 to the TSA and save the reply."""
    if policy is not None and not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", policy):
        raise PkiError(ErrorKind.BAD_INPUT, "--policy takes a dotted OID such as 1.3.6.1.4.1.99999.1")
    digest = hashlib.sha256(read_input(data_file, "file")).digest()
    nonce = None if no_nonce else secrets.randbits(63)
    request = tsp.build_request(digest, "sha256", nonce=nonce, cert_req=not no_cert, policy=policy)
    target = url or settings().tsa_url
    req = urllib.request.Request(target, data=request, headers={"Content-Type": "application/timestamp-query"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            reply = resp.read(1024 * 1024)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise PkiError(ErrorKind.UNAVAILABLE, f"cannot reach the TSA at {target} ({type(e).__name__})") from e
    token = tsp.response_token(reply)            # a refusal becomes a clear error
    check = tsp.check_token(token, imprint=digest, hash_name="sha256", nonce=nonce)
    if not check.ok or check.info is None:
        raise PkiError(ErrorKind.BAD_INPUT, f"the TSA's answer does not hold: {check.problem}")
    path = out or f"{data_file}.tsr"
    write_output(path, reply)
    info(f"time-stamped at {check.info.gen_time:%Y-%m-%d %H:%M:%S.%f}Z, serial {check.info.serial:x}, "
         f"policy {check.info.policy}; reply written to {path}")


@tsa_group.command("verify")
@click.argument("reply", metavar="REPLY.tsr")
@click.option("--data", "data_file", required=True, metavar="FILE", help="The time-stamped file.")
@click.option("--trust", metavar="ROOT.pem", help="Trust anchors (default: this UDUN_HOME's CA chain).")
@click.option("--untrusted", metavar="CHAIN.pem", help="TSA certificate and intermediates, if not in the token.")
def tsa_verify(reply: str, data_file: str, trust: str | None, untrusted: str | None) -> None:
    """Check a reply (or a bare token) against FILE, the TSA's chain validated at genTime."""
    raw = read_input(reply, "reply")
    try:
        token = tsp.response_token(raw)
    except PkiError:
        token = raw                               # a bare TimeStampToken (-token_out)
    extra = load_certs(read_input(untrusted, "certificates")) if untrusted else []
    check = tsp.check_token(token, extra, imprint=hashlib.sha256(read_input(data_file, "file")).digest(),
                            hash_name="sha256")
    if not check.ok or check.info is None or check.tsa_cert_der is None:
        click.echo(f"time-stamp FAILED: {check.problem}")
        sys.exit(1)
    if trust:
        anchors = load_certs(read_input(trust, "trust anchors"))
    else:
        from ca.authority import CertificateAuthority

        anchors = CertificateAuthority.open(settings()).chain_der()
    cert = x509.Certificate.load(check.tsa_cert_der)
    others = [c for c in [*check.certificates, *extra] if c != check.tsa_cert_der]
    chain = ChainValidator(TrustStore.from_certs(anchors)).validate(cert, others, check.info.gen_time)
    if not chain.ok:
        click.echo(f"time-stamp FAILED: the TSA certificate does not validate at genTime ({chain.detail})")
        sys.exit(1)
    click.echo(f"time-stamp OK: {check.info.gen_time:%Y-%m-%d %H:%M:%S.%f}Z by {cert.subject.human_friendly}, "
               f"serial {check.info.serial:x}, policy {check.info.policy}")


@tsa_group.command("cert")
@click.option("-o", "--out", metavar="FILE", help="Output (default: stdout).")
def tsa_cert(out: str | None) -> None:
    """The TSA certificate and the issuing CA (PEM): `-untrusted` for `openssl ts -verify`."""
    from ca.authority import CertificateAuthority
    from ca.tsa import TimeStampAuthority

    ca = CertificateAuthority.open(settings())
    write_output(out, pem_certs([TimeStampAuthority(ca).certificate(), ca.chain_der()[0]]))
