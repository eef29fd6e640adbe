"""The one validation engine: RFC 5280 §6.1 path validation and §6.3 revocation, for
everything udun validates (payments, `udun cert verify`, evidence bundles, OCSP/TSA).

pyhanko-certvalidator does the §6 processing (path building, name constraints, policies,
CRL distribution points, indirect and delta CRLs, OCSP with delegated responders); this
module only turns our inputs into its ValidationContext and its exceptions into verdicts
that name the failing certificate and the rule. Pure: certificates, CRLs, OCSP responses
and the moment are inputs; nothing is fetched.

udun's own rules on top of RFC 5280, each because a bank expects it:
- the trust anchor's own validity and constraints (§6.1.1(d) leaves that open);
- key strength and hashes (pkicore.algpolicy), unless legacy data is allowed;
- extendedKeyUsage: none on the leaf means any purpose (§4.2.1.12); an EKU on a CA
  certificate constrains the leaves below it (as OpenSSL and the CA/B Forum do);
- a requested policy set must leave a non-empty user-constrained policy set (§6.1.6).
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from asn1crypto import crl as asn1crl
from asn1crypto import ocsp as asn1ocsp
from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cverr
from pyhanko_certvalidator import name_trees
from pyhanko_certvalidator.authority import CertTrustAnchor
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (LEGACY_POLICY_MAP, NO_REVOCATION, REQUIRE_REVINFO,
                                               CertRevTrustPolicy, PKIXValidationParams)

from pkicore import oids
from pkicore.names import rfc4514 as _rfc4514
from pkicore.algpolicy import LEGACY, STRICT, AlgorithmPolicy
from pkicore.clock import rfc3339
from pkicore.errors import ErrorKind, PkiError
from pkicore.report import Sub
from pkicore.sigverify import VALIDATOR, UdunSignatureValidator

def _ip_tree_contains(base: str, other: str) -> bool:
    """RFC 5280 §4.2.1.10 iPAddress constraints: address and mask (10.1.0.0/16) against a
    subjectAltName address; another address family is never inside."""
    try:
        net = ipaddress.ip_network(base, strict=False)
        addr = ipaddress.ip_address(other.split("/")[0])
    except ValueError:
        return False
    return addr.version == net.version and addr in net


# The library has no iPAddress name constraints and raises NotImplementedError when it meets
# one (shown by test_name_constraints_by_kind[ip_address-*]); its checker table is where the
# missing rule goes.
name_trees._name_type_checkers.setdefault(name_trees.GeneralNameType.IP_ADDRESS, _ip_tree_contains)

# The library logs every failed side validation with a traceback: a verdict is ours to
# report, never a traceback on a user's terminal.
logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
# Verdicts carry udun's own words; what the library said goes to the server log only.
log = logging.getLogger("udun.verify")

ANY_POLICY = oids.ANY_POLICY
# off: no status check; soft: use the data there is; hard: every certificate below the
# anchor must be shown unrevoked by valid, fresh data (ETSI TS 119 172 "eithercheck").
REVOCATION = {
    "off": NO_REVOCATION,
    "soft": LEGACY_POLICY_MAP["soft-fail"],
    "hard": REQUIRE_REVINFO,
}
# --purpose names -> extendedKeyUsage (RFC 5280 §4.2.1.12, RFC 9336 documentSigning)
PURPOSES: dict[str, str | None] = {
    "client-auth": "client_auth",
    "server-auth": "server_auth",
    "document-signing": oids.ID_KP_DOCUMENT_SIGNING,
    "time-stamping": "time_stamping",
    "ocsp-signing": "ocsp_signing",
    "email-protection": "email_protection",
    "code-signing": "code_signing",
    "any": None,
}
_DOTTED = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def parse_purpose(text: str) -> str | None:
    """A --purpose value: a name above or a dotted OID; None means any purpose."""
    if text in PURPOSES:
        return PURPOSES[text]
    if _DOTTED.fullmatch(text):
        return text
    raise PkiError(ErrorKind.BAD_INPUT, f"purpose {text!r}: use one of {', '.join(PURPOSES)} or a dotted OID")


def parse_policy_oid(text: str) -> str:
    if not _DOTTED.fullmatch(text):
        raise PkiError(ErrorKind.BAD_INPUT, f"policy {text!r} is not a dotted OID")
    return text


@dataclass(frozen=True)
class PolicyInputs:
    """RFC 5280 §6.1.1 (c), (e), (f), (g): the relying party's policy inputs."""

    policies: frozenset[str] = frozenset({ANY_POLICY})
    explicit: bool = False
    inhibit_mapping: bool = False
    inhibit_any: bool = False

    @property
    def constrained(self) -> bool:
        """True when the relying party asked for particular policies."""
        return self.policies != frozenset({ANY_POLICY})

    def params(self) -> PKIXValidationParams:
        return PKIXValidationParams(
            user_initial_policy_set=frozenset("any_policy" if p == ANY_POLICY else p for p in self.policies),
            initial_policy_mapping_inhibit=self.inhibit_mapping,
            initial_explicit_policy=self.explicit,
            initial_any_policy_inhibit=self.inhibit_any,
        )


