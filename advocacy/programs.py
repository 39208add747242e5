"""Programs: read and list. (Create/update lives with the API issue's mutations.)"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from attribution.paging import Page, paginate
from core.errors import NotFound
from models import Program


async def get_program(session: AsyncSession, program_id: int) -> Program:
    program = await session.get(Program, program_id)
    if program is None:
        raise NotFound("no such program", field="id")
    return program


async def list_programs(
    session: AsyncSession, *, status: str | None, first: int, after: int | None
) -> Page[Program]:
    stmt = select(Program)
    if status is not None:
        stmt = stmt.where(Program.status == status)
    return await paginate(session, stmt, key=Program.id, first=first, after=after)
