"""`udun token ...`: the client's USB key or SoftHSM token."""
from __future__ import annotations

import functools
import json
from typing import Callable

import click
from asn1crypto import pem

from keystore import token
from pkicore.algorithms import KeyType, SigScheme
from pkicore.errors import ErrorKind, PkiError
from signer import tokens
from udun.common import info, read_input, secret, settings, so_pin, user_pin, write_output

label_option = click.option("--label", required=True, help="Token label (tokens are never chosen by slot).")


def token_ref(f: Callable[..., None]) -> Callable[..., None]:
    """--label or --serial, turned into one `token` argument (never a slot number)."""
    @click.option("--serial", default=None, help="Token serial number (instead of --label).")
    @click.option("--label", default=None, help="Token label.")
    @functools.wraps(f)
    def wrapper(label: str | None, serial: str | None, **kwargs: object) -> None:
        if bool(label) == bool(serial):
            raise click.UsageError("name the token by --label or by --serial (one of them)")
        f(token=tokens.TokenRef(label=label, serial=serial), **kwargs)
    return wrapper


@click.group("token")
def token_group() -> None:
    """Client tokens: initialise, generate keys, make CSRs, import certificates."""


@token_group.command("init")
@label_option
def token_init(label: str) -> None:
    """Create a SoftHSM token (PIN from UDUN_PIN, SO PIN from UDUN_SO_PIN, or prompts)."""
    pin = secret("UDUN_PIN", "New PIN", confirm=True)
    so = so_pin()
    serial = tokens.init(settings(), label, pin, so)
    info(f"token {label!r} initialised (serial {serial})")


@token_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one token a line) instead of a table.")
def token_list(as_json: bool) -> None:
    """Tokens the PKCS#11 module offers."""
    found = token.list_tokens(settings())
    if not found:
        info("no initialised token")
    for t in found:
        if as_json:
            click.echo(json.dumps({"label": t.label, "serial": t.serial, "manufacturer": t.manufacturer,
                                   "model": t.model}, ensure_ascii=False))
        else:
            click.echo(f"{t.label:32} serial {t.serial:18} {t.manufacturer} {t.model}")


@token_group.command("keygen")
@token_ref
@click.option("--key-type", type=click.Choice([k.value for k in KeyType]), default="ec-p256", show_default=True)
@click.option("--replace", is_flag=True, help="Destroy the key already on the token and its certificate first "
                                             "(asks to confirm; irreversible).")
@click.option("--yes", is_flag=True, help="With --replace: do not ask.")
def token_keygen(token: tokens.TokenRef, key_type: str, replace: bool, yes: bool) -> None:
    """Generate the signing key pair on the token (sensitive, never extractable)."""
    if not replace:
        key = tokens.keygen(settings(), token, user_pin(), KeyType.parse(key_type))
        info(f"generated {key.key_type.value} key (id {key.key_id.hex()}) on {token}")
        return
    if not yes and not click.confirm(f"Destroy the signing key and its certificate on {token}? Nothing can be "
                                     "signed with them afterwards (use `udun token rekey` to keep a certificate)",
                                     default=False, err=True):
        raise PkiError(ErrorKind.BAD_INPUT, "not confirmed: nothing was changed")
    key = tokens.replace_key(settings(), token, user_pin(), KeyType.parse(key_type))
    info(f"the old key is destroyed; generated {key.key_type.value} key (id {key.key_id.hex()}) on {token}: "
         "make a CSR and get it certified (its old certificate is still valid at the CA: revoke it there)")


@token_group.command("renew")
@token_ref
@click.option("--url", required=True, envvar="UDUN_ENROLL_URL", help="The bank's enrollment service (UDUN_ENROLL_URL).")
def token_renew(token: tokens.TokenRef, url: str) -> None:
    """A new certificate for the key on the token (in the last UDUN_RENEW_BEFORE_DAYS of the
    current one), signed for by that key; onto the token."""
    from signer import rekey_client
    from signer.operator_client import urllib_sender

    done = rekey_client.renew(settings(), urllib_sender(url), token, user_pin())
    info(f"certificate {done.serial} (until {done.not_after}) replaces {done.old_serial} on {token}")