@dataclass(frozen=True)
class Inputs:
    """Everything a validation depends on, the moment included."""

    anchors: tuple[bytes, ...]
    moment: datetime
    intermediates: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()
    ocsps: tuple[bytes, ...] = ()
    revocation: str = "soft"
    purposes: tuple[str, ...] = ()                # EKU names or dotted OIDs; () = any
    policy: PolicyInputs = field(default_factory=PolicyInputs)
    max_depth: int | None = None                  # intermediate CAs allowed (openssl -verify_depth)
    allow_weak: bool = False
    # Clock drift the library forgives (validity and revocation times); a payment verifier
    # that checks periods itself allows its responder's answers signed just after "now".
    time_tolerance: timedelta = timedelta(seconds=1)


@dataclass(frozen=True)
class CertRef:
    """A certificate named in a verdict."""

    position: str                                 # end-entity | intermediate N | trust anchor
    subject: str
    serial: str
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"position": self.position, "subject": self.subject, "serial": self.serial, "sha256": self.sha256}


@dataclass(frozen=True)
class Outcome:
    """A validation verdict: valid, or why not, naming the certificate and the rule."""

    valid: bool
    sub: Sub | None = None
    error: str | None = None
    rule: str | None = None
    failing: CertRef | None = None
    path: tuple[bytes, ...] = ()                  # leaf first, anchor last
    policies: tuple[str, ...] = ()                # the user-constrained policy set
    revoked_at: datetime | None = None
    reason: str | None = None                     # RFC 5280 CRLReason name when revoked

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid, "sub_indication": self.sub.value if self.sub else None, "error": self.error,
            "rule": self.rule, "failing_certificate": self.failing.to_json() if self.failing else None,
            "path": [_rfc4514(x509.Certificate.load(d).subject) for d in self.path],
            "user_constrained_policy_set": list(self.policies),
            "revoked_at": rfc3339(self.revoked_at) if self.revoked_at else None,
            "reason": self.reason,
        }


def load(der: bytes) -> x509.Certificate:
    """A certificate, fully parsed: garbage is bad input, not a failed validation."""
    try:
        cert = x509.Certificate.load(der, strict=True)
        cert.native  # noqa: B018
        return cert
    except (ValueError, TypeError, KeyError) as e:
        raise PkiError(ErrorKind.BAD_INPUT, "not a certificate") from e


