"""Evidence bundles: one zip a third party checks with OpenSSL alone (README.txt inside).

Every file is listed with its SHA-256 in manifest.json, and manifest.json is time-stamped
by our TSA (manifest.tst), so a changed, added or removed file is found and named.
Bundle layout (format udun-evidence-bundle/1):

  README.txt           what this is and the exact openssl commands
  SHA256SUMS           `sha256sum -c` input for every file but the manifest pair
  manifest.json        evidence id, time of export, SHA-256 of every other file
  manifest.tst         RFC 3161 token over SHA-256(manifest.json), udun's records policy
  SHA256SUMS.tst       the same over SHA256SUMS (what `sha256sum -c` reads)
  payment.json         the signed bytes (RFC 8785 canonical payment)
  signature.p7s        the CMS exactly as the bank sent it
  signature-t.p7s      the same with the signature-time-stamp attribute (CAdES-T) and the CA
                       certificates of the path that the CMS lacked (unsigned, as CAdES-LT adds
                       certificate values: OpenSSL 3.0's cms -verify builds paths only from the
                       certificates inside the CMS, not from -certfile)
  signature-value.bin  the SignerInfo's signature value (what the time-stamp covers)
  timestamp.tst        the RFC 3161 time-stamp token alone
  signer.pem           the signer's certificate
  issuing-ca.pem       the CA that issued it (CA 1)
  ca-N.pem             CA N, N >= 2: only for paths with more than one CA below the root
  root.pem             the trust anchor (compare its fingerprint with your own copy)
  ca-chain.pem         every CA certificate between the signer and the root, issuing CA first:
                       the path the verdict used, whatever the CMS itself carries (the root
                       alone when the root issued the signer's certificate)
  tsa-chain.pem        TSA certificate + issuing CA
  tsa-root.pem         udun's root, only when the signer's root (root.pem) is another CA's
                       (a bank trusting several CAs): the time-stamps chain to it
  ocsp.der | crl.der   the signer's revocation data the verification used
  ca-ocsp-N.der | ca-crl-N.der
                       CA N's revocation data the verification used, N = 1 (the issuing CA:
                       for udun's own CA the root's CRL) counting up towards the root
  report.json          the verification report as answered

Records stored before the CAs' revocation data was kept (migration 0004) get ca-crl-1.der
at export from the CA's CRL history: the root CRL current when the payment was received.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import datetime

from asn1crypto import cms as asn1cms
from asn1crypto import core, x509

from ca.directory import CaDirectory
from ca.storage.evidence import EvidenceRecord, EvidenceStore
from ca.tsa import TimeStampAuthority
from pkicore import cms_view, tsp
from pkicore.oids import RECORDS_POLICY
from pkicore.bundle_check import FORMAT, ca_status_name
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError
from pkicore.names import rfc4514
from pkicore.pathval import is_self_signed, load_certs, pem_certs

_FIXED_TIME = (2000, 1, 1, 0, 0, 0)       # zip member times: the content, not the export, matters


def _pem(*ders: bytes) -> bytes:
    return pem_certs(ders)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def cert_file(i: int, length: int) -> str:
    """The bundle file holding certificate ``i`` of a path of ``length`` (signer 0, root last)."""
    if i == 0:
        return "signer.pem"
    if i == length - 1:
        return "root.pem"
    return "issuing-ca.pem" if i == 1 else f"ca-{i}.pem"


def _who(cert_der: bytes) -> tuple[str, str]:
    """(RFC 4514 subject, serial as `openssl crl -text` prints it: upper-case hex, whole octets)."""
    cert = x509.Certificate.load(cert_der)
    serial = format(cert.serial_number, "X")
    return rfc4514(cert.subject), serial.zfill(len(serial) + len(serial) % 2)


def ca_status_lines(chain: list[bytes], pieces: tuple[tuple[str, bytes], ...], t: int) -> list[str]:
    """README lines checking the status file of each CA (CA N is chain[N], its issuer chain[N+1])."""
    lines: list[str] = []
    for n, (kind, _) in enumerate(pieces, start=1):
        name = ca_status_name(kind, n)
        subject, serial = _who(chain[n])
        issuer_file, ca_file = cert_file(n + 1, len(chain)), cert_file(n, len(chain))
        if kind == "ocsp":
            lines += [
                f"   CA {n}, {ca_file} ({subject}, serial {serial}): look for \"{ca_file}: good\":",
                f"$ openssl ocsp -respin {name} -issuer {issuer_file} -cert {ca_file} -CAfile root.pem "
                f"-verify_other ca-chain.pem -attime {t}",
            ]
        else:
            lines += [
                f"   CA {n}, {ca_file} ({subject}): {name} is signed by {issuer_file}",
                "   (look for \"verify OK\"), its Last Update is before the time-stamp and its Next Update",
                f"   after it, and Serial Number {serial} is not among its Revoked Certificates:",
                f"$ openssl crl -inform DER -in {name} -CAfile {issuer_file} -noout",
                f"$ openssl crl -inform DER -in {name} -noout -text",
            ]
    return lines


def readme(rec: EvidenceRecord, gen_time: datetime, detached: bool, revocation: str, exported_at: datetime,
           chain: list[bytes] | None = None, backfilled: bool = False, tsa_root: str = "root.pem") -> str:
    """The exact commands, for this bundle (attached or detached, OCSP or CRL, each CA's status)."""
    t = _epoch(gen_time)
    chain = chain if chain is not None else load_certs(rec.chain)
    pieces = rec.ca_revocation or ()
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
        *([] if tsa_root == "root.pem" else [
            "and tsa-root.pem with your own copy of udun's root (its TSA made the time-stamps):",
            "$ openssl x509 -in tsa-root.pem -noout -fingerprint -sha256"]),
        "",
        "1. The signature over the payment (CAdES: signingCertificateV2 is checked too), with the",
        "   CA certificates of the path the verification used (ca-chain.pem):",
        f"$ openssl cms -verify -cades -binary -purpose any -inform DER -in signature-t.p7s{content} "
        f"-CAfile root.pem -certfile ca-chain.pem -attime {t} -out /dev/null",
        "",
        "2. The time-stamp covers this signature's value (signature-value.bin is the SignerInfo",
        "   signature; `openssl cms -cmsout -print -inform DER -in signature.p7s` shows it):",
        f"$ openssl ts -verify -token_in -in timestamp.tst -data signature-value.bin -CAfile {tsa_root} "
        f"-untrusted tsa-chain.pem -attime {t}",
        "",
    ]
    if revocation == "ocsp":
        lines += [
            "3. The signer's certificate was good: the OCSP response the verification used",
            "   (look for \"signer.pem: good\" and a This Update just before the time-stamp; a",
            "   \"Status times invalid\" warning only means the response is old today):",
            f"$ openssl ocsp -respin ocsp.der -issuer {cert_file(1, len(chain))} -cert signer.pem -CAfile root.pem "
            f"-verify_other ca-chain.pem -attime {t}",
        ]
    else:
        lines += [
            "3. The signer's certificate was not revoked: the CRL the verification used is signed",
            "   by the issuing CA (look for \"verify OK\": OpenSSL 3.0 exits 0 after \"verify failure\"",
            f"   too), and the signer's Serial Number {_who(chain[0])[1]} is not among its entries:",
            f"$ openssl crl -inform DER -in crl.der -CAfile {cert_file(1, len(chain))} -noout",
            "$ openssl crl -inform DER -in crl.der -noout -text",
        ]
    step = 4
    if pieces:
        lines += [
            "",
            f"{step}. The CA certificates above the signer were not revoked either: the revocation data",
            "   the verification used for each (ca-crl-N.der or ca-ocsp-N.der for CA N, 1 being the",
            "   issuing CA):",
        ]
        if backfilled:
            lines += ["   (this record predates keeping them: ca-crl-1.der is the root CRL that was current",
                      "   when the payment was received, from the CA's CRL history)"]
        lines += ca_status_lines(chain, pieces, t)
        step += 1
    lines += [
        "",
        f"{step}. Nothing in this bundle was changed: SHA256SUMS and manifest.json list the SHA-256 of",
        "   every file, and SHA256SUMS.tst and manifest.tst time-stamp them under udun's records",
        f"   policy {RECORDS_POLICY}, which udun's TSA grants to nobody else (the",
        "   -queryfile commands check that policy; both must say \"Verification: OK\"):",
        f"$ openssl ts -query -data SHA256SUMS -sha256 -tspolicy {RECORDS_POLICY} -no_nonce -out sums.tsq",
        f"$ openssl ts -verify -queryfile sums.tsq -in SHA256SUMS.tst -token_in -CAfile {tsa_root} "
        f"-untrusted tsa-chain.pem -attime {_epoch(exported_at) + 1}",
        "$ sha256sum -c SHA256SUMS",
        f"$ openssl ts -query -data manifest.json -sha256 -tspolicy {RECORDS_POLICY} -no_nonce -out manifest.tsq",
        f"$ openssl ts -verify -queryfile manifest.tsq -in manifest.tst -token_in -CAfile {tsa_root} "
        f"-untrusted tsa-chain.pem -attime {_epoch(exported_at) + 1}",
        "",
        "`udun evidence verify BUNDLE.zip` runs all of this and re-validates the signature offline.",
        "",
    ]
    return "\n".join(lines)


