"""Code -> link, program and advocate, for the landing page hot path.

Resolutions (including "no such link") are cached in-process for a few seconds, so a popular
link or a flood of unknown codes costs no database round trip. A revoked link therefore keeps
resolving for at most ``LANDING_CACHE_TTL`` seconds in each worker — in practice for
milliseconds: changes are announced with NOTIFY and every worker listens (web.invalidation).
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.core.codes import MAX_CODE_LENGTH, DecodedCode, LinkCodec
from vouch.core.raw_select import RawSelect
from vouch.models import Advocate, Program, ReferralLink
from vouch.models.enums import LinkStatus, ProgramStatus

LANDING_CACHE_TTL = 15.0
LANDING_CACHE_SIZE = 20_000
DECODE_MEMO_SIZE = 16_384


@dataclass(frozen=True, slots=True)
class Landing:
    """Everything the landing page and the claim form need to know about one link."""

    link_id: int
    code: str
    channel: str
    advocate_id: int
    advocate_first_name: str | None
    program_id: int
    program_name: str
    program_status: str
    attribution_model: str
    attribution_window_days: int
    require_tracking_consent: bool
    offer_title: str
    offer_terms: str
    offer_expires_at: datetime | None
    preview_image_url: str | None = None  # the program's own og:image, else the generated card

    def availability(self, now: datetime) -> str:
        """``open``, ``paused`` (temporarily not taking claims) or ``ended``."""
        if self.program_status == ProgramStatus.PAUSED:
            return "paused"
        if self.program_status != ProgramStatus.ACTIVE:
            return "ended"
        if self.offer_expires_at is not None and self.offer_expires_at <= now:
            return "ended"
        return "open"


# Prebuilt (a cold landing, and a claim on a link this worker has not cached, run it each time).
_LANDING = RawSelect(
    select(
        ReferralLink.id,
        ReferralLink.nonce,
        ReferralLink.status,
        ReferralLink.channel,
        ReferralLink.advocate_id,
        Advocate.first_name,
        Advocate.erased_at,
        Program.id,
        Program.name,
        Program.status,
        Program.attribution_model,
        Program.attribution_window_days,
        Program.require_tracking_consent,
        Program.offer_title,
        Program.offer_terms,
        Program.offer_expires_at,
        Program.settings["preview_image_url"].astext,
    )
    .join(Program, Program.id == ReferralLink.program_id)
    .join(Advocate, Advocate.id == ReferralLink.advocate_id)
    .where(ReferralLink.id == bindparam("link_id"))
)


async def load_landing(session: AsyncSession, decoded: DecodedCode, code: str) -> Landing | None:
    """The public landing for a decoded code, or ``None`` when it must look unknown
    (no such link, wrong nonce, revoked, or a program that was never published)."""
    # One read that needs no transaction of its own: a claim resolves its link first, then
    # counts its rate-limit hit in autocommit too, and only the claim itself opens one.
    rows = await _LANDING.fetch(session, {"link_id": decoded.link_id}, standalone=True)
    row = rows[0] if rows else None
    if row is None:
        return None
    (
        link_id,
        nonce,
        link_status,
        channel,
        advocate_id,
        first_name,
        erased_at,
        program_id,
        program_name,
        program_status,
        model,
        window,
        consent,
        offer_title,
        offer_terms,
        offer_expires_at,
        preview_image,
    ) = row
    if (
        nonce != decoded.nonce
        or link_status != LinkStatus.ACTIVE
        or erased_at is not None
        or program_status == ProgramStatus.DRAFT
    ):
        return None
    return Landing(
        link_id=link_id,
        code=code,
        channel=channel,
        advocate_id=advocate_id,
        advocate_first_name=first_name,
        program_id=program_id,
        program_name=program_name,
        program_status=program_status,
        attribution_model=model,
        attribution_window_days=window,
        require_tracking_consent=consent,
        offer_title=offer_title,
        offer_terms=offer_terms,
        offer_expires_at=offer_expires_at,
        preview_image_url=preview_image,
    )


class LandingResolver:
    """Decode, then look up through a small TTL + LRU cache.

    Only codes that decode canonically ever enter the cache (as a landing, or as ``None`` when
    the database has no such live link), so garbage cannot evict real links. Decoding is a
    pure function and is memoised in a bounded LRU."""

    def __init__(
        self, codec: LinkCodec, *, ttl: float = LANDING_CACHE_TTL, size: int = LANDING_CACHE_SIZE
    ) -> None:
        self.codec = codec
        self.ttl = ttl
        self.size = size
        self._cache: OrderedDict[str, tuple[float, Landing | None]] = OrderedDict()
        self._decode = functools.lru_cache(maxsize=DECODE_MEMO_SIZE)(codec.decode)

    def decode(self, code: str) -> DecodedCode | None:
        """Pure CPU: malformed and non-canonical codes never reach the database."""
        if len(code) > MAX_CODE_LENGTH:
            return None
        return self._decode(code)

    def cached(self, code: str) -> tuple[bool, Landing | None]:
        entry = self._cache.get(code)
        if entry is None:
            return False, None
        stored_at, landing = entry
        if time.monotonic() - stored_at > self.ttl:
            del self._cache[code]
            return False, None
        self._cache.move_to_end(code)
        return True, landing

    async def resolve(
        self, session: AsyncSession | Callable[[], AsyncSession], code: str
    ) -> Landing | None:
        """The landing for ``code``, or ``None`` for malformed/unknown/revoked/non-canonical.

        ``session`` may be a callable, so a cache hit or a bad code never opens one."""
        hit, landing = self.cached(code)
        if hit:
            return landing
        decoded = self.decode(code)
        if decoded is None:
            return None
        db = session if isinstance(session, AsyncSession) else session()
        landing = await load_landing(db, decoded, code)
        self._cache[code] = (time.monotonic(), landing)
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return landing

    def invalidate(self, code: str | None = None) -> None:
        """Forget one code (or everything), e.g. right after a revocation in this process."""
        if code is None:
            self._cache.clear()
        else:
            self._cache.pop(code, None)
