"""The bank-facing API's app factory (Flask tutorial model): configuration, services, blueprints.

This process holds no CA key and no CA PIN (DESIGN.md: split by security context): it reads
the CA's certificates, statuses and CRLs from the database and signs only with the delegated
OCSP and TSA keys on the online token. Issuance lives in adminapi (`udun serve-admin`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Flask

from ca import bundle as bundles
from ca.banks import Banks
from ca.delegates import screened
from ca.directory import CaDirectory
from ca.evidence import EvidenceService
from ca.ocsp import Responder, status_source
from ca.revfetch import HttpStatus, first_of
from ca.tsa import TimeStampAuthority
from config.settings import Settings, load_settings
from pkicore.cms_verify import Verifier
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import ChainValidator, TrustStore, load_certs
from pkicore.ratelimit import Limiter, Rate
from webapi import problems, scheduler
from webapi.observability import Observed, configure_logging, tag_flask_route, watch_pool
from webapi.auth import deny_undeclared
from webapi.ocsp_wsgi import OcspFastPath
from webapi.ratelimit import RateLimited
from webapi.tsa_wsgi import TsaFastPath

MAX_BODY = 1024 * 1024


@dataclass
class Services:
    """What views call; built once per worker process (after fork)."""

    settings: Settings
    verifier: Verifier
    ca: CaDirectory | None
    _responder: Responder | None = None
    _tsa: TimeStampAuthority | None = None
    _evidence: EvidenceService | None = None
    _banks: Banks | None = None
    key_rate: Rate | None = None                  # UDUN_RATE_LIMIT_PER_KEY, parsed once
    _key_limiter: Limiter | None = None

    def __post_init__(self) -> None:
        self.key_rate = Rate.parse(self.settings.rate_limit_per_key, "UDUN_RATE_LIMIT_PER_KEY")
        self._key_limiter = Limiter(self.key_rate) if self.key_rate else None

    def key_wait(self, key_id: str) -> float:
        """Seconds a bank key must wait (UDUN_RATE_LIMIT_PER_KEY), 0.0 when it may go now."""
        return self._key_limiter.wait(key_id) if self._key_limiter is not None else 0.0

    def _ca(self) -> CaDirectory:
        if self.ca is None:
            raise PkiError(ErrorKind.NOT_INITIALISED, "this server has no CA")
        return self.ca

    def responder(self) -> Responder:
        if self._responder is None:
            self._responder = Responder(self._ca())
        return self._responder

    def tsa(self) -> TimeStampAuthority:
        if self._tsa is None:
            self._tsa = TimeStampAuthority(self._ca())
        return self._tsa

    def evidence(self) -> EvidenceService:
        if self._evidence is None:
            self._evidence = EvidenceService(self._ca(), self.verifier, self.tsa())
        return self._evidence

    def banks(self) -> Banks:
        """The bank keys (one per worker: it caches which key texts passed the slow hash)."""
        if self._banks is None:
            ca = self._ca()
            self._banks = Banks(ca.store, ca.clock)
        return self._banks

    def bundle(self, evidence_id: str, bank_id: int) -> bytes:
        """The zip bundle of one of the bank's evidence records."""
        return bundles.export(self._ca(), self.tsa(), evidence_id, bank_id=bank_id)


def trust_store(settings: Settings, ca: CaDirectory | None, trust_file: str | None) -> TrustStore:
    """UDUN_TRUST_FILE if set, else our own CA chain from the database."""
    if trust_file:
        try:
            with open(trust_file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise PkiError(ErrorKind.BAD_INPUT, f"UDUN_TRUST_FILE {trust_file}: {e.strerror}") from e
        return TrustStore.from_certs(load_certs(data))
    assert ca is not None
    return TrustStore.from_certs(ca.chain_der())


def create_app(settings: Settings | None = None, *, verifier: Verifier | None = None,
               ca: CaDirectory | None = None, trust_file: str | None = None,
               schedule_checkpoints: bool = False) -> Flask:
    """Build the API. Arguments override the environment (tests inject them)."""
    settings = settings or load_settings()
    trust_file = trust_file or (str(settings.trust_file) if settings.trust_file else None)
    if ca is None:
        ca = CaDirectory.open(settings, migrate_schema=False)
    responder = Responder(ca)
    if verifier is None:
        # Our own CA's certificates in-process; other trusted CAs' from the URLs they name
        # (an OCSP answer from a delegated responder of ours that the CA never made is dropped).
        source = first_of(status_source(responder), screened(ca, HttpStatus(ca.clock)))
        verifier = Verifier(ChainValidator(trust_store(settings, ca, trust_file)), status=source,
                            signing_window=timedelta(minutes=settings.signing_window_minutes))

    configure_logging(settings)
    app = Flask("udun")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["JSON_AS_ASCII"] = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["udun"] = Services(settings, verifier, ca, _responder=responder)
    problems.register(app)
    app.before_request(tag_flask_route)            # app-wide: the route label of every Flask request
    app.before_request(deny_undeclared)
    watch_pool(ca.store.engine)

    from webapi.views import apidoc, certificates, evidence, health, status, verify

    app.register_blueprint(health.bp)
    app.register_blueprint(verify.bp)
    app.register_blueprint(status.bp)
    app.register_blueprint(evidence.bp)
    app.register_blueprint(certificates.bp)
    app.register_blueprint(apidoc.bp)
    services = app.extensions["udun"]
    app.wsgi_app = OcspFastPath(app.wsgi_app, services.responder)  # type: ignore[method-assign]
    app.wsgi_app = TsaFastPath(app.wsgi_app, services.tsa)  # type: ignore[method-assign]
    # Before anything is parsed, the fast paths too; inside Observed, so refusals are counted.
    app.wsgi_app = RateLimited(  # type: ignore[method-assign]
        app.wsgi_app, Rate.parse(settings.rate_limit_per_address, "UDUN_RATE_LIMIT_PER_ADDRESS"))
    # Outermost, around the fast paths too: one id, count and log line for every request.
    app.wsgi_app = Observed(app.wsgi_app)  # type: ignore[method-assign]
    if schedule_checkpoints:
        scheduler.start(services._ca, services.tsa)
    return app