def export(ca: CaDirectory, tsa: TimeStampAuthority, evidence_id: str, *, bank_id: int | None) -> bytes:
    """The bundle of the evidence record ``evidence_id`` (NOT_FOUND if there is none) of the
    bank ``bank_id`` (another bank's is NOT_FOUND too); None: any bank's (operators)."""
    if not evidence_id.isascii() or len(evidence_id) > 40:
        raise PkiError(ErrorKind.NOT_FOUND, "no such evidence record")
    store = EvidenceStore(ca.store)
    rec = store.get(evidence_id, bank_id=bank_id)
    backfilled = rec.ca_revocation is None
    return build(legacy_ca_status(ca, store, rec), tsa, ca.clock(), backfilled=backfilled)


def legacy_ca_status(ca: CaDirectory, store: EvidenceStore, rec: EvidenceRecord) -> EvidenceRecord:
    """A record from before migration 0004 kept only the signer's status. For our own
    issuing CA the missing piece is the root CRL that was current at the receipt (every
    CRL is kept), so such a record still exports a bundle that verifies offline."""
    if rec.ca_revocation is not None:
        return rec
    chain = load_certs(rec.chain)
    root = ca.authority("root")
    pieces: tuple[tuple[str, bytes], ...] = ()
    if len(chain) == 3 and chain[-1] == root.cert_der and chain[1] == ca.authority("issuing").cert_der:
        der = store.crl_at(root.id, rec.received_at)
        if der is not None:
            pieces = (("crl", der),)
    return replace(rec, ca_revocation=pieces)


