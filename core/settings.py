"""The one settings object. Nothing else in Vouch reads ``os.environ``."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import secrets
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vouch.core import webhook_secrets
from vouch.core.mail import Mailer, SmtpSecurity


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
    # DATABASE_URL (and the replica's) points at PgBouncer in transaction mode: no prepared
    # statement outlives its transaction, no session state, reads inside transactions.
    # Reports fall back to the primary while the replica is down or further behind than this.
    replica_max_lag: float = Field(default=30.0, gt=0, le=86_400, alias="VOUCH_REPLICA_MAX_LAG")
    replica_check_interval: float = Field(
        default=2.0, gt=0, le=60, alias="VOUCH_REPLICA_CHECK_INTERVAL"
    )
    db_pgbouncer: bool = Field(default=False, alias="VOUCH_DB_PGBOUNCER")
    # Where LISTEN connects (cache invalidation): PostgreSQL itself, since a LISTEN through a
    # transaction-mode pooler hears nothing. Unset: DATABASE_URL.
    database_listen_url: str | None = Field(default=None, alias="DATABASE_LISTEN_URL")
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
    # Admission (web/admission.py): requests working at once per worker (0: the pool's size
    # plus its overflow), how many may wait for a place, and for how long.
    request_slots: int = Field(default=0, ge=0, le=1000, alias="VOUCH_REQUEST_SLOTS")
    request_queue: int = Field(default=1024, ge=0, le=100_000, alias="VOUCH_REQUEST_QUEUE")
    request_queue_timeout: float = Field(
        default=5.0, gt=0, le=60, alias="VOUCH_REQUEST_QUEUE_TIMEOUT"
    )
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
    # This process runs the outbound loops: webhook delivery and code mails (webhook_worker),
    # the HubSpot sync and Stripe promotion codes (integration_workers); jobs/background.py.
    webhook_worker: bool = Field(default=True, alias="VOUCH_WEBHOOK_WORKER")
    integration_workers: bool = Field(default=True, alias="VOUCH_INTEGRATION_WORKERS")
    graphql_max_cost: int = Field(default=50_000, ge=1, alias="VOUCH_GRAPHQL_MAX_COST")
    # Reward-policy backtests of programs with at least VOUCH_BACKTEST_PROCESSES_FROM referrals
    # are replayed in this many worker processes, one share of the advocates each
    # (attribution.backtest); 1 replays every backtest in the request's own process.
    backtest_processes: int = Field(
        default_factory=lambda: min(4, os.cpu_count() or 1),
        ge=1,
        le=32,
        alias="VOUCH_BACKTEST_PROCESSES",
    )
    backtest_processes_from: int = Field(
        default=100_000, ge=0, alias="VOUCH_BACKTEST_PROCESSES_FROM"
    )
    # api.speed's pieces (on), or strawberry's and graphql-core's own paths (off): same answers.
    graphql_fast_path: bool = Field(default=True, alias="VOUCH_GRAPHQL_FAST_PATH")
    graphql_widget_max_cost: int = Field(default=2_500, ge=1, alias="VOUCH_GRAPHQL_WIDGET_MAX_COST")
    # How long a worker keeps a widget token's query answer (core.widget_cache); 0: never.
    widget_cache_seconds: float = Field(
        default=2.0, ge=0, le=60, alias="VOUCH_WIDGET_CACHE_SECONDS"
    )
    inbound_webhook_secret: str | None = Field(default=None, alias="VOUCH_INBOUND_WEBHOOK_SECRET")
    # Scheduled jobs (vouch.jobs): run inside each `vouch serve` process unless turned off here
    # (then run `vouch worker`); exactly once across every process sharing the database.
    scheduler: bool = Field(default=True, alias="VOUCH_SCHEDULER")
    # Per-job overrides, "name=cron expression" separated by ";" (a cron of "off" disables it),
    # e.g. "tiers_recompute=0 */6 * * *;rollups_verify=off". Validated against the job list.
    job_schedules: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, alias="VOUCH_JOB_SCHEDULES"
    )
    job_max_attempts: int = Field(default=3, ge=1, le=10, alias="VOUCH_JOB_MAX_ATTEMPTS")
    job_retry_delay: float = Field(default=30.0, ge=0, le=3600, alias="VOUCH_JOB_RETRY_DELAY")
    idempotency_key_ttl_hours: int = Field(
        default=24, ge=1, le=24 * 90, alias="VOUCH_IDEMPOTENCY_KEY_TTL_HOURS"
    )
    job_run_retention_days: int = Field(
        default=30, ge=1, le=3650, alias="VOUCH_JOB_RUN_RETENTION_DAYS"
    )
    # Monthly partitions of clicks created ahead by the clicks_partitions job (docs/OPERATIONS.md).
    click_partitions_ahead: int = Field(
        default=3, ge=1, le=24, alias="VOUCH_CLICK_PARTITIONS_AHEAD"
    )
    # Months of raw clicks kept (unset: forever); older months are kept as per-link monthly
    # totals only. At least 3, so fraud rules' look-backs always see raw clicks.
    click_retention_months: int | None = Field(
        default=None, ge=3, le=1200, alias="VOUCH_CLICK_RETENTION_MONTHS"
    )
    # The HTTP edge (docs/SECURITY.md, "HTTP edge limits").
    body_read_timeout: float = Field(default=10.0, gt=0, le=300, alias="VOUCH_BODY_READ_TIMEOUT")
    db_statement_timeout_ms: int = Field(
        default=15_000, ge=100, le=3_600_000, alias="VOUCH_DB_STATEMENT_TIMEOUT_MS"
    )
    db_idle_in_transaction_timeout_ms: int = Field(
        default=10_000, ge=100, le=3_600_000, alias="VOUCH_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VOUCH_TRUSTED_PROXIES"
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VOUCH_ALLOWED_HOSTS"
    )
    # Mail (friends' codes re-sent): off unless VOUCH_SMTP_HOST is set.
    smtp_host: str | None = Field(default=None, alias="VOUCH_SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, alias="VOUCH_SMTP_PORT")
    smtp_security: SmtpSecurity = Field(default=SmtpSecurity.STARTTLS, alias="VOUCH_SMTP_SECURITY")
    smtp_username: str | None = Field(default=None, alias="VOUCH_SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, alias="VOUCH_SMTP_PASSWORD")
    mail_from: str | None = Field(default=None, alias="VOUCH_MAIL_FROM")
    # prometheus_client's own variable: set by `vouch serve --workers N` (N > 1) when unset.
    prometheus_multiproc_dir: Path | None = Field(default=None, alias="PROMETHEUS_MULTIPROC_DIR")
    # Native integrations: each is off until its secret is set (there is no default secret).
    hubspot_client_secret: str | None = Field(default=None, alias="VOUCH_HUBSPOT_CLIENT_SECRET")
    hubspot_access_token: str | None = Field(default=None, alias="VOUCH_HUBSPOT_ACCESS_TOKEN")
    hubspot_api_base: str = Field(default="https://api.hubapi.com", alias="VOUCH_HUBSPOT_API_BASE")
    hubspot_webhook_url: str | None = Field(default=None, alias="VOUCH_HUBSPOT_WEBHOOK_URL")
    hubspot_stages: Annotated[dict[str, dict[str, list[str]]], NoDecode] = Field(
        default_factory=lambda: {"default": {"won": ["closedwon"], "lost": ["closedlost"]}},
        alias="VOUCH_HUBSPOT_STAGES",
    )
    hubspot_write_back: bool = Field(default=False, alias="VOUCH_HUBSPOT_WRITE_BACK")
    salesforce_outbound_token: str | None = Field(
        default=None, alias="VOUCH_SALESFORCE_OUTBOUND_TOKEN"
    )
    salesforce_org_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="VOUCH_SALESFORCE_ORG_IDS"
    )
    stripe_webhook_secret: str | None = Field(default=None, alias="VOUCH_STRIPE_WEBHOOK_SECRET")
    stripe_api_key: str | None = Field(default=None, alias="VOUCH_STRIPE_API_KEY")
    stripe_api_base: str = Field(default="https://api.stripe.com", alias="VOUCH_STRIPE_API_BASE")
    stripe_promotion_coupon: str | None = Field(default=None, alias="VOUCH_STRIPE_PROMOTION_COUPON")

    @field_validator(
        "cors_origins",
        "trusted_proxies",
        "allowed_hosts",
        "webhook_allow_private_hosts",
        mode="before",
    )
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("job_schedules", mode="before")
    @classmethod
    def _parse_schedules(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        parsed: dict[str, str] = {}
        for item in value.split(";"):
            if not item.strip():
                continue
            name, sep, expression = item.partition("=")
            if not sep or not name.strip() or not expression.strip():
                raise ValueError(
                    f"VOUCH_JOB_SCHEDULES entry {item.strip()!r} is not name=cron expression"
                )
            parsed[name.strip()] = " ".join(expression.split())
        return parsed

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"{item[:64]!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("salesforce_org_ids", mode="before")
    @classmethod
    def _split_org_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("salesforce_outbound_token")
    @classmethod
    def _check_outbound_token(cls, value: str | None) -> str | None:
        if value and (len(value) < 32 or not value.isascii() or not value.isalnum()):
            raise ValueError(
                "must be at least 32 letters and digits (it is part of a URL); generate one with"
                " python -c 'import secrets; print(secrets.token_hex(24))'"
            )
        return value or None

    @field_validator("hubspot_stages", mode="before")
    @classmethod
    def _parse_stages(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(
                    "must be JSON such as "
                    '{"default": {"won": ["closedwon"], "lost": ["closedlost"]}}'
                ) from None
        return value

    @field_validator("inbound_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            webhook_secrets.secret_key(value)
        except webhook_secrets.InvalidSecret as exc:
            raise ValueError(
                f"{exc}; generate one with {webhook_secrets.GENERATE_COMMAND}"
            ) from None
        return value

    @field_validator("database_url", "database_replica_url", "database_listen_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError(
                "must be a PostgreSQL URL such as postgresql://user:password@host:5432/dbname"
            )
        return value

    def mailer(self) -> Mailer | None:
        """The SMTP client, when mail is configured."""
        if not self.smtp_host:
            return None
        if not self.mail_from:
            raise ConfigError("VOUCH_SMTP_HOST is set, so VOUCH_MAIL_FROM must be too.")
        return Mailer(
            host=self.smtp_host,
            port=self.smtp_port,
            sender=self.mail_from,
            security=self.smtp_security,
            username=self.smtp_username,
            password=self.smtp_password,
        )

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    def public_host(self) -> str:
        """The host (and port, if any) of ``VOUCH_PUBLIC_BASE_URL``, lower-cased."""
        return urlsplit(self.public_base_url).netloc.lower()

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
        """``whsec_`` + base64; in development generated once into
        ``VOUCH_DATA_DIR/secrets/inbound_webhook_secret``."""
        return self._secret(
            "inbound_webhook_secret",
            "VOUCH_INBOUND_WEBHOOK_SECRET",
            "inbound_webhook_secret",
            generate=webhook_secrets.new_secret,
            valid=_is_webhook_secret,
            hint=webhook_secrets.GENERATE_COMMAND,
        )

    def inbound_webhook_secret_or_none(self) -> str | None:
        """The inbound webhook secret; in production None when unset (inbound webhooks are then
        disabled and answered 503), refused when weak."""
        if self.is_production and not self.inbound_webhook_secret:
            return None
        return self.resolved_inbound_webhook_secret()

    def _secret(
        self,
        attr: str,
        env_name: str,
        filename: str,
        *,
        generate: Callable[[], str] = lambda: secrets.token_urlsafe(48),
        valid: Callable[[str], bool] = bool,
        hint: str = "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
    ) -> str:
        value: str | None = getattr(self, attr)
        if value:
            if self.is_production and len(value) < 32:
                raise ConfigError(f"{env_name} must be at least 32 characters in production.")
            if self.is_production and not strong_enough(_key_material(value)):
                raise ConfigError(
                    f"{env_name} looks guessable (too few distinct characters or a repeated "
                    f"pattern). Generate one with `{hint}`."
                )
            return value
        if self.is_production:
            raise ConfigError(
                f"{env_name} is not set. Production needs it: generate one with `{hint}`."
            )
        path = self.data_dir / "secrets" / filename
        value = path.read_text().strip() if path.exists() else ""
        # A development secret of an older, ambiguous format is replaced by a valid one.
        if not valid(value):
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                value = generate()
                path.write_text(value)
                path.chmod(0o600)
            except PermissionError as exc:
                raise ConfigError(
                    f"cannot write to the data directory {self.data_dir.resolve()}: {exc.strerror}."
                    " Set VOUCH_DATA_DIR to a writable directory."
                ) from exc
        setattr(self, attr, value)
        return value


def _key_material(value: str) -> str:
    """What a secret's strength is judged on: for a Standard Webhooks secret the decoded key
    bytes (``whsec_`` + the base64 of ``aaaa…`` is as guessable as ``aaaa…``), else the text."""
    if _is_webhook_secret(value):
        return webhook_secrets.secret_key(value).decode("latin-1")
    return value


def _is_webhook_secret(value: str) -> bool:
    try:
        webhook_secrets.secret_key(value)
    except webhook_secrets.InvalidSecret:
        return False
    return True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
