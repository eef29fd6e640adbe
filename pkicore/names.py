"""Distinguished names: parsed, checked and re-encoded with RFC 5280 string types.

A subject is never copied byte for byte from a request: its attributes are checked and
encoded again (PrintableString for C and serialNumber, IA5String for emailAddress,
UTF8String otherwise, one attribute per RDN), so that every certificate the CA signs
lints clean whatever encoding the requester chose.
"""
from __future__ import annotations

import re
import warnings
from collections import OrderedDict

from asn1crypto import x509
from cryptography import x509 as cx509

from pkicore.errors import ErrorKind, PkiError
from pkicore.text import visible_problem

# asn1crypto name -> (RFC 4514 short name, RFC 5280 Appendix A upper bound)
ATTRIBUTES: dict[str, tuple[str, int]] = {
    "common_name": ("CN", 64),
    "organization_name": ("O", 64),
    "organizational_unit_name": ("OU", 64),
    "country_name": ("C", 2),
    "state_or_province_name": ("ST", 128),
    "locality_name": ("L", 128),
    "serial_number": ("serialNumber", 64),
    "email_address": ("emailAddress", 255),
    "domain_component": ("DC", 0),           # known, but not allowed in our subjects
}
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")     # X.680 §41.4 PrintableString
# cryptography encodes each attribute with the string type RFC 5280 Appendix A gives it:
# PrintableString for countryName and serialNumber, IA5String for emailAddress,
# UTF8String for the DirectoryString ones (§4.1.2.6).
_OIDS = {name: cx509.ObjectIdentifier(x509.NameType.unmap(name)) for name in ATTRIBUTES}


def short_name(name: str) -> str:
    return ATTRIBUTES.get(name, (name, 0))[0]


def build(pairs: list[tuple[str, str]], kind: ErrorKind = ErrorKind.BAD_INPUT) -> x509.Name:
    """A Name from (attribute, value) pairs, each checked; at most one of each attribute."""
    return build_both(pairs, kind)[0]


def build_both(pairs: list[tuple[str, str]],
               kind: ErrorKind = ErrorKind.BAD_INPUT) -> tuple[x509.Name, cx509.Name]:
    """build(), and the same Name as cryptography's (for its builders), made together."""
    if not pairs:
        raise PkiError(kind, "the name must not be empty")
    values: OrderedDict[str, str] = OrderedDict()
    for name, value in pairs:
        short, limit = ATTRIBUTES.get(name, (name, 0))
        if not limit:
            raise PkiError(kind, f"name attribute {short} is not allowed")
        if name in values:
            raise PkiError(kind, f"name attribute {short} appears twice")
        if not isinstance(value, str) or not value or value != value.strip():
            raise PkiError(kind, f"{short} must be non-empty text without leading or trailing spaces")
        if len(value) > limit:
            raise PkiError(kind, f"{short} is longer than {limit} characters")
        problem = visible_problem(value)
        if problem:
            raise PkiError(kind, f"{short} {problem}")
        if name == "country_name" and not (len(value) == 2 and value.isascii() and value.isalpha()
                                           and value.isupper()):
            raise PkiError(kind, "C must be a two-letter ISO 3166 code such as CN")
        if name == "serial_number" and not _PRINTABLE.fullmatch(value):
            raise PkiError(kind, "serialNumber may hold only PrintableString characters")
        if name == "email_address" and not value.isascii():
            raise PkiError(kind, "emailAddress must be ASCII")
        values[name] = value
    if "common_name" not in values:
        raise PkiError(kind, "the name needs a CN")
    out = _cryptography_name(values)
    return x509.Name.load(out.public_bytes()), out


