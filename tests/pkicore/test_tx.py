"""Unit tests for pkicore.tx: the version-1 payment transaction (DESIGN.md "Formats").

Pure unit tests: no token, no database, no network.

"""
from __future__ import annotations

import copy
import dataclasses
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from pkicore import tx
from pkicore.errors import ErrorKind, PkiError

# The DESIGN.md sample, verbatim.
SAMPLE_TEXT = """\
{"version": 1, "tx_id": "TX-20261122-0001",
 "payer": {"account": "6222020200112233445", "name": "张三"},
 "payee": {"account": "6228480012345678901", "name": "李四", "bank": "中国农业银行"},
 "amount": "1234.50", "currency": "CNY", "created_at": "2026-11-22T10:00:00Z",
 "memo": "房租"}
"""
SAMPLE_BYTES = SAMPLE_TEXT.encode("utf-8")

# RFC 8785 form of the sample, written by hand: members sorted by key (all keys are ASCII
# here, so UTF-16 order == ASCII order), no whitespace, non-ASCII text as raw UTF-8.
EXPECTED_CANONICAL = (
    '{"amount":"1234.50",'
    '"created_at":"2026-11-22T10:00:00Z",'
    '"currency":"CNY",'
    '"memo":"房租",'
    '"payee":{"account":"6228480012345678901","bank":"中国农业银行","name":"李四"},'
    '"payer":{"account":"6222020200112233445","name":"张三"},'
    '"tx_id":"TX-20261122-0001",'
    '"version":1}'
).encode("utf-8")

PAYER_ACCOUNT = "6222020200112233445"
PAYEE_ACCOUNT = "6228480012345678901"


def sample() -> dict[str, Any]:
    """A fresh, mutable copy of the DESIGN sample."""
    return copy.deepcopy(json.loads(SAMPLE_TEXT))


def encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def with_field(path: str, value: Any) -> dict[str, Any]:
    """The sample with the (possibly dotted) field set to value."""
    obj = sample()
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    target[last] = value
    return obj


def without_field(path: str) -> dict[str, Any]:
    obj = sample()
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    del target[last]
    return obj


def refused(data: bytes, field: str | None = None) -> PkiError:
    """Assert tx.load refuses data as BAD_TRANSACTION (naming field, if given)."""
    with pytest.raises(PkiError) as info:
        tx.load(data)
    err = info.value
    assert err.kind is ErrorKind.BAD_TRANSACTION
    if field is not None:
        assert err.field == field, f"expected field {field!r}, got {err.field!r} ({err.message})"
        assert err.message.startswith(field)
    return err


def refused_obj(obj: Any, field: str | None = None) -> PkiError:
    return refused(encode(obj), field)


# --------------------------------------------------------------------------- sample

