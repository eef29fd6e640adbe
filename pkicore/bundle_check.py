"""Checking an evidence bundle offline (format udun-evidence-bundle/1, see ca/bundle.py).

Pure: the zip bytes, the trust anchors and "now" come in; nothing is fetched. The
signature is re-validated at the time-stamped moment with the bundle's own chain
(ca-chain.pem: the CMS may carry the signer's certificate alone) and all the revocation
data kept in the bundle (the signer's and each CA's), so the verdict does not change when
a certificate later expires or is revoked. Every problem names the file it was found in:
a file that does not read is reported as changed, never raised.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import cms as asn1cms
from asn1crypto import core, x509

from pkicore import cms_view, der, tsp
from pkicore.clock import fixed
from pkicore.oids import RECORDS_POLICY
from pkicore.cms_verify import Verifier
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import ChainValidator, TrustStore, is_self_signed, load_certs

FORMAT = "udun-evidence-bundle/1"
MAX_MEMBERS = 64
MAX_TOTAL = 64 * 1024 * 1024
UNLISTED = ("manifest.json", "manifest.tst")
MAX_CHAIN_CERTS = 6        # CAs between signer and root; bounds path building over crafted files
MAX_TSA_CERTS = 3          # tsa-chain.pem: the TSA certificate and its CAs
_CA_STATUS = re.compile(r"ca-(ocsp|crl)-([1-9][0-9]?)\.der")
# What damaged input makes the parsers raise (asn1crypto, pkicore.der, cryptography).
_UNREADABLE = (PkiError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
               RecursionError)
# A verdict's problems are udun's own words; what a library said goes to the server log only.
log = logging.getLogger("udun.verify")


def ca_status_name(kind: str, n: int) -> str:
    """The bundle file of CA n's revocation data (1: the issuing CA; kind ocsp | crl)."""
    return f"ca-{kind}-{n}.der"


@dataclass
class BundleVerdict:
    """What `udun evidence verify` prints: problems (first is the headline) and facts."""

    evidence_id: str = ""
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    # SHA-256 of the TSA certificates whose time-stamps were checked (for a checker that can
    # also ask the CA's record: udun evidence verify where UDUN_HOME holds the CA).
    tsa_certificates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Stop(Exception):
    """A problem was recorded: the check ends there."""


@contextmanager
def _reading(v: BundleVerdict, name: str) -> Iterator[None]:
    """Library errors on ``name``'s bytes become a problem naming the file (never a crash)."""
    try:
        yield
    except _Stop:
        raise
    except _UNREADABLE as e:
        log.info("evidence bundle file %s: %s: %s", name, type(e).__name__, e)
        v.problems.append(f"{name} was changed or is damaged (it does not read)")
        raise _Stop from e


