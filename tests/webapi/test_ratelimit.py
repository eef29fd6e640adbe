"""Rate limits and the challenge quota (issue 12, point 7): 429 problem+json with
Retry-After, per source address, per bank key, per bank's open challenges; numbers in
settings. The GCRA limiter is tested on a clock of its own; the apps on real time with
limits far below what the test sends."""
from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from helpers import bank_key, running_server


class _Clock:
    """Nanoseconds, started far out (float rounding there once shrank the burst)."""

    def __init__(self) -> None:
        self.now = 30_000_000 * 10**9

    def __call__(self) -> int:
        return self.now


def test_rates_parse_and_bad_ones_are_refused_naming_the_setting() -> None:
    from config.settings import load_settings
    from pkicore.errors import PkiError
    from pkicore.ratelimit import Rate

    assert Rate.parse("100/second", "x") == Rate(100, 1) and Rate.parse("6000/Minute", "x") == Rate(6000, 60)
    assert Rate.parse("0", "x") is None and Rate.parse("off", "x") is None
    for bad in ("fast", "0/second", "-1/second", "10/day", "10"):
        with pytest.raises(PkiError) as e:
            Rate.parse(bad, "UDUN_X")
        assert "UDUN_X" in e.value.message
        with pytest.raises(PkiError) as e:
            load_settings({"UDUN_HOME": "/tmp/udun-rate", "UDUN_RATE_LIMIT_PER_KEY": bad})
        assert e.value.kind.value == "bad-input" and "UDUN_RATE_LIMIT_PER_KEY" in e.value.message
    defaults = load_settings({"UDUN_HOME": "/tmp/udun-rate"})
    assert (defaults.rate_limit_per_address, defaults.rate_limit_per_key, defaults.challenge_quota) == \
        ("1000/second", "500/second", 10_000)


def test_the_address_a_limit_counts() -> None:
    from webapi.ratelimit import client_of

    assert client_of({"REMOTE_ADDR": "192.0.2.7"}) == "192.0.2.7"
    assert client_of({"REMOTE_ADDR": "2001:db8:1:2::5"}) == client_of({"REMOTE_ADDR": "2001:db8:1:2:ffff::1"}) \
        == "2001:db8:1:2::/64"
    # A dual-stack socket's IPv4 clients: each its own, never one shared ::ffff:0:0/64.
    assert client_of({"REMOTE_ADDR": "::ffff:192.0.2.7"}) == "192.0.2.7"
    assert client_of({"REMOTE_ADDR": "::ffff:192.0.2.8"}) == "192.0.2.8"
    assert client_of({}) == "-" and client_of({"REMOTE_ADDR": "not:an:address"}) == "not:an:address"


def test_gcra_allows_the_burst_then_the_rate() -> None:
    from pkicore.ratelimit import Limiter, Rate

    clock = _Clock()
    limiter = Limiter(Rate(5, 1), clock)
    assert [limiter.wait("a") for _ in range(5)] == [0.0] * 5
    assert limiter.wait("a") == pytest.approx(0.2)                 # the sixth: one interval to wait
    assert limiter.wait("b") == 0.0                                # another client is not held up
    clock.now += 200_000_000
    assert limiter.wait("a") == 0.0 and limiter.wait("a") > 0
    clock.now += 10 * 10**9
    assert [limiter.wait("a") for _ in range(5)] == [0.0] * 5       # a full burst again, never more
    assert limiter.wait("a") > 0
    big = Limiter(Rate(1000, 1), clock)                            # the default's burst, exactly
    assert sum(big.wait("c") == 0.0 for _ in range(1001)) == 1000


def _app(settings, ca, verifier, **limits: Any):  # type: ignore[no-untyped-def]
    from webapi import create_app

    return create_app(dataclasses.replace(settings, **limits), ca=ca, verifier=verifier)


