"""Checking time-stamp tokens (RFC 3161 §2.4.2, RFC 5816) and carrying them in a CMS (RFC 3161 App. A).

pkicore.tsp re-exports all of it. A token that does not check out is a report (TokenCheck),
never an exception. The TSA certificate's chain is not validated here: the caller does that
with pkicore.pathval at the token's genTime.
"""
from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import core, tsp, x509
from asn1crypto import cms as asn1cms

from pkicore import der, names, sigverify
from pkicore.cms_view import (
    DIGESTS,
    ID_CONTENT_TYPE,
    ID_MESSAGE_DIGEST,
    ID_SIGNING_CERTIFICATE_V2,
    SIGNATURES,
    CmsView,
    SignerView,
    view,
)
from pkicore.der import DerError
from pkicore.errors import ErrorKind, PkiError
from pkicore.oids import (
    ID_AA_SIGNING_CERTIFICATE,
    ID_CT_TSTINFO,
    ID_KP_TIME_STAMPING,
    ID_SIGNED_DATA,
)


_OID_TSTINFO = core.ObjectIdentifier(ID_CT_TSTINFO).dump()          # the contentType attribute value
_ID_TSTINFO = core.ObjectIdentifier(ID_CT_TSTINFO).contents          # as cms_view gives eContentType
_ID_SIGNED_DATA = core.ObjectIdentifier(ID_SIGNED_DATA).contents
_ID_SIGNING_CERTIFICATE = core.ObjectIdentifier(ID_AA_SIGNING_CERTIFICATE).contents
_ESS_HASHES = {"sha1", "sha256", "sha384", "sha512"}     # ESSCertID is SHA-1 (RFC 2634 §5.4.1)
# A TokenCheck's problem is udun's own words; what a library said goes to the server log only.
log = logging.getLogger("udun.verify")


@dataclass(frozen=True)
class TstInfo:
    """What a token says (RFC 3161 §2.4.2 TSTInfo)."""

    policy: str
    hash_name: str                   # sha256 | sha384 | sha512 | sha1 | dotted OID
    imprint: bytes
    serial: int
    gen_time: datetime               # aware, UTC
    accuracy_ms: int | None
    nonce: int | None
    tsa_name: str | None             # RFC 4514 for a directoryName, else "kind:value"


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of check_token: a report, not an exception."""

    ok: bool
    problem: str                     # "" when ok
    info: TstInfo | None             # read once the signature holds
    tsa_cert_der: bytes | None
    certificates: tuple[bytes, ...]  # all certificates the token carries


def tsa_cert_problem(cert: x509.Certificate) -> str:
    """Why a certificate cannot sign time-stamps (RFC 3161 §2.3), or "" when it can."""
    eku = cert.extended_key_usage_value
    if eku is None:
        return "the TSA certificate has no extendedKeyUsage"
    if "extended_key_usage" not in cert.critical_extensions:
        return "the TSA certificate's extendedKeyUsage is not critical (RFC 3161 §2.3)"
    if [p.dotted for p in eku] != [ID_KP_TIME_STAMPING]:
        return "the TSA certificate's extendedKeyUsage must be id-kp-timeStamping only (RFC 3161 §2.3)"
    return ""


class _Bad(Exception):
    """A reason the token fails, to be reported."""


def _tst_info(data: bytes) -> TstInfo:
    t = tsp.TSTInfo.load(data, strict=True)
    if int(t["version"]) != 1:
        raise _Bad(f"TSTInfo version {int(t['version'])} (RFC 3161 §2.4.2 has v1 only)")
    imprint = t["message_imprint"]
    accuracy_ms = None
    if not isinstance(t["accuracy"], core.Void):
        a = t["accuracy"]
        accuracy_ms = ((a["seconds"].native or 0) * 1000 + (a["millis"].native or 0)
                       + math.ceil((a["micros"].native or 0) / 1000))
    tsa = t["tsa"]
    tsa_name = None
    if not isinstance(tsa, core.Void):
        tsa_name = names.rfc4514(tsa.chosen) if tsa.name == "directory_name" else f"{tsa.name}:{tsa.native}"
    return TstInfo(t["policy"].dotted, imprint["hash_algorithm"]["algorithm"].native,
                   imprint["hashed_message"].native, t["serial_number"].native, t["gen_time"].native,
                   accuracy_ms, t["nonce"].native, tsa_name)


def _single(s: SignerView, oid: bytes, what: str) -> bytes | None:
    values = s.attributes.get(oid)
    if values is not None and len(values) != 1:
        raise _Bad(f"the {what} attribute must have exactly one value")
    return values[0] if values else None


def _ess_ref(s: SignerView) -> tuple[str, Any]:
    """(hash name, first ESSCertID[v2]) of signingCertificateV2 (RFC 5816) or signingCertificate."""
    v2 = _single(s, ID_SIGNING_CERTIFICATE_V2, "signingCertificateV2")
    if v2 is not None:
        first = tsp.SigningCertificateV2.load(v2)["certs"][0]
        return first["hash_algorithm"]["algorithm"].native, first
    v1 = _single(s, _ID_SIGNING_CERTIFICATE, "signingCertificate")
    if v1 is not None:
        return "sha1", tsp.SigningCertificate.load(v1)["certs"][0]
    raise _Bad("no signingCertificate or signingCertificateV2 attribute (RFC 3161 §2.4.1, RFC 5816)")


def _same_name(a: x509.Name, b: x509.Name) -> bool:
    """RFC 5280 §7.1 name matching; equal bytes first, as asn1crypto's comparison is slow."""
    a, b = a.untag(), b.untag()           # a directoryName's Name dumps with its [4] tag
    return a.dump() == b.dump() or a == b