class TestSample:
    def test_sample_validates_with_the_right_values(self) -> None:
        t = tx.load(SAMPLE_BYTES)
        assert t.tx_id == "TX-20261122-0001"
        assert t.payer == tx.Party(account=PAYER_ACCOUNT, name="张三", bank=None)
        assert t.payee == tx.Party(account=PAYEE_ACCOUNT, name="李四", bank="中国农业银行")
        assert t.amount == Decimal("1234.50")
        assert isinstance(t.amount, Decimal)
        assert t.amount_text == "1234.50"
        assert t.currency == "CNY"
        assert t.created_at == datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)
        assert t.created_at.utcoffset().total_seconds() == 0
        assert t.memo == "房租"
        assert t.raw == json.loads(SAMPLE_TEXT)

    def test_validate_accepts_parsed_sample(self) -> None:
        t = tx.validate(sample())
        assert t.canonical_bytes() == EXPECTED_CANONICAL

    def test_canonical_bytes_match_hand_written_rfc8785(self) -> None:
        assert tx.load(SAMPLE_BYTES).canonical_bytes() == EXPECTED_CANONICAL

    def test_canonical_bytes_are_raw_utf8_not_escaped(self) -> None:
        c = tx.load(SAMPLE_BYTES).canonical_bytes()
        # 张三 as UTF-8 bytes, not \u5f20\u4e09
        assert b'"name":"\xe5\xbc\xa0\xe4\xb8\x89"' in c
        assert b"\\u" not in c
        assert b" " not in c and b"\n" not in c
        assert c.decode("utf-8")  # valid UTF-8

    def test_round_trip(self) -> None:
        t1 = tx.load(SAMPLE_BYTES)
        c1 = t1.canonical_bytes()
        t2 = tx.load_canonical(c1)
        assert t2.canonical_bytes() == c1
        for f in ("tx_id", "payer", "payee", "amount", "amount_text", "currency",
                  "created_at", "memo", "raw"):
            assert getattr(t2, f) == getattr(t1, f), f
        assert json.loads(c1) == json.loads(SAMPLE_TEXT)

    def test_key_order_and_layout_do_not_change_canonical_bytes(self) -> None:
        obj = sample()
        reordered = {k: obj[k] for k in reversed(list(obj))}
        reordered["payee"] = {k: obj["payee"][k] for k in reversed(list(obj["payee"]))}
        pretty = json.dumps(reordered, indent=4, ensure_ascii=True).encode("ascii")
        assert tx.load(pretty).canonical_bytes() == EXPECTED_CANONICAL

    def test_transaction_is_frozen(self) -> None:
        t = tx.load(SAMPLE_BYTES)
        with pytest.raises(dataclasses.FrozenInstanceError):
            t.amount = Decimal("1")  # type: ignore[misc]

    def test_optional_fields_may_be_absent(self) -> None:
        obj = sample()
        del obj["memo"]
        del obj["payer"]["name"]
        del obj["payee"]["bank"]
        t = tx.load(encode(obj))
        assert t.memo is None
        assert t.payer.name is None
        assert t.payee.bank is None
        assert t.canonical_bytes() == (
            '{"amount":"1234.50","created_at":"2026-11-22T10:00:00Z","currency":"CNY",'
            '"payee":{"account":"6228480012345678901","name":"李四"},'
            '"payer":{"account":"6222020200112233445"},'
            '"tx_id":"TX-20261122-0001","version":1}'
        ).encode("utf-8")


# --------------------------------------------------------------------------- canonicalize

class TestCanonicalize:
    def test_keys_sorted_by_utf16_code_units(self) -> None:
        # The RFC 8785 section 3.2.3 example. U+1F600 is D83D DE00 in UTF-16, so it sorts
        # before U+FB33 although its code point is larger.
        obj = {
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\U0001F600": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis",
        }
        expected = (
            b'{"\\r":"Carriage Return",'
            b'"1":"One",'
            b'"\xc2\x80":"Control",'
            b'"\xc3\xb6":"Latin Small Letter O With Diaeresis",'
            b'"\xe2\x82\xac":"Euro Sign",'
            b'"\xf0\x9f\x98\x80":"Emoji: Grinning Face",'
            b'"\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}'
        )
        assert tx.canonicalize(obj) == expected

    def test_utf16_order_differs_from_code_point_order(self) -> None:
        out = tx.canonicalize({"\uffff": 1, "\U00010000": 2})
        assert out == b'{"\xf0\x90\x80\x80":2,"\xef\xbf\xbf":1}'

    def test_string_escaping(self) -> None:
        out = tx.canonicalize({"a": 'q"b\\c/\n\x1f\x7f'})
        assert out == b'{"a":"q\\"b\\\\c/\\n\\u001f\x7f"}'

    def test_nested_and_no_whitespace(self) -> None:
        out = tx.canonicalize({"b": {"z": 1, "a": [1, "x"]}, "a": True, "c": None})
        assert out == b'{"a":true,"b":{"a":[1,"x"],"z":1},"c":null}'


# --------------------------------------------------------------------------- load_canonical

