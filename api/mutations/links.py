from __future__ import annotations

import strawberry

from vouch.api.context import Info
from vouch.api.errors import InputError, user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import is_widget, require_advocate_write, require_scope
from vouch.api.types.link import ReferralLinkType
from vouch.attribution.links import DEFAULT_CHANNEL, create_link, revoke_link
from vouch.core.errors import ValidationFailed
from vouch.models.enums import Scope


@strawberry.type(description="Result of createReferralLink.")
class CreateReferralLinkPayload:
    link: ReferralLinkType | None = strawberry.field(
        description="The advocate's link for this program and channel."
    )
    created: bool = strawberry.field(description="False if the link already existed.")
    errors: list[InputError] = strawberry.field(description="Why no link was returned.")


@strawberry.type(description="Result of revokeReferralLink.")
class RevokeReferralLinkPayload:
    link: ReferralLinkType | None = strawberry.field(description="The revoked link.")
    errors: list[InputError] = strawberry.field(description="Why nothing was revoked.")


@strawberry.type
class LinkMutations:
    @strawberry.mutation(
        description="The advocate's share link for a program and channel, created on first "
        "call; repeated or concurrent calls return the same link (write scope, or the "
        "advocate's own widget token: then only in an active program the advocate is enrolled "
        "in (holds an active link), with referral consent, up to VOUCH_WIDGET_LINKS_PER_PROGRAM "
        "links per program; a revoked link stays revoked)."
    )
    @transaction(
        lambda exc: CreateReferralLinkPayload(link=None, created=False, errors=user_errors(exc))
    )
    async def create_referral_link(
        self,
        info: Info,
        advocate_id: strawberry.ID,
        program_id: strawberry.ID,
        channel: str = DEFAULT_CHANNEL,
    ) -> CreateReferralLinkPayload:
        try:
            advocate_pk = decode_id(advocate_id, "Advocate", field="advocateId")
        except ValidationFailed:
            advocate_pk = -1
        require_advocate_write(info.context, advocate_pk)

        result = await create_link(
            info.context.session,
            info.context.codec,
            advocate_id=decode_id(advocate_id, "Advocate", field="advocateId"),
            program_id=decode_id(program_id, "Program", field="programId"),
            channel=channel[:64],
            self_service_cap=(
                info.context.settings.widget_links_per_program if is_widget(info.context) else None
            ),
        )
        return CreateReferralLinkPayload(
            link=ReferralLinkType.from_model(result.link), created=result.created, errors=[]
        )

    @strawberry.mutation(
        description="Revoke a link: it stops resolving; its clicks and referrals stay "
        "(write scope)."
    )
    @transaction(lambda exc: RevokeReferralLinkPayload(link=None, errors=user_errors(exc)))
    async def revoke_referral_link(
        self, info: Info, id: strawberry.ID
    ) -> RevokeReferralLinkPayload:
        require_scope(info.context, Scope.WRITE)

        link = await revoke_link(info.context.session, decode_id(id, "ReferralLink"))
        return RevokeReferralLinkPayload(link=ReferralLinkType.from_model(link), errors=[])