def _bound(hash_name: str, ref: Any, cert_der: bytes, cert: x509.Certificate) -> bool:
    """The ESSCertID names this certificate: hash, and issuerSerial when present (RFC 5035 §4)."""
    if hash_name not in _ESS_HASHES or hashlib.new(hash_name, cert_der).digest() != ref["cert_hash"].native:
        return False
    issuer_serial = ref["issuer_serial"]
    if isinstance(issuer_serial, core.Void):
        return True
    return bool(issuer_serial["serial_number"].native == cert.serial_number and any(
        n.name == "directory_name" and _same_name(n.chosen, cert.issuer) for n in issuer_serial["issuer"]))


def _signer_cert(s: SignerView, candidates: Sequence[bytes]) -> tuple[bytes, x509.Certificate]:
    """The certificate the SignerIdentifier names and the signing-certificate attribute binds."""
    hash_name, ref = _ess_ref(s)
    named = False
    for cert_der in candidates:
        cert = x509.Certificate.load(cert_der)
        if s.sid_ski is not None:
            if cert.key_identifier != s.sid_ski:
                continue
        elif cert.serial_number != s.sid_serial or not _same_name(cert.issuer, x509.Name.load(s.sid_issuer or b"")):
            continue
        named = True
        if _bound(hash_name, ref, cert_der, cert):
            return cert_der, cert
    if named:
        raise _Bad("the signing-certificate attribute names another certificate than the signer's")
    raise _Bad("the TSA certificate is neither in the token nor among the extra certificates")


def _verify(cert: x509.Certificate, s: SignerView, digest_name: str, data: bytes) -> None:
    """The token's signature, checked by pkicore.sigverify (the one signature check)."""
    _kind, implied = SIGNATURES.get(s.signature_oid, ("", None))
    if not _kind:
        raise _Bad("unsupported signature algorithm")
    if implied is not None and implied != digest_name:
        raise _Bad(f"signature hash {implied} differs from digestAlgorithm {digest_name} (RFC 5754 §3)")
    try:
        alg = sigverify.cached_identifier(s.signature_algorithm, digest_name)
        sigverify.verify(sigverify.load_key(cert.public_key.dump()), s.signature, data, alg)
    except sigverify.SignatureError as e:
        if e.failure is sigverify.Failure.INVALID:
            raise _Bad("the signature does not verify with the TSA certificate's key") from None
        if e.failure is sigverify.Failure.KEY_MISMATCH:
            raise _Bad(f"a {_kind} signature does not fit the TSA certificate's key") from None
        raise _Bad(e.problem) from None