def _t(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


_LOCAL = struct.Struct("<4sHHHHHIIIHH")      # APPNOTE 4.3.7 local file header


def _tiled(data: bytes, z: zipfile.ZipFile) -> str:
    """Why the archive is not exactly its central directory's entries back to back, or "".

    Tools that stream a zip read the local entries, not the central directory: an entry
    only they would see (or a local header that disagrees with its central one) lets two
    readers see two different bundles.
    """
    pos = 0
    for i in sorted(z.infolist(), key=lambda i: i.header_offset):
        if i.header_offset != pos or pos + _LOCAL.size > len(data):
            return "it holds bytes outside its listed entries"
        sig, _ver, flags, method, _t, _d, crc, csize, usize, nlen, elen = _LOCAL.unpack_from(data, pos)
        name = data[pos + _LOCAL.size:pos + _LOCAL.size + nlen]
        if sig != b"PK\x03\x04" or flags & 0x08 or method != i.compress_type or crc != i.CRC or \
                csize != i.compress_size or usize != i.file_size or \
                name != i.orig_filename.encode("utf-8" if flags & 0x800 else "cp437", "replace"):
            return f"the local header of {i.orig_filename!r} differs from its directory entry"
        pos += _LOCAL.size + nlen + elen + csize
    if pos != z.start_dir or z.comment or data[-22:-18] != b"PK\x05\x06":     # type: ignore[attr-defined]
        return "it holds bytes outside its listed entries"
    return ""


def _members(data: bytes, v: BundleVerdict) -> tuple[str, dict[str, bytes]] | None:
    """(top folder, files by name): every member must sit directly in one folder, once,
    and the archive must be nothing but those members."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        if any(i.is_dir() or "\x00" in i.orig_filename for i in z.infolist()):
            v.problems.append("the bundle holds a folder entry or a name with a NUL byte")
            return None
        odd = _tiled(data, z)
        if odd:
            v.problems.append(f"the bundle is not a plain zip of its files ({odd})")
            return None
        infos = z.infolist()
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
        log.info("evidence bundle zip: %s: %s", type(e).__name__, e)
        v.problems.append("the bundle is not a readable zip file")
        return None


def _manifest(folder: str, files: dict[str, bytes], v: BundleVerdict) -> dict[str, Any] | None:
    raw = files.get("manifest.json")
    if raw is None:
        v.problems.append("manifest.json is missing")
        return None
    try:
        manifest = json.loads(raw)
        listed = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(listed, dict) or \
                not all(isinstance(d, str) for d in listed.values()):
            raise ValueError("format")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
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


def _certs(files: dict[str, bytes], name: str, v: BundleVerdict, one: bool = False) -> list[bytes]:
    """The certificates of a bundle file, each fully parsed (DER), before any use."""
    data = files.get(name)
    if data is None:
        v.problems.append(f"{name} is missing")
        raise _Stop
    try:
        ders = load_certs(data)
    except PkiError:
        v.problems.append(f"{name} was changed or is damaged (it is not a certificate file)")
        raise _Stop from None
    if one and len(ders) != 1:
        v.problems.append(f"{name} must hold exactly one certificate, it holds {len(ders)}")
        raise _Stop
    return ders


def _tlv(tag: int, body: bytes) -> bytes:
    return der.tlv_header(tag, len(body)) + body


def _der_form(info: asn1cms.ContentInfo) -> bytes:
    """The token encoded again in DER from its parsed parts, the certificates in the order
    they came (a re-encoding would sort them as a DER SET OF; TSAs, ours too, do not)."""
    sd = info["content"]
    certs = sd["certificates"]
    carried = b"" if isinstance(certs, core.Void) else \
        _tlv(0xA0, b"".join(c.chosen.dump() for c in certs))          # [0] IMPLICIT CertificateSet
    body = sd["version"].dump(force=True) + sd["digest_algorithms"].dump(force=True) + \
        sd["encap_content_info"].dump(force=True) + carried + sd["signer_infos"].dump(force=True)
    return _tlv(der.SEQUENCE, info["content_type"].dump(force=True) + _tlv(0xA0, _tlv(der.SEQUENCE, body)))


def _token_problem(token: bytes, tsa_cert_der: bytes, known: set[bytes]) -> str:
    """What in a token that checked out is not as udun's TSA makes it, or "".

    A token's signature does not cover its certificate set, the SignedData and SignerInfo
    versions, the digestAlgorithms set or the signer identifier (and a signer identifier
    compares names by RFC 5280 rules, which ignore case). So these are held to the exact
    bytes: DER, and every carried certificate one the bundle holds.
    """
    info = asn1cms.ContentInfo.load(token, strict=True)
    sd = info["content"]
    # Carried certificates first, by their bytes (they need no parse: each must equal one
    # the bundle holds, and those were read in full).
    for choice in sd["certificates"] if not isinstance(sd["certificates"], core.Void) else []:
        if choice.name != "certificate" or choice.chosen.dump() not in known | {tsa_cert_der}:
            return "it carries a certificate that is neither its TSA certificate nor one of the bundle's"
    if _der_form(info) != token:           # encoding everything else again parses it in full
        return "it is not in DER form"
    si = sd["signer_infos"][0]
    tsa_cert = x509.Certificate.load(tsa_cert_der)
    if sd["version"].native != "v3" or si["version"].native != "v1":
        return "its SignedData or SignerInfo version is not the one of a time-stamp token"
    if [a.dump() for a in sd["digest_algorithms"]] != [si["digest_algorithm"].dump()]:
        return "its digestAlgorithms are not the SignerInfo's"
    sid = si["sid"]
    if sid.name != "issuer_and_serial_number" or sid.chosen["issuer"].dump() != tsa_cert.issuer.dump() \
            or sid.chosen["serial_number"].native != tsa_cert.serial_number:
        return "its signer identifier is not the TSA certificate's issuer and serial number"
    if not isinstance(sd["crls"], core.Void) or not isinstance(si["unsigned_attrs"], core.Void):
        return "it carries CRLs or unsigned attributes"
    return ""


def _time_stamp(name: str, files: dict[str, bytes], imprint: bytes, chains: ChainValidator, extra: list[bytes],
                known: set[bytes], v: BundleVerdict, changed_if_mismatch: str, named: list[str],
                policy: str | None = None) -> tsp.TokenCheck:
    """A token over ``imprint`` whose TSA certificate is one ``named`` in the manifest and
    chains to the anchors at genTime."""
    token = files.get(name)
    if token is None:
        v.problems.append(f"{name} is missing")
        raise _Stop
    with _reading(v, name):
        check = tsp.check_token(token, extra, policy=policy)
        if not check.ok or check.info is None or check.tsa_cert_der is None:
            v.problems.append(f"{name} was changed or is not a valid time-stamp ({check.problem})")
            raise _Stop
        if check.info.imprint != imprint or check.info.hash_name != "sha256":
            v.problems.append(f"{changed_if_mismatch} was changed (the time-stamp in {name} covers other bytes)")
            raise _Stop
        problem = _token_problem(token, check.tsa_cert_der, known)
        if problem:
            v.problems.append(f"{name} was changed ({problem})")
            raise _Stop
        digest = hashlib.sha256(check.tsa_cert_der).hexdigest()
        if digest not in named:
            v.problems.append(f"{name} was made by a TSA certificate manifest.json does not name")
            raise _Stop
        if digest not in v.tsa_certificates:
            v.tsa_certificates.append(digest)
        tsa_cert = x509.Certificate.load(check.tsa_cert_der)
        chain = chains.validate(tsa_cert, [c for c in extra if c != check.tsa_cert_der], check.info.gen_time)
    if not chain.ok:
        v.problems.append(f"{name}: the TSA certificate does not validate at {_t(check.info.gen_time)} "
                          f"({chain.detail})")
        raise _Stop
    return check


def _revocation(files: dict[str, bytes], v: BundleVerdict) -> list[tuple[str, bytes]]:
    """The signer's revocation data, then each CA's (ca-*-N.der by N): all the bundle holds."""
    signer = [(kind, files[f"{kind}.der"]) for kind in ("ocsp", "crl") if f"{kind}.der" in files]
    if not signer:
        v.problems.append("ocsp.der / crl.der is missing: nothing shows the certificate was good")
        raise _Stop
    cas = sorted((int(m[2]), m[1], name) for name in files if (m := _CA_STATUS.fullmatch(name)))
    return signer + [(kind, files[name]) for _, kind, name in cas]


def _trust_store(trust: list[bytes], bundle_root: bool, intermediates: list[bytes], v: BundleVerdict) -> TrustStore:
    """Anchors from --trust (or root.pem), intermediates from it and from ca-chain.pem."""
    try:
        given = TrustStore.from_certs(trust)
    except PkiError:
        if not bundle_root:
            raise                     # the caller's own --trust file: an input error, not the bundle's
        v.problems.append("root.pem is not a self-signed root certificate")
        raise _Stop from None
    return TrustStore([a.dump() for a in given.anchors], [c.dump() for c in given.intermediates] + intermediates)


def verify_bundle(data: bytes, trust: list[bytes] | None, now: datetime,
                  tsa_trust: list[bytes] | None = None) -> BundleVerdict:
    """Check every file, the time-stamps, and re-validate the signature at the stamped time.

    ``trust``: the anchors for the signer's path (DER; several CAs' roots may be trusted);
    None trusts the bundle's own root.pem (the verdict then says so: compare its
    fingerprint with your own copy). ``tsa_trust``: the root of udun's TSA, the only one
    whose time-stamps make evidence; default: ``trust`` when it is a single root. With
    several roots in ``trust`` it must be given: any CA trusted for signers could otherwise
    certify a TSA of its own and stamp a forged bundle.
    """
    v = BundleVerdict()
    try:
        _verify(data, trust, now, v, tsa_trust)
    except _Stop:
        pass
    return v


def _tsa_anchors(trust: list[bytes], tsa_trust: list[bytes] | None) -> list[bytes]:
    """Exactly one root for udun's TSA: a second one would be a second TSA."""
    roots = [d for d in (tsa_trust if tsa_trust is not None else trust)
             if is_self_signed(x509.Certificate.load(d))]
    if len(roots) != 1:
        raise PkiError(ErrorKind.BAD_INPUT, f"{len(roots)} roots given for udun's TSA: name exactly one "
                                            "(--tsa-trust ROOT.pem)")
    return roots