class TestLoadCanonical:
    def test_accepts_canonical_bytes(self) -> None:
        t = tx.load_canonical(EXPECTED_CANONICAL)
        assert t.amount_text == "1234.50"
        assert t.canonical_bytes() == EXPECTED_CANONICAL

    @pytest.mark.parametrize(
        "variant",
        [
            pytest.param(lambda: SAMPLE_BYTES, id="design-layout"),
            pytest.param(lambda: json.dumps(sample(), indent=2, ensure_ascii=False).encode(),
                         id="pretty-indent-2"),
            pytest.param(lambda: json.dumps(sample(), ensure_ascii=False,
                                            separators=(", ", ": ")).encode(),
                         id="spaces-after-separators"),
            pytest.param(lambda: json.dumps(sample(), separators=(",", ":")).encode(),
                         id="ascii-escaped"),
            pytest.param(lambda: json.dumps(sample(), ensure_ascii=False,
                                            separators=(",", ":")).encode(),
                         id="compact-unsorted"),
            pytest.param(lambda: EXPECTED_CANONICAL + b"\n", id="trailing-newline"),
            pytest.param(lambda: b" " + EXPECTED_CANONICAL, id="leading-space"),
        ],
    )
    def test_refuses_same_payment_in_other_layouts(self, variant: Any) -> None:
        data = variant()
        assert data != EXPECTED_CANONICAL
        # It is the same, valid payment...
        assert tx.load(data).canonical_bytes() == EXPECTED_CANONICAL
        # ...but not acceptable as signed content.
        with pytest.raises(PkiError) as info:
            tx.load_canonical(data)
        assert info.value.kind is ErrorKind.BAD_TRANSACTION
        assert info.value.field == "(json)"
        assert "canonical" in info.value.message

    def test_still_validates(self) -> None:
        obj = with_field("amount", "-1.00")
        with pytest.raises(PkiError) as info:
            tx.load_canonical(tx.canonicalize(obj))
        assert info.value.kind is ErrorKind.BAD_TRANSACTION
        assert info.value.field == "amount"


# --------------------------------------------------------------------------- structure

REQUIRED = [
    "version", "tx_id", "payer", "payee", "amount", "currency", "created_at",
    "payer.account", "payee.account", "payee.name",
]


@pytest.mark.parametrize("field", REQUIRED)
def test_missing_required_field_is_named(field: str) -> None:
    err = refused_obj(without_field(field), field)
    assert "required" in err.message


@pytest.mark.parametrize("field", ["memo", "payer.name", "payee.bank"])
def test_optional_field_may_be_missing(field: str) -> None:
    t = tx.load(encode(without_field(field)))
    value = {"memo": t.memo, "payer.name": t.payer.name, "payee.bank": t.payee.bank}[field]
    assert value is None
    signed = json.loads(t.canonical_bytes())
    *parents, last = field.split(".")
    for p in parents:
        signed = signed[p]
    assert last not in signed


@pytest.mark.parametrize(
    "path, field",
    [
        ("extra", "extra"),
        ("signature", "signature"),
        ("Amount", "Amount"),
        ("payer.extra", "payer.extra"),
        ("payer.bank", "payer.bank"),
        ("payee.iban", "payee.iban"),
        ("payee.Name", "payee.Name"),
    ],
)
def test_unknown_field_is_refused_and_named(path: str, field: str) -> None:
    err = refused_obj(with_field(path, "x"), field)
    assert "unknown" in err.message


@pytest.mark.parametrize("field", ["payer", "payee"])
@pytest.mark.parametrize("value", ["x", ["6228480012345678901"], None, 1])
def test_party_must_be_an_object(field: str, value: Any) -> None:
    refused_obj(with_field(field, value), field)


@pytest.mark.parametrize(
    "data",
    [b"[]", b'"TX"', b"1", b"null", b"", b"{", b'{"version": 1} x', b"{'version': 1}"],
)
def test_not_a_json_object(data: bytes) -> None:
    refused(data, "(json)")


# --------------------------------------------------------------------------- amount

@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("1234.567", id="3-decimals"),
        pytest.param("0.001", id="3-decimals-small"),
        pytest.param("-1234.50", id="negative"),
        pytest.param("-1", id="negative-int"),
        pytest.param("0", id="zero"),
        pytest.param("0.00", id="zero-2dp"),
        pytest.param("0.0", id="zero-1dp"),
        pytest.param("01234.50", id="leading-zero"),
        pytest.param("00.50", id="leading-zeros-fraction"),
        pytest.param("1e3", id="exponent"),
        pytest.param("1E3", id="exponent-upper"),
        pytest.param("1.5e2", id="exponent-fraction"),
        pytest.param(" 1234.50", id="leading-space"),
        pytest.param("1234.50 ", id="trailing-space"),
        pytest.param("1 234.50", id="inner-space"),
        pytest.param("\t1234.50", id="leading-tab"),
        pytest.param("1,234.50", id="grouping-comma"),
        pytest.param("1_234.50", id="underscore"),
        pytest.param("+1234.50", id="plus-sign"),
        pytest.param(".50", id="no-integer-part"),
        pytest.param("1234.", id="trailing-dot"),
        pytest.param("", id="empty"),
        pytest.param("NaN", id="nan-string"),
        pytest.param("Infinity", id="infinity-string"),
        pytest.param("１２３４.５０", id="fullwidth-digits"),
        pytest.param("1234,50", id="decimal-comma"),
        pytest.param("1000000000000000", id="16-digits"),
        pytest.param("0x10", id="hex"),
    ],
)
def test_bad_amount_string_refused(amount: str) -> None:
    refused_obj(with_field("amount", amount), "amount")


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param("1234.50\n", id="trailing-newline"),
        pytest.param("1234\n", id="int-trailing-newline"),
    ],
)
def test_amount_trailing_newline_refused(amount: str) -> None:
    refused_obj(with_field("amount", amount), "amount")