def context(inputs: Inputs) -> ValidationContext:
    """The library's ValidationContext for these inputs."""
    if inputs.revocation not in REVOCATION:
        raise PkiError(ErrorKind.BAD_INPUT, "revocation must be off, soft or hard")
    checking = inputs.revocation != "off"
    return ValidationContext(
        # The anchor's own constraints (name constraints, path length) apply too.
        trust_roots=[CertTrustAnchor(x509.Certificate.load(a), derive_default_quals_from_cert=True)
                     for a in inputs.anchors],
        other_certs=[x509.Certificate.load(d) for d in inputs.intermediates],
        moment=inputs.moment, allow_fetching=False,
        crls=list(inputs.crls) if checking else [], ocsps=list(inputs.ocsps) if checking else [],
        revinfo_policy=CertRevTrustPolicy(REVOCATION[inputs.revocation]),
        algorithm_usage_policy=LEGACY if inputs.allow_weak else STRICT, time_tolerance=inputs.time_tolerance,
        # Legacy (DSA) validations get a validator of their own: it remembers DSA parameters.
        signature_validator=UdunSignatureValidator(LEGACY) if inputs.allow_weak else VALIDATOR,
    )


def _readable(inputs: Inputs) -> Inputs:
    """The inputs without revocation data that does not even parse (an HTML error page, a
    truncated download): it shows nothing, so it counts as missing, never as a crash."""
    def ok(kind: str, data: bytes) -> bool:
        try:
            if kind == "crl":
                asn1crl.CertificateList.load(data, strict=True)["tbs_cert_list"]["next_update"].native  # noqa: B018
            else:
                asn1ocsp.OCSPResponse.load(data, strict=True)["response_status"].native  # noqa: B018
            return True
        except (ValueError, TypeError, KeyError, AttributeError):
            return False
    crls = tuple(d for d in inputs.crls if ok("crl", d))
    ocsps = tuple(d for d in inputs.ocsps if ok("ocsp", d))
    if (crls, ocsps) == (inputs.crls, inputs.ocsps):
        return inputs
    return replace(inputs, crls=crls, ocsps=ocsps)


def validate(leaf_der: bytes, inputs: Inputs) -> Outcome:
    """Validate ``leaf_der`` to one of the anchors at ``inputs.moment``.

    soft runs as hard first (so a revocation on any CRL given counts, even for a
    certificate that names no distribution point) and falls back to the library's soft
    processing only when status is not established; data that is there but stale or
    unverifiable still fails. Where both OCSP responses and CRLs are given, a valid result
    is checked once more against the CRLs alone (the library skips CRLs once OCSP says
    good): revoked wins.
    """
    if not inputs.anchors:
        raise PkiError(ErrorKind.BAD_INPUT, "no trust anchor given")
    inputs = _readable(inputs)
    if inputs.revocation == "soft":
        strict = _validate(leaf_der, replace(inputs, revocation="hard"))
        # Not established (nothing there, or data that does not hold): the library's soft
        # rules then decide, and they too fail on data that is there but stale or forged.
        unknown = strict.sub is Sub.TRY_LATER and strict.revoked_at is None
        outcome = _validate(leaf_der, inputs) if unknown else strict
    else:
        outcome = _validate(leaf_der, inputs)
    if outcome.valid and inputs.revocation != "off" and inputs.crls and inputs.ocsps:
        crl_only = _validate(leaf_der, replace(inputs, ocsps=(), revocation="hard"))
        if crl_only.revoked_at is not None:
            return crl_only
    return outcome


def _validate(leaf_der: bytes, inputs: Inputs) -> Outcome:
    leaf = load(leaf_der)
    try:
        ctx = context(inputs)
        validator = CertificateValidator(leaf, validation_context=ctx, pkix_params=inputs.policy.params())
        vpath = asyncio.run(validator.async_validate_path())
    except cverr.PathBuildingError as e:
        _log_library(leaf, e)
        return Outcome(False, Sub.NO_CERTIFICATE_CHAIN_FOUND,
                       "no path to a trust anchor: the certificates available do not chain up to a trusted root",
                       "RFC 5280 §6.1 (no certification path to a trust anchor)", _ref_leaf(leaf))
    except cverr.ValidationError as e:
        _log_library(leaf, e)
        return failure(e, leaf, LEGACY if inputs.allow_weak else STRICT)
    except (NotImplementedError, ValueError, TypeError, KeyError) as e:
        # Something the library cannot process (an odd extension, a malformed field): the
        # path is not shown valid, so it fails; what the library said is logged.
        _log_library(leaf, e)
        return Outcome(False, Sub.CERTIFICATE_CHAIN_GENERAL_FAILURE,
                       "the path cannot be processed: a certificate or revocation data on it has a field that "
                       "does not read or is not supported", "RFC 5280 §6.1", _ref_leaf(leaf))
    return _udun_rules(vpath, inputs)