def _cryptography_name(values: "OrderedDict[str, str]") -> cx509.Name:
    """RDNSequence of single-valued RDNs, in the order given (checked values only)."""
    # _validate=False: build() has checked every value already, and cryptography counts the
    # 64 of ub-common-name in UTF-8 bytes, not characters (RFC 5280 Appendix A): a CN of 22
    # Chinese characters would be refused.
    with warnings.catch_warnings():  # unvalidated attributes warn about what build() allows
        warnings.simplefilter("ignore")
        return cx509.Name([cx509.RelativeDistinguishedName([
            cx509.NameAttribute(_OIDS[name], value, _validate=False)]) for name, value in values.items()])


def to_cryptography(name: x509.Name) -> cx509.Name:
    """A Name udun built (build, canonical, parse) as cryptography's Name, for its builders.

    Rebuilt from its attributes, and refused unless it encodes to the very same bytes:
    a certificate must carry exactly the subject that policy checked and recorded.
    """
    pairs = pairs_of(name, ErrorKind.INTERNAL)
    _, out = build_both(pairs, ErrorKind.INTERNAL)      # build()'s checks: lengths, C, CN, ...
    if out.public_bytes() != name.dump():
        raise PkiError(ErrorKind.INTERNAL, "the name is not in udun's canonical encoding")
    return out


def pairs_of(name: x509.Name, kind: ErrorKind = ErrorKind.POLICY) -> list[tuple[str, str]]:
    """(attribute, value) pairs of a parsed Name; one attribute per RDN."""
    out = []
    for rdn in name.chosen:
        if len(rdn) != 1:
            raise PkiError(kind, "multi-valued RDNs are not allowed")
        atv = rdn[0]
        value = atv["value"].native
        if not isinstance(value, str):
            raise PkiError(kind, f"{short_name(atv['type'].native)} is not text")
        out.append((atv["type"].native, value))
    return out


def canonical(name: x509.Name, kind: ErrorKind = ErrorKind.POLICY) -> tuple[x509.Name, cx509.Name]:
    """Check a requested Name and encode it again the way we issue names (both forms)."""
    try:
        return build_both(pairs_of(name, kind), kind)
    except PkiError:
        raise
    except Exception as e:  # asn1crypto cannot decode a value (wrong string type content)
        raise PkiError(kind, "the name cannot be decoded") from e


def parse(text: str) -> x509.Name:
    """An RFC 4514 string ("CN=张三,O=Example Bank,C=CN") as a checked Name."""
    try:
        with warnings.catch_warnings():  # cryptography warns on over-long values; build() says why
            warnings.simplefilter("ignore")
            name = cx509.Name.from_rfc4514_string(text, {
                "serialNumber": cx509.NameOID.SERIAL_NUMBER, "emailAddress": cx509.NameOID.EMAIL_ADDRESS})
            rdns = list(name.rdns)
        pairs = []
        for rdn in rdns:
            attrs = list(rdn)
            if len(attrs) != 1:
                raise PkiError(ErrorKind.BAD_INPUT, "multi-valued RDNs (+) are not allowed")
            oid = attrs[0].oid.dotted_string
            value = attrs[0].value
            asn1_name = x509.NameType.map(oid)
            pairs.append((asn1_name, value if isinstance(value, str) else ""))
    except PkiError:
        raise
    except ValueError as e:
        raise PkiError(ErrorKind.BAD_INPUT, f"{text!r} is not an RFC 4514 name (write it as CN=...,O=...,C=...; "
                                            "escape , + \\ \" < > ; with a backslash)") from e
    # cryptography already hands the RDNs in X.501 order (the reverse of the string's).
    return build(pairs)


def _escape(value: str) -> str:
    """RFC 4514 §2.4 escaping of an attribute value."""
    out = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
    if out.startswith((" ", "#")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def rfc4514(name: x509.Name) -> str:
    """The RFC 4514 string of a Name (most specific RDN first, as people write it)."""
    rdns = []
    for rdn in name.chosen:
        rdns.append("+".join(f"{ATTRIBUTES.get(atv['type'].native, (atv['type'].dotted, 0))[0]}="
                             f"{_escape(str(atv['value'].native))}" for atv in rdn))
    return ",".join(reversed(rdns))
