"""`udun bank ...`: the banks that call the verify API, and their API keys.

A key is printed once, on stdout (or written to a new 0600 file with -o), and stored only as
a slow hash: give it to the bank over a channel you trust, and rotate rather than re-send.
"""
from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from datetime import datetime, timedelta

import click

from ca.banks import DEFAULT_DAYS, DEFAULT_SCOPES, MAX_DAYS, SCOPES, Banks, NewKey, bank_json, key_json, key_state
from ca.storage.banks import BankKeyRecord
from udun.common import hand_out_secret, info, settings


def _banks() -> Banks:
    from ca.directory import CaDirectory

    ca = CaDirectory.open(settings())
    return Banks(ca.store, ca.clock)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _days(days: int, never: bool) -> int | None:
    return None if never else days


def _hand_out(make: Callable[[], NewKey], out: str | None) -> NewKey:
    """Make the key and show its text once (udun.common.hand_out_secret)."""
    def shown(new: NewKey) -> None:
        rec = new.record
        expiry = f"expires {rec.expires_at:%Y-%m-%d %H:%M}Z" if rec.expires_at else "never expires"
        info(f"key {rec.id}: scopes {' '.join(rec.scopes)}; {expiry}. It is shown only now: udun keeps a hash.")

    return hand_out_secret(make, lambda new: (new.record.id, new.text), lambda key_id: _banks().revoke_key(
        key_id, actor=_actor()), out, shown)


@click.group("bank")
def bank_group() -> None:
    """Banks (the relying parties) and their API keys for verify, challenges and evidence."""


@bank_group.command("add")
@click.argument("name")
@click.option("--display-name", metavar="TEXT", help="The bank's full name (default: NAME).")
def bank_add(name: str, display_name: str | None) -> None:
    """Register a bank under NAME (lowercase letters, digits, hyphens: icbc, ccb-shanghai)."""
    bank = _banks().add(name, display_name, actor=_actor())
    info(f"bank {bank.name} added; give it a key: udun bank key add {bank.name}")


@bank_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one bank a line) instead of a table.")
def bank_list(as_json: bool) -> None:
    """Every bank, by name."""
    for bank in _banks().all():
        if as_json:
            click.echo(json.dumps(bank_json(bank), ensure_ascii=False))
        else:
            click.echo(f"{bank.name:24} {'disabled' if bank.disabled_at else 'enabled':8}  {bank.display_name}")


@bank_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def bank_show(name: str, as_json: bool) -> None:
    """One bank with its keys."""
    banks = _banks()
    bank, keys, now = banks.bank(name), banks.keys(name), banks.clock()
    if as_json:
        click.echo(json.dumps({**bank_json(bank), "keys": [key_json(k, now) for k in keys]}, ensure_ascii=False))
        return
    click.echo(f"{bank.name}: {bank.display_name} ({'disabled' if bank.disabled_at else 'enabled'})")
    for k in keys:
        click.echo(f"  {_key_line(k, now)}")


def _key_line(k: BankKeyRecord, now: datetime) -> str:
    expiry = f"{k.expires_at:%Y-%m-%d}" if k.expires_at else "never"
    return f"{k.id}  {key_state(k, now):13} expires {expiry:10}  {' '.join(k.scopes)}"


@bank_group.command("disable")
@click.argument("name")
def bank_disable(name: str) -> None:
    """Refuse every key of the bank at once (until `udun bank enable`)."""
    _banks().set_disabled(name, True, actor=_actor())
    info(f"bank {name} disabled: its keys are refused from the next request on")


@bank_group.command("enable")
@click.argument("name")
def bank_enable(name: str) -> None:
    """Accept the bank's (unrevoked, unexpired) keys again."""
    _banks().set_disabled(name, False, actor=_actor())
    info(f"bank {name} enabled")


@bank_group.group("key")
def key_group() -> None:
    """A bank's API keys: add, list, rotate, revoke."""


_SCOPE_HELP = "; ".join(f"{name}: {what}" for name, what in SCOPES.items())


@key_group.command("add")
@click.argument("bank")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(list(SCOPES)),
              help=f"What the key may do (repeat; default: {' '.join(DEFAULT_SCOPES)}). {_SCOPE_HELP}.")
