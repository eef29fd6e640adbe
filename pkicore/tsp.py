"""The time-stamp protocol (RFC 3161, ESSCertIDv2 as RFC 5816 allows): requests, tokens, responses.

Pure: the TSA key is a RawSigner, the time and the serial number come in as arguments.
Everything is built with asn1crypto's declarative types, except the per-token assembly of
TimeStampTokens in production: TokenFactory.token uses pkicore.fastder (the project's one
hand-written DER fast path; its docstring has the figures that keep it), and
TokenFactory.reference_token is the declarative builder it must equal byte for byte
(tests/pkicore/test_fastder.py). Checking tokens and carrying them in a CMS live in
pkicore.tsp_check and are re-exported here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import algos, cms, core, tsp, x509
from cryptography.hazmat.primitives import serialization

from pkicore import fastder
from pkicore import oids  # noqa: F401  (registers signingCertificateV2, cmsAlgorithmProtection)
from pkicore.algorithms import RawSigner, SigScheme, check_scheme
from pkicore.cms_build import signer_info_algorithm, signing_certificate_v2
from pkicore.errors import ErrorKind, PkiError
from pkicore.oids import ID_AA_SIGNING_CERTIFICATE, ID_AA_TIME_STAMP_TOKEN, ID_CT_TSTINFO, ID_KP_TIME_STAMPING
from pkicore.tsp_check import (  # the checking half, so that pkicore.tsp is the whole API
    TokenCheck,
    TstInfo,
    add_unsigned_attribute,
    check_token,
    signature_time_stamp_imprint,
    tsa_cert_problem,
    unsigned_attribute_values,
)

__all__ = [
    "FAIL_BITS", "HASH_SIZES", "ID_AA_SIGNING_CERTIFICATE", "ID_AA_TIME_STAMP_TOKEN", "ID_CT_TSTINFO",
    "ID_KP_TIME_STAMPING", "TokenCheck", "TokenFactory", "TsRefusal", "TsRequest", "TstInfo",
    "add_unsigned_attribute", "build_request", "check_token", "gen_time_der", "granted", "parse_request",
    "rejection", "response_token", "signature_time_stamp_imprint", "tsa_cert_problem", "unsigned_attribute_values",
]

MAX_REQUEST_BYTES = 16 * 1024
MAX_NONCE_OCTETS = 32
HASH_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}   # RFC 5754 §2; SHA-1 is refused
# PKIFailureInfo bit numbers (RFC 3161 §2.4.2).
FAIL_BITS = {"bad_alg": 0, "bad_request": 2, "bad_data_format": 5, "time_not_available": 14,
             "unaccepted_policy": 15, "unaccepted_extension": 16, "add_info_not_available": 17,
             "system_failure": 25}

# The signer's digest algorithm, parameters absent (RFC 5754 §2). Constants are re-loaded from
# their DER: asn1crypto re-encodes a value built from a dict every time a parent is dumped.
_SHA256 = algos.DigestAlgorithm.load(algos.DigestAlgorithm({"algorithm": "sha256", "parameters": None}).dump())
# messageImprint algorithms with NULL parameters, as `openssl ts -query` writes them.
_IMPRINT_ALGS = {name: algos.DigestAlgorithm.load(algos.DigestAlgorithm({"algorithm": name}).dump())
                 for name in HASH_SIZES}
_IMPRINT_ALG_DER = {name: alg.dump() for name, alg in _IMPRINT_ALGS.items()}
_GRANTED = tsp.PKIStatusInfo.load(tsp.PKIStatusInfo({"status": "granted"}).dump())


class _TimeStampResp(core.Sequence):
    """TimeStampResp (RFC 3161 §2.4.2) with timeStampToken OPTIONAL, as the RFC has it:
    asn1crypto 1.5's tsp.TimeStampResp makes it mandatory, so a rejection could not be built or read."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TsRefusal(Exception):
    """A request that gets a rejection TimeStampResp (RFC 3161 §2.4.2) instead of a token."""

    def __init__(self, fail_info: str, text: str) -> None:
        if fail_info not in FAIL_BITS:
            raise ValueError(f"unknown PKIFailureInfo {fail_info!r}")
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


@dataclass(frozen=True)
class TsRequest:
    """A TimeStampReq we accept (RFC 3161 §2.4.1)."""

    hash_name: str
    imprint: bytes
    policy: str | None
    nonce: int | None
    cert_req: bool


