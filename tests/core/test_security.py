"""Widget tokens: a checked signature is remembered, its lifetime is not."""

from __future__ import annotations

import time

import pytest

from vouch.core.security import TokenError, WidgetTokens

SECRET = "test-secret-key-that-is-long-enough-0123456789"


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = WidgetTokens(SECRET, ttl_seconds=60)
    token = tokens.mint(42)
    assert tokens.verify(token) == 42
    assert tokens.verify(token) == 42  # from the cache
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token)
    monkeypatch.setattr(time, "time", lambda: real() - 5)  # signed "in the future"
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token)


def test_forged_and_foreign_tokens_are_refused_every_time() -> None:
    tokens = WidgetTokens(SECRET, ttl_seconds=60)
    other = WidgetTokens("another-secret-key-that-is-long-enough-0123", ttl_seconds=60)
    token = tokens.mint(7)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (forged, other.mint(7), "garbage", ""):
        for _ in range(2):  # a refusal is not remembered as anything else
            with pytest.raises(TokenError, match="not valid"):
                tokens.verify(bad)
    assert tokens.verify(token) == 7


def test_one_reading_of_the_authorization_header():
    from vouch.core.security import Bearer, bearer

    assert bearer(None) == Bearer(sent=False, token=None)
    assert bearer("") == Bearer(sent=False, token=None)
    assert bearer("Bearer vk_abc") == Bearer(sent=True, token="vk_abc")
    assert bearer("bearer   vk_abc  ") == Bearer(sent=True, token="vk_abc")
    assert bearer("BEARER wt.token") == Bearer(sent=True, token="wt.token")
    assert bearer("Basic dXNlcjpwYXNz") == Bearer(sent=True, token=None)
    assert bearer("Bearer") == Bearer(sent=True, token=None)
    assert bearer("Bearer    ") == Bearer(sent=True, token=None)
    assert bearer("vk_abc") == Bearer(sent=True, token=None)


def test_ip_hashes_use_the_days_key_and_differ_by_day_and_secret():
    """The day's key is kept per (secret, day); the hash is the same two-step HMAC."""
    import hashlib
    import hmac
    from datetime import date

    from vouch.core.security import hash_ip

    secret, day = "s" * 40, date(2026, 12, 5)
    day_key = hmac.new(secret.encode(), b"ip:2026-12-05", hashlib.sha256).digest()
    expected = hmac.new(day_key, b"203.0.113.9", hashlib.sha256).hexdigest()[:32]
    assert hash_ip(secret, "203.0.113.9", day) == expected
    assert hash_ip(secret, "203.0.113.9", day) == expected  # from the kept key
    assert hash_ip(secret, "203.0.113.9", date(2026, 12, 6)) != expected
    assert hash_ip("t" * 40, "203.0.113.9", day) != expected
    assert hash_ip(secret, None, day) is None


def test_sign_is_hmac_sha256_as_rfc_4231_gives_it():
    """``sign`` uses OpenSSL's one-shot HMAC; RFC 4231's test case 2 pins the value."""
    from vouch.core.security import sign

    assert sign("Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


@pytest.mark.parametrize(
    ("key", "message", "expected"),
    [
        # RFC 4231, test cases 1, 2, 3 and 6 (a key longer than SHA-256's block)
        (
            b"\x0b" * 20,
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            b"\xaa" * 20,
            b"\xdd" * 50,
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            b"\xaa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ],
)
def test_keyed_hmac_gives_rfc_4231_values(key: bytes, message: bytes, expected: str) -> None:
    from vouch.core.security import KeyedHmac

    mac = KeyedHmac(key)
    assert mac.hexdigest(message) == expected
    assert mac.hexdigest(message) == expected  # the pads' states are copied, never consumed


def test_keyed_hmac_equals_the_standard_library_for_any_key_and_message() -> None:
    import hashlib
    import hmac
    import random

    from vouch.core.security import KeyedHmac

    rng = random.Random(16)
    for _ in range(300):
        key = rng.randbytes(rng.choice([0, 1, 31, 32, 63, 64, 65, 200]))
        message = rng.randbytes(rng.randrange(0, 300))
        assert KeyedHmac(key).digest(message) == hmac.new(key, message, hashlib.sha256).digest()