def _log_library(leaf: x509.Certificate, e: Exception) -> None:
    """What the library said about a validation, for the server log (never for a report)."""
    log.info("path validation of %s (serial %x): %s: %s", _rfc4514(leaf.subject), leaf.serial_number,
             type(e).__name__, e)


def path_of(vpath: ValidationPath) -> list[x509.Certificate]:
    """The path's certificates, leaf first, anchor last."""
    return list(reversed(list(vpath.iter_certs(include_root=True))))


def _udun_rules(vpath: ValidationPath, inputs: Inputs) -> Outcome:
    certs = path_of(vpath)
    ders = tuple(c.dump() for c in certs)
    qualified = vpath.qualified_policies() or frozenset()
    policies = tuple(sorted({ANY_POLICY if q.user_domain_policy_id == "any_policy" else q.user_domain_policy_id
                             for q in qualified}))

    def fail(sub: Sub, error: str, rule: str, index: int) -> Outcome:
        return Outcome(False, sub, error, rule, _ref(certs, index), ders, policies)

    policy = LEGACY if inputs.allow_weak else STRICT
    for i, c in enumerate(certs):
        problem = policy.key_problem(c.public_key)
        if problem:
            return fail(Sub.CRYPTO_CONSTRAINTS_FAILURE, f"{_rfc4514(c.subject)}: {problem}",
                        "NIST SP 800-57 key strength (udun algorithm policy)", i)
    anchor = certs[-1]
    validity = anchor["tbs_certificate"]["validity"]
    if not validity["not_before"].native <= inputs.moment <= validity["not_after"].native:
        expired = inputs.moment > validity["not_after"].native
        return fail(Sub.EXPIRED if expired else Sub.NOT_YET_VALID,
                    f"the trust anchor {_rfc4514(anchor.subject)} "
                    f"{'has expired' if expired else 'is not yet valid'}",
                    "the trust anchor's own validity (udun rule beside RFC 5280 §6.1.1(d))", len(certs) - 1)
    if inputs.max_depth is not None and len(certs) - 2 > inputs.max_depth:
        return fail(Sub.CHAIN_CONSTRAINTS_FAILURE,
                    f"the path has {len(certs) - 2} intermediate CAs, more than the {inputs.max_depth} allowed",
                    "maximum depth (--max-depth, like openssl -verify_depth)", len(certs) - 2)
    for wanted in inputs.purposes:
        for i, c in enumerate(certs[:-1]):
            eku = c.extended_key_usage_value
            if eku is None:
                continue                           # RFC 5280 §4.2.1.12: no EKU, any purpose
            allowed = {p.native for p in eku} | {p.dotted for p in eku}
            if wanted not in allowed and "any_extended_key_usage" not in allowed:
                where = "the certificate" if i == 0 else "a CA certificate above it"
                shown = next((n for n, v in PURPOSES.items() if v == wanted), wanted)
                return fail(Sub.CHAIN_CONSTRAINTS_FAILURE,
                            f"{_rfc4514(c.subject)}: extendedKeyUsage does not allow the purpose {shown} "
                            f"({where})",
                            "RFC 5280 §4.2.1.12 extendedKeyUsage" if i == 0 else
                            "extendedKeyUsage chaining (CA/B Forum; OpenSSL checks CA certificates too)", i)
    if inputs.policy.constrained and not policies:
        return fail(Sub.CHAIN_CONSTRAINTS_FAILURE, "the path is valid for none of the requested policies",
                    "RFC 5280 §6.1.6 (empty user-constrained-policy-set)", 0)
    return Outcome(True, path=ders, policies=policies)


