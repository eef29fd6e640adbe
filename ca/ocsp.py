"""The OCSP responder (RFC 6960): the delegated responder key on the online token, answers
from the store, pre-signed answers cached until shortly before their nextUpdate. It needs
no CA key: the issuing CA's certificate and every status come from the database.

When the responder key's token cannot be reached, an answer that needs signing is the
unsigned OCSPResponse tryLater (RFC 6960 §2.3: "the service exists but is temporarily
unable to respond"), sent with HTTP 200 like every OCSPResponse (Appendix A.1 knows no
other status, and OpenSSL's client drops the body of a non-200 answer); pre-signed
cached answers are still served.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator, Sequence

from asn1crypto import x509

from ca.delegated import CANNOT_SIGN, Delegated, DelegatedKey
from ca.directory import CaDirectory
from keystore.token import retry_after
from pkicore import ocsp as ocspmod
from pkicore.errors import ErrorKind, PkiError
from pkicore.ocsp import Answer, CertQuery, OcspRefusal
from pkicore.pathstatus import StatusSource

CACHE_MARGIN = timedelta(minutes=5)     # re-sign a cached answer this long before its nextUpdate
BATCH_MAX = 32                          # nonced answers signed ahead in one turn of serve-ocsp's loop
RESPONDER_NAME = "ocsp"


@dataclass(frozen=True)
class _Staged:
    """An answer ready to be signed: its ResponseData and what the result records."""

    factory: ocspmod.ResponseFactory
    data: bytes
    now: datetime
    next_update: datetime
    cacheable: bool


@dataclass(frozen=True)
class OcspResult:
    """What the HTTP layer sends: the DER and, for cacheable answers, until when; for a
    tryLater, the seconds after which the token is looked for again (Retry-After)."""

    der: bytes
    next_update: datetime | None
    this_update: datetime | None
    retry_after: int | None = None


class Responder:
    """Answers OCSP requests about certificates of our issuing CA."""

    def __init__(self, ca: CaDirectory) -> None:
        self.ca = ca
        self._delegated = DelegatedKey(ca, RESPONDER_NAME, "OCSP responder")
        self._issuing: x509.Certificate | None = None
        # Pre-signed answers for issued certificates only, by the full CertID, least recently
        # used out: unknown serials are never kept (a client asking random serials must not
        # grow a worker's memory), and at most ocsp_cache_size of each map.
        self._cache: OrderedDict[tuple[str, bytes, bytes, int], OcspResult] = OrderedDict()
        self._cache_version = -1
        self._requests: OrderedDict[bytes, OcspResult] = OrderedDict()   # the same nonce-less request bytes
        self._cache_size = ca.settings.ocsp_cache_size
        self._hashes: dict[str, tuple[bytes, bytes]] = {}
        self._issuing_der = b""
        # The answer factory of the current responder key (its constant DER encoded once);
        # made again when DelegatedKey hands out another Delegated (renewal, token back).
        self._factory: tuple[Delegated, ocspmod.ResponseFactory] | None = None
        self._prepared: dict[bytes, OcspResult] = {}      # batch(): answers made ahead, by request
        self._lock = threading.Lock()

    def responder(self) -> Delegated:
        """The responder key and certificate (renewed by `udun ca renew-delegated`)."""
        return self._delegated.current()

    def issuing(self) -> x509.Certificate:
        if self._issuing is None:
            self._issuing_der = self.ca.authority("issuing").cert_der
            self._issuing = x509.Certificate.load(self._issuing_der)
        return self._issuing

    def _answers(self, r: Delegated) -> ocspmod.ResponseFactory:
        made = self._factory
        if made is None or made[0] is not r:
            self.issuing()
            made = self._factory = (r, ocspmod.ResponseFactory(r.key, r.scheme, r.cert.dump(), [self._issuing_der]))
        return made[1]

    # --- answering -----------------------------------------------------------------

    def respond(self, request_der: bytes) -> OcspResult:
        """An OCSPResponse for any input: errors become OCSP error statuses, never exceptions."""
        try:
            prepared = self._prepared.pop(request_der, None) if self._prepared else None
            if prepared is not None:
                return prepared
            hit = self._by_request(request_der)
            if hit is not None:
                return hit
            req = ocspmod.parse_request(request_der)
            result = self._respond(req)
            if result.next_update is not None:            # cacheable: remember it by its request too
                with self._lock:
                    _put(self._requests, request_der, result, self._cache_size)
            return result
        except OcspRefusal as e:
            return OcspResult(ocspmod.refusal(e.status), None, None)
        except PkiError as e:
            log = logging.getLogger("udun.ocsp")
            if e.kind not in CANNOT_SIGN:
                log.error("OCSP responder failed: %s", e)
                return OcspResult(ocspmod.refusal("internal_error"), None, None)
            # The responder key cannot sign now: its token is away (UNAVAILABLE: keystore.token
            # logs the outage once, not once a request), or its PIN, key or record need an operator.
            if e.kind is not ErrorKind.UNAVAILABLE:
                log.error("the OCSP responder cannot sign: %s", e)
            return OcspResult(ocspmod.refusal("try_later"), None, None, retry_after())
        except Exception:  # noqa: BLE001  RFC 6960 §2.3: internalError, never an HTTP 500
            logging.getLogger("udun.ocsp").exception("OCSP responder failed")
            return OcspResult(ocspmod.refusal("internal_error"), None, None)

    def _respond(self, req: ocspmod.ParsedRequest) -> OcspResult:
        if req.nonce is None:
            hit = self._cached(req.queries[0])
            if hit is not None:
                return hit
        staged = self._stage(req)
        return self._finish(req, staged, staged.factory.signed(staged.data))

    def _stage(self, req: ocspmod.ParsedRequest) -> _Staged:
        """The status looked up and the ResponseData made: everything but the signature."""
        issuing = self.issuing()
        issuing_id = self.ca.authority("issuing").id
        (q,) = req.queries                                # one per request (pkicore.ocsp)
        name_hash, key_hash = self._issuer_hashes(issuing, q.hash_name)
        if (q.issuer_name_hash, q.issuer_key_hash) != (name_hash, key_hash):
            raise OcspRefusal("unauthorized", "not a certificate of our issuing CA")
        answer = self._status(q, issuing_id)
        factory = self._answers(self.responder())
        now = self.ca.clock().replace(microsecond=0)
        next_update = now + timedelta(minutes=self.ca.settings.ocsp_minutes)
        data = factory.to_be_signed(answer, req.nonce, this_update=now, next_update=next_update, produced_at=now)
        return _Staged(factory, data, now, next_update, req.nonce is None and answer.status != "unknown")

    def _finish(self, req: ocspmod.ParsedRequest, staged: _Staged, der: bytes) -> OcspResult:
        """The result of a staged answer signed as ``der``; cached when it may be."""
        result = OcspResult(der, staged.next_update if staged.cacheable else None, staged.now)
        if staged.cacheable:
            with self._lock:
                _put(self._cache, self._key(req.queries[0]), result, self._cache_size)
        return result

    # --- several requests at once (udun serve-ocsp) ------------------------------------

    @contextlib.contextmanager
    def batch(self, requests: Sequence[bytes]) -> Iterator[None]:
        """Within the block, ``respond`` hands out answers to the nonced requests among
        ``requests`` made together: all parsed, all statuses read, then all signed in a row.

        Why (issue 11): the front reads several requests in one turn of its loop, and the
        token signature took about twice as long between other work as in a row (~100 against
        ~50 µs: its code and the token's data out of the CPU caches). In process ~100 -> ~85 µs
        a nonced answer for four at once; with the front's turns, ocsp_front_nonce_c8 4,628 ->
        6,420 resp/s (make bench). Anything that fails here (a refusal, the token away) is
        left to ``respond``, which answers it on its own as before.
        """
        # At most BATCH_MAX ahead: the turn's other answers (cached ones too) wait for these.
        self._prepared = self._prepare(requests[:BATCH_MAX]) if len(requests) > 1 else {}
        try:
            yield
        finally:
            self._prepared = {}

    def _prepare(self, requests: Sequence[bytes]) -> dict[bytes, OcspResult]:
        staged: list[tuple[bytes, ocspmod.ParsedRequest, _Staged]] = []
        with self._lock:
            cached = {der for der in requests if der in self._requests}
        for der in dict.fromkeys(requests):               # a repeated request: answered once here
            if der in cached:                             # pre-signed: respond() finds it unparsed
                continue
            try:
                req = ocspmod.parse_request(der)
                if req.nonce is not None:                 # the others are pre-signed and cached
                    staged.append((der, req, self._stage(req)))
            except Exception:  # noqa: BLE001  respond() answers it (refusal, tryLater, internalError)
                continue
        if len(staged) < 2:
            return {}
        out: dict[bytes, OcspResult] = {}
        for der, req, st in staged:
            try:
                out[der] = self._finish(req, st, st.factory.signed(st.data))
            except Exception:  # noqa: BLE001  the token went away: respond() answers the rest
                break
        return out

    def _issuer_hashes(self, issuing: x509.Certificate, hash_name: str) -> tuple[bytes, bytes]:
        """The issuing CA's CertID hashes (loaded once per responder), computed once per hash algorithm."""
        hashes = self._hashes.get(hash_name)
        if hashes is None:
            hashes = self._hashes[hash_name] = ocspmod.issuer_hashes(issuing, hash_name)
        return hashes

    def _status(self, q: CertQuery, issuing_id: int) -> Answer:
        row = self.ca.store.status_of(format(q.serial, "x")) if q.serial > 0 else None
        if row is None:
            return Answer(q, "unknown")
        authority_id, state, status, revoked_at, reason = row
        if authority_id != issuing_id or state != "issued":
            return Answer(q, "unknown")
        if status == "good":
            return Answer(q, "good")
        return Answer(q, "revoked", revoked_at, reason)

    @staticmethod
    def _key(q: CertQuery) -> tuple[str, bytes, bytes, int]:
        return (q.hash_name, q.issuer_name_hash, q.issuer_key_hash, q.serial)     # the whole CertID

    def _current_version(self) -> None:
        """Drop every pre-signed answer if a status changed anywhere since (any process)."""
        version = self.ca.store.counter("status_version")
        with self._lock:
            if version != self._cache_version:
                self._cache.clear()
                self._requests.clear()
                self._cache_version = version

    def _by_request(self, request_der: bytes) -> OcspResult | None:
        """Byte-identical nonce-less requests (what a bank's client repeats) skip parsing."""
        with self._lock:
            known = request_der in self._requests
        if not known:
            return None
        self._current_version()
        with self._lock:
            hit = self._requests.get(request_der)
            if hit is not None:
                self._requests.move_to_end(request_der)
        if hit is None or hit.next_update is None or hit.next_update - self.ca.clock() < CACHE_MARGIN:
            return None
        return hit

    def _cached(self, q: CertQuery) -> OcspResult | None:
        """A pre-signed answer, unless a status changed anywhere since (any process)."""
        self._current_version()
        with self._lock:
            hit = self._cache.get(self._key(q))
            if hit is not None:
                self._cache.move_to_end(self._key(q))
        if hit is None or hit.next_update is None or hit.next_update - self.ca.clock() < CACHE_MARGIN:
            return None
        return hit


def _put(cache: OrderedDict[Any, OcspResult], key: Any, value: OcspResult, size: int) -> None:
    """Insert into an LRU map of at most ``size`` entries (the caller holds the lock)."""
    if size <= 0:
        return
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


class _RootCrl:
    """The root's current CRL (an ARL: the root certifies only CAs), re-read from the store
    when a quarter of its validity is left, or a status changed anywhere."""

    def __init__(self, ca: CaDirectory) -> None:
        self.ca = ca
        self.root_der = ca.authority("root").cert_der
        self._der = b""
        self._refresh_at: datetime | None = None
        self._version = -1
        self._lock = threading.Lock()

    def der(self) -> bytes:
        version = self.ca.store.counter("status_version")
        with self._lock:
            if self._refresh_at is not None and self.ca.clock() < self._refresh_at and version == self._version:
                return self._der
        rec = self.ca.latest_crl("root")      # published by the CA side (`udun ca crl --due`)
        with self._lock:
            self._der, self._version = rec.der, version
            # Re-read a quarter before its nextUpdate (the CA side publishes then), and at
            # most every 30 s after that if the CA side is late.
            self._refresh_at = max(rec.next_update - (rec.next_update - rec.this_update) / 4,
                                   self.ca.clock() + timedelta(seconds=30))
        return rec.der


def status_source(responder: Responder, cache_size: int = 10_000) -> StatusSource:
    """A verifier's status source for our own CA, in-process (no HTTP round trip): the
    issuing CA's certificates from this responder, the issuing CA itself from the root's
    CRL. Other certificates get nothing here (see ca.revfetch for those).

    The request for a certificate never changes, so it is built once per certificate.
    """
    requests: dict[tuple[bytes, bytes], bytes] = {}
    issuing_der = responder.ca.authority("issuing").cert_der
    root_crl = _RootCrl(responder.ca)

    def source(cert_der: bytes, issuer_der: bytes) -> list[tuple[str, bytes]]:
        if issuer_der == root_crl.root_der:
            return [("crl", root_crl.der())]
        if issuer_der != issuing_der:
            return []
        request = requests.get((cert_der, issuer_der))
        if request is None:
            request = ocspmod.build_request(x509.Certificate.load(cert_der), x509.Certificate.load(issuer_der))
            if len(requests) >= cache_size:
                requests.clear()
            requests[(cert_der, issuer_der)] = request
        return [("ocsp", responder.respond(request).der)]
    return source
