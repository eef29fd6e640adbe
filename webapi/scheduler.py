"""Background work in each server worker.

CRLs: every few minutes, publish a new CRL for each CA whose current one has less than a
quarter of its validity left (RFC 5280 §5.1.2.5: a new CRL is issued before nextUpdate).
Status changes publish at once anyway.

Audit checkpoints: every UDUN_AUDIT_CHECKPOINT_MINUTES, time-stamp the audit log's head
(ca.audit). Every worker looks, at jittered moments, and signs only when the newest
checkpoint is at least that old, so one worker per interval does it; two racing workers
make two checkpoints, both valid.
"""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta

from ca import audit
from ca.authority import CertificateAuthority
from ca.revocation import Revocation
from ca.tsa import TimeStampAuthority

log = logging.getLogger("udun.crl")
audit_log = logging.getLogger("udun.audit")


def start(revocation: Callable[[], Revocation], every_seconds: float = 300.0, *,
          tsa: Callable[[], TimeStampAuthority] | None = None, checkpoints: bool = True) -> threading.Event:
    """Run in daemon threads of this worker; set the returned event to stop them.

    ``tsa``: the worker's TimeStampAuthority (default: one of the scheduler's own).
    python-pkcs11 serialises calls on the process's one session, so these threads and
    the request handler may all sign.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_seconds):
            for which in ("issuing", "root"):
                try:
                    revocation().current(which)
                except Exception:  # noqa: BLE001  try again next round; never kill the worker
                    log.exception("publishing the %s CRL failed", which)

    threading.Thread(target=loop, name="udun-crl-scheduler", daemon=True).start()
    if checkpoints:
        threading.Thread(target=_checkpoints, args=(revocation, tsa or _own_tsa(revocation), stop),
                         name="udun-audit-checkpoints", daemon=True).start()
    return stop


def _own_tsa(revocation: Callable[[], Revocation]) -> Callable[[], TimeStampAuthority]:
    made: list[TimeStampAuthority] = []

    def get() -> TimeStampAuthority:
        if not made:
            made.append(TimeStampAuthority(revocation().ca))
        return made[0]
    return get


def interval(ca: CertificateAuthority) -> timedelta:
    return timedelta(minutes=ca.settings.audit_checkpoint_minutes)


def checkpoint_due(ca: CertificateAuthority) -> bool:
    """No checkpoint yet, or the newest is at least one interval old."""
    last = audit.latest_checkpoint(ca)
    return last is None or ca.clock() - last.at >= interval(ca)


def checkpoint_tick(ca: CertificateAuthority, tsa: TimeStampAuthority) -> audit.Checkpoint | None:
    """One look: a checkpoint when one is due (and the log has moved), else None."""
    if not checkpoint_due(ca):
        return None
    done = audit.checkpoint(ca, tsa, actor="scheduler")
    return done if done.created else None


def _checkpoints(revocation: Callable[[], Revocation], tsa: Callable[[], TimeStampAuthority],
                 stop: threading.Event) -> None:
    every = 60.0
    while True:
        # Look a few times per interval (at most every minute), at jittered moments so that
        # workers started together do not all look at once.
        if stop.wait(every * random.uniform(0.8, 1.2)):
            return
        try:
            ca = revocation().ca
            every = min(60.0, max(5.0, interval(ca).total_seconds() / 4))
            done = checkpoint_tick(ca, tsa())
            if done is not None:
                audit_log.info("audit checkpoint %d at seq %d", done.record.id, done.record.seq)
        except Exception:  # noqa: BLE001  try again next round; never kill the worker
            audit_log.exception("the audit checkpoint failed")
