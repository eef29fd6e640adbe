"""Set-up shared by the figures: a CA, client tokens with keys, an issued certificate and
a signed payment, all in the temporary UDUN_HOME that bench/run.py made.

Import this module only after UDUN_HOME is set: the PKCS#11 library reads SOFTHSM2_CONF
once per process.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from asn1crypto import pem

from bench.measure import log
from udun.demo import SAMPLE as SAMPLE_TX   # the DESIGN.md example payment

PIN = "123456"
SO_PIN = "12345678"
EC_TOKEN = "bench-ec"
RSA_TOKEN = "bench-rsa"
SUBJECT = "CN=张三,O=udun bench bank,C=CN"


@dataclass
class Fixture:
    """Everything the figures use; built once per run."""

    settings: Any          # config.settings.Settings
    ca: Any                # ca.authority.CertificateAuthority
    ec_key: Any            # keystore.token.TokenKey (P-256, client token)
    rsa_key: Any           # keystore.token.TokenKey (RSA-2048, client token)
    csr_der: bytes         # PKCS#10 from the P-256 client token
    cert_der: bytes        # the client certificate issued for that CSR (status good)
    chain_der: list[bytes]  # issuing CA, root
    cms_der: bytes         # attached CAdES-BES over the sample payment, P-256
    payload: bytes         # the payment's canonical bytes (what gets signed)


CUSTOMER = "C-BENCH"


def bench_customer(ca: Any) -> None:
    """The customer the bench's certificate pays for: the sample's payer account, and a daily
    limit no run reaches (thousands of payments a second), so every payment is checked
    against the limits and reserved, and passes."""
    from ca.customers import Customers
    from ca.limits import Limit
    from ca.storage.limits import LimitStore

    Customers(ca.store, ca.clock).add(CUSTOMER, "压测客户", [str(SAMPLE_TX["payer"]["account"])],  # type: ignore[index]
                                      actor="bench")
    LimitStore(ca.store).put(Limit("customer", CUSTOMER, "CNY", None, 10 ** 17), ca.clock(), "bench")


def build() -> Fixture:
    """CA, two client tokens, keys, certificate on the token, one signed payment.

    Every token is created before any key is generated or opened: creating a token
    re-initialises the PKCS#11 library, which invalidates open sessions and handles.
    """
    from ca.authority import CertificateAuthority
    from pkicore import tx as txmod
    from pkicore.algorithms import KeyType
    from config.settings import load_settings
    from signer import signing, tokens

    settings = load_settings()
    log(f"set-up in {settings.home}")
    # Client tokens first; ca.init() then creates its two tokens before generating its
    # keys, and no token is created after that.
    tokens.init(settings, EC_TOKEN, PIN, SO_PIN)
    tokens.init(settings, RSA_TOKEN, PIN, SO_PIN)
    ca = CertificateAuthority.open(settings)
    ca.init(KeyType.EC_P256, org="udun bench")
    log("CA initialised (P-256 root and issuing CA on SoftHSM)")

    ec_key = tokens.keygen(settings, EC_TOKEN, PIN, KeyType.EC_P256)
    rsa_key = tokens.keygen(settings, RSA_TOKEN, PIN, KeyType.RSA_2048)
    log("client keys generated (P-256, RSA-2048)")

    csr_der = tokens.csr(settings, EC_TOKEN, PIN, SUBJECT)
    bench_customer(ca)
    rec = ca.issue(csr_der, "client", requester="bench", customer=CUSTOMER)
    if rec.der is None:
        raise RuntimeError("the CA returned a certificate record without DER")
    chain_der = ca.chain_der()
    tokens.import_certificates(settings, EC_TOKEN, PIN,
                               b"".join(pem.armor("CERTIFICATE", d) for d in [rec.der, *chain_der]))
    tx = txmod.validate(json.loads(json.dumps(SAMPLE_TX)))
    cms_der = signing.sign_transaction(settings, EC_TOKEN, PIN, tx)
    log(f"certificate issued and imported; signed payment is {len(cms_der)} bytes")
    # The same key objects are reused below; re-open them in case any step reset the
    # library (a stale handle may name another object).
    if getattr(ec_key, "stale", False) or getattr(rsa_key, "stale", False):
        ec_key = tokens.signing_key(settings, EC_TOKEN, PIN)
        rsa_key = tokens.signing_key(settings, RSA_TOKEN, PIN)
    return Fixture(settings, ca, ec_key, rsa_key, csr_der, rec.der, chain_der, cms_der, tx.canonical_bytes())
