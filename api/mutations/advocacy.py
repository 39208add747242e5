"""recomputeTiers (write scope) and configureAdvocacy (admin scope)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from vouch.advocacy.configuration import configure_advocacy, effective_settings
from vouch.advocacy.tiers import recompute_tiers
from vouch.api.context import Info
from vouch.api.errors import user_errors
from vouch.api.ids import decode_id
from vouch.api.mutations.transaction import transaction
from vouch.api.permissions import require_scope
from vouch.api.types.score import (
    AdvocacySettingsType,
    ConfigureAdvocacyPayload,
    RecomputeTiersPayload,
    TierRunType,
)
from vouch.core.clock import utcnow
from vouch.core.errors import ValidationFailed
from vouch.models.enums import Scope


@strawberry.type
class TierMutations:
    @strawberry.mutation(
        description="Rescore every advocate of the program and reassign tiers now; each tier "
        "change is recorded as a tier event."
    )
    @transaction(lambda exc: RecomputeTiersPayload(run=None, errors=user_errors(exc)))
    async def recompute_tiers(self, info: Info, program_id: strawberry.ID) -> RecomputeTiersPayload:
        require_scope(info.context, Scope.WRITE)
        run = await recompute_tiers(
            info.context.session,
            decode_id(program_id, "Program", field="programId"),
            now=utcnow(),
            reason="on_demand",
        )
        return RecomputeTiersPayload(run=TierRunType.from_domain(run), errors=[])

    @strawberry.mutation(
        description="Change a program's advocacy settings: any of scoring, tiers, moments, "
        "points, levels (null resets a part to the defaults). Admin scope."
    )
    @transaction(lambda exc: ConfigureAdvocacyPayload(settings=None, errors=user_errors(exc)))
    async def configure_advocacy(
        self, info: Info, program_id: strawberry.ID, settings: JSON
    ) -> ConfigureAdvocacyPayload:
        require_scope(info.context, Scope.ADMIN)
        if not isinstance(settings, dict):
            raise ValidationFailed("settings must be a JSON object", field="settings")
        changes: dict[str, Any] = settings
        program = await configure_advocacy(
            info.context.session, decode_id(program_id, "Program", field="programId"), changes
        )
        return ConfigureAdvocacyPayload(
            settings=AdvocacySettingsType.from_domain(program.id, effective_settings(program)),
            errors=[],
        )
