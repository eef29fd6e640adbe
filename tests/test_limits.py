"""Issue 13 point 2: transaction limits (交易限额) per payment and per day, per currency; the
day's amount reserved with the evidence record, so concurrent payments on two `udun serve`
processes never pass the daily limit together."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import SoftwareKey, now, sample_tx, udun, verify_at_once_on_two_servers


def _account() -> str:
    return f"6216{uuid.uuid4().int % 10**15:015d}"


class Payer:
    """A customer with one account, a certificate bound to it and its software key."""

    def __init__(self, ca: Any, per_payment: str | None = None, per_day: str | None = None) -> None:
        from ca.customers import Customers
        from ca.limits import Limit, parse_amount
        from ca.storage.limits import LimitStore
        from pkicore.x509build import build_csr, parse_name

        self.ca, self.account, self.id = ca, _account(), f"C-{uuid.uuid4().hex[:10]}"
        Customers(ca.store, ca.clock).add(self.id, "周九", [self.account], actor="pytest")
        if per_payment or per_day:
            LimitStore(ca.store).put(Limit("customer", self.id, "CNY", parse_amount(per_payment, "p"),
                                           parse_amount(per_day, "d")), ca.clock(), "pytest")
        self.key = SoftwareKey()
        self.cert = ca.issue(build_csr(self.key, parse_name(f"CN=Limits {self.id},O=udun tests,C=CN")),
                             customer=self.id).der

    def pays(self, amount: str, currency: str = "CNY") -> bytes:
        from pkicore.cms_build import sign_data

        tx = sample_tx(amount=amount, currency=currency, payer={"account": self.account})
        return sign_data(self.key, self.cert, self.ca.chain_der(), tx.canonical_bytes(), signing_time=now())


def _verify(client: Any, cms: bytes) -> dict[str, Any]:
    resp = client.post("/api/v1/verify", data=cms, content_type="application/pkcs7-mime")
    assert resp.status_code == 200, resp.get_data()
    return resp.get_json()  # type: ignore[no-any-return]


def _today(ca: Any) -> str:
    from ca.limits import day_of

    return day_of(ca.clock(), ca.settings.limit_timezone)


def _usage(ca: Any, customer: str) -> list[tuple[str, str, int, int]]:
    from ca.storage.limits import LimitStore

    return LimitStore(ca.store).usage(customer)


def test_the_third_of_three_payments_passes_the_daily_limit(ca: Any, client: Any) -> None:
    payer = Payer(ca, per_day="3000.00")
    sent = [payer.pays("1200.00") for _ in range(2)]
    first, second = (_verify(client, cms) for cms in sent)
    assert first["status"] == second["status"] == "TOTAL_PASSED"
    day = _today(ca)
    assert {"check": "limits", "result": "passed",
            "detail": f"within the limits: per payment 500,000.00 CNY (profile client); per day 3,000.00 CNY "
                      f"(customer {payer.id}), reserved on {day}"} in first["checks"]
    third = _verify(client, payer.pays("1200.00"))
    assert (third["status"], third["sub_indication"], third["evidence_id"]) == ("TOTAL_FAILED", "LIMIT_EXCEEDED", None)
    assert third["message"] == (f"limits: the daily limit is 3,000.00 CNY (customer {payer.id}); 600.00 CNY is left "
                                f"for {day}, this payment is 1,200.00 CNY")
    assert _usage(ca, payer.id) == [(day, "CNY", 240_000, 2)]
    # What is left still fits.
    assert _verify(client, payer.pays("600.00"))["status"] == "TOTAL_PASSED"
    assert _verify(client, payer.pays("0.01"))["sub_indication"] == "LIMIT_EXCEEDED"
    assert _usage(ca, payer.id) == [(day, "CNY", 300_000, 3)]
    # A payment sent again when the day is full is a replay, not over the limit.
    again = _verify(client, sent[1])
    assert (again["sub_indication"], again["first_evidence_id"]) == ("REPLAYED", second["evidence_id"])
    assert all(c["check"] != "limits" or c["result"] == "passed" for c in again["checks"])


@pytest.fixture()
def no_otp(ca: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """UDUN_OTP_ABOVE=none for the in-process API: these payments are about limits alone."""
    from dataclasses import replace

    monkeypatch.setattr(ca, "settings", replace(ca.settings, otp_above=()))


def test_the_per_payment_limit_and_a_currency_without_limits(ca: Any, client: Any, no_otp: None) -> None:
    payer = Payer(ca)                                   # the client profile's defaults
    huge = _verify(client, payer.pays("999999999999999.99"))
    assert (huge["status"], huge["sub_indication"]) == ("TOTAL_FAILED", "LIMIT_EXCEEDED")
    assert huge["message"] == ("limits: the per-payment limit is 500,000.00 CNY (profile client); this payment is "
                               "999,999,999,999,999.99 CNY")
    assert _verify(client, payer.pays("500000.00"))["status"] == "TOTAL_PASSED"
    usd = _verify(client, payer.pays("10.00", "USD"))
    assert (usd["status"], usd["sub_indication"]) == ("TOTAL_FAILED", "LIMIT_EXCEEDED")
    assert usd["message"] == "limits: no limit is set for USD payments (profile or customer): USD is not paid in"
    assert _usage(ca, payer.id) == [(_today(ca), "CNY", 50_000_000, 1)]


def test_the_day_is_the_calendar_day_in_the_limits_time_zone() -> None:
    from ca.limits import day_of

    # 16:30 UTC is half past midnight the next day in Shanghai (UTC+8).
    assert day_of(datetime(2026, 12, 4, 16, 30, tzinfo=timezone.utc), "Asia/Shanghai") == "2026-12-05"
    assert day_of(datetime(2026, 12, 4, 15, 59, tzinfo=timezone.utc), "Asia/Shanghai") == "2026-12-04"
    assert day_of(datetime(2026, 12, 4, 16, 30, tzinfo=timezone.utc), "UTC") == "2026-12-04"


def test_twenty_payments_on_two_servers_at_once_never_pass_the_daily_limit(ca: Any, settings: Any,
                                                                          bank_key: str) -> None:
    """14 payments of 700.00 fit into 10,000.00 (9,800.00), the 15th would not: whichever 14
    arrive first pass, on whichever of the two `udun serve` processes, the other 6 are
    LIMIT_EXCEEDED, and the day's sum is never above the limit."""
    payer = Payer(ca, per_day="10000.00")
    answers = verify_at_once_on_two_servers(settings.home, bank_key, [payer.pays("700.00") for _ in range(20)])
    verdicts = sorted((a["status"], a["sub_indication"]) for a in answers)
    assert verdicts == [("TOTAL_FAILED", "LIMIT_EXCEEDED")] * 6 + [("TOTAL_PASSED", None)] * 14, verdicts
    assert all(a["evidence_id"] for a in answers if a["status"] == "TOTAL_PASSED")
    assert _usage(ca, payer.id) == [(_today(ca), "CNY", 980_000, 14)]
    from ca.storage.schema import evidence

    ids = [a["evidence_id"] for a in answers if a["evidence_id"]]
    with ca.store.engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(evidence).where(evidence.c.id.in_(ids))).scalar()
    assert stored == 14


