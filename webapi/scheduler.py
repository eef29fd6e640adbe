"""Background work in each bank-facing worker: audit checkpoints.

Every UDUN_AUDIT_CHECKPOINT_MINUTES, time-stamp the audit log's head (ca.audit) with the
delegated TSA key. Every worker looks, at jittered moments, and signs only when the newest
checkpoint is at least that old, so one worker per interval does it; two racing workers
make two checkpoints, both valid.

CRLs and delegated certificates are not renewed here: this process has no CA key. The
CA side does it (`udun ca jobs`, or `udun ca crl --due` and `udun ca renew-delegated`
from a timer); this process reads the results from the database.
"""
from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta

from ca import audit
from ca.directory import CaDirectory
from ca.tsa import TimeStampAuthority

audit_log = logging.getLogger("udun.audit")


def start(ca: Callable[[], CaDirectory], tsa: Callable[[], TimeStampAuthority]) -> threading.Event:
    """Run in a daemon thread of this worker; set the returned event to stop it.

    python-pkcs11 serialises calls on the process's one session, so this thread and the
    request handler may both sign.
    """
    stop = threading.Event()
    threading.Thread(target=_checkpoints, args=(ca, tsa, stop), name="udun-audit-checkpoints",
                     daemon=True).start()
    return stop


def interval(ca: CaDirectory) -> timedelta:
    return timedelta(minutes=ca.settings.audit_checkpoint_minutes)


def checkpoint_due(ca: CaDirectory) -> bool:
    """No checkpoint yet, or the newest is at least one interval old."""
    last = audit.latest_checkpoint(ca)
    return last is None or ca.clock() - last.at >= interval(ca)


def checkpoint_tick(ca: CaDirectory, tsa: TimeStampAuthority) -> audit.Checkpoint | None:
    """One look: a checkpoint when one is due (and the log has moved), else None."""
    if not checkpoint_due(ca):
        return None
    done = audit.checkpoint(ca, tsa, actor="scheduler")
    return done if done.created else None


def _checkpoints(ca_of: Callable[[], CaDirectory], tsa: Callable[[], TimeStampAuthority],
                 stop: threading.Event) -> None:
    every = 60.0
    while True:
        # Look a few times per interval (at most every minute), at jittered moments so that
        # workers started together do not all look at once.
        if stop.wait(every * random.uniform(0.8, 1.2)):
            return
        try:
            ca = ca_of()
            every = min(60.0, max(5.0, interval(ca).total_seconds() / 4))
            done = checkpoint_tick(ca, tsa())
            if done is not None:
                audit_log.info("audit checkpoint %d at seq %d", done.record.id, done.record.seq)
        except Exception:  # noqa: BLE001  try again next round; never kill the worker
            audit_log.exception("the audit checkpoint failed")