# (pattern in the library's message, rule, sub-indication, what the verdict says); the first
# match wins. The library's message only classifies: the verdict's text is the last column,
# with the failing certificate named by its place in the path.
_RULES: list[tuple[str, str, Sub, str]] = [
    ("signature of", "RFC 5280 §6.1.3(a)(1) signature", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "the signature on {cert} does not verify with its issuer's public key"),
    ("permitted namespace", "RFC 5280 §6.1.3(b) name constraints (permitted subtrees)",
     Sub.CHAIN_CONSTRAINTS_FAILURE, "a name in {cert} is outside the permitted subtrees of a CA's name constraints"),
    ("excluded from the", "RFC 5280 §6.1.3(c) name constraints (excluded subtrees)", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "a name in {cert} is inside the excluded subtrees of a CA's name constraints"),
    ("issuer name", "RFC 5280 §6.1.3(a)(4) issuer name", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "the issuer name of {cert} does not match the subject of the CA above it"),
    ("valid set of policies", "RFC 5280 §6.1.3(d)-(f), §6.1.5(g) certificate policies",
     Sub.CHAIN_CONSTRAINTS_FAILURE, "no valid certificate policy is left at {cert}"),
    ("policy graph", "RFC 5280 §6.1.3(d) certificate policies (size limit)", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "certificate policy processing at {cert} exceeds the size limit"),
    ("is not a CA", "RFC 5280 §6.1.4(k) basicConstraints cA", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "{cert} is not a CA (basicConstraints cA is not set) but issued the certificate below it"),
    ("maximum path length", "RFC 5280 §6.1.4(l)-(m) pathLenConstraint", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "the path is longer than a CA's path length constraint allows"),
    ("not allowed to sign certificates", "RFC 5280 §6.1.4(n) keyUsage keyCertSign", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "{cert} is not allowed to sign certificates (its keyUsage lacks keyCertSign)"),
    ("critical extension", "RFC 5280 §6.1.4(o) unrecognised critical extension", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "{cert} has a critical extension that is not recognised{oids}"),
    ("signature parameters", "RFC 4055 §3.1 RSASSA-PSS parameters", Sub.CHAIN_CONSTRAINTS_FAILURE,
     "the signature parameters of {cert} do not match the constraints on its issuer's key"),
]
# Why revocation data did not establish a status: (pattern in the library's message, what
# the verdict says); the first match wins.
_REVINFO: list[tuple[str, str]] = [
    ("not recent enough", "the revocation data for {cert} is not recent enough (past its nextUpdate)"),
    ("too recent", "the revocation data for {cert} was issued after the time of validation"),
    ("freshness could not be established", "the freshness of the revocation data for {cert} cannot be established"),
    ("unauthorized certificate", "the OCSP response about {cert} is signed by a responder the CA did not "
                                 "authorise (RFC 6960 §4.2.2.2)"),
    ("not authorized to sign CRLs", "the CRL about {cert} is signed by an issuer not allowed to sign CRLs "
                                    "(RFC 5280 §6.3.3(f))"),
    ("CRL only contains", "the CRL given for {cert} covers other kinds of certificates only "
                          "(issuingDistributionPoint, RFC 5280 §5.2.5)"),
    ("does not share any names", "no CRL given for {cert} has a distribution point matching the certificate's "
                                 "(RFC 5280 §6.3.3(b))"),
    ("response signing certificate", "the certificate of the OCSP responder for {cert} does not validate"),
    ("CRL issuer", "the certificate of the CRL issuer for {cert} does not validate"),
    ("signature", "the signature on the revocation data for {cert} does not verify"),
    ("do not cover all revocation reasons", "the CRLs given for {cert} do not cover all revocation reasons"),
    ("unrecognized critical extension", "the revocation data for {cert} has a critical extension that is not "
                                        "recognised"),
    ("no revocation information", "no revocation data (CRL or OCSP response) available covers {cert}"),
    ("could not be found", "no revocation data (CRL or OCSP response) available covers {cert}"),
    ("No CRLs were issued", "no revocation data (CRL or OCSP response) available covers {cert}"),
    ("No OCSP responses were issued", "no revocation data (CRL or OCSP response) available covers {cert}"),
]
# What the verdict says for other §6.1 failures: (pattern in the library's message, words).
_GENERAL: list[tuple[str, str]] = [
    ("policy mapping for the", "{cert} maps a policy to or from anyPolicy (RFC 5280 §6.1.4(a))"),
    ("AA controls", "the AA controls extension is present on part of the path only (RFC 5755 §7.4)"),
]
_POSITION = re.compile(r"intermediate certificate (\d+)")


