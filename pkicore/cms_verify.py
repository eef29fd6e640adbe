"""Verifying a signed payment: CMS SignedData (RFC 5652), CAdES-BES, our transaction.

Built for speed: only the fields needed are read from the asn1crypto tree (``.native``
on a whole CMS is ~100x slower), parsed signer certificates and public keys are cached,
and chains are validated once per certificate (pkicore.pathval). The result is always a
Report; only input that is not CMS at all raises PkiError(BAD_INPUT).
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import cms, core, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pkicore import oids
from pkicore import tx as txmod
from pkicore.der import as_set
from pkicore.errors import ErrorKind, PkiError
from pkicore.pathval import ChainValidator
from pkicore.report import Check, Report, Sub, conclude

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
# Signature algorithms accepted in SignerInfo (RFC 5754 §3, RFC 4056 for PSS).
_ECDSA = {"sha256_ecdsa": "sha256", "sha384_ecdsa": "sha384", "sha512_ecdsa": "sha512", "ecdsa": None}
_RSA = {"sha256_rsa": "sha256", "sha384_rsa": "sha384", "sha512_rsa": "sha512",
        "rsassa_pkcs1v15": None}   # rsaEncryption: the digest algorithm decides (OpenSSL writes it)


@dataclass(frozen=True)
class SignerCert:
    """A parsed certificate and what verification needs from it (cached per DER)."""

    asn1: x509.Certificate
    public_key: Any
    identity: dict[str, Any]
    sha256: bytes
    key_usage: frozenset[str]
    ext_key_usage: frozenset[str] | None


def _parse_cert(der: bytes) -> SignerCert:
    asn1 = x509.Certificate.load(der)
    c = cx509.load_der_x509_certificate(der)
    public_key = serialization.load_der_public_key(asn1.public_key.dump())
    ku = asn1.key_usage_value
    eku = asn1.extended_key_usage_value
    identity = {
        "subject": c.subject.rfc4514_string(),
        "issuer": c.issuer.rfc4514_string(),
        "serial": format(c.serial_number, "x"),
        "not_before": c.not_valid_before_utc.isoformat().replace("+00:00", "Z"),
        "not_after": c.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
        "certificate_sha256": hashlib.sha256(der).hexdigest(),
    }
    return SignerCert(
        asn1=asn1,
        public_key=public_key,
        identity=identity,
        sha256=hashlib.sha256(der).digest(),
        key_usage=frozenset(ku.native) if ku is not None else frozenset(),
        ext_key_usage=frozenset(eku.native) if eku is not None else None,
    )


class _CertCache:
    def __init__(self, size: int = 10_000) -> None:
        self._items: OrderedDict[bytes, SignerCert] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, der: bytes) -> SignerCert:
        with self._lock:
            hit = self._items.get(der)
            if hit is not None:
                return hit
        parsed = _parse_cert(der)
        with self._lock:
            self._items[der] = parsed
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return parsed


def _verify_signature(cert: SignerCert, algo: cms.SignedDigestAlgorithm, digest_name: str,
                      signature: bytes, data: bytes) -> str | None:
    """None when the signature verifies, else why not."""
    name = algo["algorithm"].native
    key = cert.public_key
    try:
        if name in _ECDSA:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return "ECDSA signature but the certificate holds no EC key"
            h = _HASHES[_ECDSA[name] or digest_name]
            key.verify(signature, data, ec.ECDSA(h()))
        elif name in _RSA:
            if not isinstance(key, rsa.RSAPublicKey):
                return "RSA signature but the certificate holds no RSA key"
            h = _HASHES[_RSA[name] or digest_name]
            key.verify(signature, data, padding.PKCS1v15(), h())
        elif name == "rsassa_pss":
            if not isinstance(key, rsa.RSAPublicKey):
                return "RSA-PSS signature but the certificate holds no RSA key"
            params = algo["parameters"]
            hname = params["hash_algorithm"]["algorithm"].native
            mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
            if hname not in _HASHES or mgf_hash not in _HASHES:
                return f"unsupported PSS hash {hname}/{mgf_hash}"
            pss = padding.PSS(mgf=padding.MGF1(_HASHES[mgf_hash]()), salt_length=params["salt_length"].native)
            key.verify(signature, data, pss, _HASHES[hname]())
        else:
            return f"unsupported signature algorithm {name}"
    except InvalidSignature:
        return "the signature does not verify with the signer's public key"
    except (KeyError, ValueError, TypeError) as e:
        return f"malformed signature or parameters ({type(e).__name__})"
    return None


@dataclass(frozen=True)
class ParsedCms:
    """The parts of a SignedData that verification reads."""

    signed_data: cms.SignedData
    signer_info: cms.SignerInfo | None
    signer_count: int
    econtent_type: str
    content: bytes | None
    certs_der: tuple[bytes, ...]


def parse(cms_der: bytes) -> ParsedCms:
    """Decode a ContentInfo holding SignedData; BAD_INPUT if it is not CMS at all."""
    try:
        ci = cms.ContentInfo.load(cms_der, strict=True)
        if ci["content_type"].native != "signed_data":
            raise PkiError(ErrorKind.BAD_INPUT, f"CMS content type is {ci['content_type'].native}, not signed data")
        sd = ci["content"]
        infos = sd["signer_infos"]
        eci = sd["encap_content_info"]
        econtent = eci["content"]
        content = None if econtent.native is None else bytes(econtent.native)
        cert_set = sd["certificates"]
        certs = () if isinstance(cert_set, core.Void) else tuple(
            choice.chosen.dump() for choice in cert_set if choice.name == "certificate")
        return ParsedCms(
            signed_data=sd,
            signer_info=infos[0] if len(infos) else None,
            signer_count=len(infos),
            econtent_type=eci["content_type"].native,
            content=content,
            certs_der=certs,
        )
    except PkiError:
        raise
    except Exception as e:  # asn1crypto raises ValueError/TypeError/KeyError on garbage
        raise PkiError(ErrorKind.BAD_INPUT, "the body is not a DER-encoded CMS SignedData") from e


class Verifier:
    """Verifies signed payments against one set of trust anchors."""

    def __init__(self, chains: ChainValidator) -> None:
        self.chains = chains
        self._certs = _CertCache()

    def verify(self, cms_der: bytes, content: bytes | None = None) -> Report:
        """Verify; raises PkiError(BAD_INPUT) only if ``cms_der`` is not CMS."""
        parsed = parse(cms_der)
        try:
            return self._verify(parsed, content)
        except PkiError:
            raise
        except (ValueError, TypeError, KeyError) as e:
            # A structure that parsed at the top but is broken deeper down.
            return conclude([Check("structure", False, f"malformed CMS ({type(e).__name__})", Sub.FORMAT_FAILURE)])

    def _verify(self, p: ParsedCms, external: bytes | None) -> Report:
        checks: list[Check] = []
        fail = lambda name, detail, sub: checks.append(Check(name, False, detail, sub))  # noqa: E731
        ok = lambda name, detail="": checks.append(Check(name, True, detail))  # noqa: E731

        if p.signer_count != 1 or p.signer_info is None:
            fail("structure", f"expected exactly one signer, found {p.signer_count}", Sub.FORMAT_FAILURE)
            return conclude(checks)
        si = p.signer_info
        if p.econtent_type != "data":
            fail("structure", f"encapsulated content type {p.econtent_type} is not id-data", Sub.FORMAT_FAILURE)
            return conclude(checks)

        # The signed attributes exactly as received, before any attribute is read:
        # asn1crypto may re-sort the SET once its children are touched.
        attrs_obj = si["signed_attrs"]
        if attrs_obj.contents is None or not attrs_obj.contents:
            fail("signed attributes", "missing (CAdES-BES requires them)", Sub.FORMAT_FAILURE)
            return conclude(checks)
        signed_bytes = as_set(attrs_obj.contents)

        # Content: attached, or handed in for a detached signature.
        if p.content is not None:
            content = p.content
            if external is not None and external != content:
                fail("content", "the content given differs from the attached content", Sub.HASH_FAILURE)
        elif external is not None:
            content = external
        else:
            fail("content", "detached signature and no content given", Sub.SIGNED_DATA_NOT_FOUND)
            return conclude(checks)

        attrs: dict[str, list[Any]] = {}
        for attr in attrs_obj:
            name = attr["type"].native
            if name in attrs:
                fail("signed attributes", f"attribute {name} appears twice", Sub.FORMAT_FAILURE)
            attrs[name] = list(attr["values"])

        def single(name: str) -> Any | None:
            values = attrs.get(name)
            if values is None:
                return None
            if len(values) != 1:
                fail("signed attributes", f"{name} must have exactly one value", Sub.FORMAT_FAILURE)
            return values[0]

        ct = single("content_type")
        if ct is None or ct.native != p.econtent_type:
            fail("content type", "content-type attribute missing or not matching", Sub.FORMAT_FAILURE)

        digest_name = si["digest_algorithm"]["algorithm"].native
        if digest_name not in _HASHES:
            fail("message digest", f"unsupported digest algorithm {digest_name}", Sub.FORMAT_FAILURE)
            return conclude(checks)
        md = single("message_digest")
        if md is None:
            fail("message digest", "message-digest attribute missing", Sub.FORMAT_FAILURE)
        elif hashlib.new(digest_name, content).digest() != md.native:
            fail("message digest", "the content does not match the signed digest", Sub.HASH_FAILURE)
        else:
            ok("message digest", digest_name)

        # The signer certificate, named by the SignerIdentifier.
        certs = [self._certs.get(d) for d in p.certs_der]
        sid = si["sid"]
        signer: SignerCert | None = None
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            serial, issuer = ias["serial_number"].native, ias["issuer"]
            issuer_der = issuer.dump()
            # Byte equality first (the usual case); RFC 5280 name matching as a fallback.
            signer = next((c for c in certs if c.asn1.serial_number == serial
                           and (c.asn1.issuer.dump() == issuer_der or c.asn1.issuer == issuer)), None)
        else:
            ski = sid.chosen.native
            signer = next((c for c in certs if c.asn1.key_identifier == ski), None)
        if signer is None:
            fail("signer certificate", "the signer's certificate is not in the CMS", Sub.NO_SIGNING_CERTIFICATE_FOUND)
            return conclude(checks)

        why = _verify_signature(signer, si["signature_algorithm"], digest_name, si["signature"].native, signed_bytes)
        if why:
            fail("signature", why, Sub.SIG_CRYPTO_FAILURE)
        else:
            ok("signature", si["signature_algorithm"]["algorithm"].native)

        self._check_algorithm_protection(single("cms_algorithm_protection"), si, checks)
        self._check_signing_certificate(single("signing_certificate_v2"), signer, checks)

        st = single("signing_time")
        signing_time: datetime | None = st.native if st is not None else None
        if signing_time is None:
            fail("signing time", "signing-time attribute missing", Sub.FORMAT_FAILURE)
        else:
            ok("signing time", "claimed by the signer (not proven)")
            others = [c.asn1 for c in certs if c is not signer]
            chain = self.chains.validate(signer.asn1, others, signing_time)
            if chain.ok:
                ok("certificate chain", f"{chain.detail}, valid at the signing time")
            else:
                fail("certificate chain", chain.detail, chain.failure)

        if "non_repudiation" not in signer.key_usage:
            fail("key usage", "the certificate does not allow nonRepudiation", Sub.SIG_CONSTRAINTS_FAILURE)
        elif signer.ext_key_usage is not None and not (
            {"document_signing", oids.ID_KP_DOCUMENT_SIGNING, "any_extended_key_usage"} & signer.ext_key_usage
        ):
            fail("key usage", "extendedKeyUsage lacks documentSigning (RFC 9336)", Sub.SIG_CONSTRAINTS_FAILURE)
        else:
            ok("key usage", "nonRepudiation")

        transaction = None
        try:
            transaction = txmod.load_canonical(content).raw
            ok("transaction", "valid canonical payment (version 1)")
        except PkiError as e:
            fail("transaction", e.message, Sub.FORMAT_FAILURE)

        return conclude(checks, signer=signer.identity, signing_time=signing_time,
                        transaction=transaction, signer_cert_der=signer.asn1.dump())

    @staticmethod
    def _check_signing_certificate(value: Any | None, signer: SignerCert, checks: list[Check]) -> None:
        """RFC 5035 §3 / EN 319 122-1 §5.2.2: the signed attribute must name this certificate."""
        name = "signing certificate"
        if value is None:
            checks.append(Check(name, False, "signingCertificateV2 attribute missing (CAdES-BES requires it)",
                                Sub.FORMAT_FAILURE))
            return
        first = value["certs"][0]
        hname = first["hash_algorithm"]["algorithm"].native
        if hname not in _HASHES:
            checks.append(Check(name, False, f"unsupported hash {hname}", Sub.FORMAT_FAILURE))
            return
        if hashlib.new(hname, signer.asn1.dump()).digest() != first["cert_hash"].native:
            checks.append(Check(name, False, "signingCertificateV2 names another certificate",
                                Sub.NO_SIGNING_CERTIFICATE_FOUND))
            return
        issuer_serial = first["issuer_serial"]
        if not isinstance(issuer_serial, core.Void):
            if issuer_serial["serial_number"].native != signer.asn1.serial_number:
                checks.append(Check(name, False, "signingCertificateV2 issuerSerial names another certificate",
                                    Sub.NO_SIGNING_CERTIFICATE_FOUND))
                return
        checks.append(Check(name, True, "signingCertificateV2 matches the signer certificate"))

    @staticmethod
    def _check_algorithm_protection(value: Any | None, si: cms.SignerInfo, checks: list[Check]) -> None:
        """RFC 6211 §3: if present, the protected algorithms must be the ones used."""
        if value is None:
            return
        same_digest = value["digest_algorithm"].dump() == si["digest_algorithm"].dump()
        sig = value["signature_algorithm"]
        same_sig = not isinstance(sig, core.Void) and sig["algorithm"].native == si["signature_algorithm"]["algorithm"].native
        if same_digest and same_sig:
            checks.append(Check("algorithm protection", True, "cmsAlgorithmProtection matches"))
        else:
            checks.append(Check("algorithm protection", False, "cmsAlgorithmProtection does not match the algorithms used",
                                Sub.FORMAT_FAILURE))
