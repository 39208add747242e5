"""Without Chromium the browser tests skip loudly, or fail when CI requires them."""

from __future__ import annotations

import pytest

from tests.browser import conftest


def test_missing_browser_skips_with_the_debian_package_names(monkeypatch):
    monkeypatch.setattr(conftest, "_find", lambda candidates, name: None)
    monkeypatch.delenv("VOUCH_REQUIRE_BROWSER", raising=False)
    with (
        pytest.warns(UserWarning, match="chromium-driver"),
        pytest.raises(pytest.skip.Exception) as exc,
    ):
        conftest._require_browser()
    assert "`chromium` and `chromium-driver`" in str(exc.value)


def test_missing_browser_fails_when_ci_requires_it(monkeypatch):
    monkeypatch.setattr(conftest, "_find", lambda candidates, name: None)
    monkeypatch.setenv("VOUCH_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception) as exc:
        conftest._require_browser()
    assert "VOUCH_REQUIRE_BROWSER=1" in str(exc.value)


def test_installed_browser_is_found(monkeypatch):
    monkeypatch.setattr(conftest, "_find", lambda candidates, name: f"/usr/bin/{name}")
    assert conftest._require_browser() == ("/usr/bin/chromium", "/usr/bin/chromedriver")
