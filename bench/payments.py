"""Distinct signed payments for the evidence figure, thousands per second.

Every payment has its own tx_id and its own signature by the client key. Building each
one with pkicore.cms_build.sign_data would cost ~20 ms of asn1crypto encoding (not the
key: 40 payments/s), far too slow to feed the server. So each batch signs ONE payment
with sign_data (the template), and every other payment of the batch is that template
with the content, the messageDigest attribute and the signature replaced, and the five
enclosing lengths re-encoded: the signed attributes are hashed and signed again through
the same RawSigner. `check_equivalent` proves on a deterministic signer that the result
is byte for byte what sign_data makes for the same content and signing time.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import core

from pkicore import der, oids
from pkicore.algorithms import KeyType, SigScheme, default_scheme
from pkicore.cms_build import sign_data
from udun.demo import SAMPLE  # the DESIGN.md example payment


def seq(*parts: bytes, tag: int = der.SEQUENCE) -> bytes:
    """A DER constructed element (bench tooling: re-signing a template by splicing)."""
    body = b"".join(parts)
    return der.tlv_header(tag, len(body)) + body


_OID_MESSAGE_DIGEST = core.ObjectIdentifier(oids.ID_MESSAGE_DIGEST).dump()
TX_PREFIX = "BENCH-EV-"
TX_DIGITS = 9       # fixed-width tx_ids: every content of a batch has the template's length


@dataclass(frozen=True)
class _Layout:
    """Where a template payment's variable parts lie (ContentInfo as sign_data writes it)."""

    ci_oid: bytes               # ContentInfo contentType TLV (signedData)
    sd_pre: bytes               # SignedData contents before signerInfos
    content_at: int             # eContent octets inside sd_pre
    content_len: int
    si_pre: bytes               # SignerInfo contents before the signature OCTET STRING
    attrs_at: int               # signedAttrs contents inside si_pre
    attrs_len: int
    digest_at: int              # messageDigest value octets inside si_pre

    @classmethod
    def parse(cls, cms: bytes) -> _Layout:
        ci = der.top(cms)
        oid, explicit = der.children(cms, ci)
        (sd,) = der.children(cms, explicit)
        sd_parts = der.children(cms, sd)
        encap, infos = sd_parts[2], sd_parts[-1]
        (si,) = der.children(cms, der.expect(infos, der.SET, "signerInfos"))
        _, econtent = der.children(cms, encap)
        (octets,) = der.children(cms, econtent)
        si_parts = der.children(cms, si)
        attrs, sig = si_parts[3], si_parts[-1]
        der.expect(attrs, 0xA0, "signedAttrs")
        der.expect(sig, der.OCTET_STRING, "signature")
        digest_at = -1
        for attr in der.children(cms, attrs):
            a_oid, values = der.children(cms, attr)
            if der.whole(cms, a_oid) == _OID_MESSAGE_DIGEST:
                (value,) = der.children(cms, values)
                digest_at = value.cstart
        if digest_at < 0 or infos.end != sd.end or sig.end != si.end:
            raise ValueError("the template is not laid out as sign_data writes it")
        return cls(der.whole(cms, oid), cms[sd.cstart:infos.start], octets.cstart - sd.cstart,
                   octets.end - octets.cstart, cms[si.cstart:sig.start], attrs.cstart - si.cstart,
                   attrs.end - attrs.cstart, digest_at - si.cstart)

    def payment(self, content: bytes, sign: Any) -> bytes:
        """The template over ``content`` (same length), signed anew by ``sign(digest)``."""
        if len(content) != self.content_len:
            raise ValueError(f"content of {len(content)} bytes, the template has {self.content_len}")
        sd_pre = self.sd_pre[:self.content_at] + content + self.sd_pre[self.content_at + self.content_len:]
        d = self.digest_at
        si_pre = self.si_pre[:d] + hashlib.sha256(content).digest() + self.si_pre[d + 32:]
        attrs = si_pre[self.attrs_at:self.attrs_at + self.attrs_len]
        # RFC 5652 §5.4: the signature covers the signed attributes DER-encoded as a SET OF.
        signature = sign(hashlib.sha256(der.as_set(attrs)).digest())
        signer_info = seq(si_pre, der.tlv_header(der.OCTET_STRING, len(signature)) + signature)
        signed_data = seq(sd_pre, seq(signer_info, tag=der.SET))
        return seq(self.ci_oid, seq(signed_data, tag=0xA0))


def transaction(n: int) -> Any:
    """The sample payment with tx_id number ``n`` (validated: pkicore.tx.Transaction)."""
    from pkicore import tx as txmod

    data = json.loads(json.dumps(SAMPLE))
    data["tx_id"] = f"{TX_PREFIX}{n:0{TX_DIGITS}d}"
    return txmod.validate(data)


class PaymentMaker:
    """Signs payments with fresh tx_ids (never one twice per maker) for one signer."""

    def __init__(self, key: Any, cert_der: bytes, chain_der: list[bytes]) -> None:
        self.key = key
        self.cert_der = cert_der
        self.chain_der = chain_der
        self.scheme: SigScheme = default_scheme(key.key_type)
        self.next_tx = 1
        self.made = 0

    def _sign(self, digest: bytes) -> bytes:
        return bytes(self.key.sign_digest(digest, self.scheme))

    def batch(self, n: int) -> list[bytes]:
        """``n`` payments signed now (one signing time for the batch), each a fresh tx_id."""
        if n < 1:
            return []
        if self.next_tx + n > 10 ** TX_DIGITS:
            raise RuntimeError("tx_id numbers exhausted")
        first, self.next_tx = self.next_tx, self.next_tx + n
        now = datetime.now(UTC)
        template = sign_data(self.key, self.cert_der, self.chain_der, transaction(first).canonical_bytes(),
                             signing_time=now)
        layout = _Layout.parse(template)
        out = [template]
        out += [layout.payment(transaction(i).canonical_bytes(), self._sign) for i in range(first + 1, first + n)]
        self.made += n
        return out


class _Deterministic:
    """A fake EC RawSigner whose signature depends only on the digest, of varying length."""

    key_type = KeyType.EC_P256
    public_key_der = b""

    def sign_digest(self, digest: bytes, scheme: SigScheme) -> bytes:
        body = hashlib.sha256(b"sig" + digest).digest() * 3
        return body[:68 + digest[0] % 5]


def check_equivalent(cert_der: bytes, chain_der: list[bytes]) -> None:
    """A spliced payment equals sign_data's for the same content, time and signature."""
    fake = _Deterministic()
    now = datetime.now(UTC)
    template = sign_data(fake, cert_der, chain_der, transaction(0).canonical_bytes(), signing_time=now)
    layout = _Layout.parse(template)
    scheme = default_scheme(fake.key_type)
    for n in (10 ** TX_DIGITS - 1, 12345):
        content = transaction(n).canonical_bytes()
        spliced = layout.payment(content, lambda d: fake.sign_digest(d, scheme))
        if spliced != sign_data(fake, cert_der, chain_der, content, signing_time=now):
            raise RuntimeError("a spliced payment differs from what sign_data makes")
