"""Building CRLs (RFC 5280 §5) as DER, signed through the RawSigner seam.

Entries are assembled as bytes, one at a time, so a CRL of a million entries costs
seconds and stays within a few hundred MB.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from asn1crypto import core

from pkicore.algorithms import RawSigner, SigScheme, signature_algorithm
from pkicore.der import GENERALIZED_TIME, OCTET_STRING, SEQUENCE, tlv_header
from pkicore.x509build import encode_integer, encode_time, seq, sign_tbs

# RFC 5280 §5.3.1 CRLReason
REASONS: dict[str, int] = {
    "unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3,
    "superseded": 4, "cessationOfOperation": 5, "certificateHold": 6, "removeFromCRL": 8,
    "privilegeWithdrawn": 9, "aACompromise": 10,
}
# Reasons an operator may give to `revoke` (RFC 5280 §5.3.1); certificateHold has its own
# command and removeFromCRL is only for delta CRLs.
REVOKE_REASONS = tuple(r for r in REASONS if r not in ("certificateHold", "removeFromCRL"))
REASON_NAMES = {v: k for k, v in REASONS.items()}

_OID_REASON = core.ObjectIdentifier("2.5.29.21").dump()            # RFC 5280 §5.3.1 id-ce-cRLReasons
_OID_INVALIDITY = core.ObjectIdentifier("2.5.29.24").dump()        # RFC 5280 §5.3.2 id-ce-invalidityDate
_OID_CRL_NUMBER = core.ObjectIdentifier("2.5.29.20").dump()        # RFC 5280 §5.2.3 id-ce-cRLNumber
_OID_AKI = core.ObjectIdentifier("2.5.29.35").dump()               # RFC 5280 §5.2.1 id-ce-authorityKeyIdentifier
_V2 = encode_integer(1)


def _ext(oid_der: bytes, value_der: bytes) -> bytes:
    """A non-critical Extension: OID and the value wrapped in an OCTET STRING."""
    return seq(oid_der, tlv_header(OCTET_STRING, len(value_der)) + value_der)


def _generalized(moment: datetime) -> bytes:
    text = moment.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ").encode()
    return tlv_header(GENERALIZED_TIME, len(text)) + text


_REASON_EXT = {code: _ext(_OID_REASON, bytes([0x0A, 0x01, code])) for code in REASONS.values()}


def entry(serial: int, revoked_at: datetime, reason: str | None, invalidity: datetime | None) -> bytes:
    """One revokedCertificates entry with its reason code and invalidity date (§5.3)."""
    exts = []
    # §5.3.1: the reason code unspecified SHOULD be absent rather than present.
    if reason and reason != "unspecified":
        exts.append(_REASON_EXT[REASONS[reason]])
    if invalidity is not None:
        exts.append(_ext(_OID_INVALIDITY, _generalized(invalidity)))   # §5.3.2: GeneralizedTime
    parts = [encode_integer(serial), encode_time(revoked_at)]
    if exts:
        parts.append(seq(*exts))
    return seq(*parts)


def build_crl(signer: RawSigner, scheme: SigScheme, *, issuer_der: bytes, issuer_ski: bytes, number: int,
              this_update: datetime, next_update: datetime, entries: Iterable[bytes]) -> bytes:
    """A v2 CRL with AKI and CRL number, signed; ``entries`` from entry()."""
    revoked = b"".join(entries)
    aki = seq(tlv_header(0x80, len(issuer_ski)) + issuer_ski)        # [0] keyIdentifier
    extensions = seq(_ext(_OID_AKI, aki), _ext(_OID_CRL_NUMBER, encode_integer(number)))
    parts = [_V2, signature_algorithm(scheme).dump(), issuer_der, encode_time(this_update),
             encode_time(next_update)]
    if revoked:                                                       # §5.1.2.6: absent when empty
        parts.append(tlv_header(SEQUENCE, len(revoked)) + revoked)
    parts.append(tlv_header(0xA0, len(extensions)) + extensions)     # [0] EXPLICIT crlExtensions
    return sign_tbs(signer, seq(*parts), scheme)



