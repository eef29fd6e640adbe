"""`udun otp ...`: customers' one-time password credentials (宝令 / 手机宝令, ca.otp)."""
from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING

import click

from udun.common import info, settings

if TYPE_CHECKING:
    from ca.otpcreds import OtpCredentials


def _creds() -> OtpCredentials:
    from ca.directory import CaDirectory
    from ca.otpcreds import OtpCredentials

    s = settings()
    ca = CaDirectory.open(s)
    return OtpCredentials(ca.store, ca.clock, s)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@click.group("otp")
def otp_group() -> None:
    """One-time passwords (宝令): RFC 6238 TOTP credentials of customers.

    Above UDUN_OTP_ABOVE (CNY 50000.00) a payment must carry the customer's current code
    inside the signed payment; five failures in a row lock the credential.
    """


@otp_group.command("enroll")
@click.option("--customer", required=True, help="The customer (udun customer add).")
@click.option("--kind", type=click.Choice(["baoling", "mobile"]), default="baoling", show_default=True,
              help="baoling: a 60-second code (宝令); mobile: a 30-second authenticator app (手机宝令).")
@click.option("--qr/--no-qr", default=True, show_default=True, help="Also draw the URI as a QR code (stderr).")
def otp_enroll(customer: str, kind: str, qr: bool) -> None:
    """A new credential for the customer (their one before is revoked). The otpauth:// URI
    is printed once, on stdout: load it into the token or app, then let it go."""
    from ca.otp import terminal_qr

    rec, uri = _creds().enroll(customer, kind, actor=_actor())
    click.echo(uri)
    if qr:
        click.echo(terminal_qr(uri), err=True)
    info(f"credential {rec.id} for customer {customer} ({kind}, {rec.period} s, {rec.digits} digits); the secret "
         "above is shown only now")


@otp_group.command("list")
@click.option("--customer", help="Only this customer's.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
def otp_list(customer: str | None, as_json: bool) -> None:
    from ca.otpcreds import otp_json

    for rec in _creds().find(customer):
        shown = otp_json(rec)
        click.echo(json.dumps(shown, ensure_ascii=False) if as_json else
                   f"{rec.id}  {rec.customer_id:<20} {rec.kind:<8} {shown['state']:<8} failures {rec.failures}")


@otp_group.command("unlock")
@click.argument("credential_id")
def otp_unlock(credential_id: str) -> None:
    """After the customer proved who they are: the credential works again."""
    _creds().unlock(credential_id, actor=_actor())
    info(f"credential {credential_id.upper()} unlocked")


@otp_group.command("revoke")
@click.argument("credential_id")
def otp_revoke(credential_id: str) -> None:
    _creds().revoke(credential_id, actor=_actor())
    info(f"credential {credential_id.upper()} revoked")