@pytest.mark.parametrize("value", [1234, 1, 0, -5, True, None, ["1234.50"], {"v": "1"}])
def test_amount_non_string_json_values_refused(value: Any) -> None:
    refused_obj(with_field("amount", value), "amount")


@pytest.mark.parametrize("literal", [b"1234.50", b"1234.5", b"1e3", b"1.0", b"-0.0"])
def test_amount_json_float_refused(literal: bytes) -> None:
    data = EXPECTED_CANONICAL.replace(b'"1234.50"', literal, 1)
    assert data != EXPECTED_CANONICAL
    err = refused(data)
    # Floats are refused by the parser, before the schema sees the field.
    assert err.field == "(json)"
    assert "number" in err.message


def test_float_anywhere_refused() -> None:
    data = EXPECTED_CANONICAL.replace(b'"version":1', b'"version":1.0')
    refused(data, "(json)")


@pytest.mark.parametrize(
    "amount, expected",
    [
        ("0.01", Decimal("0.01")),
        ("1", Decimal("1")),
        ("1234.5", Decimal("1234.5")),
        ("1234.50", Decimal("1234.50")),
        ("10", Decimal("10")),
        ("999999999999999.99", Decimal("999999999999999.99")),
    ],
)
def test_good_amounts_accepted(amount: str, expected: Decimal) -> None:
    t = tx.load(encode(with_field("amount", amount)))
    assert t.amount == expected
    assert t.amount_text == amount
    assert json.loads(t.canonical_bytes())["amount"] == amount  # signed verbatim


# --------------------------------------------------------------------------- currency

@pytest.mark.parametrize("currency", ["JPY", "KRW", "VND", "CLP", "ISK"])
@pytest.mark.parametrize("amount", ["1000.00", "1000.5", "0.50"])
def test_zero_decimal_currency_with_decimals_refused(currency: str, amount: str) -> None:
    obj = with_field("currency", currency)
    obj["amount"] = amount
    err = refused_obj(obj, "amount")
    assert currency in err.message


@pytest.mark.parametrize("currency", ["JPY", "KRW"])
def test_zero_decimal_currency_without_decimals_accepted(currency: str) -> None:
    obj = with_field("currency", currency)
    obj["amount"] = "1000"
    t = tx.load(encode(obj))
    assert t.currency == currency
    assert t.amount == Decimal(1000)


@pytest.mark.parametrize("currency", ["CNY", "USD", "EUR", "HKD", "GBP", "BHD"])
def test_known_currencies_accepted(currency: str) -> None:
    assert tx.load(encode(with_field("currency", currency))).currency == currency


@pytest.mark.parametrize(
    "currency",
    ["XXX", "RMB", "cny", "Cny", "CN", "CNYY", "", " CNY", "CNY ", "ABC", "XAU", "BTC",
     156, None, ["CNY"]],
)
def test_unknown_currency_refused(currency: Any) -> None:
    refused_obj(with_field("currency", currency), "currency")


# --------------------------------------------------------------------------- created_at

