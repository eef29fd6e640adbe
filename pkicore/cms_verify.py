"""Verifying a signed payment: CMS SignedData (RFC 5652), CAdES-BES, our transaction.

Built for speed: the CMS is read with a minimal DER reader (pkicore.cms_view), parsed
signer certificates and public keys are cached, and chains are validated once per
certificate (pkicore.pathval). The result is always a Report; only input that is not CMS
at all raises PkiError(BAD_INPUT).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization

from pkicore import der, oids, sigverify
from pkicore import tx as txmod
from pkicore.cms_view import (DIGESTS, ID_CMS_ALGORITHM_PROTECTION, ID_CONTENT_TYPE, ID_DATA,
                              ID_MESSAGE_DIGEST, ID_SIGNING_CERTIFICATE_V2, ID_SIGNING_TIME, SIGNATURES,
                              SignerView, view)
from pkicore.der import DerError
from pkicore.errors import PkiError
from pkicore.clock import Clock, rfc3339, system_clock
from pkicore.pathval import ChainValidator, PathCert, check_period
from pkicore.report import Check, Report, Sub, conclude
from pkicore.pathstatus import PathStatus, StatusCache, StatusInfo, StatusSource

_DOCUMENT_SIGNING_OK = {"document_signing", oids.ID_KP_DOCUMENT_SIGNING, "any_extended_key_usage"}
# A report carries udun's own words; what a library said goes to the server log only.
log = logging.getLogger("udun.verify")
# What parsing damaged certificates makes asn1crypto and cryptography raise.
_UNREADABLE = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


@dataclass(frozen=True)
class SignerCert:
    """A parsed certificate and what verification needs from it (cached per DER)."""

    asn1: x509.Certificate
    der: bytes
    sha256: bytes
    public_key: Any
    identity: dict[str, Any]
    issuer_der: bytes
    serial: int
    ski: bytes | None
    key_usage: frozenset[str]
    ext_key_usage: frozenset[str] | None
    period: PathCert


def _parse_cert(der_bytes: bytes) -> SignerCert:
    asn1 = x509.Certificate.load(der_bytes)
    c = cx509.load_der_x509_certificate(der_bytes)
    ku = asn1.key_usage_value
    eku = asn1.extended_key_usage_value
    identity = {
        "subject": c.subject.rfc4514_string(),
        "issuer": c.issuer.rfc4514_string(),
        "serial": format(c.serial_number, "x"),
        "not_before": rfc3339(c.not_valid_before_utc),
        "not_after": rfc3339(c.not_valid_after_utc),
        "certificate_sha256": hashlib.sha256(der_bytes).hexdigest(),
    }
    return SignerCert(
        asn1=asn1,
        der=der_bytes,
        sha256=hashlib.sha256(der_bytes).digest(),
        public_key=serialization.load_der_public_key(asn1.public_key.dump()),
        identity=identity,
        issuer_der=asn1.issuer.dump(),
        serial=asn1.serial_number,
        ski=asn1.key_identifier,
        key_usage=frozenset(ku.native) if ku is not None else frozenset(),
        ext_key_usage=frozenset(eku.native) if eku is not None else None,
        period=PathCert(c.subject.rfc4514_string(), c.not_valid_before_utc, c.not_valid_after_utc),
    )


class _CertCache:
    """Parsed certificates by DER (bounded, least recently used out)."""

    def __init__(self, size: int = 4096) -> None:   # signer certificates <= 16 KiB each
        self._items: OrderedDict[bytes, SignerCert] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, der_bytes: bytes) -> SignerCert:
        with self._lock:
            hit = self._items.get(der_bytes)
            if hit is not None:
                return hit
        parsed = _parse_cert(der_bytes)
        with self._lock:
            self._items[der_bytes] = parsed
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return parsed


_NULL = b"\x05\x00"


def _params_absent_or_null(params: bytes | None) -> bool:
    return params is None or params == _NULL


@dataclass(frozen=True)
class _CertId:
    """What a SignerIdentifier can name a certificate by."""

    serial: int
    issuer_der: bytes
    ski: bytes | None


class _IdCache:
    """Identifiers of every certificate seen, by the certificate's SHA-256: any request may
    carry certificates, so only small tuples are kept, never the certificates."""

    def __init__(self, size: int = 20_000) -> None:
        self._items: OrderedDict[bytes, _CertId] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, der_bytes: bytes) -> _CertId:
        key = hashlib.sha256(der_bytes).digest()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        cert = x509.Certificate.load(der_bytes)      # lazy: only the fields read are parsed
        ident = _CertId(cert.serial_number, cert["tbs_certificate"]["issuer"].dump(), cert.key_identifier)
        with self._lock:
            self._items[key] = ident
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return ident


_SUBS = {
    sigverify.Failure.INVALID: Sub.SIG_CRYPTO_FAILURE,
    sigverify.Failure.KEY_MISMATCH: Sub.SIG_CRYPTO_FAILURE,
    sigverify.Failure.MALFORMED: Sub.FORMAT_FAILURE,
    sigverify.Failure.UNSUPPORTED: Sub.CRYPTO_CONSTRAINTS_FAILURE,
}


def _verify_signature(cert: SignerCert, s: SignerView, digest_name: str,
                      data: bytes) -> tuple[str, Sub] | None:
    """None when the signature verifies, else (why, sub-indication); the check itself is
    pkicore.sigverify's, the one for every signature udun verifies."""
    known = SIGNATURES.get(s.signature_oid)
    if known is None:
        return "unsupported signature algorithm", Sub.CRYPTO_CONSTRAINTS_FAILURE
    _kind, implied = known
    if implied is not None and implied != digest_name:
        # RFC 5754 §3: the signature's hash is the SignerInfo's digest algorithm.
        return f"signature hash {implied} differs from digestAlgorithm {digest_name}", Sub.FORMAT_FAILURE
    try:
        alg = sigverify.cached_identifier(s.signature_algorithm, digest_name)
        if alg.kind == "pss" and (alg.hash_name != digest_name or alg.mgf_hash not in DIGESTS.values()):
            # RFC 4056 §2: the PSS hash is the digestAlgorithm; MGF1's hash too must be one we accept.
            return (f"RSA-PSS over {alg.hash_name} / MGF1 {alg.mgf_hash} with digestAlgorithm {digest_name}",
                    Sub.CRYPTO_CONSTRAINTS_FAILURE)
        sigverify.verify(cert.public_key, s.signature, data, alg)
    except sigverify.SignatureError as e:
        if e.failure is sigverify.Failure.INVALID:
            return "the signature does not verify with the signer's public key", Sub.SIG_CRYPTO_FAILURE
        return e.problem, _SUBS[e.failure]
    except (KeyError, ValueError, TypeError) as e:
        log.info("signature algorithm of the signer %s: %s: %s", cert.identity["subject"], type(e).__name__, e)
        return "malformed signature algorithm identifier (RFC 5652 §5.3)", Sub.FORMAT_FAILURE
    return None


