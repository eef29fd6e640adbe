"""`udun operator ...`: the people who administer udun, their roles and credentials.

Run on the CA machine (it writes the CA's database directly; the audit log names the OS
user, ``cli:<user>``). The first admin is made here; from then on operators can be
managed through the admin API too. An API token is printed once (or written to a new
0600 file with -o); a token certificate is one udun issued for a key on the operator's
own token, and logs them in by signing a challenge (`udun operator login`).
"""
from __future__ import annotations

import getpass
import json

import click

from ca.operators import DEFAULT_TOKEN_DAYS, MAX_TOKEN_DAYS, PERMISSIONS, ROLES, NewSecret, Operators, cert_json, \
    operator_json, token_json
from udun.common import hand_out_secret, info, settings


def _ops() -> Operators:
    from ca.directory import CaDirectory

    s = settings()
    ca = CaDirectory.open(s)
    return Operators(ca, ca.clock, s.operator_session_minutes)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


_ROLE_HELP = "; ".join(f"{role}: {', '.join(sorted(p for p in perms if p != 'self'))}"
                       for role, perms in ROLES.items() if role != "admin")


@click.group("operator", help="Operators and their roles (admin: everything; " + _ROLE_HELP + ").")
def operator_group() -> None:
    pass


@operator_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
def operator_add(name: str, role: str) -> None:
    """Add an operator (then give them a token or a certificate)."""
    op = _ops().add(name, role, actor=_actor())
    info(f"operator {op.name} added with the role {op.role}; next: udun operator token add {op.name} "
         f"or udun operator cert add {op.name} SERIAL")


@operator_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one operator a line) instead of a table.")
def operator_list(as_json: bool) -> None:
    for op in _ops().all():
        shown = operator_json(op)
        click.echo(json.dumps(shown, ensure_ascii=False) if as_json else
                   f"{op.name:<24} {op.role:<13} {shown['state']:<9} since {op.created_at:%Y-%m-%d}")


@operator_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def operator_show(name: str, as_json: bool) -> None:
    ops = _ops()
    now = ops.clock()
    op = ops.operator(name)
    tokens = [token_json(t, now) for t in ops.store.tokens(name)]
    certs = [cert_json(c) for c in ops.store.certs(name)]
    if as_json:
        click.echo(json.dumps({**operator_json(op), "tokens": tokens, "certificates": certs}, ensure_ascii=False))
        return
    shown = operator_json(op)
    click.echo(f"{op.name}: {op.role}, {shown['state']}; may: {', '.join(shown['permissions'])}")  # type: ignore[arg-type]
    for t in tokens:
        click.echo(f"  token {t['token_id']} {t['state']}, expires {t['expires_at'] or 'never'}")
    for c in certs:
        click.echo(f"  certificate {c['serial']} {c['state']}")


@operator_group.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(list(ROLES)))
def operator_role(name: str, role: str) -> None:
    """Give NAME another role (never the last admin away)."""
    op = _ops().set_role(name, role, actor=_actor())
    info(f"{op.name} now has the role {op.role}")


@operator_group.command("disable")
@click.argument("name")
def operator_disable(name: str) -> None:
    """Refuse every credential of NAME at once (never the last admin)."""
    _ops().set_disabled(name, True, actor=_actor())
    info(f"operator {name} disabled")


@operator_group.command("enable")
@click.argument("name")
def operator_enable(name: str) -> None:
    _ops().set_disabled(name, False, actor=_actor())
    info(f"operator {name} enabled")


@operator_group.group("token")
def token_group() -> None:
    """API tokens of operators (where their token cannot be used)."""


@token_group.command("add")
@click.argument("name")
@click.option("--days", type=click.IntRange(1, MAX_TOKEN_DAYS), default=DEFAULT_TOKEN_DAYS, show_default=True)
@click.option("--never-expires", is_flag=True, help="A token without expiry (say so in words).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Write the token to this new file (0600).")
def token_add(name: str, days: int, never_expires: bool, out: str | None) -> None:
    """A new API token of NAME, shown once."""
    def shown(new: NewSecret) -> None:
        expiry = f"expires {new.expires_at:%Y-%m-%d %H:%M}Z" if new.expires_at else "never expires"
        info(f"token {new.id} of {name}: {expiry}. It is shown only now: udun keeps a hash.")

    hand_out_secret(lambda: _ops().issue_token(name, None if never_expires else days, actor=_actor()),
                    lambda new: (new.id, new.text), lambda token_id: _ops().revoke_token(token_id, actor=_actor()),
                    out, shown)


@token_group.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    _ops().revoke_token(token_id, actor=_actor())
    info(f"token {token_id} revoked")


@operator_group.group("cert")
def cert_group() -> None:
    """Certificates on operators' tokens: their keys log them in."""


@cert_group.command("add")
@click.argument("name")
@click.argument("serial")
def cert_add(name: str, serial: str) -> None:
    """Register certificate SERIAL (issued by udun, good now) as NAME's."""
    rec = _ops().add_cert(name, serial, actor=_actor())
    info(f"certificate {rec.serial} now logs in {name}")


@cert_group.command("remove")
@click.argument("serial")
def cert_remove(serial: str) -> None:
    """Stop SERIAL logging anyone in (its open sessions end)."""
    rec = _ops().remove_cert(serial, actor=_actor())
    info(f"certificate {rec.serial} of {rec.operator.name} removed")


@operator_group.command("permissions")
def operator_permissions() -> None:
    """Every permission and the roles that have it."""
    for name, text in PERMISSIONS.items():
        click.echo(f"{name:<20} {', '.join(r for r, p in ROLES.items() if name in p):<40} {text}")


@operator_group.command("request")
@click.option("--url", required=True, envvar="UDUN_ADMIN_URL", help="The admin service (UDUN_ADMIN_URL).")
@click.option("--label", required=True, help="Label of the operator's own token.")
@click.option("--data", default=None, help="The JSON body of a change, e.g. '{\"reason\": \"keyCompromise\"}'.")
@click.argument("method", type=click.Choice(["GET", "POST"], case_sensitive=False))
@click.argument("path")
def operator_request(url: str, label: str, data: str | None, method: str, path: str) -> None:
    """Log in with your token (PIN asked), make one call to the admin API, signed by the
    token when it is a change, log out; prints the JSON answer.

    e.g. udun operator request --url https://ca:8444 --label alice POST /api/v1/certificates/SERIAL/hold --data '{}'
    """
    from pkicore.errors import ErrorKind, PkiError
    from signer import operator_client
    from signer.tokens import certificate_and_chain
    from udun.common import user_pin

    try:
        payload = json.loads(data) if data is not None else ({} if method.upper() == "POST" else None)
    except ValueError:
        raise PkiError(ErrorKind.BAD_INPUT, "--data is JSON") from None
    key, cert_der, _ = certificate_and_chain(settings(), label, user_pin())
    session = operator_client.login(operator_client.urllib_sender(url), key, cert_der)
    try:
        status, answer = session.request(method, path, payload)
    finally:
        session.request("POST", "/api/v1/logout", {})
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2))
    if status >= 400:
        raise PkiError(ErrorKind.BAD_INPUT, f"HTTP {status}: {answer.get('detail', '') if isinstance(answer, dict) else ''}")
