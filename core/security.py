"""Keys, tokens and hashes. Secrets come from settings; nothing raw is ever stored or logged."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import date

from itsdangerous import BadSignature, URLSafeTimedSerializer

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
    return hmac.digest(_ip_day_key(secret, day), ip.encode(), "sha256").hex()[:32]


@functools.lru_cache(maxsize=8)
def _ip_day_key(secret: str, day: date) -> bytes:
    """The day's key for IP hashes (derived once a day per secret, not once per request)."""
    return hmac.new(secret.encode(), f"ip:{day.isoformat()}".encode(), hashlib.sha256).digest()


def rate_limit_subject(ip: str | None) -> str | None:
    """Who a rate limit counts: an IPv4 address, or an IPv6 client's /64 (one subscriber
    gets a whole /64 and can pick any address in it)."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def sign(secret: str, message: bytes) -> str:
    """HMAC-SHA256, hex. ``hmac.digest`` is OpenSSL's one-shot HMAC: the same value as
    ``hmac.new(...).hexdigest()`` (tested) without building an HMAC object per call."""
    return hmac.digest(secret.encode(), message, "sha256").hex()


@dataclass(frozen=True, slots=True)
class Bearer:
    """What an ``Authorization`` header holds: whether one was sent, and its credential when it
    is ``Bearer <credential>`` (the scheme in any case; ``None`` for any other form)."""

    sent: bool
    token: str | None


def bearer(authorization: str | None) -> Bearer:
    """The one reading of ``Authorization`` every surface uses (GraphQL, REST, CSV)."""
    if not authorization:
        return Bearer(sent=False, token=None)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return Bearer(sent=True, token=token if scheme.lower() == "bearer" and token else None)


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class TokenError(Exception):
    pass


class WidgetTokens:
    """Signed, short-lived tokens that let a widget see exactly one advocate.

    A widget sends its token with every request, so signatures already checked are kept (per
    process, bounded) with the time they were signed; the lifetime is checked on every use."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="vouch.widget.v1")
        self.ttl_seconds = ttl_seconds
        self._signed = functools.lru_cache(maxsize=4096)(self._check_signature)

    def mint(self, advocate_id: int) -> str:
        return str(self._serializer.dumps({"a": advocate_id}))

    def verify(self, token: str) -> int:
        advocate_id, signed_at = self._signed(token)
        age = time.time() - signed_at
        if age > self.ttl_seconds or age < 0:  # as itsdangerous's own max_age check
            raise TokenError("widget token has expired")
        return advocate_id

    def _check_signature(self, token: str) -> tuple[int, float]:
        """The advocate and the signing time of a genuine token (raises: not cached)."""
        try:
            data, signed_at = self._serializer.loads(token, return_timestamp=True)
        except BadSignature as exc:
            raise TokenError("widget token is not valid") from exc
        advocate_id = data.get("a") if isinstance(data, dict) else None
        if not isinstance(advocate_id, int):
            raise TokenError("widget token is not valid")
        return advocate_id, signed_at.timestamp()


# Erasure (attribution.erasure): an erased identifier is replaced by a keyed hash, so the
# person stays deduplicated (a claim or an import cannot re-create them) without being named.
ERASED_PREFIX = "erased:"


def erased_key(secret: str, value: str) -> str:
    """The stand-in for an erased identifier (a person key or a CRM external id)."""
    digest = hmac.new(
        secret.encode(), f"vouch.erasure.v1:{value}".encode(), hashlib.sha256
    ).hexdigest()
    return ERASED_PREFIX + digest[:40]
