"""GraphQL types for advocacy KPIs."""

from __future__ import annotations

from typing import Self

import strawberry

from vouch.advocacy.kpis import AdvocacyKpis, ConversionRow, MoneyTotal


@strawberry.type(description="Ask -> accept -> publish conversion for one group.")
class AskConversion:
    key: str = strawberry.field(description="The moment, ask type or persona.")
    asked: int = strawberry.field(description="Asks sent.")
    accepted: int = strawberry.field(description="Of those, accepted (or published).")
    published: int = strawberry.field(description="Of those, published.")
    declined: int = strawberry.field(description="Of those, declined.")
    accept_rate: float = strawberry.field(description="accepted / asked, 0-1.")
    publish_rate: float = strawberry.field(description="published / asked, 0-1.")

    @classmethod
    def from_domain(cls, r: ConversionRow) -> Self:
        return cls(
            key=r.key,
            asked=r.asked,
            accepted=r.accepted,
            published=r.published,
            declined=r.declined,
            accept_rate=r.accept_rate,
            publish_rate=r.publish_rate,
        )


@strawberry.type(description="An amount of money in one currency.")
class MoneyAmount:
    currency: str = strawberry.field(description="ISO-4217 code.")
    amount_minor: int = strawberry.field(description="Integer minor units (cents).")

    @classmethod
    def from_domain(cls, m: MoneyTotal) -> Self:
        return cls(currency=m.currency, amount_minor=m.amount_minor)


@strawberry.type(description="Advocacy KPIs for one program and period.")
class AdvocacyKpisType:
    conversion_by_moment: list[AskConversion] = strawberry.field(
        description="Ask conversion by the moment that earned the ask."
    )
    conversion_by_type: list[AskConversion] = strawberry.field(
        description="Ask conversion by ask type."
    )
    conversion_by_persona: list[AskConversion] = strawberry.field(
        description="Ask conversion by the advocate's persona ('unknown' when unset)."
    )
    published: int = strawberry.field(description="Asks published in the period.")
    median_days_to_publish: float | None = strawberry.field(
        description="Median days from sending an ask to its publication."
    )
    mean_days_to_publish: float | None = strawberry.field(
        description="Mean days from sending an ask to its publication."
    )
    advocate_pool: int = strawberry.field(description="Tiered advocates in the program.")
    activated_advocates: int = strawberry.field(
        description="Of those, advocates with at least one action in the period."
    )
    activation_rate: float = strawberry.field(description="activated / pool, 0-1.")
    half_life_advocates: int = strawberry.field(description="Advocates with an action.")
    advocate_half_life_days: float | None = strawberry.field(
        description="Median days between an advocate's first and last action."
    )
    influenced_opportunities: int = strawberry.field(
        description="Opportunities an advocacy action touched."
    )
    influenced_open_pipeline: list[MoneyAmount] = strawberry.field(
        description="Open amount of those opportunities, per currency."
    )
    influenced_won: list[MoneyAmount] = strawberry.field(
        description="Won amount of those opportunities, per currency."
    )
    influenced_revenue: list[MoneyAmount] = strawberry.field(
        description="Revenue recognised on them, net of refunds, per currency."
    )

    @classmethod
    def from_domain(cls, k: AdvocacyKpis) -> Self:
        return cls(
            conversion_by_moment=[AskConversion.from_domain(r) for r in k.conversion_by_moment],
            conversion_by_type=[AskConversion.from_domain(r) for r in k.conversion_by_type],
            conversion_by_persona=[AskConversion.from_domain(r) for r in k.conversion_by_persona],
            published=k.time_to_publish.published,
            median_days_to_publish=k.time_to_publish.median_days,
            mean_days_to_publish=k.time_to_publish.mean_days,
            advocate_pool=k.activation.pool,
            activated_advocates=k.activation.activated,
            activation_rate=k.activation.rate,
            half_life_advocates=k.half_life.advocates,
            advocate_half_life_days=k.half_life.median_days,
            influenced_opportunities=k.influenced.opportunities,
            influenced_open_pipeline=[
                MoneyAmount.from_domain(m) for m in k.influenced.open_pipeline
            ],
            influenced_won=[MoneyAmount.from_domain(m) for m in k.influenced.won],
            influenced_revenue=[MoneyAmount.from_domain(m) for m in k.influenced.revenue],
        )