def _tsa_chain(tsa: TimeStampAuthority, token: tsp.TokenCheck) -> bytes:
    """The TSA certificate of the signature's time-stamp and the CA(s) that issued it."""
    tsa_cert = token.tsa_cert_der or tsa.certificate()
    cas = [c for c in token.certificates if c != tsa_cert and not is_self_signed(x509.Certificate.load(c))]
    return _pem(tsa_cert, *(cas or tsa.ca.chain_der()[:1]))


def with_certificates(cms_der: bytes, ders: list[bytes]) -> bytes:
    """The CMS with those of ``ders`` it does not carry added to its certificate set (which
    the signature does not cover); its signer infos and content stay byte for byte."""
    info = asn1cms.ContentInfo.load(cms_der)
    sd = info["content"]
    carried = [] if isinstance(sd["certificates"], core.Void) else list(sd["certificates"])
    have = {c.chosen.dump() for c in carried if c.name == "certificate"}
    missing = [d for d in dict.fromkeys(ders) if d not in have]
    if not missing:
        return cms_der
    sd["certificates"] = carried + [asn1cms.CertificateChoices(name="certificate", value=x509.Certificate.load(d))
                                    for d in missing]
    out: bytes = info.dump()
    before, after = cms_view.view(cms_der), cms_view.view(out)
    stamps = [tsp.unsigned_attribute_values(d, tsp.ID_AA_TIME_STAMP_TOKEN) for d in (cms_der, out)]
    if before.signers != after.signers or before.content != after.content or stamps[0] != stamps[1]:
        raise PkiError(ErrorKind.INTERNAL, "adding certificates to the CMS changed what it signs")
    return out


