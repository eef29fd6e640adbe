"""The time-stamp authority (RFC 3161): a delegated EC key on the online token with a
timeStamping certificate from our issuing CA (made by ca.renewal); answers queries and
stamps for udun itself (signature time-stamps on verified payments, audit checkpoints).

When the key's token cannot be reached, `stamp` raises UNAVAILABLE (HTTP 503 for
/api/v1/verify) and `reply` answers PKIStatus rejection / systemFailure with a
Retry-After for the HTTP layer (503): RFC 3161 has no "try later" status of its own.
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ca.delegated import CANNOT_SIGN, Delegated, DelegatedKey
from ca.directory import CaDirectory
from keystore.token import retry_after
from pkicore import tsp
from pkicore.oids import RECORDS_POLICY
from pkicore.errors import ErrorKind, PkiError

TSA_NAME = "tsa"
_log = logging.getLogger("udun.tsa")


@dataclass(frozen=True)
class TsaReply:
    """A TimeStampResp and, when the TSA cannot sign now, the seconds to wait (HTTP 503)."""

    der: bytes
    retry_after: int | None = None


@dataclass(frozen=True)
class Stamp:
    """A time-stamp token and the certificates a verifier needs for it."""

    token: bytes
    tsa_cert_der: bytes
    chain_der: tuple[bytes, ...]        # issuing CA, root
    serial: int
    gen_time: datetime
    policy: str

    def to_json(self) -> dict[str, Any]:
        return {"gen_time": self.gen_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "serial": format(self.serial, "x"), "policy": self.policy}


class TimeStampAuthority:
    """Answers TimeStampReq messages; never raises for what a client sends."""

    def __init__(self, ca: CaDirectory) -> None:
        self.ca = ca
        self._key = DelegatedKey(ca, TSA_NAME, "TSA")
        self._factory: tuple[Delegated, tsp.TokenFactory] | None = None
        self._lock = threading.Lock()
        self._counter = 0

    @property
    def policy(self) -> str:
        return self.ca.settings.tsa_policy

    def _tokens(self) -> tuple[Delegated, tsp.TokenFactory]:
        current = self._key.current()
        made = self._factory
        if made is None or made[0] is not current:
            factory = tsp.TokenFactory(current.key, current.scheme, current.cert.dump(), self.ca.chain_der(),
                                       self.policy, accuracy_ms=self.ca.settings.tsa_accuracy_ms)
            made = self._factory = (current, factory)
        return made

    def certificate(self) -> bytes:
        """The current TSA certificate (DER)."""
        return self._tokens()[0].cert.dump()

    def _serial(self) -> int:
        """Unique without a database round trip: microseconds, process id, a per-process
        counter and random bits (RFC 3161 §2.4.2: unique for each TimeStampToken)."""
        with self._lock:
            self._counter = (self._counter + 1) & 0xFFFF
            count = self._counter
        micros = int(self.ca.clock().timestamp() * 1_000_000)
        return (micros << 64) | ((os.getpid() & 0xFFFF) << 48) | (count << 32) | secrets.randbits(32)

    def stamp(self, imprint: bytes, hash_name: str = "sha256", *, nonce: int | None = None,
              cert_req: bool = True, policy: str | None = None) -> Stamp:
        """A token over ``imprint`` (udun's own use: it raises PkiError on failure)."""
        try:
            current, factory = self._tokens()
            serial = self._serial()
            # genTime carries milliseconds (RFC 3161 §2.4.2 allows fractions); whole ones.
            now = self.ca.clock()
            gen_time = now.replace(microsecond=now.microsecond // 1000 * 1000)
            token = factory.token(hash_name=hash_name, imprint=imprint, serial=serial,
                                  gen_time=gen_time, nonce=nonce, cert_req=cert_req, policy=policy)
        except PkiError:
            raise
        except Exception as e:  # noqa: BLE001  a token failure is the CA's, reported as one kind
            raise PkiError(ErrorKind.TOKEN, f"the TSA could not sign ({type(e).__name__})") from e
        return Stamp(token, current.cert.dump(), tuple(self.ca.chain_der()), serial, gen_time, policy or self.policy)

    def stamp_record(self, data: bytes) -> Stamp:
        """udun's own records (evidence manifests, audit checkpoints): the records policy,
        which `respond` never grants, so such a token cannot be had for other bytes."""
        return self.stamp(hashlib.sha256(data).digest(), policy=RECORDS_POLICY)

    def respond(self, request_der: bytes) -> bytes:
        """A TimeStampResp for any input: refusals are PKIStatus rejection, never exceptions."""
        return self.reply(request_der).der

    def reply(self, request_der: bytes) -> TsaReply:
        """`respond`, and whether the HTTP answer is a 503 (the key's token unreachable)."""
        try:
            req = tsp.parse_request(request_der, frozenset({self.policy}))
            stamp = self.stamp(req.imprint, req.hash_name, nonce=req.nonce, cert_req=req.cert_req)
            return TsaReply(tsp.granted(stamp.token))
        except tsp.TsRefusal as e:
            return TsaReply(tsp.rejection(e.fail_info, e.text))
        except PkiError as e:
            if e.kind not in CANNOT_SIGN:
                _log.error("time-stamp failed: %s", e)
                return TsaReply(tsp.rejection("system_failure", "the time-stamp authority failed; try again"))
            if e.kind is not ErrorKind.UNAVAILABLE:
                _log.error("the TSA cannot sign: %s", e)     # an operator's fix; UNAVAILABLE heals itself
            # keystore.token logs an outage once; a line per refused request would flood.
            wait = retry_after()
            # statusString: the stable code first (webapi's problem codes), then the words.
            return TsaReply(tsp.rejection("system_failure", f"{e.kind.value}: the time-stamp authority cannot "
                                                            f"sign now; retry in {wait} s"), wait)
        except Exception:  # noqa: BLE001  RFC 3161 §2.4.2 systemFailure, never an HTTP 500
            _log.exception("time-stamp failed")
            return TsaReply(tsp.rejection("system_failure", "the time-stamp authority failed; try again"))
