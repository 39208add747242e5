"""Keys, tokens and hashes. Secrets come from settings; nothing raw is ever stored or logged."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

API_KEY_PREFIX = "vk_"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    plaintext: str
    prefix: str
    hashed: str


def hash_api_key(plaintext: str) -> str:
    """API keys carry 256 bits of entropy, so a fast SHA-256 is the right hash (no salt needed)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(4)
    plaintext = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(plaintext=plaintext, prefix=prefix, hashed=hash_api_key(plaintext))


def hash_ip(secret: str, ip: str | None, day: date) -> str | None:
    """HMAC of the IP under a key that rotates daily: same-day velocity checks still work,
    but hashes cannot be joined across days and the raw IP is never kept."""
    if not ip:
        return None
    day_key = hmac.new(secret.encode(), f"ip:{day.isoformat()}".encode(), hashlib.sha256).digest()
    return hmac.new(day_key, ip.encode(), hashlib.sha256).hexdigest()[:32]


def sign(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class TokenError(Exception):
    pass


class WidgetTokens:
    """Signed, short-lived tokens that let a widget see exactly one advocate."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="vouch.widget.v1")
        self.ttl_seconds = ttl_seconds

    def mint(self, advocate_id: int) -> str:
        return str(self._serializer.dumps({"a": advocate_id}))

    def verify(self, token: str) -> int:
        try:
            data = self._serializer.loads(token, max_age=self.ttl_seconds)
        except SignatureExpired as exc:
            raise TokenError("widget token has expired") from exc
        except BadSignature as exc:
            raise TokenError("widget token is not valid") from exc
        advocate_id = data.get("a") if isinstance(data, dict) else None
        if not isinstance(advocate_id, int):
            raise TokenError("widget token is not valid")
        return advocate_id
