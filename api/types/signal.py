"""GraphQL types for signals, and the per-request loader of an advocate's recent signals."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry
from strawberry.scalars import JSON

from vouch.advocacy.signals import RowError
from vouch.api.errors import InputError
from vouch.api.ids import encode_id
from vouch.api.types.enums import SignalKind
from vouch.api.types.node import Node
from vouch.models import Signal


@strawberry.type(name="Signal", description="A dated fact about an advocate.")
class SignalType(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id.")
    advocate_id: strawberry.ID = strawberry.field(description="The advocate it is about.")
    kind: SignalKind = strawberry.field(description="What kind of fact it records.")
    value: float | None = strawberry.field(
        description="NPS 0-10, CSAT/rating 1-5, usage depth 0-1, sentiment -1..1, else free."
    )
    occurred_at: datetime = strawberry.field(description="When it happened (UTC).")
    source: str = strawberry.field(description="Which system sent it.")
    external_id: str | None = strawberry.field(
        description="The sender's id; (advocate, source, externalId) is unique."
    )
    data: JSON = strawberry.field(description="Extra detail sent with the signal.")
    created_at: datetime = strawberry.field(description="When Vouch stored it (UTC).")

    @classmethod
    def from_model(cls, m: Signal) -> Self:
        return cls(
            id=strawberry.ID(encode_id("Signal", m.id)),
            advocate_id=strawberry.ID(encode_id("Advocate", m.advocate_id)),
            kind=SignalKind(m.kind),
            value=m.value,
            occurred_at=m.occurred_at,
            source=m.source,
            external_id=m.external_id,
            data=JSON(m.data),
            created_at=m.created_at,
        )


@strawberry.type(description="One signal as stored, and whether this call created it.")
class RecordedSignal:
    signal: SignalType = strawberry.field(description="The stored signal.")
    created: bool = strawberry.field(
        description="False when the same signal was already stored (a retry)."
    )


@strawberry.type(description="The result of recordSignal / recordSignals.")
class RecordSignalsPayload:
    signals: list[RecordedSignal] = strawberry.field(description="The stored signals, in order.")
    errors: list[InputError] = strawberry.field(description="Why nothing was stored, if so.")


@strawberry.type(description="Why one import row was rejected.")
class ImportRowError:
    row: int = strawberry.field(description="Row number, from 1 (after any CSV header).")
    field: str = strawberry.field(description="The column at fault.")
    message: str = strawberry.field(description="What is wrong and how to fix it.")

    @classmethod
    def from_domain(cls, e: RowError) -> Self:
        return cls(row=e.row, field=e.field, message=e.message)


@strawberry.type(description="The result of importSignals.")
class ImportSignalsPayload:
    created: int = strawberry.field(description="Signals stored by this import.")
    duplicates: int = strawberry.field(description="Valid rows that were already stored.")
    skipped: int = strawberry.field(description="Invalid rows left out (with skipInvalid).")
    row_errors: list[ImportRowError] = strawberry.field(description="Every invalid row.")
    errors: list[InputError] = strawberry.field(description="Why nothing was imported, if so.")
