from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vouch.core.settings import ConfigError
from vouch.core.settings import Settings as _Settings

Settings: Any = _Settings


def test_production_refuses_missing_secret(tmp_path: Path) -> None:
    s = Settings(VOUCH_ENV="production", VOUCH_DATA_DIR=str(tmp_path), VOUCH_SECRET_KEY="")
    with pytest.raises(ConfigError, match="VOUCH_SECRET_KEY is not set"):
        s.resolved_secret()


def test_development_generates_secret_once(tmp_path: Path) -> None:
    first = Settings(VOUCH_ENV="development", VOUCH_DATA_DIR=str(tmp_path), VOUCH_SECRET_KEY="")
    second = Settings(VOUCH_ENV="development", VOUCH_DATA_DIR=str(tmp_path), VOUCH_SECRET_KEY="")
    assert first.resolved_secret() == second.resolved_secret()
    assert len(first.resolved_secret()) >= 32
    assert (tmp_path / "secrets" / "secret_key").stat().st_mode & 0o077 == 0


def test_cors_origins_from_comma_list() -> None:
    s = Settings(VOUCH_CORS_ORIGINS="https://a.example, https://b.example")
    assert s.cors_origins == ["https://a.example", "https://b.example"]


def test_rejects_non_postgres_url() -> None:
    with pytest.raises(ValueError, match="PostgreSQL URL"):
        Settings(DATABASE_URL="mysql://root@localhost/x")
