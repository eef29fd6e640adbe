"""Small DER helpers."""
from __future__ import annotations


def tlv_header(tag: int, length: int) -> bytes:
    """The tag and definite length octets of a DER TLV (X.690 §8.1.3)."""
    if length < 0x80:
        return bytes([tag, length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body


def as_set(contents: bytes) -> bytes:
    """Re-tag implicit [0] contents as a SET OF (RFC 5652 §5.4: signed attributes)."""
    return tlv_header(0x31, len(contents)) + contents
