"""Keeps CRLs fresh on an idle server: every few minutes, publish a new CRL for each CA
whose current one has less than a quarter of its validity left (RFC 5280 §5.1.2.5:
a new CRL is issued before nextUpdate). Status changes publish at once anyway.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from ca.revocation import Revocation

log = logging.getLogger("udun.crl")


def start(revocation: Callable[[], Revocation], every_seconds: float = 300.0) -> threading.Event:
    """Run in a daemon thread of this worker; set the returned event to stop it.

    python-pkcs11 serialises calls on the process's one session, so this thread and the
    request handler may both sign.
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
    return stop
