from __future__ import annotations

import strawberry

from vouch.api.connections import to_connection
from vouch.api.context import Info
from vouch.api.ids import decode_id
from vouch.api.pagination import Connection, page_args
from vouch.api.permissions import require_scope
from vouch.api.types.enums import ProgramStatus
from vouch.api.types.program import ProgramType
from vouch.catalog.programs import get_program, list_programs
from vouch.models.enums import Scope


@strawberry.type
class ProgramQueries:
    @strawberry.field(description="Programs, oldest first, optionally only those in one status.")
    async def programs(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        status: ProgramStatus | None = None,
    ) -> Connection[ProgramType]:
        require_scope(info.context, Scope.READ)
        args = page_args("programs", first, after, last, before)
        page = await list_programs(
            info.context.session,
            status=status.value if status is not None else None,
            **args.window(),
        )
        return to_connection(page, ProgramType.from_model, key=lambda p: p.id, args=args)

    @strawberry.field(description="One program by id.")
    async def program(self, info: Info, id: strawberry.ID) -> ProgramType:
        require_scope(info.context, Scope.READ)
        return ProgramType.from_model(
            await get_program(info.context.session, decode_id(id, "Program"))
        )
