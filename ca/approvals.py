"""Dual control (双人认证, issue 12 point 3): sensitive actions run only after other
operators approved them.

A request records the action and its parameters (canonical JSON, RFC 8785) with their
SHA-256; an approver names that hash, so they approve exactly what they were shown. It
needs ``approvals`` distinct approvers whose role the policy allows, never the requester
(nor the shared admin key, which is no person); one rejection ends it; it expires; once
approved it is executed exactly once (ca.storage.approvals), by the approval that
completed it, and the action's own audit entries name ``approval:<id>``.

The policies live in the database (changing one is itself an action under dual control),
with udun's defaults below for any not set.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import replace
from datetime import timedelta
from typing import Any, Callable

from ca.storage.approvals import ApprovalRecord, ApprovalStore, PolicyRecord
from ca.storage.store import Store
from pkicore.clock import Clock, rfc3339
from pkicore.errors import ErrorKind, PkiError
from pkicore.tx import canonicalize

ACTIONS: dict[str, str] = {
    "ca-revoke": "revoke the issuing CA (no certificate under it verifies any more)",
    "admin-change": "make an admin, take the admin role away, or disable an admin",
    "policy-change": "change an approval policy",
    "bulk-revoke": "revoke more than `threshold` certificates in one request",
    "sensitive-issue": "issue a certificate under one of `profiles`",
    "account-binding": "let a certificate pay from accounts: a customer made with accounts, an account added, "
                       "a certificate bound to or issued for a customer",
    "limit-raise": "raise a profile's transaction limit, or set a customer's above their profile's",
}
_ADMIN = ("admin",)
DEFAULT_POLICIES: dict[str, PolicyRecord] = {
    "ca-revoke": PolicyRecord("ca-revoke", 1, _ADMIN, 24, None, ()),
    "admin-change": PolicyRecord("admin-change", 1, _ADMIN, 24, None, ()),
    "policy-change": PolicyRecord("policy-change", 1, _ADMIN, 24, None, ()),
    "bulk-revoke": PolicyRecord("bulk-revoke", 1, ("admin", "operator"), 24, 10, ()),
    "sensitive-issue": PolicyRecord("sensitive-issue", 1, ("admin", "operator"), 24, None, ()),
    "account-binding": PolicyRecord("account-binding", 1, ("admin", "operator"), 24, None, ()),
    "limit-raise": PolicyRecord("limit-raise", 1, ("admin", "operator"), 24, None, ()),
}
_log = logging.getLogger("udun.approvals")
MAX_APPROVALS = 5
MAX_HOURS = 720
STATES = ("pending", "approved", "executing", "executed", "failed", "rejected", "expired")
SHARED_KEY = "admin-key"

# action -> run(params, actor) -> result (JSON): registered by the admin service.
Executor = Callable[[dict[str, Any], str], dict[str, Any]]
# (roles, excluding this actor) -> how many enabled operators with those roles could approve
Eligible = Callable[[tuple[str, ...], str], int]


def params_hash(params: dict[str, Any]) -> tuple[str, str]:
    """(canonical JSON text, its SHA-256 hex)."""
    text = canonicalize(params)
    return text.decode(), hashlib.sha256(text).hexdigest()


class Approvals:
    def __init__(self, store: Store, clock: Clock, executors: dict[str, Executor], eligible: Eligible) -> None:
        self.store = ApprovalStore(store)
        self.clock = clock
        self.executors = executors
        self.eligible = eligible

    # --- policies -------------------------------------------------------------------

    def policies(self) -> dict[str, PolicyRecord]:
        return {**DEFAULT_POLICIES, **self.store.policies()}

    def policy(self, action: str) -> PolicyRecord:
        if action not in ACTIONS:
            raise PkiError(ErrorKind.NOT_FOUND, f"no approval policy {action!r}; known: {', '.join(ACTIONS)}")
        return self.policies()[action]

    def checked_policy(self, action: str, changes: dict[str, Any]) -> PolicyRecord:
        """The policy ``action`` with ``changes`` applied, refused when not sensible."""
        from ca.operators import ROLES
        from ca.profiles import REQUESTABLE

        current = self.policy(action)
        unknown = set(changes) - {"approvals", "roles", "expires_hours", "threshold", "profiles"}
        if unknown:
            raise PkiError(ErrorKind.BAD_INPUT, f"unknown policy field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        new = replace(current, **fields)
        if not isinstance(new.approvals, int) or not 0 <= new.approvals <= MAX_APPROVALS:
            raise PkiError(ErrorKind.BAD_INPUT, f"approvals is 0 (off) to {MAX_APPROVALS}", field="approvals")
        deciders = [role for role, perms in ROLES.items() if "approvals:decide" in perms]
        if not new.roles or not set(new.roles) <= set(deciders):
            raise PkiError(ErrorKind.BAD_INPUT, f"roles are some of {', '.join(deciders)} (the roles that may vote)",
                           field="roles")
        if action == "policy-change" and new.approvals < 1:
            raise PkiError(ErrorKind.BAD_INPUT, "policy-change keeps at least 1 approver: dual control cannot be "
                                                "switched off through the API (the CA machine's console can)",
                           field="approvals")
        if not isinstance(new.expires_hours, int) or not 1 <= new.expires_hours <= MAX_HOURS:
            raise PkiError(ErrorKind.BAD_INPUT, f"expires_hours is 1 to {MAX_HOURS}", field="expires_hours")
        if action == "bulk-revoke" and (not isinstance(new.threshold, int) or new.threshold < 1):
            raise PkiError(ErrorKind.BAD_INPUT, "threshold is a count of certificates, at least 1", field="threshold")
        if not set(new.profiles) <= set(REQUESTABLE):
            raise PkiError(ErrorKind.BAD_INPUT, f"profiles are some of {', '.join(REQUESTABLE)}", field="profiles")
        return new

    def set_policy(self, policy: PolicyRecord, actor: str) -> PolicyRecord:
        self.store.set_policy(policy, self.clock(), actor)
        return self.policy(policy.action)

    def needed(self, action: str) -> PolicyRecord | None:
        """The policy when ``action`` needs approval now, else None."""
        policy = self.policy(action)
        return policy if policy.approvals > 0 else None

    # --- requests -------------------------------------------------------------------

    def may_request(self, action: str, requester: str) -> PolicyRecord:
        """The policy, when ``requester`` may ask for ``action`` now (else the refusal
        ``request`` would give): checked before a caller makes anything the request is for."""
        if requester == SHARED_KEY:
            raise PkiError(ErrorKind.FORBIDDEN, "the shared admin key is no person: it cannot ask for an action under "
                                                "dual control; log in as yourself")
        policy = self.policy(action)
        possible = self.eligible(policy.roles, requester)
        if possible < policy.approvals:
            raise PkiError(ErrorKind.CONFLICT, f"{action} needs {policy.approvals} approver(s) with the role "
                           f"{' or '.join(policy.roles)} other than you; there are {possible}")
        return policy

    def request(self, action: str, params: dict[str, Any], requester: str) -> ApprovalRecord:
        """Record a request for ``action``; nothing runs until it is approved."""
        policy = self.may_request(action, requester)
        text, digest = params_hash(params)
        now = self.clock()
        return self.store.add({"id": secrets.token_hex(8), "action": action, "params": text, "params_sha256": digest,
                               "requester": requester, "required": policy.approvals, "roles": " ".join(policy.roles),
                               "expires_at": now + timedelta(hours=policy.expires_hours)}, now)

    def get(self, approval_id: str) -> ApprovalRecord:
        self.store.expire(self.clock())
        return self.store.get(approval_id)

    def find(self, state: str | None = None, limit: int = 100) -> list[ApprovalRecord]:
        if state is not None and state not in STATES:
            raise PkiError(ErrorKind.BAD_INPUT, f"state is one of {', '.join(STATES)}", field="state")
        self.store.expire(self.clock())
        return self.store.find(state, limit)

    def approve(self, approval_id: str, voter: str, role: str, params_sha256: str, comment: str | None = None,
                made_by: frozenset[str] = frozenset()) -> ApprovalRecord:
        """One approval; the one that completes the request executes it (once). ``made_by``:
        who made the voter's account and credential (ca.operators.OperatorPrincipal)."""
        rec = self._votable(approval_id, voter)
        if role not in rec.roles:
            raise PkiError(ErrorKind.FORBIDDEN, f"approval {approval_id} needs an approver with the role "
                                                f"{' or '.join(rec.roles)}; you are {role}")
        if rec.requester in made_by or SHARED_KEY in made_by:
            raise PkiError(ErrorKind.FORBIDDEN, "this account or credential was made by the requester (or with the "
                                                "shared admin key): it cannot approve their request")
        current = self.policy(rec.action).approvals
        if current > rec.required:                     # the policy was tightened since: it counts
            self.store.require(approval_id, current)
        if params_sha256 != rec.params_sha256 or params_hash(rec.params)[1] != rec.params_sha256:
            raise PkiError(ErrorKind.CONFLICT, f"approval {approval_id} is not what you were shown: its parameters' "
                                               f"SHA-256 is {rec.params_sha256}", field="params_sha256")
        rec, approved_now = self.store.vote(approval_id, voter, "approve", comment, self.clock(),
                                            {"params_sha256": params_sha256})
        return self._execute(rec) if approved_now else rec

    def reject(self, approval_id: str, voter: str, role: str, comment: str | None = None) -> ApprovalRecord:
        """One rejection ends the request: by an operator with a role the request allows, or
        the requester withdrawing it."""
        self.store.expire(self.clock())
        if voter == SHARED_KEY:
            raise PkiError(ErrorKind.FORBIDDEN, "the shared admin key is no person: it cannot vote")
        rec = self.store.get(approval_id)
        if voter != rec.requester and role not in rec.roles:
            raise PkiError(ErrorKind.FORBIDDEN, f"approval {approval_id} is decided by the role "
                                                f"{' or '.join(rec.roles)}; you are {role}")
        return self.store.vote(approval_id, voter, "reject", comment, self.clock(), {})[0]

    def _votable(self, approval_id: str, voter: str) -> ApprovalRecord:
        self.store.expire(self.clock())
        rec = self.store.get(approval_id)
        if voter == SHARED_KEY:
            raise PkiError(ErrorKind.FORBIDDEN, "the shared admin key is no person: it cannot approve")
        if voter == rec.requester:
            raise PkiError(ErrorKind.FORBIDDEN, "the requester cannot approve their own request")
        return rec

    def _execute(self, rec: ApprovalRecord) -> ApprovalRecord:
        now = self.clock()
        if not self.store.claim(rec.id, "approved", now):
            return self.store.get(rec.id)                  # another caller executes it
        actor = f"approval:{rec.id}"
        try:
            result = self.executors[rec.action](rec.params, actor)
            ok = True
        except PkiError as e:
            result, ok = {"code": e.kind.value, "detail": e.message}, False
        except Exception:  # noqa: BLE001  a bug must not leave the request "executing" for ever
            _log.exception("approval %s (%s) failed", rec.id, rec.action)
            result, ok = {"code": ErrorKind.INTERNAL.value, "detail": "the execution failed; the error was logged"}, False
        return self.store.finish(rec.id, ok, result, actor, self.clock())


# --- how lists and shows print them (CLI --json and the admin API alike) ----------------

def policy_json(p: PolicyRecord) -> dict[str, object]:
    return {"action": p.action, "description": ACTIONS[p.action], "approvals": p.approvals, "roles": list(p.roles),
            "expires_hours": p.expires_hours, "threshold": p.threshold, "profiles": list(p.profiles),
            "updated_at": rfc3339(p.updated_at) if p.updated_at else None, "updated_by": p.updated_by}


def approval_json(a: ApprovalRecord) -> dict[str, object]:
    return {"approval_id": a.id, "action": a.action, "params": a.params, "params_sha256": a.params_sha256,
            "requester": a.requester, "required": a.required, "roles": list(a.roles), "approved": a.approved,
            "state": a.state, "created_at": rfc3339(a.created_at), "expires_at": rfc3339(a.expires_at),
            "decided_at": rfc3339(a.decided_at) if a.decided_at else None, "result": a.result,
            "votes": [{"operator": v.operator, "vote": v.vote, "comment": v.comment, "at": rfc3339(v.at)}
                      for v in a.votes]}
