"""The time-stamp protocol (RFC 3161, ESSCertIDv2 as RFC 5816 allows): requests, tokens, responses.

Pure: the TSA key is a RawSigner, the time and the serial number come in as arguments.
Tokens are assembled as DER from parts encoded once per TSA key (like our OCSP answers):
building them with asn1crypto would cost more than signing them. Checking tokens and
carrying them in a CMS live in pkicore.tsp_check and are re-exported here.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, tsp, x509
from cryptography.hazmat.primitives import serialization

from pkicore import oids  # noqa: F401  (registers signingCertificateV2, cmsAlgorithmProtection)
from pkicore.algorithms import RawSigner, SigScheme, check_scheme
from pkicore.cms_build import signer_info_algorithm, signing_certificate_v2
from pkicore.der import (
    BIT_STRING,
    GENERALIZED_TIME,
    OCTET_STRING,
    SEQUENCE,
    SET,
    UTF8_STRING,
    children,
    expect,
    tlv_header,
    top,
    whole,
)
from pkicore.errors import ErrorKind, PkiError
from pkicore.tsp_check import (  # the checking half, so that pkicore.tsp is the whole API
    ID_AA_SIGNING_CERTIFICATE,
    ID_AA_TIME_STAMP_TOKEN,
    ID_CT_TSTINFO,
    ID_KP_TIME_STAMPING,
    TokenCheck,
    TstInfo,
    add_unsigned_attribute,
    check_token,
    signature_time_stamp_imprint,
    tsa_cert_problem,
    unsigned_attribute_values,
)
from pkicore.x509build import encode_integer, seq

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

_OID_SIGNED_DATA = core.ObjectIdentifier("1.2.840.113549.1.7.2").dump()    # RFC 5652 §5.1
_OID_MESSAGE_DIGEST = core.ObjectIdentifier("1.2.840.113549.1.9.4").dump()  # RFC 5652 §11.2
_OID_TSTINFO = core.ObjectIdentifier(ID_CT_TSTINFO).dump()
_SHA256_ABSENT = algos.DigestAlgorithm({"algorithm": "sha256", "parameters": None}).dump()  # RFC 5754 §2
# messageImprint algorithms with NULL parameters, as `openssl ts -query` writes them.
_IMPRINT_ALGS = {name: algos.DigestAlgorithm({"algorithm": name}).dump() for name in HASH_SIZES}
_GRANTED = seq(b"\x02\x01\x00")                          # PKIStatusInfo { granted(0) }


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


def _tagged(tag: int, body: bytes) -> bytes:
    return tlv_header(tag, len(body)) + body


def _attribute(oid_der: bytes, value: bytes) -> bytes:
    return seq(oid_der, _tagged(SET, value))              # RFC 5652 §5.3 Attribute


def _accuracy(ms: int) -> bytes:
    """Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL }."""
    seconds, millis = divmod(ms, 1000)
    parts = encode_integer(seconds) if seconds else b""
    if millis:
        parts += b"\x80" + encode_integer(millis)[1:]        # [0] IMPLICIT INTEGER
    return seq(parts)


def gen_time_der(moment: datetime) -> bytes:
    """GeneralizedTime in milliseconds, 'Z', no trailing zeros in the fraction (RFC 3161 §2.4.2)."""
    t = moment.astimezone(UTC)
    text = f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"
    ms = t.microsecond // 1000
    if ms:
        text += "." + f"{ms:03d}".rstrip("0")
    return _tagged(GENERALIZED_TIME, (text + "Z").encode())


class TokenFactory:
    """Builds signed time-stamp tokens for one TSA key/certificate; constant parts pre-encoded."""

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
        self._tst_heads: dict[str, bytes] = {}               # policy -> version v1 + policy OID
        self._accuracy = _accuracy(accuracy_ms) if accuracy_ms is not None else b""
        # tsa [0] EXPLICIT GeneralName, directoryName [4] EXPLICIT Name (RFC 3161 §2.4.2)
        self._tsa = _tagged(0xA0, _tagged(0xA4, cert.subject.dump())) if include_tsa_name else b""
        sig_alg = signer_info_algorithm(scheme)
        self._attrs = (
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump(),          # RFC 5652 §11.1
            cms.CMSAttribute({"type": "signing_certificate_v2",                                 # RFC 5816 §2.2.1
                              "values": [signing_certificate_v2(cert)]}).dump(),
            cms.CMSAttribute({"type": "cms_algorithm_protection", "values": [{                  # RFC 6211 §2
                "digest_algorithm": algos.DigestAlgorithm.load(_SHA256_ABSENT),
                "signature_algorithm": sig_alg}]}).dump(),
        )
        sid = seq(cert.issuer.dump(), encode_integer(cert.serial_number))   # issuerAndSerialNumber
        self._si_head = b"\x02\x01\x01" + sid + _SHA256_ABSENT                 # SignerInfo v1
        self._sig_alg = sig_alg.dump()
        # SignedData v3: eContentType is not id-data (RFC 5652 §5.1).
        self._sd_head = b"\x02\x01\x03" + _tagged(SET, _SHA256_ABSENT)
        self._certs = _tagged(0xA0, tsa_cert_der + b"".join(chain_der))     # [0] IMPLICIT CertificateSet

    def _tst_head(self, policy: str) -> bytes:
        head = self._tst_heads.get(policy)
        if head is None:
            head = self._tst_heads[policy] = b"\x02\x01\x01" + core.ObjectIdentifier(policy).dump()
        return head

    def token(self, *, hash_name: str, imprint: bytes, serial: int, gen_time: datetime,
              nonce: int | None, cert_req: bool, policy: str | None = None) -> bytes:
        """A TimeStampToken: ContentInfo DER of a SignedData over a DER TSTInfo (RFC 3161 §2.4.2).

        ``policy`` is the one the request asked for (it must be echoed, RFC 3161 §2.4.2), else the TSA's.
        """
        alg = _IMPRINT_ALGS.get(hash_name)
        if alg is None or len(imprint) != HASH_SIZES[hash_name]:
            raise TsRefusal("bad_alg" if alg is None else "bad_data_format", f"bad {hash_name} imprint")
        if gen_time.tzinfo is None or not 0 < serial < 1 << 159:
            raise ValueError("gen_time must be aware and serial positive, at most 20 octets")
        tst = seq(self._tst_head(policy or self._policy), seq(alg, _tagged(OCTET_STRING, imprint)),
                  encode_integer(serial), gen_time_der(gen_time), self._accuracy,   # ordering: DEFAULT FALSE
                  encode_integer(nonce) if nonce is not None else b"", self._tsa)
        digest = _attribute(_OID_MESSAGE_DIGEST, _tagged(OCTET_STRING, hashlib.sha256(tst).digest()))
        # X.690 §11.6: a DER SET OF is sorted; the signature covers it tagged as a SET (RFC 5652 §5.4).
        attrs = b"".join(sorted((digest, *self._attrs)))
        signature = self._signer.sign_digest(hashlib.sha256(_tagged(SET, attrs)).digest(), self._scheme)
        signer_info = seq(self._si_head, _tagged(0xA0, attrs), self._sig_alg, _tagged(OCTET_STRING, signature))
        signed_data = seq(self._sd_head, seq(_OID_TSTINFO, _tagged(0xA0, _tagged(OCTET_STRING, tst))),
                          self._certs if cert_req else b"", _tagged(SET, signer_info))
        return seq(_OID_SIGNED_DATA, _tagged(0xA0, signed_data))


def granted(token_der: bytes) -> bytes:
    """A TimeStampResp with status granted and the token (RFC 3161 §2.4.2)."""
    return seq(_GRANTED, token_der)


def rejection(fail_info: str, text: str) -> bytes:
    """A TimeStampResp with status rejection, a statusString and one failInfo bit."""
    bit = FAIL_BITS[fail_info]
    bits = bytearray(bit // 8 + 1)
    bits[bit // 8] = 0x80 >> (bit % 8)
    # X.690 §11.2.2: a named bit list has no trailing zero bits, so the unused count is 7 - bit % 8.
    fail = _tagged(BIT_STRING, bytes([7 - bit % 8]) + bits)
    status_string = seq(_tagged(UTF8_STRING, text.encode("utf-8")))
    return seq(seq(b"\x02\x01\x02", status_string, fail))


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
        # Read by hand: asn1crypto 1.5 makes the OPTIONAL timeStampToken mandatory.
        parts = children(resp_der, expect(top(resp_der), SEQUENCE, "TimeStampResp"))
        info = tsp.PKIStatusInfo.load(whole(resp_der, parts[0]), strict=True)
        status = info["status"].native
        text = "; ".join(info["status_string"].native or [])
        fail = sorted(info["fail_info"].native or [])
        token_der = whole(resp_der, parts[1]) if len(parts) > 1 else b""
    except Exception as e:  # DerError, IndexError; asn1crypto raises ValueError/TypeError on garbage
        raise PkiError(ErrorKind.BAD_INPUT, "not a DER TimeStampResp") from e
    if status not in ("granted", "granted_with_mods") or not token_der:
        detail = ", ".join(filter(None, [text, " ".join(fail)]))
        raise PkiError(ErrorKind.BAD_INPUT, f"the TSA did not grant a time-stamp: {status}"
                                            + (f" ({detail})" if detail else ""))
    return token_der
