"""Checking an evidence bundle offline (format udun-evidence-bundle/1, see ca/bundle.py).

Pure: the zip bytes, the trust anchors and "now" come in; nothing is fetched. The
signature is re-validated at the time-stamped moment with the revocation data kept in
the bundle, so the verdict does not change when the signer's certificate later expires
or is revoked. Every problem names the file it was found in.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import x509

from pkicore import cms_view, tsp
from pkicore.clock import fixed
from pkicore.config import RECORDS_POLICY
from pkicore.cms_verify import Verifier
from pkicore.errors import PkiError
from pkicore.pathval import ChainValidator, TrustStore, load_certs

FORMAT = "udun-evidence-bundle/1"
MAX_MEMBERS = 64
MAX_TOTAL = 64 * 1024 * 1024
UNLISTED = ("manifest.json", "manifest.tst")


@dataclass
class BundleVerdict:
    """What `udun evidence verify` prints: problems (first is the headline) and facts."""

    evidence_id: str = ""
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _t(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _members(data: bytes, v: BundleVerdict) -> tuple[str, dict[str, bytes]] | None:
    """(top folder, files by name): every member must sit directly in one folder, once."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in z.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_TOTAL:
            v.problems.append(f"the bundle holds more than {MAX_MEMBERS} files or {MAX_TOTAL >> 20} MiB")
            return None
        folders = {i.filename.split("/", 1)[0] for i in infos}
        if len(folders) != 1 or any(i.filename.count("/") != 1 for i in infos):
            v.problems.append("the bundle's files must all sit in one folder named after the evidence id")
            return None
        files: dict[str, bytes] = {}
        for i in infos:
            name = i.filename.split("/", 1)[1]
            if name in files:
                v.problems.append(f"{name} appears twice in the bundle")
                return None
            files[name] = z.read(i)
        return folders.pop(), files
    except Exception as e:  # noqa: BLE001  zipfile/zlib raise many kinds on damaged archives
        v.problems.append(f"the bundle is not a readable zip file ({type(e).__name__})")
        return None


def _manifest(folder: str, files: dict[str, bytes], v: BundleVerdict) -> dict[str, Any] | None:
    raw = files.get("manifest.json")
    if raw is None:
        v.problems.append("manifest.json is missing")
        return None
    try:
        manifest = json.loads(raw)
        listed = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(listed, dict):
            raise ValueError("format")
    except (ValueError, KeyError, TypeError, RecursionError):
        v.problems.append("manifest.json was changed (it is not a udun manifest any more)")
        return None
    v.evidence_id = str(manifest.get("evidence_id", ""))
    # The manifest's own time-stamp first: a changed manifest must be named as such, not
    # as whichever file its changed line lists.
    token = files.get("manifest.tst")
    if token is None:
        v.problems.append("manifest.tst is missing")
        return None
    check = tsp.check_token(token, policy=RECORDS_POLICY)
    if not check.ok or check.info is None:
        v.problems.append(f"manifest.tst was changed or is not udun's time-stamp of a record ({check.problem})")
        return None
    if check.info.imprint != hashlib.sha256(raw).digest():
        v.problems.append("manifest.json was changed (manifest.tst time-stamps other bytes)")
        return None
    if folder != v.evidence_id:
        v.problems.append(f"the bundle's folder {folder!r} is not its evidence id")
        return None
    for name, digest in sorted(listed.items()):
        if name not in files:
            v.problems.append(f"{name} is missing")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            v.problems.append(f"{name} was changed (its SHA-256 differs from manifest.json)")
    for name in sorted(set(files) - set(listed) - set(UNLISTED)):
        v.problems.append(f"{name} was added (it is not in manifest.json)")
    return manifest


def _time_stamp(name: str, token: bytes | None, imprint: bytes, chains: ChainValidator, extra: list[bytes],
                v: BundleVerdict, changed_if_mismatch: str, policy: str | None = None) -> tsp.TokenCheck | None:
    """A token over ``imprint`` whose TSA certificate chains to the anchors at genTime."""
    if token is None:
        v.problems.append(f"{name} is missing")
        return None
    check = tsp.check_token(token, extra, policy=policy)
    if not check.ok or check.info is None or check.tsa_cert_der is None:
        v.problems.append(f"{name} was changed or is not a valid time-stamp ({check.problem})")
        return None
    if check.info.imprint != imprint or check.info.hash_name != "sha256":
        v.problems.append(f"{changed_if_mismatch} was changed (the time-stamp in {name} covers other bytes)")
        return None
    tsa_cert = x509.Certificate.load(check.tsa_cert_der)
    others = [c for c in [*check.certificates, *extra] if c != check.tsa_cert_der]
    chain = chains.validate(tsa_cert, others, check.info.gen_time)
    if not chain.ok:
        v.problems.append(f"{name}: the TSA certificate does not validate at {_t(check.info.gen_time)} "
                          f"({chain.detail})")
        return None
    return check