@pytest.mark.parametrize(
    "created",
    [
        pytest.param("2026-11-22T10:00:00+08:00", id="offset-plus8"),
        pytest.param("2026-11-22T10:00:00-05:00", id="offset-minus5"),
        pytest.param("2026-11-22T10:00:00+00:00", id="offset-zero-not-Z"),
        pytest.param("2026-11-22T10:00:00", id="no-zone"),
        pytest.param("2026-11-22 10:00:00Z", id="space-separator"),
        pytest.param("2026-11-22T10:00Z", id="no-seconds"),
        pytest.param("2026-11-22", id="date-only"),
        pytest.param("2026-02-30T10:00:00Z", id="feb-30"),
        pytest.param("2025-02-29T10:00:00Z", id="feb-29-non-leap"),
        pytest.param("2026-13-01T10:00:00Z", id="month-13"),
        pytest.param("2026-00-10T10:00:00Z", id="month-0"),
        pytest.param("2026-11-31T10:00:00Z", id="nov-31"),
        pytest.param("2026-11-22T25:00:00Z", id="hour-25"),
        pytest.param("2026-11-22T10:60:00Z", id="minute-60"),
        pytest.param("2026-11-22T10:00:00.1234567Z", id="7-fraction-digits"),
        pytest.param("20261122T100000Z", id="basic-format"),
        pytest.param(" 2026-11-22T10:00:00Z", id="leading-space"),
        pytest.param("2026-11-22T10:00:00Z ", id="trailing-space"),
        pytest.param("", id="empty"),
        pytest.param(1795341600, id="unix-int"),
        pytest.param(None, id="null"),
    ],
)
def test_bad_created_at_refused(created: Any) -> None:
    refused_obj(with_field("created_at", created), "created_at")


def test_created_at_trailing_newline_refused() -> None:
    refused_obj(with_field("created_at", "2026-11-22T10:00:00Z\n"), "created_at")


@pytest.mark.parametrize(
    "created, expected",
    [
        ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=timezone.utc)),
        ("2026-11-22T10:00:00.5Z",
         datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=timezone.utc)),
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=timezone.utc)),
    ],
)
def test_good_created_at_accepted(created: str, expected: datetime) -> None:
    t = tx.load(encode(with_field("created_at", created)))
    assert t.created_at == expected
    assert t.created_at.tzinfo is not None
    assert t.created_at.utcoffset().total_seconds() == 0


# --------------------------------------------------------------------------- JSON strictness

def test_duplicate_top_level_key_refused() -> None:
    # The classic attack: a viewer shows the first value, a parser keeps the last.
    data = EXPECTED_CANONICAL.replace(b'"amount":"1234.50",',
                                      b'"amount":"1.00","amount":"1234.50",')
    assert data.count(b'"amount"') == 2
    err = refused(data, "amount")
    assert "duplicate" in err.message


def test_duplicate_nested_key_refused() -> None:
    data = EXPECTED_CANONICAL.replace(
        b'"payee":{"account":"6228480012345678901",',
        b'"payee":{"account":"6228480012345678901","account":"6228480099999999999",')
    err = refused(data, "account")
    assert "duplicate" in err.message


def test_duplicate_key_with_same_value_refused() -> None:
    data = EXPECTED_CANONICAL.replace(b'"currency":"CNY",', b'"currency":"CNY","currency":"CNY",')
    refused(data, "currency")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("where", [b'"version":1', b'"amount":"1234.50"'])
def test_nan_and_infinity_refused(constant: bytes, where: bytes) -> None:
    key = where.split(b":")[0]
    data = EXPECTED_CANONICAL.replace(where, key + b":" + constant)
    assert constant in data
    err = refused(data, "(json)")
    assert constant.lstrip(b"-").decode() in err.message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(SAMPLE_TEXT.encode("gbk"), id="gbk"),
        pytest.param(SAMPLE_TEXT.encode("utf-16"), id="utf-16"),
        pytest.param(SAMPLE_TEXT.encode("utf-16-le"), id="utf-16-le"),
        pytest.param(EXPECTED_CANONICAL.replace(b"CNY", b"CN\xff"), id="stray-0xff"),
        pytest.param(EXPECTED_CANONICAL.replace("房租".encode(), b"\xed\xa0\x80"),
                     id="utf8-encoded-surrogate"),
        pytest.param(EXPECTED_CANONICAL.replace("房租".encode(), b"\xc0\xaf"),
                     id="overlong"),
        pytest.param(EXPECTED_CANONICAL.replace("房租".encode(), "房租".encode()[:-1]),
                     id="truncated-sequence"),
    ],
)
def test_non_utf8_refused(data: bytes) -> None:
    err = refused(data, "(json)")
    assert "UTF-8" in err.message


def test_utf8_bom_refused() -> None:
    refused(b"\xef\xbb\xbf" + EXPECTED_CANONICAL, "(json)")


