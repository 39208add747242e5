"""Per-request dataloaders: every nested relation costs one statement per batch.

Each loader lives in the request's context (``api.context.loader``), so caching never crosses
requests; the SQL lives in the domain modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from vouch.advocacy.advocates import advocates_by_ids
from vouch.advocacy.programs import programs_by_ids, rules_by_programs
from vouch.api.context import Context, loader
from vouch.attribution.links import (
    EMPTY_STATS,
    ClickSummary,
    LinkStats,
    click_summaries_by_advocates,
    link_stats,
    links_by_advocates,
    links_by_ids,
)
from vouch.attribution.referrals import (
    latest_referrals_by_advocates,
    latest_referrals_by_links,
    redemptions_by_referrals,
    referral_counts_by_advocates,
    referrals_by_ids,
)
from vouch.models import Advocate, OfferRedemption, Program, Referral, ReferralLink, RewardRule

V = TypeVar("V")
Fetch = Callable[[AsyncSession, Sequence[int]], Awaitable[Mapping[int, Any]]]


def _keyed(ctx: Context, name: str, fetch: Fetch, default: Any) -> DataLoader[int, Any]:
    async def load(keys: list[int]) -> list[Any]:
        found = await fetch(ctx.session, keys)
        return [found.get(key, default) for key in keys]

    loaded: DataLoader[int, Any] = loader(ctx, name, lambda: DataLoader(load_fn=load))
    return loaded


def program(ctx: Context) -> DataLoader[int, Program | None]:
    return _keyed(ctx, "program", programs_by_ids, None)


def advocate(ctx: Context) -> DataLoader[int, Advocate | None]:
    return _keyed(ctx, "advocate", advocates_by_ids, None)


def link(ctx: Context) -> DataLoader[int, ReferralLink | None]:
    return _keyed(ctx, "link", links_by_ids, None)


def referral(ctx: Context) -> DataLoader[int, Referral | None]:
    return _keyed(ctx, "referral", referrals_by_ids, None)


def redemption(ctx: Context) -> DataLoader[int, OfferRedemption | None]:
    """The offer redemption of a referral, by referral id."""
    return _keyed(ctx, "redemption_by_referral", redemptions_by_referrals, None)


def reward_rules(ctx: Context) -> DataLoader[int, list[RewardRule]]:
    return _keyed(ctx, "rules_by_program", rules_by_programs, [])


def links_of_advocate(ctx: Context) -> DataLoader[int, list[ReferralLink]]:
    return _keyed(ctx, "links_by_advocate", links_by_advocates, [])


def stats_of_link(ctx: Context) -> DataLoader[int, LinkStats]:
    return _keyed(ctx, "stats_by_link", link_stats, EMPTY_STATS)


def clicks_of_advocate(ctx: Context) -> DataLoader[int, ClickSummary]:
    return _keyed(ctx, "clicks_by_advocate", click_summaries_by_advocates, ClickSummary())


def referral_count_of_advocate(ctx: Context) -> DataLoader[int, int]:
    return _keyed(ctx, "referral_count_by_advocate", referral_counts_by_advocates, 0)


def referrals_of_advocate(ctx: Context, limit: int) -> DataLoader[int, list[Referral]]:
    """The newest ``limit`` referrals per advocate (one loader per limit)."""

    async def fetch(session: AsyncSession, ids: Sequence[int]) -> Mapping[int, Any]:
        return await latest_referrals_by_advocates(session, ids, limit)

    return _keyed(ctx, f"referrals_by_advocate:{limit}", fetch, [])


def referrals_of_link(ctx: Context, limit: int) -> DataLoader[int, list[Referral]]:
    async def fetch(session: AsyncSession, ids: Sequence[int]) -> Mapping[int, Any]:
        return await latest_referrals_by_links(session, ids, limit)

    return _keyed(ctx, f"referrals_by_link:{limit}", fetch, [])
