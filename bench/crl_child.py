"""Build and sign the issuing CA's CRL once in a process of its own, for its peak RSS.

Run by bench/crl.py as `python bench/crl_child.py OUT.der` with the bench's UDUN_HOME and
UDUN_CA_PIN in the environment (set before any udun import: the PKCS#11 library reads
SOFTHSM2_CONF once per process). Prints one line `UDUN_CRL_RESULT {json}` on stdout.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)   # KiB on Linux


def main(argv: list[str]) -> int:
    import os

    if len(argv) != 1 or "UDUN_HOME" not in os.environ:
        print("usage: UDUN_HOME=... crl_child.py OUT.der", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    from ca.authority import CertificateAuthority
    from ca.revocation import Revocation
    from keystore import token
    from config.settings import load_settings

    ca = CertificateAuthority.open(load_settings(), migrate_schema=False)
    try:
        ca.issuer()   # log in to the CA token before the clock starts
        revocation = Revocation(ca)
        start_rss = _maxrss_kib()
        t1 = time.perf_counter()
        rec = revocation.publish("issuing")
        seconds = time.perf_counter() - t1
        maxrss = _maxrss_kib()
        Path(argv[0]).write_bytes(rec.der)
    finally:
        token.close_all()
    print("UDUN_CRL_RESULT " + json.dumps({
        "seconds": seconds, "startup_seconds": t1 - t0, "maxrss_kib": maxrss, "start_rss_kib": start_rss,
        "entries": rec.entries, "number": rec.number, "bytes": len(rec.der),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