def _verify(data: bytes, trust: list[bytes] | None, now: datetime, v: BundleVerdict,
            tsa_trust: list[bytes] | None) -> None:
    found = _members(data, v)
    if found is None:
        return
    folder, files = found
    manifest = _manifest(folder, files, v)
    if manifest is None or v.problems:
        return
    named = manifest.get("tsa_certificates")
    if not isinstance(named, list) or not named or not all(isinstance(n, str) for n in named):
        v.problems.append("manifest.json names no TSA certificate: this bundle was exported before udun named "
                          "them (ask the bank for a new export of the same evidence id)")
        raise _Stop
    # Every certificate file is read in full before anything uses it (all are covered by
    # manifest.json by now, so a damaged one is a damaged export).
    root = _certs(files, "root.pem", v, one=True)
    signer_cert = _certs(files, "signer.pem", v, one=True)[0]
    issuing = _certs(files, "issuing-ca.pem", v, one=True)[0]
    ca_chain = _certs(files, "ca-chain.pem", v)
    tsa_chain = _certs(files, "tsa-chain.pem", v)
    others = [c for name in sorted(files) if re.fullmatch(r"ca-[0-9]+\.pem", name) for c in _certs(files, name, v)]
    # The TSA's root, when the signer's is another CA's (a bank trusting several CAs).
    tsa_root = _certs(files, "tsa-root.pem", v, one=True) if "tsa-root.pem" in files else []
    bundle_root = trust is None
    if trust is None:
        tsa_trust = tsa_root or root
        trust = root + tsa_root
        for name, anchor in zip(("root.pem", "tsa-root.pem"), trust):
            v.facts.append(f"trust anchor: the bundle's own {name}, SHA-256 fingerprint "
                           f"{hashlib.sha256(anchor).hexdigest()} (pass --trust to pin your own copy)")
    # What a time-stamp token may carry besides its TSA certificate: the bundle's own
    # certificates (all read in full above) and the trust anchors.
    known = {*root, signer_cert, issuing, *ca_chain, *tsa_chain, *others, *tsa_root, *trust}
    # Old bundles list the root in ca-chain.pem too: only the CAs below it are intermediates.
    intermediates = [c for c in ca_chain if not is_self_signed(x509.Certificate.load(c))]
    for name, certs, most in (("ca-chain.pem", intermediates, MAX_CHAIN_CERTS), ("tsa-chain.pem", tsa_chain,
                                                                                  MAX_TSA_CERTS)):
        if len(certs) > most:
            v.problems.append(f"{name} holds {len(certs)} certificates, more than a udun bundle has ({most})")
            raise _Stop
    # Time-stamps count only from udun's TSA: its own root, never any CA trusted for signers.
    tsa_chains = ChainValidator(_trust_store(_tsa_anchors(trust, tsa_trust), bundle_root, [], v))
    chains = ChainValidator(_trust_store(trust, bundle_root, intermediates, v))

    _time_stamp("manifest.tst", files, hashlib.sha256(files["manifest.json"]).digest(), tsa_chains, tsa_chain,
                known, v, "manifest.json", named, RECORDS_POLICY)
    if "SHA256SUMS.tst" in files:         # bundles since issue 9: what `sha256sum -c` reads is stamped too
        _time_stamp("SHA256SUMS.tst", files, hashlib.sha256(files.get("SHA256SUMS", b"")).digest(), tsa_chains,
                    tsa_chain, known, v, "SHA256SUMS", named, RECORDS_POLICY)

    with _reading(v, "signature.p7s"):
        received = cms_view.view(files.get("signature.p7s") or b"")
    with _reading(v, "signature-t.p7s"):
        stamped = cms_view.view(files.get("signature-t.p7s") or b"")
    signature_value = received.signers[0].signature if received.signers else b""
    stamp = _time_stamp("timestamp.tst", files, tsp.signature_time_stamp_imprint(signature_value),
                        tsa_chains, tsa_chain, known, v, "signature.p7s", named)
    assert stamp.info is not None and stamp.tsa_cert_der is not None
    if files.get("signature-value.bin") != signature_value:
        v.problems.append("signature-value.bin differs from the signature in signature.p7s")
    with _reading(v, "signature-t.p7s"):
        attached = tsp.unsigned_attribute_values(files["signature-t.p7s"], tsp.ID_AA_TIME_STAMP_TOKEN)
    if not stamped.signers or stamped.signers[0].signature != signature_value or files["timestamp.tst"] not in attached:
        v.problems.append("signature-t.p7s is not signature.p7s with timestamp.tst attached")
    at = stamp.info.gen_time
    v.facts.append(f"time-stamped at {_t(at)} by {x509.Certificate.load(stamp.tsa_cert_der).subject.human_friendly}"
                   f" (serial {stamp.info.serial:x})")

    revocation = _revocation(files, v)
    if intermediates and len(revocation) == 1:
        v.problems.append("ca-crl-1.der is missing: this bundle was exported before udun kept each CA's status "
                          "(ask the bank for a new export of the same evidence id)")
        raise _Stop
    verifier = Verifier(chains, clock=fixed(at), status=lambda _cert, _issuer: revocation)
    with _reading(v, "signature.p7s"):
        report = verifier.verify(files["signature.p7s"], files.get("payment.json"))
    if not report.passed:
        v.problems.append(f"signature.p7s does not verify at {_t(at)}: {report.sub_indication.value if report.sub_indication else ''}"
                          f" {report.message}")
        return
    if report.chain_der[:1] != (signer_cert,):
        v.problems.append("signer.pem is not the certificate that made signature.p7s")
    elif len(report.chain_der) > 1 and report.chain_der[1] != issuing:
        v.problems.append("issuing-ca.pem is not the CA that issued the signer's certificate")
    signer = report.signer or {}
    tx = report.transaction or {}
    v.facts.append(f"signature valid at {_t(at)}: {signer.get('subject')} (serial {signer.get('serial')})")
    for st in report.statuses or ([report.revocation] if report.revocation else []):
        who = "certificate" if st.get("position") in (None, "end-entity") else f"CA {st.get('certificate')}"
        v.facts.append(f"{who} status at that time: {st.get('status')} "
                       f"({st.get('source')}, thisUpdate {st.get('this_update')})")
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
