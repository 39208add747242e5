"""Per-request dataloaders: every nested relation costs one statement per batch.

``Loaders`` is one typed object per request (``Context.loaders``), so batching and caching never
cross requests: ``info.context.loaders.advocate.load(id)``. Each loader is created on first use
and answers rows (models or plain values); the resolvers turn them into GraphQL types. The SQL
lives in the domain modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import cached_property
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader

from vouch.advocacy.ask_reads import open_asks_for, recent_asks_for
from vouch.advocacy.gamification import badges_for_advocates, points_for_advocates
from vouch.advocacy.scoring import scores_for
from vouch.advocacy.signals import recent_signals_for
from vouch.attribution import opportunities, revenue, reward_reads, webhooks
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
from vouch.catalog.advocates import advocates_by_ids
from vouch.catalog.programs import programs_by_ids, rules_by_programs
from vouch.models import (
    Advocate,
    AdvocateBadge,
    AdvocateScore,
    Ask,
    OfferRedemption,
    Opportunity,
    OpportunityContact,
    OpportunityEvent,
    OutboxEvent,
    Program,
    Referral,
    ReferralLink,
    RevenueEvent,
    RewardEntry,
    RewardRule,
    Signal,
)
from vouch.models.snapshots import AskSnapshot, ReferralLinkSnapshot, RewardSnapshot

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _batch(
    session: AsyncSession,
    fetch: Callable[[AsyncSession, list[K]], Awaitable[Mapping[K, V]]],
    default: V,
) -> DataLoader[K, V]:
    """A loader answering ``fetch``'s value per key, ``default`` for a key it did not find."""

    async def load(keys: list[K]) -> list[V]:
        found = await fetch(session, keys)
        return [found.get(key, default) for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """The request's dataloaders, by relation (attribute access; each made on first use)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._referrals_of_advocate: dict[int, DataLoader[int, list[Referral]]] = {}
        self._referrals_of_link: dict[int, DataLoader[int, list[Referral]]] = {}

    # --- programs, advocates, links, referrals -------------------------------------------------

    @cached_property
    def program(self) -> DataLoader[int, Program | None]:
        return _batch(self.session, programs_by_ids, None)

    @cached_property
    def reward_rules(self) -> DataLoader[int, list[RewardRule]]:
        """A program's reward rules, by program id."""
        return _batch(self.session, rules_by_programs, [])

    @cached_property
    def advocate(self) -> DataLoader[int, Advocate | None]:
        return _batch(self.session, advocates_by_ids, None)

    @cached_property
    def link(self) -> DataLoader[int, ReferralLink | None]:
        return _batch(self.session, links_by_ids, None)

    @cached_property
    def referral(self) -> DataLoader[int, Referral | None]:
        return _batch(self.session, referrals_by_ids, None)

    @cached_property
    def redemption(self) -> DataLoader[int, OfferRedemption | None]:
        """The offer redemption of a referral, by referral id."""
        return _batch(self.session, redemptions_by_referrals, None)

    @cached_property
    def links_of_advocate(self) -> DataLoader[int, list[ReferralLinkSnapshot]]:
        return _batch(self.session, links_by_advocates, [])

    @cached_property
    def stats_of_link(self) -> DataLoader[int, LinkStats]:
        return _batch(self.session, link_stats, EMPTY_STATS)

    @cached_property
    def clicks_of_advocate(self) -> DataLoader[int, ClickSummary]:
        return _batch(self.session, click_summaries_by_advocates, ClickSummary())

    @cached_property
    def referral_count_of_advocate(self) -> DataLoader[int, int]:
        return _batch(self.session, referral_counts_by_advocates, 0)

    def referrals_of_advocate(self, limit: int) -> DataLoader[int, list[Referral]]:
        """The newest ``limit`` referrals per advocate (one loader per limit)."""
        found = self._referrals_of_advocate.get(limit)
        if found is None:

            async def fetch(session: AsyncSession, ids: list[int]) -> dict[int, list[Referral]]:
                return await latest_referrals_by_advocates(session, ids, limit)

            found = self._referrals_of_advocate[limit] = _batch(self.session, fetch, [])
        return found

    def referrals_of_link(self, limit: int) -> DataLoader[int, list[Referral]]:
        """The newest ``limit`` referrals per link (one loader per limit)."""
        found = self._referrals_of_link.get(limit)
        if found is None:

            async def fetch(session: AsyncSession, ids: list[int]) -> dict[int, list[Referral]]:
                return await latest_referrals_by_links(session, ids, limit)

            found = self._referrals_of_link[limit] = _batch(self.session, fetch, [])
        return found

    # --- rewards, revenue, opportunities --------------------------------------------------------

    @cached_property
    def rewards_of_advocate(self) -> DataLoader[int, list[RewardSnapshot]]:
        """Every reward an advocate earned, oldest first."""
        return _batch(self.session, reward_reads.rewards_by_advocates, [])

    @cached_property
    def rewards_of_referral(self) -> DataLoader[int, list[RewardSnapshot]]:
        """Both sides' rewards of a referral."""
        return _batch(self.session, reward_reads.rewards_by_referrals, [])

    @cached_property
    def reward_entries(self) -> DataLoader[int, list[RewardEntry]]:
        """A reward's ledger entries, by reward id."""
        return _batch(self.session, reward_reads.entries_by_reward, [])

    @cached_property
    def revenue_of_referral(self) -> DataLoader[int, list[RevenueEvent]]:
        """Charges and refunds of a referred account, oldest first."""
        return _batch(self.session, revenue.revenue_by_referrals, [])

    @cached_property
    def opportunities_of_referral(self) -> DataLoader[int, list[Opportunity]]:
        """The deals a referral led to, oldest first."""
        return _batch(self.session, opportunities.opportunities_by_referrals, [])

    @cached_property
    def opportunity_history(self) -> DataLoader[int, list[OpportunityEvent]]:
        return _batch(self.session, opportunities.history_by_opportunities, [])

    @cached_property
    def opportunity_contacts(self) -> DataLoader[int, list[OpportunityContact]]:
        return _batch(self.session, opportunities.contacts_by_opportunities, [])

    @cached_property
    def outbox_event(self) -> DataLoader[int, OutboxEvent | None]:
        return _batch(self.session, webhooks.events_by_ids, None)

    # --- advocacy -------------------------------------------------------------------------------

    @cached_property
    def asks_of_advocate(self) -> DataLoader[int, list[Ask]]:
        """An advocate's 20 latest asks, newest first."""
        return _batch(self.session, recent_asks_for, [])

    @cached_property
    def open_asks_of_advocate(self) -> DataLoader[int, list[AskSnapshot]]:
        """An advocate's asks awaiting an answer or queued (``pick_next`` chooses one)."""
        return _batch(self.session, open_asks_for, [])

    @cached_property
    def signals_of_advocate(self) -> DataLoader[int, list[Signal]]:
        """An advocate's 50 latest signals, newest first."""
        return _batch(self.session, recent_signals_for, [])

    @cached_property
    def points_of_advocate(self) -> DataLoader[int, int]:
        return _batch(self.session, points_for_advocates, 0)

    @cached_property
    def badges_of_advocate(self) -> DataLoader[int, list[AdvocateBadge]]:
        return _batch(self.session, badges_for_advocates, [])

    @cached_property
    def score(self) -> DataLoader[tuple[int, int], AdvocateScore | None]:
        """The stored score of (advocate id, program id)."""
        return _batch(self.session, scores_for, None)
