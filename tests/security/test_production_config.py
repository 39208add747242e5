"""Issue 14 item 10: production started without VOUCH_INBOUND_WEBHOOK_SECRET and answered every
inbound webhook with a 500 and a traceback; guessable secrets of 32+ characters were accepted;
`vouch demo` seeded a production database."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET
from vouch.attribution import webhooks
from vouch.core.settings import ConfigError, Settings
from vouch.models import IdempotencyKey, Opportunity
from vouch.web.app import Overrides, create_app

SALT = "a-production-grade-salt-0123456789abcdef"


def _production(settings: Settings, **extra: str) -> Settings:
    values: dict[str, Any] = {
        "VOUCH_ENV": "production",
        "VOUCH_SECRET_KEY": TEST_SECRET,
        "VOUCH_HASHID_SALT": SALT,
        "VOUCH_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": "postgresql://unused-in-tests/x",
        # production answers only its own host (docs/SECURITY.md, "HTTP edge limits")
        "VOUCH_PUBLIC_BASE_URL": "http://testserver",
        **extra,
    }
    return Settings(**values)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_production_without_inbound_secret_disables_inbound_with_a_503(
    settings, sessionmaker, session
):
    lines = _Lines()
    logger = logging.getLogger("vouch.app")
    logger.addHandler(lines)  # production configures JSON logging, replacing pytest's capture
    try:
        app = create_app(_production(settings), Overrides(sessionmaker=sessionmaker))
    finally:
        logger.removeHandler(lines)
    assert lines.lines == [
        "VOUCH_INBOUND_WEBHOOK_SECRET is not set: inbound webhooks are disabled "
        "(POST /webhooks/inbound answers 503)"
    ]
    raw = json.dumps({"type": "opportunity.upsert", "provider": "generic", "data": {}}).encode()
    guess = "whsec_" + base64.b64encode(b"a guessed secret of the right form").decode()
    headers = webhooks.signed_headers(guess, "msg_1", int(time.time()), raw)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    ) as c:
        response = await c.post("/webhooks/inbound", content=raw, headers=headers)
    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "code": "DISABLED",
            "message": "inbound webhooks are disabled on this server",
            "field": None,
        }
    }
    assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 0


@pytest.mark.parametrize(
    "env",
    ["VOUCH_SECRET_KEY", "VOUCH_HASHID_SALT", "VOUCH_INBOUND_WEBHOOK_SECRET"],
)
@pytest.mark.parametrize(
    "weak",
    ["a" * 64, "ab" * 32, "0123456789" * 4, "password-password-password-password"],
    ids=["one-char", "two-chars", "digits-repeated", "word-repeated"],
)
def test_guessable_secrets_stop_production(settings, sessionmaker, env, weak):
    if env == "VOUCH_INBOUND_WEBHOOK_SECRET":  # in its required form: whsec_ + base64 of the key
        weak = "whsec_" + base64.b64encode(weak.encode()).decode()
    prod = _production(settings, **{env: weak})
    with pytest.raises(ConfigError, match=f"{env} looks guessable"):
        create_app(prod, Overrides(sessionmaker=sessionmaker))


def test_real_secrets_pass(settings, sessionmaker):
    import secrets

    prod = _production(
        settings,
        VOUCH_SECRET_KEY=secrets.token_urlsafe(48),
        VOUCH_HASHID_SALT=secrets.token_hex(16),
        VOUCH_INBOUND_WEBHOOK_SECRET=webhooks.new_secret(),
    )
    app = create_app(prod, Overrides(sessionmaker=sessionmaker))
    assert app.state.inbound_secret == prod.inbound_webhook_secret


def test_serve_refuses_a_guessable_secret_in_one_line(tmp_path, database_url):
    result = run(
        ["serve", "--port", "18765"],
        VOUCH_DATA_DIR=str(tmp_path),
        VOUCH_ENV="production",
        VOUCH_SECRET_KEY="x" * 48,
        VOUCH_HASHID_SALT=SALT,
        DATABASE_URL=database_url,
    )
    assert result.returncode != 0
    assert "VOUCH_SECRET_KEY looks guessable" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_refuses_a_production_database_unless_forced(tmp_path):
    env = {
        "VOUCH_DATA_DIR": str(tmp_path),
        "VOUCH_ENV": "production",
        "VOUCH_SECRET_KEY": TEST_SECRET,
        "VOUCH_HASHID_SALT": SALT,
        # unreachable: a refusal must come before the database is touched
        "DATABASE_URL": "postgresql://vouch@127.0.0.1:1/vouch",
    }
    refused = run(["demo"], **env)
    assert refused.returncode != 0
    assert refused.stderr.strip() == (
        "error: refusing to seed demo data (fake advocates and an admin API key) into a production "
        "database (VOUCH_ENV=production); pass --force if you really mean it"
    )
    forced = run(["demo", "--force"], **env)
    assert forced.returncode != 0
    assert "cannot use the database" in forced.stderr  # past the guard, on to the database
