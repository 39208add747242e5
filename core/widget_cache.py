"""Widget answers kept for a moment: a micro-cache of widget tokens' GraphQL query responses.

An in-product widget loads the same query for the same advocate on every page view, and what it
shows (the advocate's links, counts, points, rewards, next ask) changes on the scale of minutes.
Each worker keeps the encoded response of a widget token's successful POSTed *query* for
``ttl`` seconds (``VOUCH_WIDGET_CACHE_SECONDS``, default 2; 0 turns the cache off), keyed by
the advocate, the query text, the operation name and the variables. What is served from it:

- only to a request whose widget token verified (signature and lifetime are checked on every
  request, hit or miss), and only that advocate's own answers;
- never a mutation's answer, an answer with an error, or a request that says
  ``Cache-Control: no-cache`` (or ``no-store``, ``max-age=0``): that one executes, and its
  answer replaces what was kept;
- nothing older than ``ttl``: the bound on staleness for changes made elsewhere (a conversion,
  an admin's approval), as the click buffer already bounds click counts (0.25 s);
- nothing after a change the advocate made or that must take effect at once: a widget token's
  mutation, an advocate's erasure and an experiment started, paused or ended announce
  themselves (``announce_widget_change``), and so does every landing change (a program's
  offer, terms or status, a revoked link: ``catalog.landing_cache``). This process forgets the
  answers when the transaction commits, every other worker when PostgreSQL delivers the NOTIFY
  (``web.invalidation``; a listener that reconnects drops everything, since it may have missed
  some).

Memory is bounded (``max_bytes`` of keys and bodies; oldest first out, and an expired entry is
gone by the next store), so a token holder sending endless distinct queries only evicts.
Answers are stored only if nothing was forgotten while they were computed (``epoch``): an answer
read before a change committed is never kept after the change was announced.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

WIDGET_CHANNEL = "vouch_widget"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
# One answer or key over these is not kept (the widget's query is ~300 bytes, its answer ~1 KB).
MAX_KEY_BYTES = 8 * 1024
MAX_BODY_BYTES = 64 * 1024
_OVERHEAD = 200  # bytes counted per entry for the tuple, the dict slots and the index

LOOKUPS = Counter(
    "vouch_widget_cache_lookups_total",
    "Widget token queries answered from the widget cache (hit) or executed (miss, bypass)",
    ["result"],
)
_HIT, _MISS, _BYPASS = (LOOKUPS.labels(r) for r in ("hit", "miss", "bypass"))
Key = tuple[int, str, str | None, bytes]


@dataclass(slots=True)
class _Entry:
    stored_at: float
    body: bytes
    size: int


class WidgetResponses:
    """One worker's kept answers (see the module docstring)."""

    def __init__(self, ttl: float, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.epoch = 0  # moves on every forget: a miss stores only if it has not moved
        self._entries: dict[Key, _Entry] = {}  # oldest first (dicts keep insertion order)
        self._by_advocate: dict[int, set[Key]] = {}
        self._bytes = 0
        _LIVE.add(self)

    @staticmethod
    def key(
        advocate_id: int,
        query: str | None,
        operation_name: Any,
        variables: dict[str, Any] | None,
    ) -> Key | None:
        """The entry's key, or None for a request not worth keeping (no query, too big)."""
        if not query or not isinstance(operation_name, (str, type(None))):
            return None
        try:
            packed = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b""
        except (orjson.JSONEncodeError, TypeError):
            return None
        if len(query) + len(packed) + len(operation_name or "") > MAX_KEY_BYTES:
            return None
        return (advocate_id, query, operation_name, packed)

    def get(self, key: Key) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry.stored_at > self.ttl:
            _MISS.inc()
            return None
        _HIT.inc()
        return entry.body

    @staticmethod
    def bypassed() -> None:
        _BYPASS.inc()

    def put(self, key: Key, body: bytes, epoch: int) -> bool:
        """Keep ``body`` unless something was forgotten since ``epoch`` was read (the answer
        may predate a change) or it is too big. True if kept."""
        if epoch != self.epoch or len(body) > MAX_BODY_BYTES:
            return False
        now = time.monotonic()
        self._drop(key)
        size = len(body) + len(key[1]) + len(key[3]) + _OVERHEAD
        self._entries[key] = _Entry(now, body, size)
        self._by_advocate.setdefault(key[0], set()).add(key)
        self._bytes += size
        self._evict(now)
        return True

    def forget(self, advocate_id: int | None = None) -> None:
        """Drop one advocate's answers, or all of them."""
        self.epoch += 1
        if advocate_id is None:
            self._entries.clear()
            self._by_advocate.clear()
            self._bytes = 0
            return
        for key in list(self._by_advocate.get(advocate_id, ())):
            self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= entry.size
        keys = self._by_advocate.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_advocate[key[0]]

    def _evict(self, now: float) -> None:
        """Oldest first: the expired, then as many as the byte budget needs."""
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.stored_at <= self.ttl and self._bytes <= self.max_bytes:
                return
            self._drop(key)


_LIVE: weakref.WeakSet[WidgetResponses] = weakref.WeakSet()


def forget_widget(advocate_id: int | None = None) -> None:
    """Drop one advocate's kept answers (or all) in every cache of this process."""
    for cache in list(_LIVE):
        cache.forget(advocate_id)


async def announce_widget_change(session: AsyncSession, advocate_id: int | None) -> None:
    """The advocate's widget answers (None: every advocate's) go when this transaction commits:
    here at once, in every other worker through NOTIFY (delivered on commit, dropped on
    rollback)."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": WIDGET_CHANNEL, "payload": "*" if advocate_id is None else str(advocate_id)},
    )
    forget_on_commit(session, advocate_id)


def forget_on_commit(session: AsyncSession, advocate_id: int | None = None) -> None:
    """Drop the advocate's kept answers (or all) in this process once ``session`` commits (a
    forget before the commit could be undone by a request reading the old rows meanwhile).
    The hook is the Session's ``after_commit``: call it after a statement sent through the
    Session (the announcements' NOTIFY is), so the Session's transaction carries the commit
    even when raw statements came first (``core.raw_select.RawTransaction``)."""

    def forget(_session: Any) -> None:
        forget_widget(advocate_id)

    event.listen(session.sync_session, "after_commit", forget, once=True)
