"""Which algorithms and key sizes udun accepts in a certificate path (NIST SP 800-57 / 800-131A).

By default: RSA of at least 2048 bits, EC keys on P-256/384/521, SHA-2 hashes. Legacy data
(PKITS' DSA-1024/SHA-1 cases, an old archive) passes only with ``allow_weak=True``; MD2/MD5
never do. The library's own policy knows no curves, so this one replaces it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, keys
from pyhanko_certvalidator.policy_decl import AlgorithmUsageConstraint, AlgorithmUsagePolicy

STRONG_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
STRONG_HASHES = frozenset({"sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"})
WEAK_HASHES = frozenset({"sha1"})                 # accepted with allow_weak only
MIN_RSA_BITS = 2048
MIN_WEAK_BITS = 1024                              # RSA/DSA floor even for legacy data


@dataclass(frozen=True)
class AlgorithmPolicy(AlgorithmUsagePolicy):
    """The library's AlgorithmUsagePolicy, with curves, and one switch for legacy data."""

    allow_weak: bool = False

    def hash_problem(self, name: str | None) -> str | None:
        """Why a hash is refused, or None."""
        if name in STRONG_HASHES or (self.allow_weak and name in WEAK_HASHES):
            return None
        if name in WEAK_HASHES:
            return f"{name.upper()} is a weak hash (use --allow-weak-algorithms for legacy data)"
        return f"hash {name} is not accepted"

    def key_problem(self, key: keys.PublicKeyInfo) -> str | None:
        """Why a public key is too weak or of a refused kind, or None."""
        algo = key.algorithm
        weak = " (use --allow-weak-algorithms for legacy data)"
        if algo in ("rsa", "rsassa_pss"):
            bits = key.bit_size
            if bits < MIN_WEAK_BITS or (bits < MIN_RSA_BITS and not self.allow_weak):
                return f"RSA-{bits} key is too weak (at least {MIN_RSA_BITS}){weak if bits >= MIN_WEAK_BITS else ''}"
            return None
        if algo == "ec":
            curve = key.curve[1]
            return None if curve in STRONG_CURVES else f"elliptic curve {curve} is not accepted"
        if algo == "dsa":
            if not self.allow_weak:
                return f"DSA keys are not accepted{weak}"
            params = key["algorithm"]["parameters"]
            if params.native is not None and key.bit_size < MIN_WEAK_BITS:
                return f"DSA-{key.bit_size} key is too weak"
            return None
        return f"{algo} keys are not accepted"

    def digest_algorithm_allowed(self, algo: algos.DigestAlgorithm,
                                 moment: datetime | None) -> AlgorithmUsageConstraint:
        problem = self.hash_problem(algo["algorithm"].native)
        return AlgorithmUsageConstraint(problem is None, failure_reason=problem)

    def signature_algorithm_allowed(self, algo: algos.SignedDigestAlgorithm, moment: datetime | None,
                                    public_key: keys.PublicKeyInfo | None) -> AlgorithmUsageConstraint:
        try:
            hash_name = algo.hash_algo
        except ValueError:
            hash_name = None
        if algo["algorithm"].native == "rsassa_pss":
            try:
                hash_name = algo["parameters"]["hash_algorithm"]["algorithm"].native
            except (KeyError, TypeError, ValueError):
                hash_name = None
        problem = self.hash_problem(hash_name) if hash_name is not None else None
        if problem is None and public_key is not None:
            problem = self.key_problem(public_key)
        return AlgorithmUsageConstraint(problem is None, failure_reason=problem)


STRICT = AlgorithmPolicy(False)
LEGACY = AlgorithmPolicy(True)
