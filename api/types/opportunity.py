"""CRM opportunities, their stage history and contacts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Self

import strawberry

from vouch.api.context import Info
from vouch.api.ids import encode_id
from vouch.api.types.node import Node
from vouch.models import OpportunityContact, OpportunityEvent
from vouch.models.snapshots import OpportunitySnapshot


@strawberry.type(name="OpportunityStageChange", description="One stage or amount change.")
class OpportunityStageChangeType:
    from_stage: str | None = strawberry.field(description="Stage before; null on creation.")
    to_stage: str = strawberry.field(description="Stage after.")
    from_amount_minor: int | None = strawberry.field(description="Amount before.")
    to_amount_minor: int = strawberry.field(description="Amount after.")
    at: datetime = strawberry.field(description="When (UTC).")
    source: str = strawberry.field(description="Where the change came from (e.g. crm:hubspot).")

    @classmethod
    def from_model(cls, m: OpportunityEvent) -> Self:
        return cls(
            from_stage=m.from_stage,
            to_stage=m.to_stage,
            from_amount_minor=m.from_amount_minor,
            to_amount_minor=m.to_amount_minor,
            at=m.at,
            source=m.source,
        )


@strawberry.type(name="OpportunityContact", description="A person on an opportunity.")
class OpportunityContactType:
    person_key: str = strawberry.field(description="Normalised email of the contact.")
    role: str | None = strawberry.field(description="Role on the deal, e.g. economic buyer.")
    referral_id: strawberry.ID | None = strawberry.field(
        description="The referral this contact came from, if referred."
    )

    @classmethod
    def from_model(cls, m: OpportunityContact) -> Self:
        return cls(
            person_key=m.person_key,
            role=m.role,
            referral_id=strawberry.ID(encode_id("Referral", m.referral_id))
            if m.referral_id
            else None,
        )


@strawberry.type(name="Opportunity", description="A CRM deal, referral-sourced or not.")
class OpportunityType(Node):
    db_id: strawberry.Private[int]
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    crm_id: str = strawberry.field(description="The CRM's id, exactly as the CRM gives it.")
    provider: str = strawberry.field(
        description="Which CRM the id belongs to: hubspot, salesforce or other."
    )
    referral_id: strawberry.ID | None = strawberry.field(
        description="The referral that sourced it, if any."
    )
    kind: str = strawberry.field(description="new_business, expansion or renewal.")
    name: str | None = strawberry.field(description="Deal name.")
    amount_minor: int = strawberry.field(description="Amount in minor units of `currency`.")
    currency: str = strawberry.field(description="ISO-4217 currency.")
    stage: str = strawberry.field(description="The CRM stage name.")
    status: str = strawberry.field(description="open, won or lost.")
    close_date: date | None = strawberry.field(description="Expected or actual close date.")
    owner: str | None = strawberry.field(description="The CRM owner's id.")
    created_at: datetime = strawberry.field(description="When Vouch first saw it (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")

    @strawberry.field(description="Stage and amount history, oldest first.")
    async def history(self, info: Info) -> list[OpportunityStageChangeType]:
        rows = await info.context.loaders.opportunity_history.load(self.db_id)
        return [OpportunityStageChangeType.from_model(r) for r in rows]

    @strawberry.field(description="People on the deal.")
    async def contacts(self, info: Info) -> list[OpportunityContactType]:
        rows = await info.context.loaders.opportunity_contacts.load(self.db_id)
        return [OpportunityContactType.from_model(r) for r in rows]

    @classmethod
    def from_model(cls, m: OpportunitySnapshot) -> Self:
        return cls(
            db_id=m.id,
            id=strawberry.ID(encode_id("Opportunity", m.id)),
            crm_id=m.crm_id,
            provider=m.provider,
            referral_id=strawberry.ID(encode_id("Referral", m.referral_id))
            if m.referral_id
            else None,
            kind=m.kind,
            name=m.name,
            amount_minor=m.amount_minor,
            currency=m.currency,
            stage=m.stage,
            status=m.status,
            close_date=m.close_date,
            owner=m.owner,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
