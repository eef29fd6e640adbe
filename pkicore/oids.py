"""Object identifiers udun uses that asn1crypto has no name for (RFC cited per line)."""
from __future__ import annotations

from asn1crypto import cms, tsp, x509

ID_KP_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"          # RFC 9336 §3.1 id-kp-documentSigning
ID_KP_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"                # RFC 5280 §4.2.1.12 id-kp-clientAuth
ID_AA_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"  # RFC 5035 §3 id-aa-signingCertificateV2
ID_AA_CMS_ALGORITHM_PROTECTION = "1.2.840.113549.1.9.52"     # RFC 6211 §2 id-aa-CMSAlgorithmProtection

# udun's default TSA policy: an OID under 2.25 (ITU-T X.667, a UUID as an OID; no registry
# needed). Operators with their own arc set UDUN_TSA_POLICY.
DEFAULT_TSA_POLICY = "2.25.186103448224315384127420651869011474787"
# udun's records policy: the TSA stamps evidence manifests and audit checkpoints under it
# and never grants it to a request, so nobody can get such a token for bytes of their own
# (a re-stamped, edited manifest). Fixed, not configurable: offline checkers rely on it.
RECORDS_POLICY = "2.25.186103448224315384127420651869011474787.1"

# Teach asn1crypto the names so that .native and dicts stay readable.
x509.KeyPurposeId._map.setdefault(ID_KP_DOCUMENT_SIGNING, "document_signing")
cms.CMSAttributeType._map.setdefault(ID_AA_SIGNING_CERTIFICATE_V2, "signing_certificate_v2")
cms.CMSAttributeType._map.setdefault(ID_AA_CMS_ALGORITHM_PROTECTION, "cms_algorithm_protection")

# RFC 5035 §3: the signingCertificateV2 attribute value (asn1crypto defines the type in tsp).
cms.CMSAttribute._oid_specs.setdefault("signing_certificate_v2", tsp.SetOfSigningCertificatesV2)