def _check(v: CmsView, extra_certs: Sequence[bytes]) -> tuple[bytes, x509.Certificate, bytes]:
    """(TSA certificate DER and parsed, TSTInfo DER) of a token whose signature holds."""
    if v.econtent_type != _ID_TSTINFO or v.content is None:
        raise _Bad("the token does not encapsulate a TSTInfo (RFC 3161 §2.4.2)")
    if len(v.signers) != 1:
        raise _Bad(f"a token has exactly one SignerInfo, this one {len(v.signers)}")
    s = v.signers[0]
    if s.signed_attrs is None or s.duplicate_attribute:
        raise _Bad("signed attributes missing or repeated")
    digest_name = DIGESTS.get(s.digest_oid)
    if digest_name is None:
        raise _Bad("unsupported digest algorithm")
    if _single(s, ID_CONTENT_TYPE, "contentType") != _OID_TSTINFO:
        raise _Bad("the contentType attribute is not id-ct-TSTInfo")
    digest = hashlib.new(digest_name, v.content).digest()
    if _single(s, ID_MESSAGE_DIGEST, "messageDigest") != der.tlv_header(der.OCTET_STRING, len(digest)) + digest:
        raise _Bad("the messageDigest does not match the TSTInfo")
    cert_der, cert = _signer_cert(s, v.certificates + tuple(extra_certs))
    _verify(cert, s, digest_name, der.as_set(s.signed_attrs))
    return cert_der, cert, v.content


def check_token(token_der: bytes, extra_certs: Sequence[bytes] = (), *, imprint: bytes | None = None,
                hash_name: str | None = None, nonce: int | None = None, policy: str | None = None) -> TokenCheck:
    """Check a TimeStampToken's signature, signer and content, and that it answers this request."""
    try:
        v = view(token_der)
    except (PkiError, DerError, ValueError):
        return TokenCheck(False, "not a CMS SignedData", None, None, ())
    certs = v.certificates
    cert_der: bytes | None = None
    info: TstInfo | None = None
    try:
        cert_der, cert, content = _check(v, extra_certs)
        problem = tsa_cert_problem(cert)
        if problem:
            raise _Bad(problem)
        info = _tst_info(content)
        if hash_name is not None and info.hash_name != hash_name:
            raise _Bad(f"the token's imprint is {info.hash_name}, not {hash_name}")
        if imprint is not None and info.imprint != imprint:
            raise _Bad("the token time-stamps another imprint")
        if nonce is not None and info.nonce != nonce:
            raise _Bad("the token's nonce is not the request's")
        if policy is not None and info.policy != policy:
            raise _Bad(f"the token was issued under policy {info.policy}, not {policy}")
    except _Bad as e:
        return TokenCheck(False, str(e), info, cert_der, certs)
    except (PkiError, DerError, ValueError, TypeError, KeyError, IndexError) as e:
        log.info("time-stamp token: %s: %s", type(e).__name__, e)
        return TokenCheck(False, "malformed token: a field of the SignedData or TSTInfo does not read "
                                 "(RFC 3161 §2.4.2)", info, cert_der, certs)
    return TokenCheck(True, "", info, cert_der, certs)


def signature_time_stamp_imprint(signature_value: bytes) -> bytes:
    """The SHA-256 imprint to time-stamp a SignerInfo's signature value (RFC 3161 App. A)."""
    return hashlib.sha256(signature_value).digest()


def _oid_contents(attr_oid: bytes | str) -> bytes:
    return core.ObjectIdentifier(attr_oid).contents if isinstance(attr_oid, str) else attr_oid


def _path(buf: bytes) -> list[der.Tlv]:
    """ContentInfo, [0], SignedData, SignerInfos, and the single SignerInfo (RFC 5652 §5)."""
    ci = der.expect(der.top(buf), der.SEQUENCE, "ContentInfo")
    oid, wrapper = der.children(buf, ci)
    if der.contents(buf, der.expect(oid, der.OID, "contentType")) != _ID_SIGNED_DATA:
        raise DerError("not SignedData")
    (sd,) = der.children(buf, der.expect(wrapper, 0xA0, "content"))
    infos = der.expect(der.children(buf, der.expect(sd, der.SEQUENCE, "SignedData"))[-1], der.SET, "SignerInfos")
    signers = der.children(buf, infos)
    if len(signers) != 1:
        raise PkiError(ErrorKind.BAD_INPUT, f"the CMS has {len(signers)} signers: one is supported")
    return [ci, wrapper, sd, infos, der.expect(signers[0], der.SEQUENCE, "SignerInfo")]