def parse_request(der: bytes, accepted_policies: frozenset[str]) -> TsRequest:
    """Decode and check a TimeStampReq; TsRefusal says what to answer when it is refused."""
    if not der or len(der) > MAX_REQUEST_BYTES:
        raise TsRefusal("bad_data_format", "empty or too large request")
    try:
        req = tsp.TimeStampReq.load(der, strict=True)
        _ = req.native                                   # parses every field
        is_der = req.dump(force=True) == der
    except Exception as e:  # asn1crypto raises ValueError/TypeError/KeyError on garbage
        raise TsRefusal("bad_data_format", "not a DER TimeStampReq") from e
    if not is_der:
        raise TsRefusal("bad_data_format", "the TimeStampReq is not DER-encoded")
    if int(req["version"]) != 1:
        raise TsRefusal("bad_request", f"version {int(req['version'])}: only version 1 exists")
    alg = req["message_imprint"]["hash_algorithm"]
    hash_name = alg["algorithm"].native
    if hash_name == "sha1":
        raise TsRefusal("bad_alg", "SHA-1 imprints are not accepted: use SHA-256")
    if hash_name not in HASH_SIZES or alg["parameters"].native is not None:
        raise TsRefusal("bad_alg", f"unsupported hash algorithm {alg['algorithm'].dotted}")
    imprint = req["message_imprint"]["hashed_message"].native
    if len(imprint) != HASH_SIZES[hash_name]:
        raise TsRefusal("bad_data_format", f"a {hash_name} imprint has {HASH_SIZES[hash_name]} octets, "
                                           f"not {len(imprint)}")
    if req["extensions"].native is not None:
        raise TsRefusal("unaccepted_extension", "request extensions are not supported")
    policy = req["req_policy"].dotted if req["req_policy"].native is not None else None
    if policy is not None and policy not in accepted_policies:
        raise TsRefusal("unaccepted_policy", f"policy {policy} is not offered")
    nonce = req["nonce"].native
    if nonce is not None and (nonce < 0 or len(req["nonce"].contents) > MAX_NONCE_OCTETS):
        raise TsRefusal("bad_request", f"the nonce must be a non-negative integer of at most "
                                       f"{MAX_NONCE_OCTETS} octets")
    return TsRequest(hash_name, imprint, policy, nonce, bool(req["cert_req"].native))