def build(rec: EvidenceRecord, tsa: TimeStampAuthority, exported_at: datetime, backfilled: bool = False) -> bytes:
    """The zip bundle for one evidence record."""
    chain = load_certs(rec.chain)                       # the validated path: signer, CAs, root
    if len(chain) < 2:
        raise PkiError(ErrorKind.INTERNAL, f"evidence {rec.id}: the stored chain has no trust anchor")
    view = cms_view.view(rec.cms)
    token = tsp.check_token(rec.time_stamp, [*chain])
    if token.info is None:                               # our own stored token: a damaged record
        raise PkiError(ErrorKind.INTERNAL, f"evidence {rec.id}: the stored time-stamp does not read "
                                           f"({token.problem})")
    pieces = rec.ca_revocation or ()
    if len(pieces) > len(chain) - 2 or any(kind not in ("ocsp", "crl") for kind, _ in pieces):
        raise PkiError(ErrorKind.INTERNAL, f"evidence {rec.id}: the stored CA revocation data does not fit "
                                           "the chain")
    revocation_name = "ocsp.der" if rec.revocation_kind == "ocsp" else "crl.der"
    files: dict[str, bytes] = {
        "payment.json": rec.content,
        "signature.p7s": rec.cms,
        "signature-t.p7s": with_certificates(rec.stamped_cms, chain[1:-1]),
        "signature-value.bin": view.signers[0].signature,
        "timestamp.tst": rec.time_stamp,
        "signer.pem": _pem(chain[0]),
        "issuing-ca.pem": _pem(chain[1]),
        "root.pem": _pem(chain[-1]),
        "ca-chain.pem": _pem(*(chain[1:-1] or chain[-1:])),
        "tsa-chain.pem": _tsa_chain(tsa, token),
        revocation_name: rec.revocation,
        "report.json": rec.report.encode(),
    }
    our_root = tsa.ca.authority("root").cert_der
    if our_root != chain[-1]:
        files["tsa-root.pem"] = _pem(our_root)
    for i in range(2, len(chain) - 1):
        files[cert_file(i, len(chain))] = _pem(chain[i])
    for n, (kind, data) in enumerate(pieces, start=1):
        files[ca_status_name(kind, n)] = data
    files["README.txt"] = readme(rec, token.info.gen_time, view.content is None, rec.revocation_kind, exported_at,
                                 chain, backfilled and bool(pieces),
                                 "tsa-root.pem" if "tsa-root.pem" in files else "root.pem").encode()
    files["SHA256SUMS"] = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                                  for name, data in sorted(files.items())).encode()
    # What `sha256sum -c` reads is stamped too: with OpenSSL alone, an unstamped SHA256SUMS
    # could be recomputed over forged files.
    files["SHA256SUMS.tst"] = tsa.stamp_record(files["SHA256SUMS"]).token
    # The TSA certificates of this bundle's time-stamps (the signature's, made when the payment
    # was verified, and the current one, which stamps the records now), named under the records
    # time-stamp: a checker accepts no other (and, where the CA's database is, only recorded ones).
    tsa_certs = {hashlib.sha256(token.tsa_cert_der or tsa.certificate()).hexdigest(),
                 hashlib.sha256(tsa.certificate()).hexdigest()}
    manifest = {
        "format": FORMAT, "evidence_id": rec.id, "exported_at": rfc3339(exported_at),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "tsa_certificates": sorted(tsa_certs),
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