def test_too_large_refused() -> None:
    data = EXPECTED_CANONICAL[:-1] + b" " * tx.MAX_TX_BYTES + b"}"
    assert len(data) > tx.MAX_TX_BYTES
    err = refused(data, "(json)")
    assert str(tx.MAX_TX_BYTES) in err.message


def test_size_limit_boundary() -> None:
    pad = tx.MAX_TX_BYTES - len(EXPECTED_CANONICAL)
    at_limit = EXPECTED_CANONICAL[:-1] + b" " * pad + b"}"
    assert len(at_limit) == tx.MAX_TX_BYTES
    assert tx.load(at_limit).canonical_bytes() == EXPECTED_CANONICAL
    refused(at_limit + b" ", "(json)")


def test_too_large_refused_before_parsing() -> None:
    # Not even valid JSON or UTF-8: size is the first check.
    err = refused(b"\xff" * (tx.MAX_TX_BYTES + 1), "(json)")
    assert "larger" in err.message


def test_huge_integer_refused_as_pki_error() -> None:
    data = EXPECTED_CANONICAL.replace(b'"version":1', b'"version":' + b"1" * 5000)
    assert len(data) < tx.MAX_TX_BYTES
    refused(data)


def test_deep_nesting_refused_as_pki_error() -> None:
    data = EXPECTED_CANONICAL[:-1] + b',"memo":' + b"[" * 30000 + b"]" * 30000 + b"}"
    assert len(data) < tx.MAX_TX_BYTES
    refused(data)


# --------------------------------------------------------------------------- text fields

TEXT_FIELDS = ["payee.name", "payer.name", "payee.bank", "memo"]