def _millis(moment: datetime) -> datetime:
    """genTime carries milliseconds at most (RFC 3161 §2.4.2 allows any fraction; udun's accuracy is ms)."""
    t = moment.astimezone(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def gen_time_der(moment: datetime) -> bytes:
    """GeneralizedTime in milliseconds, 'Z', no trailing zeros in the fraction (RFC 3161 §2.4.2)."""
    return core.GeneralizedTime(_millis(moment)).dump()


def _accuracy(ms: int) -> tsp.Accuracy:
    """Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL, ... }."""
    seconds, millis = divmod(ms, 1000)
    fields = {"seconds": seconds} if seconds else {}
    if millis:
        fields["millis"] = millis
    return tsp.Accuracy.load(tsp.Accuracy(fields).dump())


@dataclass(frozen=True)
class _Parts:
    """The constant parts of one TSA key's tokens as asn1crypto values (loaded from DER: see _SHA256)."""

    accuracy: tsp.Accuracy | None
    tsa_name: x509.GeneralName | None
    attributes: tuple[cms.CMSAttribute, ...]    # all signed attributes but messageDigest
    signer_id: cms.SignerIdentifier
    signature_algorithm: cms.SignedDigestAlgorithm
    certificates: cms.CertificateSet            # DER-sorted as any SET OF (X.690 §11.6)

    def template(self) -> fastder.TokenTemplate:
        """The same parts as DER, for pkicore.fastder."""
        return fastder.TokenTemplate(
            accuracy=self.accuracy.dump() if self.accuracy is not None else b"",
            tsa_name=self.tsa_name.dump() if self.tsa_name is not None else b"",
            attributes=tuple(a.dump() for a in self.attributes),
            signer_id=self.signer_id.dump(), digest_algorithm=_SHA256.dump(),
            signature_algorithm=self.signature_algorithm.dump(), certificates=self.certificates.contents)


class TokenFactory:
    """Builds signed time-stamp tokens for one TSA key/certificate; constant parts encoded once."""

    # For RSA prefer SigScheme.RSA_PKCS1_SHA256: `openssl ts -verify` (3.0) checks tokens with
    # its PKCS7 code, which cannot verify RSA-PSS.

    def __init__(self, signer: RawSigner, scheme: SigScheme, tsa_cert_der: bytes, chain_der: list[bytes],
                 policy: str, accuracy_ms: int | None = 1000, include_tsa_name: bool = True) -> None:
        check_scheme(signer.key_type, scheme)
        cert = x509.Certificate.load(tsa_cert_der)
        problem = tsa_cert_problem(cert)
        if problem:
            raise PkiError(ErrorKind.BAD_INPUT, problem)
        if (serialization.load_der_public_key(cert.public_key.dump())
                != serialization.load_der_public_key(signer.public_key_der)):
            raise PkiError(ErrorKind.BAD_INPUT, "the TSA certificate is not for the signing key")
        if accuracy_ms is not None and accuracy_ms <= 0:
            raise ValueError("accuracy_ms must be positive (or None to leave accuracy out)")
        self._signer = signer
        self._scheme = scheme
        self._policy = policy
        self._policy_oids: dict[str, bytes] = {}                 # policy -> OID DER, for the fast path
        sig_alg = signer_info_algorithm(scheme)
        attributes = (
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),                 # RFC 5652 §11.1
            cms.CMSAttribute({"type": "signing_certificate_v2",                                 # RFC 5816 §2.2.1
                              "values": [signing_certificate_v2(cert)]}),
            cms.CMSAttribute({"type": "cms_algorithm_protection", "values": [{                  # RFC 6211 §2
                "digest_algorithm": _SHA256, "signature_algorithm": sig_alg}]}),
        )
        certificates = cms.CertificateSet(
            [cms.CertificateChoices(name="certificate", value=x509.Certificate.load(c))
             for c in (tsa_cert_der, *chain_der)], implicit=0)    # certificates [0] IMPLICIT (RFC 5652 §5.1)
        # asn1crypto sorts a SET OF as DER must (X.690 §11.6); the hand assembly before issue 10
        # kept the given order (TSA certificate first), the only octets that changed.
        signer_id = cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": cert.issuer, "serial_number": cert.serial_number})
        # tsa [0] EXPLICIT GeneralName, the directoryName of the TSA certificate (RFC 3161 §2.4.2)
        tsa_name = x509.GeneralName(name="directory_name", value=cert.subject, explicit=0)
        self._parts = _Parts(
            accuracy=_accuracy(accuracy_ms) if accuracy_ms is not None else None,
            tsa_name=x509.GeneralName.load(tsa_name.dump(), explicit=0) if include_tsa_name else None,
            attributes=tuple(cms.CMSAttribute.load(a.dump()) for a in attributes),
            signer_id=cms.SignerIdentifier.load(signer_id.dump()),
            signature_algorithm=cms.SignedDigestAlgorithm.load(sig_alg.dump()),
            certificates=cms.CertificateSet.load(certificates.dump(), implicit=0))
        self._template = self._parts.template()

    def _check(self, hash_name: str, imprint: bytes, serial: int, gen_time: datetime) -> None:
        if hash_name not in _IMPRINT_ALGS or len(imprint) != HASH_SIZES[hash_name]:
            raise TsRefusal("bad_alg" if hash_name not in _IMPRINT_ALGS else "bad_data_format",
                            f"bad {hash_name} imprint")
        if gen_time.tzinfo is None or not 0 < serial < 1 << 159:
            raise ValueError("gen_time must be aware and serial positive, at most 20 octets")

    def _sign(self, signed_attrs_der: bytes) -> bytes:
        # The signature covers the DER of the signed attributes tagged as a SET OF (RFC 5652 §5.4).
        return self._signer.sign_digest(hashlib.sha256(signed_attrs_der).digest(), self._scheme)

    def token(self, *, hash_name: str, imprint: bytes, serial: int, gen_time: datetime,
              nonce: int | None, cert_req: bool, policy: str | None = None) -> bytes:
        """A TimeStampToken: ContentInfo DER of a SignedData over a DER TSTInfo (RFC 3161 §2.4.2).

        ``policy`` is the one the request asked for (it must be echoed, RFC 3161 §2.4.2), else the TSA's.
        Built by pkicore.fastder; the bytes are those of reference_token.
        """
        self._check(hash_name, imprint, serial, gen_time)
        policy = policy or self._policy
        policy_oid = self._policy_oids.get(policy)
        if policy_oid is None:
            policy_oid = self._policy_oids[policy] = core.ObjectIdentifier(policy).dump()
        t = self._template
        tst = fastder.tst_info(t, policy_oid=policy_oid, imprint_algorithm=_IMPRINT_ALG_DER[hash_name],
                               imprint=imprint, serial=serial, gen_time=gen_time, nonce=nonce)
        attrs = fastder.signed_attributes(t, hashlib.sha256(tst).digest())
        return fastder.token(t, tst=tst, attributes=attrs, signature=self._sign(attrs), cert_req=cert_req)

    def reference_token(self, *, hash_name: str, imprint: bytes, serial: int, gen_time: datetime,
                        nonce: int | None, cert_req: bool, policy: str | None = None) -> bytes:
        """The same token as ``token``, built with asn1crypto's declarative types: the specification
        the fast path is tested against (too slow for the TSA: see pkicore.fastder)."""
        self._check(hash_name, imprint, serial, gen_time)
        p = self._parts
        fields: dict[str, Any] = {
            "version": "v1", "policy": policy or self._policy,
            "message_imprint": {"hash_algorithm": _IMPRINT_ALGS[hash_name], "hashed_message": imprint},
            "serial_number": serial, "gen_time": _millis(gen_time),
            # ordering is DEFAULT FALSE: left out, as DER requires (X.690 §11.5)
        }
        if p.accuracy is not None:
            fields["accuracy"] = p.accuracy
        if nonce is not None:
            fields["nonce"] = nonce
        if p.tsa_name is not None:
            fields["tsa"] = p.tsa_name
        tst = tsp.TSTInfo(fields).dump()
        signed_attrs = cms.CMSAttributes([*p.attributes, cms.CMSAttribute({           # RFC 5652 §11.2
            "type": "message_digest", "values": [hashlib.sha256(tst).digest()]})])   # dump() sorts: X.690 §11.6
        signer_info = cms.SignerInfo({
            "version": "v1", "sid": p.signer_id, "digest_algorithm": _SHA256, "signed_attrs": signed_attrs,
            "signature_algorithm": p.signature_algorithm, "signature": self._sign(signed_attrs.dump())})
        signed_data: dict[str, Any] = {
            "version": "v3",                                  # eContentType is not id-data (RFC 5652 §5.1)
            "digest_algorithms": [_SHA256],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst)},
            "signer_infos": [signer_info]}
        if cert_req:
            signed_data["certificates"] = p.certificates
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)}).dump()