@click.option("--days", default=DEFAULT_DAYS, show_default=True, type=click.IntRange(1, MAX_DAYS),
              help="Days until it expires.")
@click.option("--never-expires", is_flag=True, help="No expiry (rotate it by hand).")
@click.option("-o", "--out", metavar="FILE", help="Write the key to this new file (0600) instead of stdout.")
def key_add(bank: str, scopes: tuple[str, ...], days: int, never_expires: bool, out: str | None) -> None:
    """A new API key for BANK, printed once."""
    _hand_out(lambda: _banks().issue_key(bank, scopes or DEFAULT_SCOPES, _days(days, never_expires), actor=_actor()),
              out)


@key_group.command("list")
@click.argument("bank")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one key a line) instead of a table.")
def key_list(bank: str, as_json: bool) -> None:
    """BANK's keys: id, state, expiry, scopes (never the key itself: udun does not have it)."""
    banks = _banks()
    now = banks.clock()
    for k in banks.keys(bank):
        click.echo(json.dumps(key_json(k, now)) if as_json else _key_line(k, now))


@key_group.command("rotate")
@click.argument("key_id")
@click.option("--grace-hours", default=24, show_default=True, type=click.IntRange(0, 720),
              help="How long the old key keeps working (0: it ends now).")
@click.option("--days", default=DEFAULT_DAYS, show_default=True, type=click.IntRange(1, MAX_DAYS),
              help="Days until the new key expires.")
@click.option("--never-expires", is_flag=True, help="The new key has no expiry.")
@click.option("-o", "--out", metavar="FILE", help="Write the new key to this new file (0600) instead of stdout.")
def key_rotate(key_id: str, grace_hours: int, days: int, never_expires: bool, out: str | None) -> None:
    """A new key with KEY_ID's scopes; KEY_ID ends after the grace period."""
    _hand_out(lambda: _banks().rotate_key(key_id, timedelta(hours=grace_hours), _days(days, never_expires),
                                          actor=_actor()), out)
    info(f"key {key_id} ends in {grace_hours} h (or at its own expiry, if sooner)")


@key_group.command("revoke")
@click.argument("key_id")
def key_revoke(key_id: str) -> None:
    """Refuse KEY_ID from the next request on, on every node."""
    rec = _banks().revoke_key(key_id, actor=_actor())
    info(f"key {rec.id} of {rec.bank} revoked")


@bank_group.group("cert")
def cert_group() -> None:
    """A bank's TLS client certificates: a credential of their own on `udun serve` with
    UDUN_TLS_CLIENT_AUTH (and, beside an API key, bound to its bank)."""


@cert_group.command("add")
@click.argument("bank")
@click.argument("certificate", metavar="CERT.pem")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(list(SCOPES)),
              help=f"What the certificate may do (repeat; default: {' '.join(DEFAULT_SCOPES)}).")
def cert_add(bank: str, certificate: str, scopes: tuple[str, ...]) -> None:
    """Register BANK's client certificate (PEM or DER; its chain must lead to UDUN_TLS_CLIENT_CA)."""
    from udun.common import read_input

    rec = _banks().add_cert(bank, read_input(certificate, "certificate"), scopes or DEFAULT_SCOPES, actor=_actor())
    info(f"certificate {rec.sha256} ({rec.subject}) of {rec.bank}: scopes {' '.join(rec.scopes)}, "
         f"until {rec.not_after:%Y-%m-%d}")


@cert_group.command("list")
@click.argument("bank")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one certificate a line) instead of a table.")
def cert_list(bank: str, as_json: bool) -> None:
    """BANK's client certificates: SHA-256, state, subject, scopes."""
    from ca.banks import cert_json

    banks = _banks()
    now = banks.clock()
    for c in banks.certs.of_bank(bank):
        shown = cert_json(c, now)
        click.echo(json.dumps(shown, ensure_ascii=False) if as_json else
                   f"{c.sha256}  {shown['state']:13} {' '.join(c.scopes):40} {c.subject}")


@cert_group.command("remove")
@click.argument("sha256")
def cert_remove(sha256: str) -> None:
    """Stop accepting the certificate with this SHA-256 (hex, colons allowed), on every node."""
    rec = _banks().remove_cert(sha256, actor=_actor())
    info(f"certificate {rec.sha256} of {rec.bank} removed")
