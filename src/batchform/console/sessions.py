"""Console sessions and CSRF tokens, carried in one signed cookie.

Every browser gets a session: an anonymous one when the server runs without `--auth`,
one naming the access key its user signed in with otherwise (the same keys the API's
SigV4 accepts). The cookie is `<payload>.<HMAC-SHA256>` under a key this server draws at
start, so a restart signs everyone out. Forms that change anything carry a CSRF token
derived from the session's nonce; the cookie itself is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

COOKIE_NAME = "batchform_console"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    nonce: str
    access_key: str | None
    expires: float


class Sessions:
    def __init__(self, access_keys: Mapping[str, str] | None, key: bytes | None = None) -> None:
        self.access_keys = access_keys
        self._key = key or secrets.token_bytes(32)

    @property
    def login_required(self) -> bool:
        return self.access_keys is not None

    def new(self, access_key: str | None = None, now: float | None = None) -> Session:
        expires = (time.time() if now is None else now) + SESSION_SECONDS
        return Session(secrets.token_urlsafe(16), access_key, expires)

    def check_login(self, access_key: str, secret: str) -> bool:
        """Is this one of the server's key pairs? (Constant time in the secret.)"""
        known = (self.access_keys or {}).get(access_key)
        return known is not None and hmac.compare_digest(known.encode(), secret.encode())

    def encode(self, session: Session) -> str:
        payload = orjson.dumps([session.nonce, session.access_key, session.expires])
        text = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{text}.{self._sign(text)}"

    def decode(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        text, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign(text)):
            return None
        try:
            nonce, access_key, expires = orjson.loads(base64.urlsafe_b64decode(_padded(text)))
        except (ValueError, TypeError):
            return None
        if expires < (time.time() if now is None else now):
            return None
        if self.login_required and access_key not in (self.access_keys or {}):
            return None  # anonymous, or a key the server no longer accepts
        return Session(str(nonce), access_key, float(expires))

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf:{session.nonce}")

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))

    def _sign(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _padded(text: str) -> str:
    return text + "=" * (-len(text) % 4)
