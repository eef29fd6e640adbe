"""Key storage at the edge: PKCS#11 tokens (SoftHSM2, USB keys, HSMs) behind pkicore's RawSigner seam."""
