"""recordSignal, recordSignals, importSignals: signal ingest (write scope)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from vouch.advocacy.signals import (
    ImportRejected,
    SignalInput,
    build_signal,
    import_signals,
    read_rows,
    record_signals,
)
from vouch.api.context import Info
from vouch.api.errors import user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.enums import SignalKind
from vouch.api.types.signal import (
    ImportRowError,
    ImportSignalsPayload,
    RecordedSignal,
    RecordSignalsPayload,
    SignalType,
)
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError, ValidationFailed
from vouch.models.enums import Scope


@strawberry.input(name="SignalInput", description="One signal about an advocate.")
class SignalInputType:
    advocate_id: strawberry.ID = strawberry.field(description="The advocate.")
    kind: SignalKind = strawberry.field(description="What kind of fact it records.")
    occurred_at: datetime = strawberry.field(description="When it happened (with timezone).")
    value: float | None = strawberry.field(
        default=None,
        description="Required for nps (0-10), csat and review_rating (1-5), usage_depth "
        "(0-1), sentiment (-1..1).",
    )
    source: str | None = strawberry.field(
        default=None, description="The sending system (default 'api')."
    )
    external_id: str | None = strawberry.field(
        default=None,
        description="The sender's id; re-sending the same (source, externalId) is a no-op. "
        "Without one, the signal's content is its key.",
    )
    data: JSON | None = strawberry.field(default=None, description="Extra detail, a JSON object.")

    def to_domain(self, now: datetime, prefix: str = "") -> SignalInput:
        data = self.data
        if data is not None and not isinstance(data, dict):
            raise ValidationFailed("data must be a JSON object", field=f"{prefix}data")
        return build_signal(
            advocate_id=decode_id(self.advocate_id, "Advocate", field=f"{prefix}advocateId"),
            kind=self.kind.value,
            occurred_at=self.occurred_at,
            now=now,
            value=self.value,
            source=self.source,
            external_id=self.external_id,
            data=data,
            prefix=prefix,
        )


@strawberry.enum(description="The format of an import.")
class ImportFormat(Enum):
    JSON = "json"
    CSV = "csv"


@transaction(lambda exc: RecordSignalsPayload(signals=[], errors=user_errors(exc)))
async def _record(info: Info, inputs: list[SignalInputType], *, many: bool) -> RecordSignalsPayload:
    require_scope(info.context, Scope.WRITE)
    now = utcnow()
    signals = [
        item.to_domain(now, prefix=f"signals.{index}." if many else "")
        for index, item in enumerate(inputs)
    ]
    recorded = await record_signals(info.context.session, signals, now=now)
    return RecordSignalsPayload(
        signals=[
            RecordedSignal(signal=SignalType.from_model(r.signal), created=r.created)
            for r in recorded
        ],
        errors=[],
    )


def _import_failed(exc: DomainError) -> ImportSignalsPayload:
    """Nothing imported; a rejected file lists every bad row."""
    rejected = exc.errors if isinstance(exc, ImportRejected) else []
    return ImportSignalsPayload(
        created=0,
        duplicates=0,
        skipped=0,
        row_errors=[ImportRowError.from_domain(e) for e in rejected],
        errors=user_errors(exc),
    )


@strawberry.type
class SignalMutations:
    @strawberry.mutation(
        description="Record one signal and refresh the advocate's scores (idempotent)."
    )
    async def record_signal(self, info: Info, input: SignalInputType) -> RecordSignalsPayload:
        return await _record(info, [input], many=False)

    @strawberry.mutation(
        description="Record up to 10,000 signals at once; all or nothing (idempotent)."
    )
    async def record_signals(
        self, info: Info, signals: list[SignalInputType]
    ) -> RecordSignalsPayload:
        return await _record(info, signals, many=True)

    @strawberry.mutation(
        description="Import signals as CSV (header: advocate_external_id, kind, value, "
        "occurred_at, source, external_id) or JSON (a list of such objects, data allowed). "
        "With any invalid row nothing is imported and every bad row is listed, unless "
        "skipInvalid is set. Re-importing a file is a no-op."
    )
    @transaction(_import_failed)
    async def import_signals(
        self,
        info: Info,
        format: ImportFormat,
        content: str,
        skip_invalid: bool = False,
    ) -> ImportSignalsPayload:
        require_scope(info.context, Scope.WRITE)
        rows = read_rows(format.value, content)
        result = await import_signals(
            info.context.session, rows, now=utcnow(), skip_invalid=skip_invalid
        )
        return ImportSignalsPayload(
            created=result.created,
            duplicates=result.duplicates,
            skipped=result.skipped,
            row_errors=[ImportRowError.from_domain(e) for e in result.errors],
            errors=[],
        )
