"""Issue 13 point 1: account binding. A certificate pays only from the accounts of the customer
it is bound to; a payment from any other account is TOTAL_FAILED / ACCOUNT_NOT_BOUND, and
nothing is stored but the audit entry."""
from __future__ import annotations

import json
import uuid
from typing import Any

import sqlalchemy as sa

from helpers import CUSTOMER, SoftwareKey, now, sample_tx, udun


def _account() -> str:
    return f"6217{uuid.uuid4().int % 10**15:015d}"


def _customer(ca: Any, accounts: list[str]) -> str:
    from ca.customers import Customers

    cid = f"C-{uuid.uuid4().hex[:10]}"
    Customers(ca.store, ca.clock).add(cid, "李四", accounts, actor="pytest")
    return cid


def _signed(ca: Any, customer: str | None, **changes: Any) -> tuple[bytes, Any]:
    """A payment (``changes`` to the sample) signed under a new certificate bound to ``customer``."""
    from pkicore.cms_build import sign_data
    from pkicore.x509build import build_csr, parse_name

    key = SoftwareKey()
    rec = ca.issue(build_csr(key, parse_name(f"CN=Bound {uuid.uuid4().hex[:6]},O=udun tests,C=CN")),
                   customer=customer)
    cms = sign_data(key, rec.der, ca.chain_der(), sample_tx(**changes).canonical_bytes(), signing_time=now())
    return cms, rec


def _audited(ca: Any, subject: str) -> list[dict[str, Any]]:
    """The details of the audit entries about ``subject`` (serial/tx_id of a verification)."""
    from ca.storage.schema import audit_log

    with ca.store.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.details).where(audit_log.c.subject == subject)).all()
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def _evidence_rows(ca: Any) -> int:
    from ca.storage.schema import evidence

    with ca.store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(evidence)).scalar_one())


def _verify(client: Any, cms: bytes) -> dict[str, Any]:
    resp = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert resp.status_code == 200, resp.get_data()
    return resp.get_json()  # type: ignore[no-any-return]


def test_a_payment_from_an_unbound_account_is_refused_before_any_evidence(ca: Any, client: Any) -> None:
    mine, theirs = _account(), _account()
    cid = _customer(ca, [mine])
    _customer(ca, [theirs])                                   # somebody else's account
    cms, rec = _signed(ca, cid, payer={"account": theirs, "name": "张三"})
    before = _evidence_rows(ca)
    report = _verify(client, cms)
    assert (report["status"], report["sub_indication"]) == ("TOTAL_FAILED", "ACCOUNT_NOT_BOUND")
    assert report["message"] == ("account binding: payer account ****" + theirs[-4:]
                                 + " is not bound to the signer's customer")
    assert report["evidence_id"] is None and _evidence_rows(ca) == before
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["signature"]["result"] == "passed"
    assert checks["account binding"] == {"check": "account binding", "result": "failed",
                                         "sub_indication": "ACCOUNT_NOT_BOUND",
                                         "detail": report["message"].split(": ", 1)[1]}
    (audited,) = _audited(ca, f"{rec.serial}/{report['transaction']['tx_id']}")
    assert (audited["status"], audited["sub_indication"]) == ("TOTAL_FAILED", "ACCOUNT_NOT_BOUND")

    # A certificate of the customer, from the customer's own account: passes, and says whose.
    ok = _verify(client, _signed(ca, cid, payer={"account": mine})[0])
    assert ok["status"] == "TOTAL_PASSED" and ok["evidence_id"]
    assert {"check": "account binding", "result": "passed",
            "detail": f"the payer account is customer {cid}'s"} in ok["checks"]


def test_a_certificate_bound_to_no_customer_pays_from_no_account(ca: Any, client: Any) -> None:
    cms, rec = _signed(ca, None)
    report = _verify(client, cms)
    assert (report["status"], report["sub_indication"]) == ("TOTAL_FAILED", "ACCOUNT_NOT_BOUND")
    assert report["message"] == (f"account binding: certificate {rec.serial} is bound to no customer of this CA: "
                                 "it pays from no account")


