"""An operator's side of the admin API with their token: log in by signing the challenge
with the token key, then sign every change (pkicore.adminsig), so that the audit log holds
the operator's own signature over what they asked for.

The transport is a callable (urllib for `udun operator request`, a Flask test client in
the tests): this module does no HTTP itself.
"""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from asn1crypto import x509

from pkicore.adminsig import login_message, request_message
from pkicore.algorithms import RawSigner, SigScheme, sign
from pkicore.errors import ErrorKind, PkiError

# (method, path, body, headers) -> (HTTP status, JSON answer)
Send = Callable[[str, str, bytes, dict[str, str]], tuple[int, Any]]
# An HTTP refusal as udun's error kinds; anything else (no answer, a 5xx) is UNAVAILABLE:
# the outcome is not known.
_KINDS = {400: ErrorKind.BAD_INPUT, 401: ErrorKind.UNAUTHORIZED, 403: ErrorKind.FORBIDDEN, 404: ErrorKind.NOT_FOUND,
          409: ErrorKind.CONFLICT, 415: ErrorKind.MEDIA_TYPE, 422: ErrorKind.POLICY, 429: ErrorKind.RATE_LIMITED}


def post(send: Send, path: str, body: dict[str, str], what: str, ok: tuple[int, ...] = (201,)) -> dict[str, Any]:
    """POST a JSON object; the JSON answer of a status in ``ok``, else PkiError naming ``what``
    was refused, of the refusal's kind."""
    status, answer = send("POST", path, json.dumps(body).encode(), {})
    if status not in ok:
        detail = answer.get("detail", "") if isinstance(answer, dict) else ""
        raise PkiError(_KINDS.get(status, ErrorKind.UNAVAILABLE), f"{what} refused (HTTP {status}): {detail}")
    return answer  # type: ignore[no-any-return]


def urllib_sender(base_url: str, timeout: float = 30.0) -> Send:
    """A Send over HTTP(S) to ``base_url`` (e.g. https://ca.example:8444)."""
    def send(method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        req = urllib.request.Request(base_url.rstrip("/") + path, data=body if method != "GET" else None,
                                     method=method, headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:      # noqa: S310  (an operator's URL)
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"detail": raw[:200].decode(errors="replace")}
        except (urllib.error.URLError, OSError) as e:
            raise PkiError(ErrorKind.UNAVAILABLE, f"cannot reach the admin service at {base_url}: {e}") from e
    return send


@dataclass
class OperatorSession:
    """A token login: the session's bearer text and the key that signs each change."""

    send: Send
    key: RawSigner
    scheme: SigScheme
    session_id: str
    token: str
    operator: str
    seq: int = 0

    def request(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """One call; a change (not GET) is signed with the next request number."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Authorization": f"Bearer {self.token}"}
        if method.upper() not in ("GET", "HEAD"):
            self.seq += 1
            signature, _ = sign(self.key, request_message(method, path, body, self.session_id, self.seq), self.scheme)
            headers.update({"Udun-Request-Seq": str(self.seq), "Udun-Request-Scheme": self.scheme.value,
                            "Udun-Request-Signature": base64.b64encode(signature).decode()})
        return self.send(method.upper(), path, body, headers)


def login(send: Send, key: RawSigner, cert_der: bytes, scheme: SigScheme | None = None) -> OperatorSession:
    """Log in with the token key ``key`` and its certificate ``cert_der`` (udun-issued,
    registered to the operator with `udun operator cert add`)."""
    serial = format(x509.Certificate.load(cert_der).serial_number, "x")
    status, challenge = send("POST", "/api/v1/login/challenge", b"{}", {})
    if status != 201:
        raise PkiError(ErrorKind.UNAVAILABLE, f"no login challenge: HTTP {status} {_detail(challenge)}")
    message = login_message(challenge["challenge_id"], challenge["nonce"], serial)
    signature, used = sign(key, message, scheme)
    status, answer = send("POST", "/api/v1/login", json.dumps({
        "challenge_id": challenge["challenge_id"], "serial": serial, "scheme": used.value,
        "signature": base64.b64encode(signature).decode()}).encode(), {})
    if status != 201:
        kind = ErrorKind.UNAUTHORIZED if status == 401 else ErrorKind.BAD_INPUT
        raise PkiError(kind, f"login refused: {_detail(answer)}")
    return OperatorSession(send, key, used, answer["session_id"], answer["token"], answer["operator"])


def _detail(answer: Any) -> str:
    return str(answer.get("detail", "")) if isinstance(answer, dict) else ""