def verify_bundle(data: bytes, trust: list[bytes] | None, now: datetime) -> BundleVerdict:
    """Check every file, both time-stamps, and re-validate the signature at the stamped time.

    ``trust``: the anchors to check against (DER); None trusts the bundle's own root.pem
    (the verdict then says so: compare its fingerprint with your own copy).
    """
    v = BundleVerdict()
    found = _members(data, v)
    if found is None:
        return v
    folder, files = found
    if _manifest(folder, files, v) is None or v.problems:
        return v
    if trust is None:
        try:
            trust = load_certs(files["root.pem"])
        except (PkiError, KeyError):
            v.problems.append("root.pem is missing or not a certificate")
            return v
        v.facts.append("trust anchor: the bundle's own root.pem, SHA-256 fingerprint "
                       f"{hashlib.sha256(trust[0]).hexdigest()} (pass --trust to pin your own copy)")
    try:
        chain_extra = load_certs(files.get("tsa-chain.pem", b"")) + load_certs(files.get("issuing-ca.pem", b""))
    except PkiError:
        chain_extra = []
    chains = ChainValidator(TrustStore.from_certs(trust))

    if _time_stamp("manifest.tst", files.get("manifest.tst"), hashlib.sha256(files["manifest.json"]).digest(),
                   chains, chain_extra, v, "manifest.json", RECORDS_POLICY) is None:
        return v

    try:
        received = cms_view.view(files["signature.p7s"])
        stamped = cms_view.view(files["signature-t.p7s"])
    except (PkiError, KeyError):
        v.problems.append("signature.p7s or signature-t.p7s is missing or not CMS")
        return v
    signature_value = received.signers[0].signature if received.signers else b""
    stamp = _time_stamp("timestamp.tst", files.get("timestamp.tst"), tsp.signature_time_stamp_imprint(signature_value),
                        chains, chain_extra, v, "signature.p7s")
    if stamp is None or stamp.info is None:
        return v
    if files.get("signature-value.bin") != signature_value:
        v.problems.append("signature-value.bin differs from the signature in signature.p7s")
    if not stamped.signers or stamped.signers[0].signature != signature_value or \
            files["timestamp.tst"] not in tsp.unsigned_attribute_values(files["signature-t.p7s"],
                                                                        tsp.ID_AA_TIME_STAMP_TOKEN):
        v.problems.append("signature-t.p7s is not signature.p7s with timestamp.tst attached")
    at = stamp.info.gen_time
    v.facts.append(f"time-stamped at {_t(at)} by {x509.Certificate.load(stamp.tsa_cert_der or b'').subject.human_friendly}"
                   f" (serial {stamp.info.serial:x})")

    revocation = [(kind, files[f"{kind}.der"]) for kind in ("ocsp", "crl") if f"{kind}.der" in files]
    if not revocation:
        v.problems.append("ocsp.der / crl.der is missing: nothing shows the certificate was good")
        return v
    verifier = Verifier(chains, clock=fixed(at), status=lambda _cert, _issuer: revocation)
    report = verifier.verify(files["signature.p7s"], files.get("payment.json"))
    if not report.passed:
        v.problems.append(f"signature.p7s does not verify at {_t(at)}: {report.sub_indication.value if report.sub_indication else ''}"
                          f" {report.message}")
        return v
    signer = report.signer or {}
    tx = report.transaction or {}
    v.facts.append(f"signature valid at {_t(at)}: {signer.get('subject')} (serial {signer.get('serial')})")
    if report.revocation:
        v.facts.append(f"certificate status at that time: {report.revocation.get('status')} "
                       f"({report.revocation.get('source')}, thisUpdate {report.revocation.get('this_update')})")
    v.facts.append(f"payment {tx.get('tx_id')}: {tx.get('amount')} {tx.get('currency')} to "
                   f"{(tx.get('payee') or {}).get('name')}")
    not_after = datetime.fromisoformat(str(signer.get("not_after")).replace("Z", "+00:00"))
    if now > not_after:
        v.facts.append(f"the signer's certificate has expired since ({_t(not_after)}): the time-stamp proves "
                       "the signature was made while it was valid")
    try:
        answered = json.loads(files["report.json"])
        if answered.get("status") != "TOTAL_PASSED" or answered.get("evidence_id") != v.evidence_id:
            v.problems.append("report.json does not record a TOTAL_PASSED verification of this evidence id")
    except (KeyError, ValueError, AttributeError, RecursionError):
        v.problems.append("report.json is missing or not JSON")
    return v
