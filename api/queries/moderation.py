from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.ids import decode_id, encode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_scope
from vouch.attribution import moderation
from vouch.models import Referral
from vouch.models.enums import Scope


@strawberry.type(name="ModerationItem", description="A flagged referral awaiting a decision.")
class ModerationItemType:
    referral_id: strawberry.ID = strawberry.field(description="The referral.")
    program_id: strawberry.ID = strawberry.field(description="Its program.")
    advocate_id: strawberry.ID = strawberry.field(description="The credited advocate.")
    status: str = strawberry.field(description="Lifecycle status.")
    flags: list[str] = strawberry.field(description="Why it was flagged.")
    email: str | None = strawberry.field(description="The referred person's email, if kept.")
    created_at: datetime = strawberry.field(description="When the referral was made (UTC).")

    @classmethod
    def from_model(cls, m: Referral) -> Self:
        return cls(
            referral_id=strawberry.ID(encode_id("Referral", m.id)),
            program_id=strawberry.ID(encode_id("Program", m.program_id)),
            advocate_id=strawberry.ID(encode_id("Advocate", m.advocate_id)),
            status=m.status,
            flags=list(m.flags or []),
            email=m.email,
            created_at=m.created_at,
        )


@strawberry.type
class ModerationQueries:
    @strawberry.field(description="Flagged referrals awaiting moderation, oldest first.")
    async def moderation_queue(
        self,
        info: Info,
        program_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ModerationItemType]:
        require_scope(info.context, Scope.ADMIN)
        args = page_args("moderationQueue", first, after, last, before)
        page = await moderation.moderation_queue(
            info.context.session,
            program_id=decode_id(program_id, "Program", field="programId") if program_id else None,
            **args.window(),
        )
        return to_connection(page, ModerationItemType.from_model, key=lambda r: r.id, args=args)
