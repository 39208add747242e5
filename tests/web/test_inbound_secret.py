"""The inbound secret has one form, Standard Webhooks' ``whsec_`` + base64, and one key: the
decoded bytes. Nothing is guessed from the secret's shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from tests.conftest import TEST_SALT, TEST_SECRET
from vouch.attribution import webhooks
from vouch.core.settings import Settings as _Settings
from vouch.models import Opportunity
from vouch.web.app import Overrides, create_app

Settings: Any = _Settings

DEAL = {
    "type": "opportunity.upsert",
    "provider": "vouch",
    "data": {"crm_id": "D-1", "stage": "Discovery", "amount_minor": 100, "currency": "USD"},
}


def guide_signature(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """Exactly what docs/guides/crm.md tells an integrator to compute."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_the_standard_webhooks_test_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    assert guide_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("0123456789abcdef0123456789abcdef0123456789abcdef", "must start with whsec_"),
        ("whsec_0123456789abcdef", "decode to 24 to 64 bytes"),
        ("whsec_test_inbound_secret_0123456789abcdef", "standard base64"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(), "standard base64"),
    ],
)
def test_a_secret_of_another_shape_is_refused_at_start_up(secret: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as refused:
        Settings(VOUCH_INBOUND_WEBHOOK_SECRET=secret)
    assert "whsec_" in str(refused.value)


def test_development_secrets_are_always_whsec_base64(tmp_path: Path) -> None:
    # token_urlsafe(48) used to be valid base64 about 13% of the time and was then decoded;
    # every generated secret now has the one documented form.
    for i in range(200):
        settings = Settings(VOUCH_ENV="development", VOUCH_DATA_DIR=str(tmp_path / str(i)))
        secret = settings.resolved_inbound_webhook_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        stored = (tmp_path / str(i) / "secrets" / "inbound_webhook_secret").read_text()
        assert stored == secret


def test_an_old_development_secret_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "inbound_webhook_secret").write_text(
        "abcdABCD0123abcdABCD0123abcdABCD0123abcdABCD0123"
    )
    settings = Settings(VOUCH_ENV="development", VOUCH_DATA_DIR=str(tmp_path))
    secret = settings.resolved_inbound_webhook_secret()
    assert secret.startswith("whsec_")
    assert (folder / "inbound_webhook_secret").read_text() == secret


async def test_the_generated_development_secret_signed_as_the_guide_says_is_accepted(
    tmp_path: Path, sessionmaker: Any, session: Any
) -> None:
    values: dict[str, Any] = {
        "VOUCH_ENV": "test",
        "VOUCH_SECRET_KEY": TEST_SECRET,
        "VOUCH_HASHID_SALT": TEST_SALT,
        "VOUCH_DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql://unused-in-tests/x",
    }
    settings = Settings(**values)
    app = create_app(settings, Overrides(sessionmaker=sessionmaker))
    settings.resolved_inbound_webhook_secret()
    # What a developer finds where the README says the development secret lives.
    secret = (tmp_path / "secrets" / "inbound_webhook_secret").read_text().strip()
    body = json.dumps(DEAL).encode()
    ts = int(time.time())
    headers = {
        "webhook-id": "msg_dev",
        "webhook-timestamp": str(ts),
        "webhook-signature": guide_signature(secret, "msg_dev", ts, body),
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/webhooks/inbound", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert await session.scalar(select(func.count()).select_from(Opportunity)) == 1
