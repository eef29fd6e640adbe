"""The certificate authority: profiles, policy (RA), issuer, store (SA)."""
