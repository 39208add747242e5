"""Click recording: bot/unfurler verdicts and a bounded in-process buffer flushed in batches.

The landing page never waits for the database to record a click: it appends to the buffer,
and a background task writes the buffer in one multi-row INSERT every
``settings.click_flush_interval`` seconds and once more on shutdown.

When the buffer is full (the database has been unreachable or slow for a while), the newest
click is dropped and counted in ``dropped`` (exported as ``vouch_clicks_dropped_total``)
instead of blocking the page or growing memory without bound. A batch whose write failed
because the database was away is kept whole and retried first, under its id, so a short
database blip loses nothing; and since each batch records its id in its own transaction
(``click_batches``), a batch whose COMMIT succeeded but whose acknowledgment was lost (the
server died in between) is recognised on the retry and not written twice.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from asyncpg import exceptions as pg_errors  # type: ignore[import-untyped]
from prometheus_client import Counter
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vouch.core.engine import is_database_unavailable
from vouch.models import Click, ClickBatch, ReferralLink

log = logging.getLogger("vouch.clicks")

# Failures worth retrying: the database is unreachable or restarting, not the data.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    OperationalError,
    SAInterfaceError,
    # asyncpg's own connection errors, raised by the raw COPY.
    pg_errors.CannotConnectNowError,
    pg_errors.ConnectionDoesNotExistError,
    pg_errors.InterfaceError,
    pg_errors.PostgresConnectionError,
)


def _is_transient(exc: BaseException) -> bool:
    """The database is unreachable, restarting or out of pool connections: retry later.

    Connection loss mid-statement surfaces as a bare ``DBAPIError`` wrapping asyncpg's
    ``ConnectionDoesNotExistError``; an exhausted pool as SQLAlchemy's ``TimeoutError``."""
    return isinstance(exc, _TRANSIENT) or is_database_unavailable(exc)


USER_AGENT_MAX = 512
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
UTM_VALUE_MAX = 100
_CHANNEL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")

CLICKS_RECORDED = Counter("vouch_clicks_recorded_total", "Clicks written to the database.")
CLICKS_DROPPED = Counter(
    "vouch_clicks_dropped_total", "Clicks dropped because the click buffer was full."
)

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

_CLAIM_BATCH = text(
    "INSERT INTO click_batches (id, clicks) VALUES (:id, :clicks) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)


async def prune_click_batches(session: AsyncSession, *, now: datetime) -> int:
    """Forget batch ids older than ``BATCH_ID_RETENTION``; returns how many."""
    result = await session.execute(
        delete(ClickBatch).where(ClickBatch.written_at < now - BATCH_ID_RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(slots=True)
class _Batch:
    id: str
    records: list[ClickRecord]


@dataclass
class ClickBuffer:
    """Bounded buffer of clicks, written in batches by ``run()`` and ``flush()``."""

    sessionmaker: async_sessionmaker[AsyncSession]
    max_size: int
    interval: float
    dropped: int = 0
    recorded: int = 0
    _items: deque[ClickRecord] = field(default_factory=deque)
    # batches whose write failed while the database was away, oldest first, retried whole
    _retry: deque[_Batch] = field(default_factory=deque)
    _retrying: int = 0  # clicks in _retry
    _writing: list[ClickRecord] = field(default_factory=list)  # the batch being written
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __len__(self) -> int:
        return len(self._items) + self._retrying

    def holds(self, visitor_id: str) -> bool:
        """Whether a click of this visitor waits here (queued, retried or being written)."""
        return any(
            r.visitor_id == visitor_id
            for r in itertools.chain(self._writing, self._items, *(b.records for b in self._retry))
        )

    def queued(self) -> list[ClickRecord]:
        """The buffered clicks in the order they will be written."""
        return [r for batch in self._retry for r in batch.records] + list(self._items)

    def add(self, record: ClickRecord) -> bool:
        """Queue a click; ``False`` (and counted as dropped) when the buffer is full."""
        if len(self) >= self.max_size:
            self.dropped += 1
            CLICKS_DROPPED.inc()
            return False
        self._items.append(record)
        return True

    async def flush(self) -> int:
        """Write the batches waiting for a retry, then everything buffered since; returns how
        many clicks were written. Stops at the first batch the database cannot take."""
        async with self._lock:
            written = 0
            while self._retry:
                batch = self._retry[0]
                count = await self._attempt(batch)
                if count is None:
                    return written
                self._retry.popleft()
                self._retrying -= len(batch.records)
                written += count
            if self._items:
                batch = _Batch(uuid.uuid4().hex, list(self._items))
                self._items.clear()
                count = await self._attempt(batch)
                if count is None:
                    self._requeue(batch)
                else:
                    written += count
            return written

    async def _attempt(self, batch: _Batch) -> int | None:
        """Write one batch: how many clicks were written, or None if the database is away."""
        try:
            await self._write(batch)
        except Exception as exc:
            if _is_transient(exc):
                log.warning(
                    "click flush failed (%s); %d clicks kept for a retry",
                    type(exc).__name__,
                    len(batch.records),
                )
                return None
            # Most likely a link deleted since the click: write the rows that still have
            # a link, drop (and count) the rest rather than retrying a poison batch forever.
            salvaged = await self._salvage(batch, exc)
            if salvaged is None:
                return None
            count = len(salvaged)
        else:
            count = len(batch.records)
        self.recorded += count
        CLICKS_RECORDED.inc(count)
        return count

    async def _write(self, batch: _Batch) -> None:
        self._writing = batch.records
        try:
            async with self.sessionmaker() as session:
                claimed = await session.scalar(
                    _CLAIM_BATCH, {"id": batch.id, "clicks": len(batch.records)}
                )
                if claimed is not None:  # else written before: its acknowledgment was lost
                    await insert_clicks(session, batch.records)
                await session.commit()
        finally:
            self._writing = []

    def _requeue(self, batch: _Batch) -> None:
        """Keep a failed new batch for a retry, within the bound (without room, its newest
        clicks are dropped and counted)."""
        room = max(0, self.max_size - len(self))
        kept = batch.records[:room]
        self._drop(len(batch.records) - len(kept))
        if kept:
            self._retry.append(_Batch(batch.id, kept))
            self._retrying += len(kept)

    def _drop(self, count: int) -> None:
        if count:
            self.dropped += count
            CLICKS_DROPPED.inc(count)

    async def _salvage(self, batch: _Batch, exc: BaseException) -> list[ClickRecord] | None:
        """The rows of ``batch`` that could be written (under the batch's id: the failed
        attempt was rolled back); ``None`` if the database went away meanwhile."""
        try:
            async with self.sessionmaker() as session:
                live = set(
                    await session.scalars(
                        select(ReferralLink.id).where(
                            ReferralLink.id.in_({r.link_id for r in batch.records})
                        )
                    )
                )
            keep = [r for r in batch.records if r.link_id in live]
            await self._write(_Batch(batch.id, keep))
        except Exception as again:
            if _is_transient(again):
                return None
            log.error(
                "click flush failed twice (%s, %s); %d clicks dropped",
                type(exc).__name__,
                type(again).__name__,
                len(batch.records),
            )
            self._drop(len(batch.records))
            return []
        orphans = len(batch.records) - len(keep)
        self._drop(orphans)
        log.warning("click flush dropped %d clicks of deleted links", orphans)
        return keep

    async def run(self) -> None:
        """Flush every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