@token_group.command("rekey")
@token_ref
@click.option("--url", required=True, envvar="UDUN_ENROLL_URL", help="The bank's enrollment service (UDUN_ENROLL_URL).")
@click.option("--key-type", type=click.Choice([k.value for k in KeyType]), default=None,
              help="Default: the current key's type.")
def token_rekey(token: tokens.TokenRef, url: str, key_type: str | None) -> None:
    """A new key pair on the token and its certificate; the old certificate is revoked as
    superseded and the old key destroyed."""
    from signer import rekey_client
    from signer.operator_client import urllib_sender

    done = rekey_client.rekey(settings(), urllib_sender(url), token, user_pin(),
                              KeyType.parse(key_type) if key_type else None)
    info(f"new key and certificate {done.serial} (until {done.not_after}) on {token}; {done.old_serial} is "
         "revoked (superseded) and its key destroyed")


@token_group.command("csr")
@token_ref
@click.option("--subject", required=True, help='RFC 4514 name, e.g. "CN=张三,O=Example Bank,C=CN".')
@click.option("--scheme", type=click.Choice([s.value for s in SigScheme]), default=None,
              help="Signature scheme (default: ecdsa for EC keys, pkcs1 for RSA).")
@click.option("-o", "--out", "out", metavar="REQ.pem", help="Write here (default stdout).")
def token_csr(token: tokens.TokenRef, subject: str, scheme: str | None, out: str | None) -> None:
    """A PKCS#10 request signed by the token key."""
    der = tokens.csr(settings(), token, user_pin(), subject, SigScheme.parse(scheme) if scheme else None)
    write_output(out, pem.armor("CERTIFICATE REQUEST", der))


@token_group.command("import")
@token_ref
@click.argument("cert", metavar="CERT.pem")
def token_import(token: tokens.TokenRef, cert: str) -> None:
    """Write the certificate (and CA certificates in the file) onto the token."""
    c = tokens.import_certificates(settings(), token, user_pin(), read_input(cert, "certificate"))
    info(f"stored certificate {format(c.serial_number, 'x')} ({c.subject.human_friendly}) on {token}")


@token_group.command("show")
@token_ref
@click.option("--json", "as_json", is_flag=True,
              help="JSON: label, serial, keys (id, type, protection flags), certificates.")
def token_show(token: tokens.TokenRef, as_json: bool) -> None:
    """Keys (with their protection flags) and certificates on the token."""
    rep = tokens.show(settings(), token, user_pin())
    if as_json:
        click.echo(json.dumps({"label": rep.label, "serial": rep.serial, "keys": rep.keys,
                               "certificates": rep.certificates}, ensure_ascii=False, indent=2))
        return
    click.echo(f"token {rep.label} (serial {rep.serial})")
    for k in rep.keys:
        flags = "sensitive" if k["sensitive"] else "NOT SENSITIVE"
        flags += ", never extractable" if not k["extractable"] else ", EXTRACTABLE"
        click.echo(f"  key  id {k['id']}  {k['type']}  {flags}")
    for c in rep.certificates:
        click.echo(f"  cert id {c['id']}  serial {c['serial']}  {c['subject']}  until {c['not_after'][:10]}")


@token_group.command("pin-status")
@token_ref
@click.option("--json", "as_json", is_flag=True)
def token_pin_status(token: tokens.TokenRef, as_json: bool) -> None:
    """Wrong PINs so far and whether the PIN is locked (no PIN asked)."""
    state = tokens.pin_state(settings(), token)
    if as_json:
        click.echo(json.dumps({"failures": state.failures, "tries": state.tries, "locked": state.locked,
                               "token_flags": state.token_flags, "state": state.describe()}))
        return
    click.echo(f"{token}: PIN {state.describe()}")


@token_group.command("unblock")
@token_ref
def token_unblock(token: tokens.TokenRef) -> None:
    """The security officer sets a new user PIN (C_InitPIN with the SO PIN, asked, or
    UDUN_SO_PIN); the new PIN is asked twice (or UDUN_NEW_PIN). Unlocks a PIN locked after
    UDUN_PIN_TRIES wrong ones."""
    so = secret("UDUN_SO_PIN", "SO PIN")
    new = secret("UDUN_NEW_PIN", "New PIN", confirm=True)
    tokens.unblock(settings(), token, so, new)
    info(f"{token}: new PIN set, the count of wrong PINs starts again")