def test_removing_an_account_stops_its_payments_and_binding_later_allows_them(ca: Any, client: Any) -> None:
    from ca.customers import Customers

    customers = Customers(ca.store, ca.clock)
    account = _account()
    cid = _customer(ca, [account])
    customers.remove_account(cid, account, actor="pytest")
    cms, _ = _signed(ca, cid, payer={"account": account})
    assert _verify(client, cms)["sub_indication"] == "ACCOUNT_NOT_BOUND"
    customers.add_account(cid, account, actor="pytest")
    assert _verify(client, _signed(ca, cid, payer={"account": account})[0])["status"] == "TOTAL_PASSED"

    # A certificate issued without a customer can be bound afterwards, once.
    unbound_cms, rec = _signed(ca, None, payer={"account": account})
    customers.bind(cid, serial=rec.serial, actor="pytest")
    assert _verify(client, unbound_cms)["status"] == "TOTAL_PASSED"
    other = _customer(ca, [_account()])
    import pytest
    from pkicore.errors import ErrorKind, PkiError

    with pytest.raises(PkiError) as e:
        customers.bind(other, serial=rec.serial, actor="pytest")
    assert e.value.kind is ErrorKind.CONFLICT and cid in e.value.message
    assert customers.get(other).certificates == ()


def test_an_account_belongs_to_one_customer(ca: Any) -> None:
    """An insider cannot bind a customer's account to a second customer (and so to a
    certificate of theirs): refused, nothing changes."""
    import pytest
    from ca.customers import Customers
    from pkicore.errors import ErrorKind, PkiError

    customers = Customers(ca.store, ca.clock)
    account = _account()
    victim = _customer(ca, [account])
    attacker = _customer(ca, [])
    for attempt in (lambda: customers.add_account(attacker, account, actor="insider"),
                    lambda: customers.add(f"C-{uuid.uuid4().hex[:8]}", "王五", [account], actor="insider")):
        with pytest.raises(PkiError) as e:
            attempt()
        assert e.value.kind is ErrorKind.CONFLICT
    assert customers.get(attacker).accounts == () and customers.get(victim).accounts == (account,)
    assert customers.find(account=account)[0].id == victim


def test_the_binding_is_by_certificate_not_serial(ca: Any) -> None:
    """A certificate of another trusted CA may carry a bound certificate's serial: the
    binding is looked up by the certificate's SHA-256, so it finds nothing for it."""
    import hashlib
    from ca.storage.customers import CustomerStore

    account = _account()
    cid = _customer(ca, [account])
    _, rec = _signed(ca, cid)
    store = CustomerStore(ca.store)
    found = store.binding(hashlib.sha256(rec.der).hexdigest(), account)
    assert found is not None and (found.customer, found.account_bound, found.profile) == (cid, True, "client")
    assert store.binding(hashlib.sha256(rec.der + b"\x00").hexdigest(), account) is None


def test_binding_can_be_switched_off(ca: Any, client: Any, monkeypatch: Any, tmp_path: Any) -> None:
    """UDUN_ACCOUNT_BINDING=false: for a bank that binds accounts in its own systems."""
    from dataclasses import replace

    import pytest
    from config.settings import load_settings
    from pkicore.errors import PkiError

    env = {"UDUN_HOME": str(tmp_path)}
    assert load_settings(env).account_binding is True
    assert load_settings({**env, "UDUN_ACCOUNT_BINDING": "false"}).account_binding is False
    with pytest.raises(PkiError):
        load_settings({**env, "UDUN_ACCOUNT_BINDING": "maybe"})
    monkeypatch.setattr(ca, "settings", replace(ca.settings, account_binding=False))
    report = _verify(client, _signed(ca, None)[0])
    assert report["status"] == "TOTAL_PASSED"
    assert all(c["check"] != "account binding" for c in report["checks"])


def test_customers_through_the_cli(ca: Any) -> None:
    cid = f"C-{uuid.uuid4().hex[:8]}"
    first, second = _account(), _account()
    made = udun("customer", "add", cid, "--name", "赵六", "--account", first, "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["accounts"] == [first]
    assert udun("customer", "account-add", cid, second).returncode == 0
    taken = udun("customer", "add", f"C-{uuid.uuid4().hex[:8]}", "--name", "x", "--account", first)
    assert taken.returncode == 2 and b"[conflict]" in taken.stderr and b"Traceback" not in taken.stderr
    bad = udun("customer", "add", "C 1", "--name", "x")
    assert bad.returncode == 2 and b"customer id" in bad.stderr
    shown = json.loads(udun("customer", "show", cid, "--json").stdout)
    assert shown["accounts"] == [first, second] and shown["certificates"] == []
    found = [json.loads(line) for line in udun("customer", "list", "--account", second, "--json").stdout.splitlines()]
    assert [c["customer"] for c in found] == [cid]
    assert udun("customer", "account-remove", cid, first).returncode == 0
    assert json.loads(udun("customer", "show", cid, "--json").stdout)["accounts"] == [second]
    missing = udun("customer", "show", "C-nobody")
    assert missing.returncode == 2 and b"no customer C-nobody" in missing.stderr
    assert CUSTOMER in udun("customer", "list").stdout.decode()