def granted(token_der: bytes) -> bytes:
    """A TimeStampResp with status granted and the token (RFC 3161 §2.4.2)."""
    # Loading is lazy and dump() gives the loaded bytes back: the token is not re-encoded.
    return _TimeStampResp({"status": _GRANTED, "time_stamp_token": cms.ContentInfo.load(token_der)}).dump()


def rejection(fail_info: str, text: str) -> bytes:
    """A TimeStampResp with status rejection, a statusString and one failInfo bit (RFC 3161 §2.4.2)."""
    # The bit by its RFC number: asn1crypto names bit 16 "unaccepted_extensions" and silently drops
    # names it does not know. A named bit list has no trailing zero bits in DER (X.690 §11.2.2);
    # asn1crypto drops them.
    bit = FAIL_BITS[fail_info]
    return _TimeStampResp({"status": {"status": "rejection", "status_string": [text],
                                      "fail_info": (0,) * bit + (1,)}}).dump()


def build_request(imprint: bytes, hash_name: str = "sha256", *, nonce: int | None = None,
                  cert_req: bool = True, policy: str | None = None) -> bytes:
    """A TimeStampReq (RFC 3161 §2.4.1) for an imprint already computed with ``hash_name``."""
    if HASH_SIZES.get(hash_name) != len(imprint):
        raise PkiError(ErrorKind.BAD_INPUT, f"not a {hash_name} imprint")
    fields: dict[str, object] = {
        "version": 1, "message_imprint": {"hash_algorithm": {"algorithm": hash_name}, "hashed_message": imprint},
        "cert_req": cert_req}
    if policy is not None:
        fields["req_policy"] = policy
    if nonce is not None:
        fields["nonce"] = nonce
    return tsp.TimeStampReq(fields).dump()


def response_token(resp_der: bytes) -> bytes:
    """The TimeStampToken of a granted TimeStampResp; PkiError(BAD_INPUT) saying why not."""
    try:
        resp = _TimeStampResp.load(resp_der, strict=True)
        info = resp["status"]
        status = info["status"].native
        text = "; ".join(info["status_string"].native or [])
        fail = sorted(info["fail_info"].native or [])
        token = resp["time_stamp_token"]
        token_der = b"" if isinstance(token, core.Void) else token.dump()
    except Exception as e:  # asn1crypto raises ValueError/TypeError on garbage
        raise PkiError(ErrorKind.BAD_INPUT, "not a DER TimeStampResp") from e
    if status not in ("granted", "granted_with_mods") or not token_der:
        detail = ", ".join(filter(None, [text, " ".join(fail)]))
        raise PkiError(ErrorKind.BAD_INPUT, f"the TSA did not grant a time-stamp: {status}"
                                            + (f" ({detail})" if detail else ""))
    return token_der