class _BadCertificate(Exception):
    """A certificate of the CMS that does not parse; the message is the report's."""


class _Checks:
    """The list of checks a verification makes, in order."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def ok(self, name: str, detail: str = "") -> None:
        self.items.append(Check(name, True, detail))

    def fail(self, name: str, detail: str, sub: Sub | None) -> None:
        self.items.append(Check(name, False, detail, sub))


class Verifier:
    """Verifies signed payments against one set of trust anchors.

    Time: the signer's signingTime is a claim, not a proof (udun's own time-stamp is only
    made once a payment is accepted). With a ``signing_window`` (the API's), a claim
    further than that from the verifier's clock is refused first. Otherwise the
    certificate must be valid at that claimed time (else TOTAL_FAILED EXPIRED or
    NOT_YET_VALID: the signer says it signed outside the validity period), the claim
    must not lie in the future, and the whole chain must be valid *now*, at the
    verifier's clock (else INDETERMINATE OUT_OF_BOUNDS_NO_POE: without a proof of
    existence an expired certificate's signature cannot be placed in its validity).
    """

    MAX_CERTS = 10                 # a payment CMS carries the signer and its CA chain
    MAX_CERT_BYTES = 16 * 1024
    FUTURE_SKEW = timedelta(minutes=5)

    def __init__(self, chains: ChainValidator, clock: Clock = system_clock,
                 status: StatusSource | None = None, signing_window: timedelta | None = None) -> None:
        self.chains = chains
        self.clock = clock
        self.status = status
        # A payment must be signed close to now (a bank's freshness rule; None: no window).
        self.signing_window = signing_window
        self._certs = _CertCache()
        self._statuses = StatusCache()
        self._ids = _IdCache()

    def verify(self, cms_der: bytes, content: bytes | None = None) -> Report:
        """Verify; raises PkiError(BAD_INPUT) only if ``cms_der`` is not CMS."""
        cms = view(cms_der)
        checks = _Checks()
        try:
            return self._verify(cms.econtent_type, cms.content, cms.certificates, cms.signers, content, checks)
        except PkiError:
            raise
        except DerError as e:   # udun's own DER reader: its words name what is wrong
            checks.fail("structure", f"malformed CMS: {e}"[:200], Sub.FORMAT_FAILURE)
            return conclude(checks.items)
        except Exception as e:  # noqa: BLE001  anything malformed deeper down is a report, never a 500
            log.info("malformed CMS: %s: %s", type(e).__name__, e)
            checks.fail("structure", "malformed CMS: a field inside it does not read", Sub.FORMAT_FAILURE)
            return conclude(checks.items)

    def _verify(self, econtent_type: bytes, attached: bytes | None, certs_der: tuple[bytes, ...],
                signers: tuple[SignerView, ...], external: bytes | None, c: _Checks) -> Report:
        now = self.clock()
        if len(signers) != 1:
            c.fail("structure", f"expected exactly one signer, found {len(signers)}", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        s = signers[0]
        if econtent_type != ID_DATA:
            c.fail("structure", "the encapsulated content type is not id-data", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        if len(certs_der) > self.MAX_CERTS or any(len(d) > self.MAX_CERT_BYTES for d in certs_der):
            c.fail("structure", f"at most {self.MAX_CERTS} certificates of at most {self.MAX_CERT_BYTES} bytes",
                   Sub.FORMAT_FAILURE)
            return conclude(c.items)
        if s.signed_attrs is None:
            c.fail("signed attributes", "missing (CAdES-BES requires them)", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        if s.duplicate_attribute:
            c.fail("signed attributes", "an attribute appears twice (RFC 5652 §5.3)", Sub.FORMAT_FAILURE)

        # The content: attached, or handed in for a detached signature.
        if attached is not None:
            content = attached
            if external is not None and external != attached:
                c.fail("content", "the content given differs from the attached content", Sub.HASH_FAILURE)
        elif external is not None:
            content = external
        else:
            c.fail("content", "detached signature and no content given", Sub.SIGNED_DATA_NOT_FOUND)
            return conclude(c.items)

        def single(oid: bytes, name: str) -> tuple[bytes, der.Tlv] | None:
            values = s.attributes.get(oid)
            if values is None:
                return None
            if len(values) != 1:
                c.fail("signed attributes", f"{name} must have exactly one value", Sub.FORMAT_FAILURE)
                return None
            return values[0], der.top(values[0])

        ct = single(ID_CONTENT_TYPE, "content-type")
        if ct is None or ct[1].tag != der.OID or der.contents(*ct) != econtent_type:
            c.fail("content type", "content-type attribute missing or not matching", Sub.FORMAT_FAILURE)

        digest_name = DIGESTS.get(s.digest_oid)
        if digest_name is None or not _params_absent_or_null(s.digest_params):
            c.fail("message digest", "unsupported digest algorithm or parameters", Sub.FORMAT_FAILURE)
            return conclude(c.items)
        md = single(ID_MESSAGE_DIGEST, "message-digest")
        content_signed = False
        if md is None or md[1].tag != der.OCTET_STRING:
            c.fail("message digest", "message-digest attribute missing", Sub.FORMAT_FAILURE)
        elif hashlib.new(digest_name, content).digest() != der.contents(*md):
            c.fail("message digest", "the content does not match the signed digest", Sub.HASH_FAILURE)
        else:
            content_signed = True
            c.ok("message digest", digest_name)

        scv2 = single(ID_SIGNING_CERTIFICATE_V2, "signingCertificateV2")
        scv2_ref = _signing_certificate_ref(scv2) if scv2 is not None else None
        try:
            signer = self._find_signer(s, certs_der, scv2_ref)
        except _BadCertificate as e:
            c.fail("signer certificate", str(e), Sub.FORMAT_FAILURE)
            return conclude(c.items)
        if signer is None:
            c.fail("signer certificate", "the signer's certificate is not in the CMS", Sub.NO_SIGNING_CERTIFICATE_FOUND)
            return conclude(c.items)

        failed = _verify_signature(signer, s, digest_name, der.as_set(s.signed_attrs))
        if failed:
            c.fail("signature", *failed)
        else:
            c.ok("signature", SIGNATURES[s.signature_oid][0])

        self._check_algorithm_protection(single(ID_CMS_ALGORITHM_PROTECTION, "cmsAlgorithmProtection"), s, c)
        self._check_signing_certificate(scv2_ref, signer, c)

        st = single(ID_SIGNING_TIME, "signing-time")
        signing_time: datetime | None = der.time(*st) if st is not None else None
        window = self.signing_window
        if signing_time is None:
            c.fail("signing time", "signing-time attribute missing", Sub.FORMAT_FAILURE)
        elif window is not None and abs(signing_time - now) > window:
            c.fail("signing time window", f"signed at {signing_time:%Y-%m-%d %H:%M:%S}Z, more than "
                   f"{int(window.total_seconds() // 60)} minutes from the server's clock "
                   f"({now:%Y-%m-%d %H:%M:%S}Z)", Sub.SIGNING_TIME_OUT_OF_WINDOW)
        elif signing_time > now + self.FUTURE_SKEW:
            c.fail("signing time", f"claimed signing time {signing_time:%Y-%m-%d %H:%M:%S}Z is in the future",
                   Sub.SIG_CONSTRAINTS_FAILURE)
        else:
            claimed = check_period((signer.period,), signing_time)
            if claimed.ok:
                c.ok("signing time", "claimed by the signer (not proven), within the certificate's validity")
            else:
                c.fail("signing time", f"the signer claims to have signed when {claimed.detail}", claimed.failure)
        path = self._check_chain(signer, certs_der, now, c)
        statuses = self._check_status(path, signing_time, now, c) \
            if len(path) > 1 and self.status is not None else None
        revocation = statuses.statuses[0] if statuses is not None else None

        if "non_repudiation" not in signer.key_usage:
            c.fail("key usage", "the certificate does not allow nonRepudiation", Sub.CHAIN_CONSTRAINTS_FAILURE)
        elif signer.ext_key_usage is not None and not (_DOCUMENT_SIGNING_OK & signer.ext_key_usage):
            c.fail("key usage", "extendedKeyUsage lacks documentSigning (RFC 9336)", Sub.CHAIN_CONSTRAINTS_FAILURE)
        else:
            c.ok("key usage", "nonRepudiation")

        # Only signed content is worth decoding: a changed byte is a HASH_FAILURE, whether or
        # not the changed bytes still parse as a payment.
        transaction = None
        if content_signed:
            try:
                transaction = txmod.load_canonical(content).raw
                c.ok("transaction", "valid canonical payment (version 1)")
            except PkiError as e:
                c.fail("transaction", e.message, Sub.FORMAT_FAILURE)

        return conclude(c.items, signer=signer.identity, signing_time=signing_time,
                        transaction=transaction, signer_cert_der=signer.der,
                        revocation=revocation.to_json(now) if revocation else None,
                        statuses=tuple(st.to_json(now) for st in statuses.statuses) if statuses else (),
                        chain_der=path, signature_value=s.signature, content=content,
                        revocation_data=(revocation.source.lower(), revocation.raw)
                        if revocation is not None and revocation.source and revocation.raw else None,
                        ca_revocation_data=tuple((st.source.lower(), st.raw) for st in statuses.statuses[1:]
                                                 if st.source and st.raw) if statuses else ())

    def _check_chain(self, signer: SignerCert, certs_der: tuple[bytes, ...], now: datetime,
                     c: _Checks) -> tuple[bytes, ...]:
        """RFC 5280 path to a trust anchor, every certificate valid now; the path's DER
        (signer first, anchor last), or () when there is none."""
        others = [d for d in certs_der if d != signer.der]
        chain = self.chains.validate(signer.asn1, others, now, leaf_sha256=signer.sha256)
        if chain.ok:
            narrowed = next((p for p in chain.path[1:-1] if not _eku_allows_signing(p.der)), None)
            if narrowed is not None:
                # An EKU on a CA constrains what it certifies (as for `udun cert verify`).
                c.fail("certificate chain", f"the CA {narrowed.subject} is not allowed to certify document "
                       "signing (its extendedKeyUsage)", Sub.CHAIN_CONSTRAINTS_FAILURE)
                return ()
            c.ok("certificate chain", f"{chain.detail}, valid now")
            return tuple(p.der for p in chain.path)
        if chain.failure in (Sub.EXPIRED, Sub.NOT_YET_VALID):
            # Out of its validity now; the claimed signing time proves nothing (no POE).
            c.fail("certificate chain", chain.detail, Sub.OUT_OF_BOUNDS_NO_POE)
        else:
            c.fail("certificate chain", chain.detail, chain.failure)
        return ()

    def _check_status(self, path: tuple[bytes, ...], signing_time: datetime | None, now: datetime,
                      c: _Checks) -> PathStatus:
        """The status now of every certificate below the anchor (a self-asserted signingTime
        proves nothing), each from its own revocation data.

        Revoked (the signer or a CA above it): TOTAL_FAILED REVOKED when the signer claims
        to have signed at or after the revocation, else INDETERMINATE REVOKED_NO_POE (EN 319
        102-1 §5.2.6: no proof of existence before it). On hold or no fresh status: TRY_LATER.
        """
        assert self.status is not None
        raw: list[list[tuple[str, bytes]]] = []
        for cert_der, issuer_der in zip(path, path[1:]):
            try:
                raw.append(self.status(cert_der, issuer_der))
            except Exception:  # noqa: BLE001  a status source that fails leaves that status open
                raw.append([])
        result = self._statuses.status(path, raw, now)
        bad = result.failing
        if bad is None:
            c.ok("revocation status", "good: " + "; ".join(
                f"{_who(st)} ({st.source}, thisUpdate {st.this_update:%Y-%m-%d %H:%M:%S}Z)"
                if st.this_update else _who(st) for st in result.statuses))
        elif bad.status == "on_hold":
            since = f" since {bad.revoked_at:%Y-%m-%d %H:%M:%S}Z" if bad.revoked_at else ""
            c.fail("revocation status", f"{_who(bad)} is suspended (on hold{since}; {_where(bad)})", Sub.TRY_LATER)
        elif bad.status == "revoked":
            assert bad.revoked_at is not None
            claimed_after = signing_time is not None and signing_time >= bad.revoked_at
            c.fail("revocation status", f"{_who(bad)} was revoked at {bad.revoked_at:%Y-%m-%d %H:%M:%S}Z "
                   f"({bad.reason}; {_where(bad)})", Sub.REVOKED if claimed_after else Sub.REVOKED_NO_POE)
        else:
            c.fail("revocation status", f"no fresh status for {_who(bad)}: {bad.detail or bad.status}",
                   Sub.TRY_LATER)
        return result

    def _find_signer(self, s: SignerView, certs_der: tuple[bytes, ...],
                     scv2: _CertRef | None) -> SignerCert | None:
        """The certificate the SignerIdentifier names (RFC 5652 §5.3).

        The certificate set is not signed: if several certificates match the identifier,
        the one bound by signingCertificateV2 wins (EN 319 102-1 §5.2.3), so a decoy
        placed first cannot take the signer's place.
        """
        candidates = []
        for n, d in enumerate(certs_der, 1):
            try:
                ident = self._ids.get(d)
            except _UNREADABLE as e:
                log.info("certificate %d of the CMS: %s: %s", n, type(e).__name__, e)
                raise _BadCertificate(f"certificate {n} of the CMS does not read as an X.509 certificate "
                                      "(RFC 5280 §4.1)") from None
            if s.sid_ski is not None:
                if ident.ski == s.sid_ski:
                    candidates.append(d)
            elif ident.serial == s.sid_serial and (
                    ident.issuer_der == s.sid_issuer
                    or x509.Name.load(ident.issuer_der) == x509.Name.load(s.sid_issuer or b"")):
                candidates.append(d)
        if not candidates:
            return None
        if len(candidates) > 1 and scv2 is not None:
            bound = [d for d in candidates if hashlib.new(scv2.hash_name, d).digest() == scv2.cert_hash]
            candidates = bound or candidates
        try:
            return self._certs.get(candidates[0])
        except _UNREADABLE as e:
            log.info("the signer's certificate: %s: %s", type(e).__name__, e)
            raise _BadCertificate("the signer's certificate does not read as an X.509 certificate "
                                  "(RFC 5280 §4.1)") from None

    @staticmethod
    def _check_signing_certificate(ref: _CertRef | None, signer: SignerCert, c: _Checks) -> None:
        """RFC 5035 §3 / EN 319 122-1 §5.2.2: the signed attribute must name this certificate."""
        name = "signing certificate"
        if ref is None:
            c.fail(name, "signingCertificateV2 attribute missing (CAdES-BES requires it)", Sub.FORMAT_FAILURE)
            return
        if not ref.hash_name:
            c.fail(name, "unsupported hash in signingCertificateV2", Sub.FORMAT_FAILURE)
            return
        digest = signer.sha256 if ref.hash_name == "sha256" else hashlib.new(ref.hash_name, signer.der).digest()
        if digest != ref.cert_hash:
            c.fail(name, "signingCertificateV2 names another certificate", Sub.NO_SIGNING_CERTIFICATE_FOUND)
        elif ref.serial is not None and (ref.serial != signer.serial or ref.issuer_der != signer.issuer_der):
            c.fail(name, "signingCertificateV2 issuerSerial names another certificate",
                   Sub.NO_SIGNING_CERTIFICATE_FOUND)
        else:
            c.ok(name, "signingCertificateV2 matches the signer certificate")

    @staticmethod
    def _check_algorithm_protection(value: tuple[bytes, der.Tlv] | None, s: SignerView, c: _Checks) -> None:
        """RFC 6211 §3: if present, the protected algorithm identifiers are the ones used."""
        if value is None:
            return
        buf, top = value
        parts = der.children(buf, der.expect(top, der.SEQUENCE, "CMSAlgorithmProtection"))
        digest = der.whole(buf, der.expect(parts[0], der.SEQUENCE, "digestAlgorithm"))
        sig = next((p for p in parts[1:] if p.tag == 0xA1), None)    # [1] IMPLICIT signatureAlgorithm
        sig_der = (b"\x30" + der.whole(buf, sig)[1:]) if sig is not None else b""
        if _same_algorithm(digest, s.digest_algorithm) and _same_algorithm(sig_der, s.signature_algorithm):
            c.ok("algorithm protection", "cmsAlgorithmProtection matches")
        else:
            c.fail("algorithm protection", "cmsAlgorithmProtection does not match the algorithms used",
                   Sub.FORMAT_FAILURE)


def _same_algorithm(a: bytes, b: bytes) -> bool:
    """AlgorithmIdentifiers equal, treating absent parameters and NULL alike (RFC 5754 §2)."""
    if a == b:
        return True
    try:
        ta, tb = der.top(a), der.top(b)
        pa, pb = der.children(a, ta), der.children(b, tb)
    except DerError:
        return False
    if not pa or not pb or der.whole(a, pa[0]) != der.whole(b, pb[0]):
        return False
    rest_a = b"".join(der.whole(a, p) for p in pa[1:]) or _NULL
    rest_b = b"".join(der.whole(b, p) for p in pb[1:]) or _NULL
    return rest_a == rest_b


@dataclass(frozen=True)
class _CertRef:
    """What signingCertificateV2 says about the signer certificate (RFC 5035 §3)."""

    hash_name: str
    cert_hash: bytes
    issuer_der: bytes | None
    serial: int | None


def _signing_certificate_ref(value: tuple[bytes, der.Tlv]) -> _CertRef:
    buf, top = value
    seq = der.children(buf, der.expect(top, der.SEQUENCE, "SigningCertificateV2"))
    certs = der.children(buf, der.expect(seq[0], der.SEQUENCE, "certs"))
    fields = der.children(buf, der.expect(certs[0], der.SEQUENCE, "ESSCertIDv2"))
    hash_name = "sha256"                      # the DEFAULT (RFC 5035 §4)
    if fields[0].tag == der.SEQUENCE:
        alg = der.children(buf, fields[0])
        hash_name = DIGESTS.get(der.contents(buf, der.expect(alg[0], der.OID, "hashAlgorithm")), "")
        fields = fields[1:]
    cert_hash = der.contents(buf, der.expect(fields[0], der.OCTET_STRING, "certHash"))
    issuer_der = serial = None
    if len(fields) > 1:                       # IssuerSerial { GeneralNames, serial }
        issuer_serial = der.children(buf, der.expect(fields[1], der.SEQUENCE, "IssuerSerial"))
        names = der.children(buf, der.expect(issuer_serial[0], der.SEQUENCE, "GeneralNames"))
        # directoryName [4] EXPLICIT Name
        dn = next((n for n in names if n.tag == 0xA4), None)
        issuer_der = der.contents(buf, dn) if dn is not None else b""
        serial = der.integer(buf, issuer_serial[1])
    return _CertRef(hash_name, cert_hash, issuer_der, serial)


def _who(st: StatusInfo) -> str:
    return f"the signer {st.subject}" if st.position == "end-entity" else f"the CA {st.subject} ({st.position})"


def _where(st: StatusInfo) -> str:
    return f"{st.source}, thisUpdate {st.this_update:%Y-%m-%d %H:%M:%S}Z" if st.this_update else "no source"


@functools.lru_cache(maxsize=1024)
def _eku_allows_signing(cert_der: bytes) -> bool:
    """No extendedKeyUsage, or one that allows documentSigning (or any purpose)."""
    eku = x509.Certificate.load(cert_der).extended_key_usage_value
    return eku is None or bool(_DOCUMENT_SIGNING_OK & ({p.native for p in eku} | {p.dotted for p in eku}))
