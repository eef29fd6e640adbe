"""`udun enrollment ...` (the counter, on the CA machine) and `udun enroll` (the customer).

An operator makes an enrollment for a customer and hands over its one-time activation code
(柜台激活码): printed once, only a slow hash kept, it expires, and five wrong codes lock it.
The customer's `udun enroll --code` makes the key on their own token, sends the CSR with
the code to the admin service's public enrollment route and puts the certificate and the
CA chain onto the token.
"""
from __future__ import annotations

import getpass
import json
from typing import Any

import click

from ca.enrollments import DEFAULT_HOURS, MAX_HOURS, enrollment_json
from pkicore.algorithms import KeyType
from udun.common import info, settings


def _enrollments() -> Any:
    from ca.authority import CertificateAuthority
    from ca.enrollments import Enrollments

    return Enrollments(CertificateAuthority.open(settings()))


@click.group("enrollment")
def enrollment_group() -> None:
    """Counter enrollments (柜台激活码): a customer's one-time code for `udun enroll`."""


@enrollment_group.command("create")
@click.option("--subject", required=True, help='The customer\'s name as the certificate will say it, RFC 4514: '
                                               '"CN=张三,O=Example Bank,C=CN".')
@click.option("--customer", metavar="ID", help="The customer (udun customer add) the certificate is bound to.")
@click.option("--account", "accounts", multiple=True, help="Without --customer: a payer account the certificate is "
                                                           "for (repeatable); a customer ENR-<id> is made with them.")
@click.option("--profile", default="client", show_default=True)
@click.option("--hours", type=click.IntRange(1, MAX_HOURS), default=DEFAULT_HOURS, show_default=True,
              help="How long the code can be used.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (with the code) instead of text.")
def enrollment_create(subject: str, customer: str | None, accounts: tuple[str, ...], profile: str, hours: int,
                      as_json: bool) -> None:
    """Make an enrollment; its code is printed once, on stdout."""
    enrollments = _enrollments()
    rec, code = enrollments.create(subject, profile, list(accounts), hours, actor=f"cli:{getpass.getuser()}",
                                   customer=customer)
    if as_json:
        click.echo(json.dumps({**enrollment_json(rec, enrollments.clock()), "code": code}, ensure_ascii=False))
        return
    click.echo(code)
    info(f"enrollment {rec.id} for {rec.subject}: the code above is shown only now; it expires "
         f"{rec.expires_at:%Y-%m-%d %H:%M}Z. The customer runs: udun enroll --url URL --label TOKEN --code CODE")


@enrollment_group.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def enrollment_list(limit: int, as_json: bool) -> None:
    enrollments = _enrollments()
    now = enrollments.clock()
    for rec in enrollments.store.recent(limit):
        shown = enrollment_json(rec, now)
        click.echo(json.dumps(shown, ensure_ascii=False) if as_json else
                   f"{rec.id}  {shown['state']:<8} {rec.subject}  expires {shown['expires_at']}"
                   + (f"  certificate {rec.serial}" if rec.serial else ""))


@enrollment_group.command("show")
@click.argument("enrollment_id")
def enrollment_show(enrollment_id: str) -> None:
    enrollments = _enrollments()
    click.echo(json.dumps(enrollment_json(enrollments.get(enrollment_id), enrollments.clock()),
                          ensure_ascii=False, indent=2))


@enrollment_group.command("cancel")
@click.argument("enrollment_id")
def enrollment_cancel(enrollment_id: str) -> None:
    """The code cannot be used any more."""
    _enrollments().cancel(enrollment_id, actor=f"cli:{getpass.getuser()}")
    info(f"enrollment {enrollment_id} cancelled")


@click.command("enroll")
@click.option("--url", required=True, envvar="UDUN_ENROLL_URL", help="The bank's enrollment service (UDUN_ENROLL_URL).")
@click.option("--label", required=True, help="Label of your token (PIN asked).")
@click.option("--code", default=None, help="The activation code the bank gave you (default: UDUN_ENROLL_CODE, or "
                                           "asked without echo: a code on the command line is seen by `ps`).")
@click.option("--key-type", type=click.Choice([k.value for k in KeyType]), default="ec-p256", show_default=True,
              help="For the key made on the token when it has none.")
def enroll_cmd(url: str, label: str, code: str | None, key_type: str) -> None:
    """Enroll with an activation code: key and CSR on your token, certificate back onto it."""
    from signer.enroll_client import enroll
    from signer.operator_client import urllib_sender
    from udun.common import secret, user_pin

    code = code or secret("UDUN_ENROLL_CODE", "Activation code")
    done = enroll(settings(), urllib_sender(url), label, user_pin(), code, KeyType(key_type))
    info(("a new key was made on the token; " if done.new_key else "") +
         f"certificate {done.serial} for {done.subject} is on token {label}")
