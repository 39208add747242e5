"""The one settings object. Nothing else in Vouch reads ``os.environ``."""

from __future__ import annotations

import math
import secrets
from collections import Counter
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ConfigError(Exception):
    """A setting is missing or wrong; the message says how to fix it."""


MIN_SECRET_BITS = 96
MIN_DISTINCT_CHARACTERS = 10


def strong_enough(value: str) -> bool:
    """A production secret must not be obviously guessable: its characters' Shannon entropy
    times its length reaches ``MIN_SECRET_BITS``, it uses at least ``MIN_DISTINCT_CHARACTERS``
    characters, and it is not one short piece repeated. ``aaaa…``, ``abab…`` and
    ``0123456789`` repeated are refused; ``secrets.token_urlsafe(48)`` (~350 bits) and a
    32-character hex token (~120 by this estimate) pass."""
    counts = Counter(value)
    if len(counts) < MIN_DISTINCT_CHARACTERS:
        return False
    n = len(value)
    bits = -sum(c / n * math.log2(c / n) for c in counts.values()) * n
    if bits < MIN_SECRET_BITS:
        return False
    period = (value + value).find(value, 1)
    return period == n  # a string made of a repeated piece is found again before n


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    database_replica_url: str | None = Field(default=None, alias="DATABASE_REPLICA_URL")
    data_dir: Path = Field(default=Path(".vouch"), alias="VOUCH_DATA_DIR")
    env: Environment = Field(default=Environment.DEVELOPMENT, alias="VOUCH_ENV")
    secret_key: str | None = Field(default=None, alias="VOUCH_SECRET_KEY")
    hashid_salt: str | None = Field(default=None, alias="VOUCH_HASHID_SALT")
    hashid_min_length: int = Field(default=10, ge=6, le=32, alias="VOUCH_HASHID_MIN_LENGTH")
    public_base_url: str = Field(default="http://127.0.0.1:8000", alias="VOUCH_PUBLIC_BASE_URL")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VOUCH_CORS_ORIGINS"
    )
    db_pool_size: int = Field(default=10, ge=1, le=200, alias="VOUCH_DB_POOL_SIZE")
    db_pool_timeout: float = Field(default=2.0, gt=0, le=60, alias="VOUCH_DB_POOL_TIMEOUT")
    click_flush_interval: float = Field(
        default=0.25, gt=0, le=10, alias="VOUCH_CLICK_FLUSH_INTERVAL"
    )
    click_buffer_max: int = Field(default=10_000, ge=1, alias="VOUCH_CLICK_BUFFER_MAX")
    widget_token_ttl_seconds: int = Field(
        default=3600, ge=60, le=86_400, alias="VOUCH_WIDGET_TOKEN_TTL"
    )
    widget_links_per_program: int = Field(
        default=10, ge=1, le=1000, alias="VOUCH_WIDGET_LINKS_PER_PROGRAM"
    )
    console_idle_timeout_seconds: int = Field(
        default=1800, ge=60, le=86_400, alias="VOUCH_CONSOLE_IDLE_TIMEOUT"
    )
    console_session_ttl_seconds: int = Field(
        default=8 * 3600, ge=300, le=7 * 86_400, alias="VOUCH_CONSOLE_SESSION_TTL"
    )
    claim_rate_limit_per_hour: int = Field(default=20, ge=1, alias="VOUCH_CLAIM_RATE_LIMIT")
    webhook_tolerance_seconds: int = Field(
        default=300, ge=30, le=3600, alias="VOUCH_WEBHOOK_TOLERANCE"
    )
    webhook_allow_private_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VOUCH_WEBHOOK_ALLOW_PRIVATE_HOSTS"
    )
    webhook_worker: bool = Field(default=True, alias="VOUCH_WEBHOOK_WORKER")
    graphql_max_cost: int = Field(default=50_000, ge=1, alias="VOUCH_GRAPHQL_MAX_COST")
    graphql_widget_max_cost: int = Field(default=2_500, ge=1, alias="VOUCH_GRAPHQL_WIDGET_MAX_COST")
    inbound_webhook_secret: str | None = Field(default=None, alias="VOUCH_INBOUND_WEBHOOK_SECRET")

    @field_validator("cors_origins", "webhook_allow_private_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("database_url", "database_replica_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError(
                "must be a PostgreSQL URL such as postgresql://user:password@host:5432/dbname"
            )
        return value

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def embedded(self) -> bool:
        """True when Vouch runs its own PostgreSQL in the data directory."""
        return self.database_url is None

    def resolved_secret(self) -> str:
        """The secret key; generated once per data directory outside production."""
        return self._secret("secret_key", "VOUCH_SECRET_KEY", "secret_key")

    def resolved_hashid_salt(self) -> str:
        return self._secret("hashid_salt", "VOUCH_HASHID_SALT", "hashid_salt")

    def resolved_inbound_webhook_secret(self) -> str:
        return self._secret(
            "inbound_webhook_secret", "VOUCH_INBOUND_WEBHOOK_SECRET", "inbound_webhook_secret"
        )

    def inbound_webhook_secret_or_none(self) -> str | None:
        """The inbound webhook secret; in production None when unset (inbound webhooks are then
        disabled and answered 503), refused when weak."""
        if self.is_production and not self.inbound_webhook_secret:
            return None
        return self.resolved_inbound_webhook_secret()

    def _secret(self, attr: str, env_name: str, filename: str) -> str:
        value: str | None = getattr(self, attr)
        if value:
            if self.is_production and len(value) < 32:
                raise ConfigError(f"{env_name} must be at least 32 characters in production.")
            if self.is_production and not strong_enough(value):
                raise ConfigError(
                    f"{env_name} looks guessable (too few distinct characters or a repeated "
                    "pattern). Generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
                )
            return value
        if self.is_production:
            raise ConfigError(
                f"{env_name} is not set. Production needs it: generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        path = self.data_dir / "secrets" / filename
        if path.exists():
            value = path.read_text().strip()
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                value = secrets.token_urlsafe(48)
                path.write_text(value)
                path.chmod(0o600)
            except PermissionError as exc:
                raise ConfigError(
                    f"cannot write to the data directory {self.data_dir.resolve()}: {exc.strerror}."
                    " Set VOUCH_DATA_DIR to a writable directory."
                ) from exc
        setattr(self, attr, value)
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
