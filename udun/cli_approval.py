"""`udun approval ...`: dual control (双人认证). Requests and policies are read here from the
CA's database; an approval or a rejection is an operator's own act, so it goes to the admin
service signed by the operator's token (the same login as `udun operator request`)."""
from __future__ import annotations

import json
from typing import Any

import click

from ca.approvals import ACTIONS, STATES, approval_json, policy_json
from pkicore.errors import ErrorKind, PkiError
from udun.common import settings


def _approvals() -> Any:
    from ca.approvals import Approvals
    from ca.directory import CaDirectory

    ca = CaDirectory.open(settings())
    return Approvals(ca.store, ca.clock, {}, lambda roles, excluding: 0)     # reads only: nothing executes here


def _line(a: dict[str, Any]) -> str:
    return (f"{a['approval_id']}  {a['state']:<9} {a['action']:<16} by {a['requester']:<24} "
            f"{a['approved']}/{a['required']} ({' or '.join(a['roles'])}), expires {a['expires_at']}")


@click.group("approval")
def approval_group() -> None:
    """Dual control: requests that wait for a second operator, and the policies."""


@approval_group.command("list")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only requests in this state.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (one request a line) instead of a table.")
def approval_list(state: str | None, as_json: bool) -> None:
    """Requests, newest first (pending ones past their time are expired first)."""
    for rec in _approvals().find(state):
        shown = approval_json(rec)
        click.echo(json.dumps(shown, ensure_ascii=False) if as_json else _line(shown))


@approval_group.command("show")
@click.argument("approval_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def approval_show(approval_id: str, as_json: bool) -> None:
    """One request: what will run (its parameters and their SHA-256), its votes."""
    shown = approval_json(_approvals().get(approval_id))
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False))
        return
    click.echo(_line(shown))
    click.echo(f"  params: {json.dumps(shown['params'], ensure_ascii=False)}")
    click.echo(f"  params_sha256: {shown['params_sha256']}")
    for v in shown["votes"]:  # type: ignore[attr-defined]
        click.echo(f"  {v['vote']} by {v['operator']} at {v['at']}" + (f": {v['comment']}" if v["comment"] else ""))
    if shown["result"] is not None:
        click.echo(f"  result: {json.dumps(shown['result'], ensure_ascii=False)}")


@approval_group.command("policies")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def approval_policies(as_json: bool) -> None:
    """Every guarded action and its policy (change one with POST /api/v1/approval-policies/ACTION)."""
    for policy in _approvals().policies().values():
        shown = policy_json(policy)
        click.echo(json.dumps(shown, ensure_ascii=False) if as_json else
                   f"{policy.action:<16} {policy.approvals} approver(s): {' or '.join(policy.roles):<16} "
                   f"{policy.expires_hours} h" + (f", threshold {policy.threshold}" if policy.threshold else "")
                   + (f", profiles {' '.join(policy.profiles)}" if policy.profiles else "")
                   + f"   {ACTIONS[policy.action]}")


def _vote(url: str, label: str, path: str, body: dict[str, Any]) -> None:
    from signer import operator_client
    from signer.tokens import certificate_and_chain
    from udun.common import user_pin

    key, cert_der, _ = certificate_and_chain(settings(), label, user_pin())
    session = operator_client.login(operator_client.urllib_sender(url), key, cert_der)
    try:
        status, answer = session.request("POST", path, body)
    finally:
        session.request("POST", "/api/v1/logout", {})
    if status >= 400:
        detail = answer.get("detail", "") if isinstance(answer, dict) else ""
        kind = {401: ErrorKind.UNAUTHORIZED, 403: ErrorKind.FORBIDDEN, 404: ErrorKind.NOT_FOUND,
                409: ErrorKind.CONFLICT}.get(status, ErrorKind.BAD_INPUT)
        raise PkiError(kind, f"HTTP {status}: {detail}")
    click.echo(_line(answer))
    if answer.get("result") is not None:
        click.echo(f"  result: {json.dumps(answer['result'], ensure_ascii=False)}")


_url = click.option("--url", required=True, envvar="UDUN_ADMIN_URL", help="The admin service (UDUN_ADMIN_URL).")
_label = click.option("--label", required=True, help="Label of your own token (PIN asked).")
_comment = click.option("--comment", default=None, help="Why (kept with the vote).")


@approval_group.command("approve")
@_url
@_label
@click.argument("approval_id")
@click.argument("params_sha256")
@_comment
def approval_approve(url: str, label: str, approval_id: str, params_sha256: str, comment: str | None) -> None:
    """Approve APPROVAL_ID, naming the PARAMS_SHA256 that `udun approval show` printed: the
    approval that completes a request executes it."""
    _vote(url, label, f"/api/v1/approvals/{approval_id}/approve",
          {"params_sha256": params_sha256, **({"comment": comment} if comment else {})})


@approval_group.command("reject")
@_url
@_label
@click.argument("approval_id")
@_comment
def approval_reject(url: str, label: str, approval_id: str, comment: str | None) -> None:
    """Reject APPROVAL_ID: it never executes (a requester withdraws theirs this way)."""
    _vote(url, label, f"/api/v1/approvals/{approval_id}/reject", {"comment": comment} if comment else {})
