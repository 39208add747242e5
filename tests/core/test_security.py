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
