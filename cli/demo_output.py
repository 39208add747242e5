"""``vouch demo``: seed, mint an admin key, and say where to look."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from vouch.access.api_keys import create_api_key
from vouch.cli.demo_seed import seed_demo_data
from vouch.cli.runner import run_with_session
from vouch.core.clock import utcnow
from vouch.core.codes import LinkCodec
from vouch.core.security import WidgetTokens
from vouch.core.settings import Settings
from vouch.models.enums import Scope


def seed_demo(settings: Settings, url: str, *, base_url: str | None) -> dict[str, Any]:
    codec = LinkCodec(settings.resolved_hashid_salt(), settings.hashid_min_length)
    secret = settings.resolved_secret()
    base = (base_url or settings.public_base_url).rstrip("/")
    tokens = WidgetTokens(secret, settings.widget_token_ttl_seconds)

    async def work(session: AsyncSession) -> dict[str, Any]:
        summary = await seed_demo_data(session, codec, secret=secret, now=utcnow())
        key = await create_api_key(session, name="demo admin", scopes=[Scope.ADMIN])
        return {
            "created": summary.created,
            "programs": summary.programs,
            "advocates": summary.advocates,
            "graphql_url": f"{base}/graphql",
            "api_key": key.plaintext,
            "share_link": f"{base}/r/{summary.share_code}",
            "widget_demo": f"{base}/widget/demo?token={tokens.mint(summary.advocate_id)}",
            "console_url": f"{base}/console",
        }

    return run_with_session(settings, work)
