"""What a token signs besides payments (issue 12): an operator's login challenge, each change
made in a token session, a re-key request. Shared by the admin service (ca.operators,
ca.rekey), which checks, and the clients (signer.operator_client, signer.rekey_client),
which sign.

Each message begins with its own text, so a signature over one can never be taken for a
payment (CMS signed attributes are DER, beginning 0x31) or for another kind.
"""
from __future__ import annotations

import hashlib

from pkicore.tx import canonicalize


def login_message(challenge_id: str, nonce: str, serial: str) -> bytes:
    """The login challenge, naming the certificate (serial, lowercase hex) whose key signs."""
    return f"udun operator login\nchallenge {challenge_id}\nnonce {nonce}\ncertificate {serial}\n".encode()


def request_message(method: str, path: str, body: bytes, session_id: str, seq: int) -> bytes:
    """One change in a token session: the method, the path with its query, the body's
    SHA-256, the session and a request number above every one before (RFC 8785 JSON)."""
    return b"udun operator request\n" + canonicalize({
        "method": method.upper(), "path": path, "body_sha256": hashlib.sha256(body).hexdigest(),
        "session": session_id, "seq": seq})


def rekey_message(serial: str, csr_der: bytes) -> bytes:
    """What the current key signs to ask for a certificate of a new key (`udun token rekey`):
    the current certificate (serial, lowercase hex) and the new key's CSR."""
    return f"udun rekey\ncertificate {serial}\ncsr-sha256 {hashlib.sha256(csr_der).hexdigest()}\n".encode()


def renew_message(serial: str, csr_der: bytes) -> bytes:
    """What the current key signs to renew its certificate (`udun token renew`): a CSR alone
    is no credential (CSRs are not secret), this signature names the certificate it renews."""
    return f"udun renew\ncertificate {serial}\ncsr-sha256 {hashlib.sha256(csr_der).hexdigest()}\n".encode()