def _tlv(tag: int, body: bytes) -> bytes:
    return der.tlv_header(tag, len(body)) + body


def _splice(buf: bytes, path: list[der.Tlv], new: bytes) -> bytes:
    """Replace the element path[-1] by ``new``; re-encode only the lengths of its ancestors."""
    inner = path[-1]
    for parent in reversed(path[:-1]):
        body = buf[parent.cstart:inner.start] + new + buf[inner.end:parent.end]
        new = _tlv(parent.tag, body)
        inner = parent
    return buf[:inner.start] + new + buf[inner.end:]


def _der_form(cms_der: bytes) -> tuple[bytes, list[der.Tlv]]:
    """The CMS as DER and the path to its SignerInfo; BER is re-encoded, signed attributes kept as received."""
    try:
        return cms_der, _path(cms_der)
    except DerError:
        pass
    except (ValueError, IndexError) as e:                 # wrong number of children
        raise PkiError(ErrorKind.BAD_INPUT, "not a CMS SignedData") from e
    try:
        parsed = asn1cms.ContentInfo.load(cms_der, strict=True)
        received = [si["signed_attrs"].contents for si in parsed["content"]["signer_infos"]]
        buf = parsed.dump(force=True)
        path = _path(buf)
        attrs = der.children(buf, path[-1])[3]
        if attrs.tag == 0xA0 and received[0]:             # RFC 5652 §5.4: the signed bytes stay as they are
            buf = _splice(buf, [*path, attrs], _tlv(0xA0, received[0]))
            path = _path(buf)
        return buf, path
    except PkiError:
        raise
    except Exception as e:  # asn1crypto raises ValueError/TypeError on garbage
        raise PkiError(ErrorKind.BAD_INPUT, "not a CMS SignedData") from e


def add_unsigned_attribute(cms_der: bytes, attr_oid: bytes | str, value_der: bytes) -> bytes:
    """The CMS with one more unsigned attribute on its single SignerInfo; signed bytes untouched."""
    try:
        der.top(value_der)
    except DerError as e:
        raise PkiError(ErrorKind.BAD_INPUT, "the attribute value is not one DER element") from e
    buf, path = _der_form(cms_der)
    signer = path[-1]
    try:
        last = der.children(buf, signer)[-1]
        attrs = [der.whole(buf, a) for a in der.children(buf, last)] if last.tag == 0xA1 else []
    except DerError as e:
        raise PkiError(ErrorKind.BAD_INPUT, "malformed SignerInfo") from e
    stop = last.start if last.tag == 0xA1 else signer.end
    oid = _oid_contents(attr_oid)
    value_set = der.tlv_header(der.SET, len(value_der)) + value_der
    attrs.append(_tlv(der.SEQUENCE, _tlv(der.OID, oid) + value_set))
    unsigned = b"".join(sorted(attrs))                    # X.690 §11.6: DER SET OF, sorted
    body = buf[signer.cstart:stop] + _tlv(0xA1, unsigned)  # [1] IMPLICIT UnsignedAttributes
    return _splice(buf, path, _tlv(der.SEQUENCE, body))


def unsigned_attribute_values(cms_der: bytes, attr_oid: bytes | str) -> list[bytes]:
    """The values (DER) of an unsigned attribute of the single signer, over all its instances."""
    buf, path = _der_form(cms_der)
    oid = _oid_contents(attr_oid)
    out = []
    try:
        last = der.children(buf, path[-1])[-1]
        for attr in der.children(buf, last) if last.tag == 0xA1 else []:
            attr_type, values = der.children(buf, attr)
            if der.contents(buf, attr_type) == oid:
                out += [der.whole(buf, v) for v in der.children(buf, values)]
    except (DerError, ValueError) as e:
        raise PkiError(ErrorKind.BAD_INPUT, "malformed unsigned attributes") from e
    return out
