"""Advocacy queries: signals, score explanations, tiers, asks, next-best-ask, gamification,
settings and KPIs. Read scope for all; a widget token may read its own advocate's next ask and
standing, and the leaderboard of a program (names shortened, other advocates' ids hidden)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from vouch.advocacy.ask_reads import AskFilter, get_ask, list_asks
from vouch.advocacy.asks import next_best_ask
from vouch.advocacy.configuration import effective_settings
from vouch.advocacy.gamification import Period, leaderboard, standing
from vouch.advocacy.kpis import Window, advocacy_kpis
from vouch.advocacy.scoring import get_score
from vouch.advocacy.signals import list_signals
from vouch.advocacy.tiers import referral_ready_account_rate, tier_distribution
from vouch.api.connections import to_connection
from vouch.api.context import Info, WidgetPrincipal
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_advocate_access, require_scope
from vouch.api.types.ask import AskType, NextBestAskType
from vouch.api.types.gamification import AdvocateStanding, LeaderboardEntry
from vouch.api.types.kpi import AdvocacyKpisType
from vouch.api.types.score import AdvocacySettingsType, ScoreExplanation, TierDistributionType
from vouch.api.types.signal import SignalType
from vouch.catalog.programs import get_program
from vouch.core.clock import utcnow
from vouch.models.enums import AskStatus, Scope, SignalKind, Team
from vouch.models.enums import AskType as AskKind


@strawberry.enum(description="A calendar period in UTC.")
class LeaderboardPeriod(Enum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ALL_TIME = "all_time"


@strawberry.input(description="Filters for the ask list; all optional, combined with AND.")
class AskFilterInput:
    advocate_id: strawberry.ID | None = strawberry.field(default=None, description="Advocate.")
    program_id: strawberry.ID | None = strawberry.field(default=None, description="Program.")
    status: AskStatus | None = strawberry.field(default=None, description="Ask status.")
    type: AskKind | None = strawberry.field(default=None, description="Ask type.")
    team: Team | None = strawberry.field(default=None, description="The asking team.")
    moment: str | None = strawberry.field(default=None, description="nps_promoter, ...")

    def to_domain(self) -> AskFilter:

        return AskFilter(
            advocate_id=decode_id(self.advocate_id, "Advocate", field="filter.advocateId")
            if self.advocate_id
            else None,
            program_id=decode_id(self.program_id, "Program", field="filter.programId")
            if self.program_id
            else None,
            status=self.status.value if self.status else None,
            type=self.type.value if self.type else None,
            team=self.team.value if self.team else None,
            moment=self.moment[:32] if self.moment else None,
        )


def _window(since: datetime | None, until: datetime | None) -> Window:
    return Window(since=since, until=until)


@strawberry.type
class AdvocacyQueries:
    @strawberry.field(description="An advocate's signals, newest first.")
    async def signals(
        self,
        info: Info,
        advocate_id: strawberry.ID,
        kind: SignalKind | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[SignalType]:
        require_scope(info.context, Scope.READ)
        args = page_args("signals", first, after, last, before)
        page = await list_signals(
            info.context.session,
            decode_id(advocate_id, "Advocate", field="advocateId"),
            kind=kind.value if kind else None,
            **args.window(),
        )
        return to_connection(page, SignalType.from_model, key=lambda s: s.id, args=args)

    @strawberry.field(
        description="An advocate's readiness score in a program, with each signal's contribution."
    )
    async def score_explanation(
        self, info: Info, advocate_id: strawberry.ID, program_id: strawberry.ID
    ) -> ScoreExplanation:
        require_scope(info.context, Scope.READ)
        score = await get_score(
            info.context.session,
            decode_id(advocate_id, "Advocate", field="advocateId"),
            decode_id(program_id, "Program", field="programId"),
        )
        return ScoreExplanation.from_model(score)

    @strawberry.field(
        description="Advocates per tier in a program, and the referral-ready account rate."
    )
    async def tier_distribution(
        self, info: Info, program_id: strawberry.ID
    ) -> TierDistributionType:
        require_scope(info.context, Scope.READ)
        pk = decode_id(program_id, "Program", field="programId")
        await get_program(info.context.session, pk)
        dist = await tier_distribution(info.context.session, pk)
        rate = await referral_ready_account_rate(info.context.session, pk)
        return TierDistributionType.from_domain(dist, rate)

    @strawberry.field(description="Asks, newest first, filtered.")
    async def asks(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: AskFilterInput | None = None,
    ) -> Connection[AskType]:
        require_scope(info.context, Scope.READ)
        args = page_args("asks", first, after, last, before)
        page = await list_asks(
            info.context.session,
            (filter or AskFilterInput()).to_domain(),
            **args.window(),
        )
        return to_connection(page, AskType.from_model, key=lambda a: a.id, args=args)

    @strawberry.field(description="One ask by id.")
    async def ask(self, info: Info, id: strawberry.ID) -> AskType:
        require_scope(info.context, Scope.READ)
        return AskType.from_model(await get_ask(info.context.session, decode_id(id, "Ask")))

    @strawberry.field(
        description="The ask to put in front of an advocate next, and whether it can go now "
        "(a widget token may read its own advocate's)."
    )
    async def next_best_ask(
        self, info: Info, advocate_id: strawberry.ID, program_id: strawberry.ID | None = None
    ) -> NextBestAskType:
        pk = decode_id(advocate_id, "Advocate", field="advocateId")
        require_advocate_access(info.context, pk)
        result = await next_best_ask(
            info.context.session,
            pk,
            program_id=decode_id(program_id, "Program", field="programId") if program_id else None,
            now=utcnow(),
        )
        return NextBestAskType.from_domain(result)

    @strawberry.field(
        description="An advocate's points, level and badges, overall or in one program "
        "(a widget token may read its own advocate's)."
    )
    async def advocate_standing(
        self, info: Info, advocate_id: strawberry.ID, program_id: strawberry.ID | None = None
    ) -> AdvocateStanding:
        pk = decode_id(advocate_id, "Advocate", field="advocateId")
        require_advocate_access(info.context, pk)
        program = (
            await get_program(
                info.context.session, decode_id(program_id, "Program", field="programId")
            )
            if program_id
            else None
        )
        return AdvocateStanding.from_domain(
            await standing(info.context.session, pk, program=program)
        )

    @strawberry.field(
        description="Top advocates by points in a program and calendar period (UTC). With a "
        "widget token, other advocates show only a short name."
    )
    async def leaderboard(
        self,
        info: Info,
        program_id: strawberry.ID,
        period: LeaderboardPeriod = LeaderboardPeriod.MONTH,
        limit: int = 10,
    ) -> list[LeaderboardEntry]:
        principal = info.context.principal
        widget = isinstance(principal, WidgetPrincipal)
        viewer = principal.advocate_id if isinstance(principal, WidgetPrincipal) else None
        if not widget:
            require_scope(info.context, Scope.READ)
        rows = await leaderboard(
            info.context.session,
            decode_id(program_id, "Program", field="programId"),
            period=Period(period.value),
            at=utcnow(),
            limit=limit,
        )
        return [LeaderboardEntry.from_domain(r, viewer=viewer, widget=widget) for r in rows]

    @strawberry.field(description="A program's advocacy settings in force.")
    async def advocacy_settings(
        self, info: Info, program_id: strawberry.ID
    ) -> AdvocacySettingsType:
        require_scope(info.context, Scope.READ)
        program = await get_program(
            info.context.session, decode_id(program_id, "Program", field="programId")
        )
        return AdvocacySettingsType.from_domain(program.id, effective_settings(program))

    @strawberry.field(
        description="Advocacy KPIs for a program over [since, until) (UTC; open ends allowed)."
    )
    async def advocacy_kpis(
        self,
        info: Info,
        program_id: strawberry.ID,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AdvocacyKpisType:
        require_scope(info.context, Scope.READ)
        pk = decode_id(program_id, "Program", field="programId")
        await get_program(info.context.session, pk)
        kpis = await advocacy_kpis(
            info.context.session, program_id=pk, window=_window(since, until)
        )
        return AdvocacyKpisType.from_domain(kpis)