def failure(e: Exception, leaf: x509.Certificate, policy: AlgorithmPolicy = STRICT) -> Outcome:
    """A library exception as a verdict naming the certificate and the rule, in our words.

    The library's message decides which rule failed and which certificate it is about; the
    verdict's text is udun's own (the message itself is logged, never shown).
    """
    msg = str(e)
    certs: list[x509.Certificate] = []
    if isinstance(e, cverr.PathValidationError):
        certs = path_of(e.current_path)
    failing = _failing(msg, certs, leaf)
    ders = tuple(c.dump() for c in certs)
    cert = _named(failing)
    if isinstance(e, cverr.RevokedError):
        reason = _reason(e.reason.native)
        on_hold = reason == "certificateHold"
        source = "an OCSP response" if msg.startswith("OCSP") else "a CRL" if msg.startswith("CRL") else \
            "the revocation data"
        when = f"{e.revocation_dt:%Y-%m-%d %H:%M:%S}Z"
        text = (f"{cert} is on hold since {when} ({reason}, shown by {source})" if on_hold else
                f"{cert} was revoked at {when} ({reason}, shown by {source})")
        return Outcome(False, Sub.TRY_LATER if on_hold else Sub.REVOKED, text,
                       "RFC 5280 §6.3.3 (the certificate is on hold)" if on_hold else
                       "RFC 5280 §6.3.3 (the certificate is revoked)", failing, ders,
                       revoked_at=e.revocation_dt, reason=reason)
    if isinstance(e, cverr.StaleRevinfoError):
        return Outcome(False, Sub.TRY_LATER, _REVINFO[0][1].format(cert=cert),
                       "RFC 5280 §6.3.3(a)(2) (revocation data past its nextUpdate)", failing, ders)
    if isinstance(e, cverr.InsufficientRevinfoError):
        text = next((words for pattern, words in _REVINFO if pattern in msg),
                    "the revocation data available does not establish the status of {cert}").format(cert=cert)
        return Outcome(False, Sub.TRY_LATER, text, "RFC 5280 §6.3 (status not established by valid revocation data)",
                       failing, ders)
    if isinstance(e, cverr.ExpiredError):
        return Outcome(False, Sub.EXPIRED, f"{cert} has expired (notAfter {e.expired_dt:%Y-%m-%d %H:%M:%S}Z)",
                       "RFC 5280 §6.1.3(a)(2) validity", failing, ders)
    if isinstance(e, cverr.NotYetValidError):
        return Outcome(False, Sub.NOT_YET_VALID,
                       f"{cert} is not yet valid (notBefore {e.valid_from:%Y-%m-%d %H:%M:%S}Z)",
                       "RFC 5280 §6.1.3(a)(2) validity", failing, ders)
    if isinstance(e, cverr.DisallowedAlgorithmError):
        return Outcome(False, Sub.CRYPTO_CONSTRAINTS_FAILURE, _refused_algorithm(certs, failing, cert, policy),
                       "NIST SP 800-131A algorithms (udun algorithm policy)", failing, ders)
    if isinstance(e, cverr.InvalidCertificateError):
        return Outcome(False, Sub.CHAIN_CONSTRAINTS_FAILURE, f"{cert} is not valid for the key usage asked for",
                       "RFC 5280 §4.2.1.3 / §4.2.1.12 key usage", failing, ders)
    for pattern, rule, sub, words in _RULES:
        if pattern in msg:
            return Outcome(False, sub, words.format(cert=cert, oids=_unknown_critical(certs, failing)), rule,
                           failing, ders)
    text = next((words for pattern, words in _GENERAL if pattern in msg),
                "the path does not validate at {cert} (RFC 5280 §6.1 path processing)").format(cert=cert)
    return Outcome(False, Sub.CERTIFICATE_CHAIN_GENERAL_FAILURE, text, "RFC 5280 §6.1", failing, ders)


