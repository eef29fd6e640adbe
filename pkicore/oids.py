"""Every object identifier udun names in its own code: one table, the RFC cited per line.

Dotted strings; modules that compare DER contents derive the bytes from these
(``asn1crypto.core.ObjectIdentifier(OID).contents``). Names asn1crypto lacks are taught
to it at the end, so that .native and dicts stay readable.
"""
from __future__ import annotations

from asn1crypto import cms, tsp, x509

# --- CMS (RFC 5652) and its attributes -------------------------------------------------
ID_DATA = "1.2.840.113549.1.7.1"                             # RFC 5652 §4 id-data
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"                      # RFC 5652 §5.1 id-signedData
ID_CONTENT_TYPE = "1.2.840.113549.1.9.3"                     # RFC 5652 §11.1 id-contentType
ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"                   # RFC 5652 §11.2 id-messageDigest
ID_SIGNING_TIME = "1.2.840.113549.1.9.5"                     # RFC 5652 §11.3 id-signingTime
ID_AA_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"     # RFC 2634 §5.4, RFC 3161 §2.4.1
ID_AA_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"  # RFC 5035 §3 id-aa-signingCertificateV2
ID_AA_CMS_ALGORITHM_PROTECTION = "1.2.840.113549.1.9.52"     # RFC 6211 §2 id-aa-CMSAlgorithmProtection

# --- time-stamping (RFC 3161) --------------------------------------------------------
ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"                  # RFC 3161 §2.4.2 id-ct-TSTInfo
ID_AA_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"        # RFC 3161 App. A id-aa-timeStampToken

# --- key purposes and policies (RFC 5280 §4.2.1.12, §4.2.1.4) --------------------------
ID_KP_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"                      # RFC 5280 §4.2.1.12 id-kp-clientAuth
ID_KP_TIME_STAMPING = "1.3.6.1.5.5.7.3.8"                    # RFC 3161 §2.3, RFC 5280 §4.2.1.12
ID_KP_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"                # RFC 9336 §3.1 id-kp-documentSigning
ANY_POLICY = "2.5.29.32.0"                                   # RFC 5280 §4.2.1.4 anyPolicy
ID_CE_AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"                 # RFC 5280 §4.2.1.1

# --- OCSP (RFC 6960) ----------------------------------------------------------------------
ID_PKIX_OCSP_BASIC = "1.3.6.1.5.5.7.48.1.1"                  # RFC 6960 §4.2.1 id-pkix-ocsp-basic
ID_PKIX_OCSP_NONCE = "1.3.6.1.5.5.7.48.1.2"                  # RFC 6960 §4.4.1, RFC 8954 §2.1

# --- keys, digests and signatures -------------------------------------------------------
ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"                       # RFC 5480 §2.1.1 id-ecPublicKey
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"                      # RFC 8017 App. C rsaEncryption
ID_SHA256 = "2.16.840.1.101.3.4.2.1"                         # RFC 5754 §2
ID_SHA384 = "2.16.840.1.101.3.4.2.2"                         # RFC 5754 §2
ID_SHA512 = "2.16.840.1.101.3.4.2.3"                         # RFC 5754 §2
ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"                    # RFC 5758 §3.2
ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3"                    # RFC 5758 §3.2
ECDSA_WITH_SHA512 = "1.2.840.10045.4.3.4"                    # RFC 5758 §3.2
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"                    # RFC 4055 §5 sha256WithRSAEncryption
SHA384_WITH_RSA = "1.2.840.113549.1.1.12"                    # RFC 4055 §5
SHA512_WITH_RSA = "1.2.840.113549.1.1.13"                    # RFC 4055 §5
RSASSA_PSS = "1.2.840.113549.1.1.10"                         # RFC 4055 §3.1 id-RSASSA-PSS

# --- udun's own arcs -----------------------------------------------------------------
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
