"""Evidence bundles: one zip a third party checks with OpenSSL alone (README.txt inside).

Every file is listed with its SHA-256 in manifest.json, and manifest.json is time-stamped
by our TSA (manifest.tst), so a changed, added or removed file is found and named.
Bundle layout (format udun-evidence-bundle/1):

  README.txt           what this is and the exact openssl commands
  SHA256SUMS           `sha256sum -c` input for every file but the manifest pair
  manifest.json        evidence id, time of export, SHA-256 of every other file
  manifest.tst         RFC 3161 token over SHA-256(manifest.json)
  payment.json         the signed bytes (RFC 8785 canonical payment)
  signature.p7s        the CMS exactly as the bank sent it
  signature-t.p7s      the same with the signature-time-stamp attribute (CAdES-T)
  signature-value.bin  the SignerInfo's signature value (what the time-stamp covers)
  timestamp.tst        the RFC 3161 time-stamp token alone
  signer.pem           the signer's certificate
  issuing-ca.pem       the CA that issued it
  root.pem             the trust anchor (compare its fingerprint with your own copy)
  ca-chain.pem         issuing CA + root
  tsa-chain.pem        TSA certificate + issuing CA
  ocsp.der | crl.der   the revocation data the verification used
  report.json          the verification report as answered
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime

from ca.authority import CertificateAuthority
from ca.evidence_store import EvidenceRecord, EvidenceStore
from ca.tsa import TimeStampAuthority
from pkicore import cms_view, tsp
from pkicore.bundle_check import FORMAT
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import load_certs, pem_certs

_FIXED_TIME = (2000, 1, 1, 0, 0, 0)       # zip member times: the content, not the export, matters


def _pem(*ders: bytes) -> bytes:
    return pem_certs(ders)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def readme(rec: EvidenceRecord, gen_time: datetime, detached: bool, revocation: str, exported_at: datetime) -> str:
    """The exact commands, for this bundle (attached or detached, OCSP or CRL)."""
    t = _epoch(gen_time)
    content = " -content payment.json" if detached else ""
    lines = [
        f"udun evidence bundle {rec.id}",
        "",
        f"Payment {rec.tx_id} signed by certificate serial {rec.signer_serial}, verified by udun at",
        f"{rec.received_at:%Y-%m-%d %H:%M:%S}Z and time-stamped at {gen_time:%Y-%m-%d %H:%M:%S}Z "
        f"(Unix time {t}).",
        "Every check below is made at that time-stamped moment (-attime), so it still holds after",
        "the signer's certificate has expired or was revoked later.",
        "",
        "First compare root.pem with your own copy of the CA root:",
        "$ openssl x509 -in root.pem -noout -fingerprint -sha256",
        "",
        "1. The signature over the payment (CAdES: signingCertificateV2 is checked too):",
        f"$ openssl cms -verify -cades -binary -purpose any -inform DER -in signature-t.p7s{content} "
        f"-CAfile root.pem -attime {t} -out /dev/null",
        "",
        "2. The time-stamp covers this signature's value (signature-value.bin is the SignerInfo",
        "   signature; `openssl cms -cmsout -print -inform DER -in signature.p7s` shows it):",
        f"$ openssl ts -verify -token_in -in timestamp.tst -data signature-value.bin -CAfile root.pem "
        f"-untrusted tsa-chain.pem -attime {t}",
        "",
    ]
    if revocation == "ocsp":
        lines += [
            "3. The signer's certificate was good: the OCSP response the verification used",
            "   (look for \"signer.pem: good\" and a This Update just before the time-stamp; a",
            "   \"Status times invalid\" warning only means the response is old today):",
            f"$ openssl ocsp -respin ocsp.der -issuer issuing-ca.pem -cert signer.pem -CAfile root.pem "
            f"-verify_other issuing-ca.pem -attime {t}",
        ]
    else:
        lines += [
            "3. The signer's certificate was not revoked: the CRL the verification used is signed",
            "   by the issuing CA, and the signer's serial is not among its entries:",
            "$ openssl crl -inform DER -in crl.der -CAfile ca-chain.pem -noout",
            "$ openssl crl -inform DER -in crl.der -noout -text",
        ]
    lines += [
        "",
        "4. Nothing in this bundle was changed: SHA256SUMS and manifest.json list the SHA-256 of",
        "   every file, and manifest.tst (a time-stamp under udun's records policy, which the TSA",
        "   grants to nobody else) time-stamps manifest.json:",
        "$ sha256sum -c SHA256SUMS",
        f"$ openssl ts -verify -token_in -in manifest.tst -data manifest.json -CAfile root.pem "
        f"-untrusted tsa-chain.pem -attime {_epoch(exported_at) + 1}",
        "",
        "`udun evidence verify BUNDLE.zip` runs all of this and re-validates the signature offline.",
        "",
    ]
    return "\n".join(lines)


def export(ca: CertificateAuthority, tsa: TimeStampAuthority, evidence_id: str) -> bytes:
    """The bundle of the evidence record ``evidence_id`` (NOT_FOUND if there is none)."""
    if not evidence_id.isascii() or len(evidence_id) > 40:
        raise PkiError(ErrorKind.NOT_FOUND, "no such evidence record")
    return build(EvidenceStore(ca.store).get(evidence_id), tsa, ca.clock())


def build(rec: EvidenceRecord, tsa: TimeStampAuthority, exported_at: datetime) -> bytes:
    """The zip bundle for one evidence record."""
    chain = load_certs(rec.chain)                       # signer, issuing CA, root
    view = cms_view.view(rec.cms)
    token = tsp.check_token(rec.time_stamp, [*chain])
    if token.info is None:                               # our own stored token: a damaged record
        raise PkiError(ErrorKind.INTERNAL, f"evidence {rec.id}: the stored time-stamp does not read "
                                           f"({token.problem})")
    revocation_name = "ocsp.der" if rec.revocation_kind == "ocsp" else "crl.der"
    files: dict[str, bytes] = {
        "payment.json": rec.content,
        "signature.p7s": rec.cms,
        "signature-t.p7s": rec.stamped_cms,
        "signature-value.bin": view.signers[0].signature,
        "timestamp.tst": rec.time_stamp,
        "signer.pem": _pem(chain[0]),
        "issuing-ca.pem": _pem(chain[1]),
        "root.pem": _pem(chain[-1]),
        "ca-chain.pem": _pem(*chain[1:]),
        "tsa-chain.pem": _pem(tsa.certificate(), chain[1]) if token.tsa_cert_der is None
        else _pem(token.tsa_cert_der, chain[1]),
        revocation_name: rec.revocation,
        "report.json": rec.report.encode(),
    }
    files["README.txt"] = readme(rec, token.info.gen_time, view.content is None, rec.revocation_kind, exported_at).encode()
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                  for name, data in sorted(files.items())).encode()
    manifest = {
        "format": FORMAT, "evidence_id": rec.id, "exported_at": exported_at.isoformat().replace("+00:00", "Z"),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    files["manifest.tst"] = tsa.stamp_record(files["manifest.json"]).token
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ["README.txt", "manifest.json", "manifest.tst", *sorted(n for n in files
                                                                           if n not in ("README.txt", "manifest.json", "manifest.tst"))]:
            info = zipfile.ZipInfo(f"{rec.id}/{name}", _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])
    return out.getvalue()
