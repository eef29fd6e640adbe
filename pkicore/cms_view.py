"""A flat, read-only view of a CMS SignedData (RFC 5652 §5), read with pkicore.der.

Only what verification needs is extracted, as byte strings; nothing is re-encoded, so the
signed attributes are exactly the bytes the signer signed.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from asn1crypto import cms as asn1cms
from asn1crypto import core

from pkicore import der, oids
from pkicore.der import DerError
from pkicore.errors import ErrorKind, PkiError


def _oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).contents


ID_DATA = _oid(oids.ID_DATA)
ID_SIGNED_DATA = _oid(oids.ID_SIGNED_DATA)
ID_CONTENT_TYPE = _oid(oids.ID_CONTENT_TYPE)
ID_MESSAGE_DIGEST = _oid(oids.ID_MESSAGE_DIGEST)
ID_SIGNING_TIME = _oid(oids.ID_SIGNING_TIME)
ID_SIGNING_CERTIFICATE_V2 = _oid(oids.ID_AA_SIGNING_CERTIFICATE_V2)
ID_CMS_ALGORITHM_PROTECTION = _oid(oids.ID_AA_CMS_ALGORITHM_PROTECTION)

DIGESTS = {
    _oid(oids.ID_SHA256): "sha256",
    _oid(oids.ID_SHA384): "sha384",
    _oid(oids.ID_SHA512): "sha512",
}
# Signature algorithm OID -> (kind, digest it implies or None when the digestAlgorithm decides).
SIGNATURES = {
    _oid(oids.ECDSA_WITH_SHA256): ("ecdsa", "sha256"),
    _oid(oids.ECDSA_WITH_SHA384): ("ecdsa", "sha384"),
    _oid(oids.ECDSA_WITH_SHA512): ("ecdsa", "sha512"),
    _oid(oids.ID_EC_PUBLIC_KEY): ("ecdsa", None),              # seen in the wild
    _oid(oids.SHA256_WITH_RSA): ("pkcs1", "sha256"),
    _oid(oids.SHA384_WITH_RSA): ("pkcs1", "sha384"),
    _oid(oids.SHA512_WITH_RSA): ("pkcs1", "sha512"),
    _oid(oids.RSA_ENCRYPTION): ("pkcs1", None),                # OpenSSL writes it
    _oid(oids.RSASSA_PSS): ("pss", None),
}


@dataclass(frozen=True)
class SignerView:
    """One SignerInfo (RFC 5652 §5.3)."""

    sid_issuer: bytes | None          # Name, DER (issuerAndSerialNumber)
    sid_serial: int | None
    sid_ski: bytes | None             # subjectKeyIdentifier
    digest_algorithm: bytes           # AlgorithmIdentifier, DER
    digest_oid: bytes
    digest_params: bytes | None
    signed_attrs: bytes | None        # contents of [0] IMPLICIT, exactly as received
    attributes: dict[bytes, list[bytes]]   # attribute OID -> value elements (DER)
    duplicate_attribute: bool
    signature_algorithm: bytes        # AlgorithmIdentifier, DER
    signature_oid: bytes
    signature_params: bytes | None    # DER of the parameters, if any
    signature: bytes


@dataclass(frozen=True)
class CmsView:
    """The parts of a SignedData that verification reads."""

    econtent_type: bytes
    content: bytes | None             # None: detached
    certificates: tuple[bytes, ...]   # DER, in order
    signers: tuple[SignerView, ...]


def _algorithm(buf: bytes, t: der.Tlv) -> tuple[bytes, bytes, bytes | None]:
    """(whole AlgorithmIdentifier, OID contents, parameters DER or None)."""
    der.expect(t, der.SEQUENCE, "AlgorithmIdentifier")
    parts = der.children(buf, t)
    if not parts:
        raise DerError("empty AlgorithmIdentifier")
    oid = der.contents(buf, der.expect(parts[0], der.OID, "algorithm"))
    params = der.whole(buf, parts[1]) if len(parts) > 1 else None
    return der.whole(buf, t), oid, params


def _signer(buf: bytes, t: der.Tlv) -> SignerView:
    parts = der.children(buf, der.expect(t, der.SEQUENCE, "SignerInfo"))
    if len(parts) < 5:
        raise DerError("SignerInfo too short")
    sid = parts[1]
    issuer = serial = ski = None
    if sid.tag == der.SEQUENCE:                       # issuerAndSerialNumber
        ias = der.children(buf, sid)
        if len(ias) != 2:
            raise DerError("issuerAndSerialNumber")
        issuer = der.whole(buf, der.expect(ias[0], der.SEQUENCE, "issuer"))
        serial = der.integer(buf, ias[1])
    elif sid.tag == 0x80:                             # [0] IMPLICIT SubjectKeyIdentifier
        ski = der.contents(buf, sid)
    else:
        raise DerError("unknown SignerIdentifier")
    digest_alg, digest_oid, digest_params = _algorithm(buf, parts[2])
    i = 3
    signed = None
    attributes: dict[bytes, list[bytes]] = {}
    duplicate = False
    if parts[i].tag == 0xA0:                          # [0] IMPLICIT SignedAttributes
        signed = der.contents(buf, parts[i])
        for attr in der.children(buf, parts[i]):
            fields = der.children(buf, der.expect(attr, der.SEQUENCE, "Attribute"))
            if len(fields) != 2:
                raise DerError("Attribute")
            oid = der.contents(buf, der.expect(fields[0], der.OID, "attrType"))
            values = [der.whole(buf, v) for v in der.children(buf, der.expect(fields[1], der.SET, "attrValues"))]
            duplicate = duplicate or oid in attributes
            attributes[oid] = values
        i += 1
    if len(parts) < i + 2:
        raise DerError("SignerInfo too short")
    sig_alg, sig_oid, sig_params = _algorithm(buf, parts[i])
    signature = der.contents(buf, der.expect(parts[i + 1], der.OCTET_STRING, "signature"))
    trailing = parts[i + 2:]
    # RFC 5652 §5.3: only [1] unsignedAttrs may follow the signature.
    if len(trailing) > 1 or (trailing and trailing[0].tag != 0xA1):
        raise DerError("unexpected elements after the signature")
    return SignerView(issuer, serial, ski, digest_alg, digest_oid, digest_params, signed, attributes, duplicate,
                      sig_alg, sig_oid, sig_params, signature)


def _read(buf: bytes) -> CmsView:
    ci = der.children(buf, der.expect(der.top(buf), der.SEQUENCE, "ContentInfo"))
    if len(ci) != 2 or der.contents(buf, der.expect(ci[0], der.OID, "contentType")) != ID_SIGNED_DATA:
        raise PkiError(ErrorKind.BAD_INPUT, "the CMS does not hold SignedData")
    (sd_tlv,) = der.children(buf, der.expect(ci[1], 0xA0, "content"))
    sd = der.children(buf, der.expect(sd_tlv, der.SEQUENCE, "SignedData"))
    if len(sd) < 4:
        raise DerError("SignedData too short")
    eci = der.children(buf, der.expect(sd[2], der.SEQUENCE, "EncapsulatedContentInfo"))
    if not 1 <= len(eci) <= 2:
        raise DerError("EncapsulatedContentInfo")
    etype = der.contents(buf, der.expect(eci[0], der.OID, "eContentType"))
    content = None
    if len(eci) > 1:
        (octets,) = der.children(buf, der.expect(eci[1], 0xA0, "eContent"))
        content = der.contents(buf, der.expect(octets, der.OCTET_STRING, "eContent"))
    certs: tuple[bytes, ...] = ()
    rest = sd[3:]
    if rest and rest[0].tag == 0xA0:                  # [0] IMPLICIT CertificateSet
        certs = tuple(der.whole(buf, c) for c in der.children(buf, rest[0]) if c.tag == der.SEQUENCE)
        rest = rest[1:]
    if rest and rest[0].tag == 0xA1:                  # [1] IMPLICIT RevocationInfoChoices
        rest = rest[1:]
    if len(rest) != 1:
        raise DerError("SignerInfos missing")
    signers = tuple(_signer(buf, s) for s in der.children(buf, der.expect(rest[0], der.SET, "SignerInfos")))
    return CmsView(etype, content, certs, signers)


def view(data: bytes) -> CmsView:
    """Read a ContentInfo holding SignedData; BAD_INPUT if it is not CMS at all."""
    try:
        return _read(data)
    except DerError:
        pass
    except (ValueError, IndexError) as e:  # unpacking a wrong number of children
        raise PkiError(ErrorKind.BAD_INPUT, "the body is not a DER-encoded CMS SignedData") from e
    # Not DER: maybe BER (indefinite lengths, chunked content) from a streaming encoder.
    # Re-encode with asn1crypto and read again. Re-encoding would also re-sort the signed
    # attributes, so each signer's attributes are taken as received, before the re-encode.
    try:
        parsed = asn1cms.ContentInfo.load(data, strict=True)
        received = [si["signed_attrs"].contents for si in parsed["content"]["signer_infos"]]
        normalised = _read(parsed.dump(force=True))
    except PkiError:
        raise
    except Exception as e:  # asn1crypto raises ValueError/TypeError on garbage
        raise PkiError(ErrorKind.BAD_INPUT, "the body is not a DER-encoded CMS SignedData") from e
    signers = tuple(
        replace(s, signed_attrs=raw) if s.signed_attrs is not None and raw else s
        for s, raw in zip(normalised.signers, received)
    )
    return replace(normalised, signers=signers)