def test_per_address_limit_answers_429_with_retry_after(settings, ca, verifier) -> None:  # type: ignore[no-untyped-def]
    app = _app(settings, ca, verifier, rate_limit_per_address="5/minute")
    here, there = app.test_client(), app.test_client()
    there.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert [here.get("/healthz").status_code for _ in range(5)] == [200] * 5
    refused = here.get("/crl/issuing-ca.crl")
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["code"] == "too-many-requests" and 1 <= int(refused.headers["Retry-After"]) <= 12
    ocsp = here.post("/ocsp", data=b"x", content_type="application/ocsp-request")        # the fast path too
    assert ocsp.status_code == 429 and ocsp.mimetype == "application/ocsp-response"
    assert ocsp.get_data() == bytes.fromhex("30030a0103") and ocsp.headers["Retry-After"]      # tryLater
    assert there.get("/healthz").status_code == 200
    v6 = [app.test_client() for _ in range(2)]
    v6[0].environ_base["REMOTE_ADDR"], v6[1].environ_base["REMOTE_ADDR"] = "2001:db8:1:2::5", "2001:db8:1:2::99"
    assert [v6[i % 2].get("/healthz").status_code for i in range(6)] == [200] * 5 + [429]     # one /64
    metrics = there.get("/metrics").get_data(as_text=True)
    assert 'route="rate-limited",status="429"' in metrics


def test_per_key_limit_counts_each_key_apart(settings, ca, verifier) -> None:  # type: ignore[no-untyped-def]
    app = _app(settings, ca, verifier, rate_limit_per_key="3/minute")
    first, second = bank_key(ca.store, ca.clock, "rate-a"), bank_key(ca.store, ca.clock, "rate-b")
    client = app.test_client()

    def challenge(key: str) -> int:
        return int(client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {key}"}).status_code)

    assert [challenge(first) for _ in range(4)] == [201, 201, 201, 429]
    assert challenge(second) == 201
    # Naming a bank's key id without its secret uses none of that bank's budget.
    forged = "_".join(second.split("_")[:2]) + "_" + "A" * 43
    assert [challenge(forged) for _ in range(3)] == [401] * 3
    assert [challenge(second) for _ in range(2)] == [201, 201]


def test_new_texts_for_one_key_id_get_few_slow_hash_checks(settings, ca, verifier) -> None:  # type: ignore[no-untyped-def]
    """A known key id with wrong secrets costs a worker at most SLOW_CHECKS scrypt runs;
    the bank whose key was verified before (cached) is not held up."""
    from ca.credentials import SLOW_CHECKS

    app = _app(settings, ca, verifier)
    real = bank_key(ca.store, ca.clock, "slow-bank", ("challenges",))
    client = app.test_client()

    def challenge(key: str) -> Any:
        return client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {key}"})

    assert challenge(real).status_code == 201                     # one check, then cached
    forged = "_".join(real.split("_")[:2]) + "_" + "B" * 43
    answers = [challenge(forged) for _ in range(SLOW_CHECKS.count)]
    assert [a.status_code for a in answers] == [401] * (SLOW_CHECKS.count - 1) + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert challenge(real).status_code == 201


def test_the_open_challenge_quota_is_per_bank(settings, ca, verifier) -> None:  # type: ignore[no-untyped-def]
    from ca.directory import CaDirectory
    from webapi import create_app

    quota = dataclasses.replace(settings, challenge_quota=3)
    app = create_app(quota, ca=CaDirectory(quota, ca.store, ca.clock), verifier=verifier)
    full, other = bank_key(ca.store, ca.clock, "quota-a"), bank_key(ca.store, ca.clock, "quota-b")
    client = app.test_client()
    made = [client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {full}"}) for _ in range(4)]
    assert [r.status_code for r in made] == [201, 201, 201, 429]
    refused = made[-1]
    assert refused.get_json()["code"] == "too-many-requests" and "UDUN_CHALLENGE_QUOTA" in refused.get_json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= settings.challenge_seconds + 1
    assert client.post("/api/v1/challenges", headers={"Authorization": f"Bearer {other}"}).status_code == 201


def test_a_real_server_takes_its_limit_from_the_environment(home) -> None:  # type: ignore[no-untyped-def]
    with running_server(home, workers=1, extra_env={"UDUN_RATE_LIMIT_PER_ADDRESS": "20/minute"}) as (base, _):
        statuses = []
        for _ in range(25):                  # running_server's start-up check used one already
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=10) as resp:
                    statuses.append(resp.status)
            except urllib.error.HTTPError as e:
                statuses.append(e.code)
                body = json.loads(e.read())
                assert e.headers["Retry-After"] and body["code"] == "too-many-requests"
    assert statuses.count(200) <= 19 and statuses[-1] == 429 and set(statuses) == {200, 429}, statuses
