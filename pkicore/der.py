"""A minimal DER reader for the verification hot path, and small DER writers.

asn1crypto is complete but slow to navigate (each field access builds objects); reading a
CMS SignedData costs ~500 µs with it and ~30 µs with this reader. Only definite-length
DER is read here: BER input is first re-encoded by asn1crypto (see cms_view.view()).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18


class DerError(ValueError):
    """The bytes are not the DER structure expected."""


class Tlv(NamedTuple):
    """One element: its tag byte and where its header and contents lie in the buffer."""

    tag: int
    start: int      # first byte of the tag
    cstart: int     # first byte of the contents
    end: int        # one past the last byte of the contents


def read(buf: bytes, pos: int, end: int) -> Tlv:
    """The element starting at ``pos`` (which must end by ``end``)."""
    if pos + 2 > end:
        raise DerError("truncated element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used in CMS")
    first = buf[pos + 1]
    cstart = pos + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length (BER)")
    else:
        n = first & 0x7F
        if n > 4 or cstart + n > end:
            raise DerError("bad length")
        length = int.from_bytes(buf[cstart:cstart + n], "big")
        # X.690 §10.1: DER uses the shortest length form; anything else is BER.
        if length < 0x80 or buf[cstart] == 0:
            raise DerError("non-minimal length (BER)")
        cstart += n
    stop = cstart + length
    if stop > end:
        raise DerError("element runs past its container")
    return Tlv(tag, pos, cstart, stop)


def top(buf: bytes) -> Tlv:
    """The single element that makes up ``buf``."""
    t = read(buf, 0, len(buf))
    if t.end != len(buf):
        raise DerError("trailing bytes after the structure")
    return t


def children(buf: bytes, parent: Tlv) -> list[Tlv]:
    """The elements inside a constructed element."""
    if not parent.tag & 0x20:
        raise DerError(f"tag 0x{parent.tag:02x} is not constructed")
    out = []
    pos = parent.cstart
    while pos < parent.end:
        t = read(buf, pos, parent.end)
        out.append(t)
        pos = t.end
    return out


def expect(t: Tlv, tag: int, what: str) -> Tlv:
    if t.tag != tag:
        raise DerError(f"{what}: expected tag 0x{tag:02x}, found 0x{t.tag:02x}")
    return t


def contents(buf: bytes, t: Tlv) -> bytes:
    return buf[t.cstart:t.end]


def whole(buf: bytes, t: Tlv) -> bytes:
    return buf[t.start:t.end]


def integer(buf: bytes, t: Tlv) -> int:
    expect(t, INTEGER, "INTEGER")
    if t.end == t.cstart:
        raise DerError("empty INTEGER")
    if t.end - t.cstart > 1 and (buf[t.cstart] == 0 and buf[t.cstart + 1] < 0x80
                                 or buf[t.cstart] == 0xFF and buf[t.cstart + 1] >= 0x80):
        raise DerError("non-minimal INTEGER")  # X.690 §8.3.2
    return int.from_bytes(buf[t.cstart:t.end], "big", signed=True)


def time(buf: bytes, t: Tlv) -> datetime:
    """UTCTime (RFC 5280 §4.1.2.5.1 window) or GeneralizedTime, whole seconds, 'Z' only."""
    text = buf[t.cstart:t.end].decode("ascii", errors="replace")
    if not text[:-1].isdigit() or not text.isascii():
        raise DerError(f"bad time {text!r}")
    try:
        if t.tag == UTC_TIME and len(text) == 13 and text.endswith("Z"):
            year = int(text[:2])
            year += 1900 if year >= 50 else 2000
            rest = text[2:12]
        elif t.tag == GENERALIZED_TIME and len(text) == 15 and text.endswith("Z"):
            year = int(text[:4])
            rest = text[4:14]
        else:
            raise ValueError("unsupported time encoding")
        return datetime(year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]),
                        int(rest[8:10]), tzinfo=timezone.utc)
    except ValueError as e:
        raise DerError(f"bad time {text!r}") from e


def tlv_header(tag: int, length: int) -> bytes:
    """The tag and definite length octets of a DER TLV (X.690 §8.1.3)."""
    if length < 0x80:
        return bytes([tag, length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body


def as_set(contents: bytes) -> bytes:
    """Re-tag implicit [0] contents as a SET OF (RFC 5652 §5.4: signed attributes)."""
    return tlv_header(SET, len(contents)) + contents
