"""Issue 5 acceptance 6: SIGKILL the server in the middle of a verify load; nothing a
client was told is lost, every evidence record verifies, and the audit log holds."""
from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers import PIN, running_server, sample_tx, udun

CLIENTS = 4


def test_sigkill_during_verify_load_loses_nothing(ca, home: Path, enrolled, settings, bank_key) -> None:  # type: ignore[no-untyped-def]
    from pkicore.bundle_check import verify_bundle
    from pkicore.clock import system_clock
    from signer.signing import sign_transaction

    payments = [sign_transaction(settings, "user-ec", PIN, sample_tx()) for _ in range(400)]
    received: list[str] = []          # evidence ids the clients were given
    errors: list[str] = []
    lock = threading.Lock()
    auth = {"Authorization": f"Bearer {bank_key}"}

    with running_server(home, workers=2) as (base, proc):
        def client(share: list[bytes]) -> None:
            for cms in share:
                req = urllib.request.Request(f"{base}/api/v1/verify", data=cms,
                                             headers={"Content-Type": "application/pkcs7-mime", **auth})
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        answer = json.loads(resp.read())
                except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
                    with lock:
                        errors.append(type(e).__name__)      # the server died under us: expected
                    return
                with lock:
                    if answer.get("evidence_id"):
                        received.append(answer["evidence_id"])

        threads = [threading.Thread(target=client, args=(payments[i::CLIENTS],)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(received) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)                 # master and workers, mid-load
        proc.wait()
        for t in threads:
            t.join()
    assert len(received) >= 40 and errors, (len(received), errors)
    assert len(received) < len(payments)                     # killed in the middle, not after

    with running_server(home, workers=2) as (base, _):
        for evidence_id in received:
            req = urllib.request.Request(f"{base}/api/v1/evidence/{evidence_id}",
                                         headers=auth)
            with urllib.request.urlopen(req, timeout=30) as resp:
                verdict = verify_bundle(resp.read(), ca.chain_der()[1:], system_clock())
            assert verdict.ok, (evidence_id, verdict.problems)
    audit = udun("audit", "verify")
    assert audit.returncode == 0, audit.stdout + audit.stderr