def test_limits_through_the_cli(ca: Any) -> None:
    payer = Payer(ca)
    done = udun("limits", "set", "--customer", payer.id, "--per-payment", "2000", "--per-day", "5000.50")
    assert done.returncode == 0, done.stderr
    listed = [json.loads(line) for line in udun("limits", "list", "--customer", payer.id, "--json").stdout.splitlines()]
    assert [(x["per_payment"], x["per_day"]) for x in listed] == [("2000.00", "5000.50")]
    profile = [json.loads(line) for line in udun("limits", "list", "--profile", "client", "--json").stdout.splitlines()]
    assert ("CNY", "500000.00", "1000000.00") in [(x["currency"], x["per_payment"], x["per_day"]) for x in profile]
    for bad in (("--customer", payer.id, "--per-payment", "1.234"), ("--customer", payer.id, "--per-day", "-5"),
                ("--customer", "C-nobody", "--per-day", "5"), ("--customer", payer.id, "--currency", "XXX",
                                                               "--per-day", "5"),
                ("--customer", payer.id, "--per-payment", "10", "--per-day", "5"), ("--per-day", "5",)):
        refused = udun("limits", "set", *bad)
        assert refused.returncode == 2 and b"Traceback" not in refused.stderr, (bad, refused.stderr)
    assert udun("limits", "remove", "--customer", payer.id).returncode == 0
    assert udun("limits", "list", "--customer", payer.id, "--json").stdout == b""
    assert udun("limits", "remove", "--customer", payer.id).returncode == 2
    usage = udun("limits", "usage", "--customer", payer.id, "--json")
    assert usage.returncode == 0 and usage.stdout == b""


@pytest.fixture(scope="module")
def staff(admin_app: Any) -> dict[str, dict[str, str]]:
    ops = admin_app.extensions["udun-admin"]["operators"]
    out = {}
    for who, role in (("maker", "operator"), ("checker", "operator"), ("admin", "admin"), ("admin2", "admin")):
        name = f"lim-{who}-{uuid.uuid4().hex[:6]}"
        ops.add(name, role, actor="pytest")
        out[who] = {"Authorization": f"Bearer {ops.issue_token(name, actor='pytest').text}"}
    return out