@pytest.mark.parametrize(
    "char",
    [
        pytest.param("\u202e", id="U+202E-RLO"),
        pytest.param("\u202d", id="U+202D-LRO"),
        pytest.param("\u2066", id="U+2066-LRI"),
        pytest.param("\u200e", id="U+200E-LRM"),
        pytest.param("\u200b", id="U+200B-ZWSP"),
        pytest.param("\u200c", id="U+200C-ZWNJ"),
        pytest.param("\u200d", id="U+200D-ZWJ"),
        pytest.param("\u2060", id="U+2060-WJ"),
        pytest.param("\ufeff", id="U+FEFF-BOM"),
        pytest.param("\u00ad", id="U+00AD-SOFT-HYPHEN"),
        pytest.param("\x00", id="NUL"),
        pytest.param("\n", id="LF"),
        pytest.param("\t", id="TAB"),
        pytest.param("\x7f", id="DEL"),
        pytest.param("\x85", id="NEL"),
        pytest.param("\ue000", id="private-use"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
def test_invisible_or_control_char_in_payee_name_refused(char: str) -> None:
    obj = with_field("payee.name", "李" + char + "四")
    # ensure_ascii so a lone surrogate can be written as \ud800
    data = json.dumps(obj).encode("ascii")
    err = refused(data, "payee.name")
    assert f"U+{ord(char):04X}" in err.message


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("char", ["\u202e", "\u200b"])
def test_bidi_and_zero_width_refused_in_every_text_field(field: str, char: str) -> None:
    refused_obj(with_field(field, "ABC" + char + "DEF"), field)


def test_bidi_override_spoof_refused() -> None:
    # "Alice" + RLO + "txt.exe"-style spoof in the payee name.
    refused_obj(with_field("payee.name", "Bob\u202e0001 ecilA"), "payee.name")


@pytest.mark.parametrize(
    "text, nfc",
    [
        pytest.param("Jose\u0301", "Jos\u00e9", id="e-combining-acute"),
        pytest.param("\u1100\u1161", "\uac00", id="hangul-jamo"),
        pytest.param("\uf900", "\u8c48", id="cjk-compatibility-ideograph"),
        pytest.param("\u212b", "\u00c5", id="angstrom-sign"),
    ],
)
@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_non_nfc_text_refused(field: str, text: str, nfc: str) -> None:
    err = refused_obj(with_field(field, text), field)
    assert "NFC" in err.message
    # The NFC spelling of the same text is fine.
    t = tx.load(encode(with_field(field, nfc)))
    assert nfc.encode() in t.canonical_bytes()


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("value", ["", "   ", "\u3000", 5, None, ["x"], {"x": "y"}, True])
def test_text_field_must_be_non_empty_string(field: str, value: Any) -> None:
    refused_obj(with_field(field, value), field)


@pytest.mark.parametrize(
    "field, limit", [("payee.name", 100), ("payer.name", 100), ("payee.bank", 100),
                     ("memo", 140)],
)
def test_text_field_length_limit(field: str, limit: int) -> None:
    ok = tx.load(encode(with_field(field, "字" * limit)))
    assert "字" * limit in ok.canonical_bytes().decode()
    err = refused_obj(with_field(field, "字" * (limit + 1)), field)
    assert str(limit) in err.message


def test_printable_unicode_kept() -> None:
    t = tx.load(encode(with_field("payee.name", "O'Brien & Söhne GmbH — 上海")))
    assert t.payee.name == "O'Brien & Söhne GmbH — 上海"


# --------------------------------------------------------------------------- accounts

@pytest.mark.parametrize("field", ["payer.account", "payee.account"])
@pytest.mark.parametrize(
    "value",
    ["622", "6228 4800 1234 5678 901", "6228-4800", "gb29nwbk60161331926819", "A" * 35,
     "６２２８４８００", "", 6228480012345678901, None],
)
def test_bad_account_refused(field: str, value: Any) -> None:
    refused_obj(with_field(field, value), field)


@pytest.mark.parametrize("value", ["1234", "GB29NWBK60161331926819", "9" * 34])
def test_good_account_accepted(value: str) -> None:
    assert tx.load(encode(with_field("payee.account", value))).payee.account == value


# --------------------------------------------------------------------------- version / tx_id

@pytest.mark.parametrize("value", [True, False, "1", 2, 0, -1, None, [1], {"v": 1}])
def test_bad_version_refused(value: Any) -> None:
    refused_obj(with_field("version", value), "version")


def test_version_float_refused() -> None:
    refused(EXPECTED_CANONICAL.replace(b'"version":1', b'"version":1.0'), "(json)")


@pytest.mark.parametrize(
    "value",
    ["TX 0001", " TX-0001", "TX-0001 ", "TX\u30000001", "", "   ", "a" * 65, "TX/0001",
     "TX#1", "交易-0001", "ＴＸ-0001", 1, None],
)
def test_bad_tx_id_refused(value: Any) -> None:
    refused_obj(with_field("tx_id", value), "tx_id")


@pytest.mark.parametrize("value", ["a" * 64, "TX.1_a:b-c", "1", "urn:uuid:123e4567-e89b"])
def test_good_tx_id_accepted(value: str) -> None:
    assert tx.load(encode(with_field("tx_id", value))).tx_id == value


# --------------------------------------------------------------------------- describe

class TestDescribe:
    """Issue 13 point 5: the confirmation screen shows the payee's full account, grouped
    (a masked ****8901 looks the same for every account ending in 8901), name and bank,
    the amount in figures and in words (中文大写金额), and whether an OTP is asked."""

    def test_exact_lines(self) -> None:
        assert tx.describe(tx.load(SAMPLE_BYTES)) == [
            "Pay        1,234.50 CNY",
            "           人民币壹仟贰佰叁拾肆元伍角",
            "To         李四",
            "Bank       中国农业银行",
            "Account    6228 4800 1234 5678 901",
            "From       张三, account 6222 0202 0011 2233 445",
            "Memo       房租",
            "Reference  TX-20261122-0001, created 2026-11-22 10:00:00 UTC",
        ]

    def test_every_character_of_both_accounts_is_shown(self) -> None:
        text = "\n".join(tx.describe(tx.load(SAMPLE_BYTES)))
        for account in (PAYER_ACCOUNT, PAYEE_ACCOUNT):
            assert group_free(text).count(account) == 1

    def test_two_payees_ending_alike_look_different(self) -> None:
        one = tx.describe(tx.load(encode(with_field("payee.account", "6228480012345678901"))))
        other = tx.describe(tx.load(encode(with_field("payee.account", "6228489999995678901"))))
        assert [line for line in one if line.startswith("Account")] != \
            [line for line in other if line.startswith("Account")]

    def test_whether_an_otp_is_asked(self) -> None:
        from decimal import Decimal

        payment = tx.load(SAMPLE_BYTES)
        assert tx.describe(payment, Decimal("1000"))[-1] == "OTP        asked: the bank asks one above 1,000.00 CNY"
        assert tx.describe(payment, Decimal("5000"))[-1] == \
            "OTP        not asked: the bank asks one above 5,000.00 CNY"
        assert not any(line.startswith("OTP") for line in tx.describe(payment))

    @pytest.mark.parametrize(
        "amount, currency, shown",
        [
            ("1234.5", "CNY", "1,234.50 CNY"),
            ("1234567.89", "USD", "1,234,567.89 USD"),
            ("0.01", "CNY", "0.01 CNY"),
            ("999", "CNY", "999 CNY"),
            ("1000", "JPY", "1,000 JPY"),
            ("999999999999999.99", "EUR", "999,999,999,999,999.99 EUR"),
        ],
    )
    def test_amount_grouping(self, amount: str, currency: str, shown: str) -> None:
        obj = with_field("amount", amount)
        obj["currency"] = currency
        lines = tx.describe(tx.load(encode(obj)))
        assert lines[0] == "Pay        " + shown, lines

    @pytest.mark.parametrize(
        "amount, words",
        [   # The People's Bank of China's examples (支付结算办法, 附件一) and the edge cases.
            ("1680.32", "人民币壹仟陆佰捌拾元叁角贰分"),
            ("107000.53", "人民币壹拾万柒仟元伍角叁分"),
            ("1409.50", "人民币壹仟肆佰零玖元伍角"),
            ("6007.14", "人民币陆仟零柒元壹角肆分"),
            ("325.04", "人民币叁佰贰拾伍元零肆分"),
            ("10", "人民币壹拾元整"),
            ("0.01", "人民币壹分"),
            ("1000000", "人民币壹佰万元整"),
            ("999999999999999.99", "人民币玖佰玖拾玖万玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
        ],
    )
    def test_amount_in_words(self, amount: str, words: str) -> None:
        assert tx.amount_in_words(amount, "CNY") == words
        assert tx.describe(tx.load(encode(with_field("amount", amount))))[1] == "           " + words

    def test_no_words_for_other_currencies(self) -> None:
        obj = with_field("amount", "12.00")
        obj["currency"] = "USD"
        lines = tx.describe(tx.load(encode(obj)))
        assert tx.amount_in_words("12.00", "USD") is None and lines[1].startswith("To ")

    def test_without_optional_fields(self) -> None:
        obj = sample()
        del obj["memo"]
        del obj["payer"]["name"]
        del obj["payee"]["bank"]
        lines = tx.describe(tx.load(encode(obj)))
        text = "\n".join(lines)
        assert "Memo" not in text and "Bank" not in text
        assert "To         李四" in lines
        assert "From       account 6222 0202 0011 2233 445" in lines
        assert "张三" not in text

    def test_alphanumeric_account_grouped(self) -> None:
        iban = "GB29NWBK60161331926819"
        lines = tx.describe(tx.load(encode(with_field("payee.account", iban))))
        assert "Account    GB29 NWBK 6016 1331 9268 19" in lines


def group_free(text: str) -> str:
    return text.replace(" ", "")


@pytest.mark.parametrize(
    "account, masked",
    [
        ("6228480012345678901", "****8901"),
        ("12345", "****2345"),
        ("1234", "1234"),
        ("GB29NWBK60161331926819", "****6819"),
    ],
)
def test_mask_account(account: str, masked: str) -> None:
    assert tx.mask_account(account) == masked


# --------------------------------------------------------------------------- fast canonical path

@pytest.mark.parametrize("changes", [
    {},
    {"memo": "emoji 😀 and 𠀋 (outside the BMP)"},
    {"memo": 'quote " and backslash \\ and slash /'},
    {"payee": {"account": "GB82WEST12345698765432", "name": "Zoë Ångström", "bank": "Bank ﬁ ligature"}},
    {"payer": {"account": "1234"}},
    {"amount": "0.01"},
    {"amount": "1000", "currency": "JPY"},
    {"tx_id": "a.b_c:d-e"},
])
def test_fast_canonical_form_equals_rfc8785(changes: dict) -> None:
    """Transaction.canonical_bytes takes a json.dumps fast path; it must equal JCS."""
    import rfc8785

    obj = json.loads(EXPECTED_CANONICAL)
    obj.update(changes)
    t = tx.validate(obj)
    assert t.canonical_bytes() == rfc8785.dumps(t.raw)
