"""Click recording: bot/unfurler verdicts, what a click records, and writing a batch of them.

The landing page never waits for the database to record a click: it hands a ``ClickRecord`` to
the runtime's click buffer (``vouch.jobs.click_buffer``), which writes batches with
``insert_clicks`` under a batch id (``click_batches``) so a retried batch is never written twice.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.models import Click, ClickBatch

log = logging.getLogger("vouch.clicks")

USER_AGENT_MAX = 512
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_VALUE_MAX = 100
_CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


# Link unfurlers, crawlers and mail scanners: they get the page (with its Open Graph tags)
# but are stored with is_bot=True and never count as visits. Order matters: the first match
# names the reason, and iMessage announces itself as "facebookexternalhit ... Twitterbot".
_BOT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("imessage", r"facebookexternalhit/1\.1 facebot twitterbot/1\.0"),
        ("slack", r"slackbot|slack-imgproxy|slackbot-linkexpanding"),
        ("linkedin", r"linkedinbot"),
        ("whatsapp", r"whatsapp"),
        ("facebook", r"facebookexternalhit|facebot|facebookcatalog|meta-externalagent"),
        ("discord", r"discordbot"),
        ("telegram", r"telegrambot"),
        ("twitter", r"twitterbot"),
        ("skype", r"skypeuripreview"),
        ("teams", r"microsoft teams|msteams|skypeuripreview"),
        ("google", r"googlebot|google-inspectiontool|googleother|apis-google"),
        ("bing", r"bingbot|bingpreview"),
        ("apple", r"applebot"),
        (
            "email_scanner",
            r"barracuda|mimecast|proofpoint|ppe-?h|symantec|messagelabs|trendmicro|"
            r"forcepoint|sophos|fireeye|zscaler|cisco|ironport|safelinks|microsoft office|"
            r"outlook-|yahoomailproxy|googleimageproxy",
        ),
        ("http_client", r"^(curl|wget|python-requests|python-httpx|go-http-client|okhttp|java)/"),
        # Headless browsers: preview services, scrapers and test rigs, never a person.
        ("headless_browser", r"headlesschrome|phantomjs"),
        (
            "crawler",
            r"bot\b|bot/|crawler|spider|scrapy|preview|fetcher|headlesschrome/.*lighthouse",
        ),
    )
)


@dataclass(frozen=True, slots=True)
class BotVerdict:
    is_bot: bool
    reason: str | None = None


HUMAN = BotVerdict(is_bot=False)


def classify_user_agent(user_agent: str | None, *, method: str = "GET") -> BotVerdict:
    """Decide whether a request comes from a link unfurler, crawler or mail scanner."""
    if method == "HEAD":
        return BotVerdict(True, "head_request")
    if not user_agent or not user_agent.strip():
        return BotVerdict(True, "no_user_agent")
    return _classify(user_agent[:USER_AGENT_MAX])


@functools.lru_cache(maxsize=4096)
def _classify(user_agent: str) -> BotVerdict:
    # User agents repeat enormously; the verdict is a pure function of the string.
    for reason, pattern in _BOT_PATTERNS:
        if pattern.search(user_agent):
            return BotVerdict(True, reason)
    return HUMAN


def clean_channel(value: str | None) -> str | None:
    """``?ch=`` as a short lower-case slug, or ``None`` if absent or garbage."""
    if not value:
        return None
    value = value.strip().lower()
    return value if _CHANNEL_RE.match(value) else None


def clean_utm(params: Any) -> dict[str, str]:
    """The five standard UTM parameters, trimmed and truncated."""
    utm: dict[str, str] = {}
    for key in UTM_KEYS:
        value = params.get(key)
        if value:
            cleaned = "".join(ch for ch in str(value) if ch.isprintable()).strip()[:UTM_VALUE_MAX]
            if cleaned:
                utm[key] = cleaned
    return utm


def referrer_host(referer: str | None) -> str | None:
    if not referer:
        return None
    try:
        host = urlsplit(referer[:2048]).hostname
    except ValueError:
        return None
    return host[:253] if host else None


@dataclass(slots=True)
class ClickRecord:
    """One click as it is buffered; becomes one ``clicks`` row."""

    link_id: int
    program_id: int
    occurred_at: datetime
    channel: str | None
    utm: dict[str, str]
    ip_hash: str | None
    user_agent: str | None
    is_bot: bool
    bot_reason: str | None
    visitor_id: str | None
    referrer_host: str | None

    def row(self) -> dict[str, Any]:
        return {
            "link_id": self.link_id,
            "program_id": self.program_id,
            "occurred_at": self.occurred_at,
            "channel": self.channel,
            "utm": self.utm,
            "ip_hash": self.ip_hash,
            "user_agent": self.user_agent[:USER_AGENT_MAX] if self.user_agent else None,
            "is_bot": self.is_bot,
            "bot_reason": self.bot_reason,
            "visitor_id": self.visitor_id,
            "referrer_host": self.referrer_host,
        }


_COPY_COLUMNS = (
    "link_id",
    "program_id",
    "occurred_at",
    "channel",
    "utm",
    "ip_hash",
    "user_agent",
    "is_bot",
    "bot_reason",
    "visitor_id",
    "referrer_host",
)


async def insert_clicks(session: AsyncSession, records: list[ClickRecord]) -> None:
    """Write a batch of clicks with one binary ``COPY`` on the session's connection.

    A multi-row ORM INSERT spends ~50 µs of Python per row, which would stall the event loop
    (and every page being served) for tens of milliseconds per flush; COPY costs a fraction."""
    if not records:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None or not hasattr(driver, "copy_records_to_table"):  # not asyncpg
        await session.execute(insert(Click), [r.row() for r in records])
        return
    rows = []
    for r in records:
        row = r.row()
        row["utm"] = json.dumps(row["utm"], separators=(",", ":"))
        rows.append(tuple(row[c] for c in _COPY_COLUMNS))
    await driver.copy_records_to_table("clicks", records=rows, columns=list(_COPY_COLUMNS))


async def latest_click(
    session: AsyncSession, *, link_id: int, visitor_id: str | None
) -> Click | None:
    """The visitor's most recent recorded click on a link (``None`` without a visitor id)."""
    if not visitor_id:
        return None
    return await session.scalar(
        select(Click)
        .where(Click.link_id == link_id, Click.visitor_id == visitor_id)
        .order_by(Click.occurred_at.desc(), Click.id.desc())
        .limit(1)
    )


# A retry comes from the process that buffered the batch, within its lifetime; a day of batch
# ids is kept (one row per flush and worker: ~350k a day at the default interval), pruned by the
# scheduled job prune_click_batches (vouch.jobs).
BATCH_ID_RETENTION = timedelta(days=1)


async def prune_click_batches(session: AsyncSession, *, now: datetime) -> int:
    """Forget batch ids older than ``BATCH_ID_RETENTION``; returns how many."""
    result = await session.execute(
        delete(ClickBatch).where(ClickBatch.written_at < now - BATCH_ID_RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)
