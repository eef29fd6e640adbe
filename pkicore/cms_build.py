"""CMS SignedData (RFC 5652), CAdES-BES attributes, signed through the RawSigner seam."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from asn1crypto import algos, cms, tsp, x509

from pkicore import oids  # noqa: F401  (registers signingCertificateV2)
from pkicore.algorithms import RawSigner, SigScheme, default_scheme, sign, signature_algorithm
from pkicore.x509build import x509_time

SHA256 = algos.DigestAlgorithm({"algorithm": "sha256"})


def signing_certificate_v2(cert: x509.Certificate) -> tsp.SigningCertificateV2:
    """RFC 5035 §3: binds the signer certificate (hash and issuer/serial) into the signature."""
    return tsp.SigningCertificateV2({
        "certs": [{
            "hash_algorithm": {"algorithm": "sha256"},   # the DEFAULT; omitted from DER
            "cert_hash": hashlib.sha256(cert.dump()).digest(),
            "issuer_serial": {
                "issuer": [x509.GeneralName({"directory_name": cert.issuer})],
                "serial_number": cert.serial_number,
            },
        }],
    })


def signer_info_algorithm(scheme: SigScheme) -> cms.SignedDigestAlgorithm:
    return cms.SignedDigestAlgorithm.load(signature_algorithm(scheme).dump())


def signed_attributes(cert: x509.Certificate, content: bytes, signing_time: datetime,
                      sig_alg: cms.SignedDigestAlgorithm) -> list[dict[str, object]]:
    """The CAdES-BES signed attributes of DESIGN.md, in a list a caller may extend."""
    return [
        {"type": "content_type", "values": ["data"]},                              # RFC 5652 §11.1
        {"type": "signing_time",                                                    # RFC 5652 §11.3
         "values": [cms.Time.load(x509_time(signing_time.astimezone(timezone.utc)).dump())]},
        {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},  # RFC 5652 §11.2
        {"type": "signing_certificate_v2", "values": [signing_certificate_v2(cert)]},  # RFC 5035 §3
        {"type": "cms_algorithm_protection", "values": [{                          # RFC 6211 §2
            "digest_algorithm": SHA256, "signature_algorithm": sig_alg}]},
    ]


def assemble(signer: RawSigner, cert: x509.Certificate, chain: list[x509.Certificate], content: bytes,
             attributes: list[dict[str, object]], *, detached: bool, scheme: SigScheme) -> bytes:
    """Sign ``attributes`` and wrap everything into a ContentInfo (DER)."""
    signed_attrs = cms.CMSAttributes(attributes)
    # RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF.
    signature, scheme = sign(signer, signed_attrs.dump(), scheme)
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": cert.issuer, "serial_number": cert.serial_number}}),
        "digest_algorithm": SHA256,
        "signed_attrs": signed_attrs,
        "signature_algorithm": signer_info_algorithm(scheme),
        "signature": signature,
    })
    encap: dict[str, object] = {"content_type": "data"}
    if not detached:
        encap["content"] = content
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [SHA256],
        "encap_content_info": encap,
        "certificates": [cert, *chain],
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def sign_data(
    signer: RawSigner,
    cert_der: bytes,
    chain_der: list[bytes],
    content: bytes,
    *,
    signing_time: datetime,
    detached: bool = False,
    scheme: SigScheme | None = None,
) -> bytes:
    """A CAdES-BES SignedData over ``content``; returns the ContentInfo DER."""
    scheme = scheme or default_scheme(signer.key_type)
    cert = x509.Certificate.load(cert_der)
    attrs = signed_attributes(cert, content, signing_time, signer_info_algorithm(scheme))
    chain = [x509.Certificate.load(c) for c in chain_der]
    return assemble(signer, cert, chain, content, attrs, detached=detached, scheme=scheme)
