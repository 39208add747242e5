"""``vouch asks evaluate``: the scheduled ask run (queue what moments earn, send under the cap)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import datetime

import click
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.asks import advocates_due, evaluate_asks
from vouch.advocacy.tiers import program_id_for_slug
from vouch.cli.runner import handle_errors, load_settings, run_with_session
from vouch.core.clock import utcnow
from vouch.core.errors import DomainError
from vouch.core.ids import encode_id, public_ids
from vouch.models import Program
from vouch.models.enums import ProgramStatus


@click.group()
def asks() -> None:
    """Advocacy asks: evaluate who has earned one."""


async def evaluate_program(
    session: AsyncSession, program_id: int, *, show_progress: bool = False
) -> dict[str, int]:
    """Evaluate every advocate due in one program, one transaction per advocate, so a worker
    holds each advocate's contact lock only briefly."""
    now = utcnow()
    due = await advocates_due(session, program_id, now=now)
    await session.commit()
    totals = {"program_id": program_id, "evaluated": 0, "queued": 0, "sent": 0, "skipped": 0}
    with click.progressbar(
        due,
        label=f"program {encode_id('Program', program_id)}",
        file=sys.stderr,
        hidden=not show_progress,
    ) as advocates:
        await _evaluate_each(session, program_id, advocates, totals, now)
    return totals


async def _evaluate_each(
    session: AsyncSession,
    program_id: int,
    advocates: Iterable[int],
    totals: dict[str, int],
    now: datetime,
) -> None:
    for advocate_id in advocates:
        try:
            result = await evaluate_asks(session, advocate_id, program_id, now=now)
            await session.commit()
        except DomainError:
            await session.rollback()
            totals["skipped"] += 1
            continue
        totals["evaluated"] += 1
        totals["queued"] += len(result.queued)
        totals["sent"] += 1 if result.sent else 0


@asks.command("evaluate")
@click.option(
    "--program", "slug", default=None, help="Only this program (slug); default: all active."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def evaluate(slug: str | None, as_json: bool) -> None:
    """Queue the asks advocates' moments and dormancy earn, and send the best one per
    advocate where no guard or the frequency cap holds it back. Safe to run concurrently."""

    async def work(session: AsyncSession) -> list[dict[str, int]]:
        if slug is not None:
            ids = [await program_id_for_slug(session, slug)]
        else:
            ids = list(
                await session.scalars(
                    select(Program.id)
                    .where(Program.status == ProgramStatus.ACTIVE)
                    .order_by(Program.id)
                )
            )
        return [
            await evaluate_program(session, pk, show_progress=not as_json and sys.stderr.isatty())
            for pk in ids
        ]

    results = [public_ids(r) for r in run_with_session(load_settings(), work)]
    if as_json:
        click.echo(json.dumps({"programs": results}))
        return
    for r in results:
        click.echo(
            f"program {r['program_id']}: {r['evaluated']} evaluated, {r['queued']} queued, "
            f"{r['sent']} sent, {r['skipped']} skipped"
        )
    if not results:
        click.echo("no active programs")