def _named(ref: CertRef) -> str:
    """A certificate of the path by its place (the verdict names its subject apart)."""
    if ref.position == "end-entity":
        return "the end-entity certificate"
    if ref.position == "trust anchor":
        return "the trust anchor"
    return f"intermediate certificate {ref.position.removeprefix('intermediate ')}"


def _by_ref(certs: list[x509.Certificate], ref: CertRef) -> int | None:
    return next((i for i, c in enumerate(certs) if hashlib.sha256(c.dump()).hexdigest() == ref.sha256), None)


def _refused_algorithm(certs: list[x509.Certificate], failing: CertRef, cert: str, policy: AlgorithmPolicy) -> str:
    """Which signature algorithm the policy refuses, and why (udun's policy says why)."""
    i = _by_ref(certs, failing)
    if i is None:
        return f"the signature on {cert} uses an algorithm udun's algorithm policy refuses"
    algo = certs[i]["signature_algorithm"]
    issuer_key = certs[i + 1].public_key if i + 1 < len(certs) else certs[i].public_key
    try:
        why = policy.signature_algorithm_allowed(algo, None, issuer_key).failure_reason
    except (ValueError, TypeError, KeyError):
        why = None
    return (f"the signature on {cert} uses {algo['algorithm'].native}, refused by udun's algorithm policy"
            + (f": {why}" if why else ""))


def _unknown_critical(certs: list[x509.Certificate], failing: CertRef) -> str:
    """' (OIDs)' of the critical extensions asn1crypto has no name for, or ''."""
    i = _by_ref(certs, failing)
    if i is None:
        return ""
    try:
        oids = [e["extn_id"].dotted for e in certs[i]["tbs_certificate"]["extensions"]
                if e["critical"].native and e["extn_id"].native == e["extn_id"].dotted]
    except (ValueError, TypeError, KeyError):
        return ""
    return f" ({', '.join(oids)})" if oids else ""


_REASONS = {
    "unspecified": "unspecified", "key_compromise": "keyCompromise", "ca_compromise": "cACompromise",
    "affiliation_changed": "affiliationChanged", "superseded": "superseded",
    "cessation_of_operation": "cessationOfOperation", "certificate_hold": "certificateHold",
    "remove_from_crl": "removeFromCRL", "privilege_withdrawn": "privilegeWithdrawn", "aa_compromise": "aACompromise",
}


def _reason(native: str | None) -> str:
    """asn1crypto CRLReason names -> RFC 5280 §5.3.1 names."""
    return _REASONS.get(native or "unspecified", "unspecified")


def _failing(msg: str, root_first_reversed: list[x509.Certificate], leaf: x509.Certificate) -> CertRef:
    """The certificate the library's message is about (it counts from the anchor, 1-based)."""
    certs = root_first_reversed                     # leaf first, anchor last
    m = _POSITION.search(msg)
    if m and certs:
        i = len(certs) - 1 - int(m.group(1))       # index in the leaf-first list
        if 0 <= i < len(certs):
            return _ref(certs, i)
    if "trust anchor" in msg and certs:
        return _ref(certs, len(certs) - 1)
    return _ref(certs, 0) if certs else _ref_leaf(leaf)


def _ref(certs: list[x509.Certificate], i: int) -> CertRef:
    c = certs[i]
    position = "end-entity" if i == 0 else "trust anchor" if i == len(certs) - 1 else \
        f"intermediate {len(certs) - 1 - i}"
    return CertRef(position, _rfc4514(c.subject), format(c.serial_number, "x"),
                   hashlib.sha256(c.dump()).hexdigest())


def _ref_leaf(leaf: x509.Certificate) -> CertRef:
    return CertRef("end-entity", _rfc4514(leaf.subject), format(leaf.serial_number, "x"),
                   hashlib.sha256(leaf.dump()).hexdigest())