def test_a_raise_waits_for_a_second_operator_a_cut_does_not(admin_app: Any, ca: Any, client: Any,
                                                           staff: dict[str, dict[str, str]], no_otp: None) -> None:
    admin = admin_app.test_client()
    payer = Payer(ca)
    cut = admin.post("/api/v1/limits", headers=staff["maker"], json={
        "scope": "customer", "subject": payer.id, "currency": "CNY", "per_payment": "100.00"})
    assert cut.status_code == 200 and cut.get_json()["result"]["per_payment"] == "100.00"
    assert _verify(client, payer.pays("100.01"))["sub_indication"] == "LIMIT_EXCEEDED"
    # Lifting that cut again (a fraud desk's, the customer's own) is a raise: one operator cannot.
    for lift in (admin.delete(f"/api/v1/limits/customer/{payer.id}/CNY", headers=staff["maker"]),
                 admin.post("/api/v1/limits", headers=staff["maker"], json={
                     "scope": "customer", "subject": payer.id, "currency": "CNY", "per_payment": "400000.00"})):
        assert lift.status_code == 202, lift.get_json()
        admin.post(f"/api/v1/approvals/{lift.get_json()['approval']['approval_id']}/reject", headers=staff["maker"])
    assert _verify(client, payer.pays("100.01"))["sub_indication"] == "LIMIT_EXCEEDED"

    raised = admin.post("/api/v1/limits", headers=staff["maker"], json={
        "scope": "customer", "subject": payer.id, "currency": "CNY", "per_payment": "800000.00",
        "per_day": "2000000.00"})
    assert raised.status_code == 202 and raised.get_json()["approval"]["action"] == "limit-raise"
    approval = raised.get_json()["approval"]
    own = admin.post(f"/api/v1/approvals/{approval['approval_id']}/approve", headers=staff["maker"],
                     json={"params_sha256": approval["params_sha256"]})
    assert own.status_code == 403
    assert _verify(client, payer.pays("600000.00"))["sub_indication"] == "LIMIT_EXCEEDED"    # not yet
    done = admin.post(f"/api/v1/approvals/{approval['approval_id']}/approve", headers=staff["checker"],
                      json={"params_sha256": approval["params_sha256"]})
    assert done.status_code == 200 and done.get_json()["state"] == "executed", done.get_json()
    assert _verify(client, payer.pays("600000.00"))["status"] == "TOTAL_PASSED"

    # A profile's limits are an admin's; raising them waits for another admin or operator.
    refused = admin.post("/api/v1/limits", headers=staff["maker"], json={
        "scope": "profile", "subject": "client", "currency": "CNY", "per_payment": "1.00", "per_day": "1.00"})
    assert refused.status_code == 403
    usd = admin.post("/api/v1/limits", headers=staff["admin"], json={
        "scope": "profile", "subject": "client", "currency": "USD", "per_payment": "1000.00", "per_day": "5000.00"})
    assert usd.status_code == 202          # nothing was allowed in USD: any limit opens it
    admin.post(f"/api/v1/approvals/{usd.get_json()['approval']['approval_id']}/reject", headers=staff["admin"])
    bad = admin.post("/api/v1/limits", headers=staff["maker"], json={"subject": payer.id, "per_day": "ten"})
    assert bad.status_code == 400 and bad.get_json()["code"] == "bad-input"
    usage = admin.get(f"/api/v1/limits/usage?customer={payer.id}", headers=staff["checker"]).get_json()
    assert usage["items"] == [{"day": _today(ca), "currency": "CNY", "used": "600000.00", "payments": 1}]
    gone = admin.delete(f"/api/v1/limits/customer/{payer.id}/CNY", headers=staff["maker"])
    assert gone.status_code == 200
    assert _verify(client, payer.pays("600000.00"))["sub_indication"] == "LIMIT_EXCEEDED"   # the profile's again


def test_reservations_at_once_without_the_read_ahead_stay_within_the_limit(ca: Any) -> None:
    """The reservation alone decides (the verify API's read ahead only saves work): twenty
    transactions reserving 700.00 at the same moment against 10,000.00 — 14 commit, 6 are
    refused, the day holds 9,800.00."""
    import threading

    from ca.limits import Effective
    from ca.storage.limits import OverLimit, Reservation, reserve

    payer = Payer(ca, per_day="10000.00")
    day = _today(ca)
    r = Reservation(payer.id, "CNY", day, 70_000, Effective(None, 1_000_000, "-", f"customer {payer.id}"))
    start = threading.Barrier(20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        db = ca.store.raw
        start.wait()
        try:
            with db.transaction() as cur:
                reserve(db, cur, r)
            result = "reserved"
        except OverLimit:
            result = "refused"
        finally:
            db.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused"] * 6 + ["reserved"] * 14
    assert _usage(ca, payer.id) == [(day, "CNY", 980_000, 14)]
