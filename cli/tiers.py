"""``vouch tiers recompute``: rescore advocates and reassign tiers (for cron or by hand)."""

from __future__ import annotations

import json

import click
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.advocacy.asks import expire_due
from vouch.advocacy.tiers import TierRun, program_id_for_slug, recompute_all_tiers, recompute_tiers
from vouch.cli.runner import handle_errors, load_settings, run_with_session
from vouch.core.clock import utcnow
from vouch.core.ids import encode_id


@click.group()
def tiers() -> None:
    """Advocate tiers: recompute on demand or from a schedule."""


def _describe(run: TierRun) -> dict[str, object]:
    return {
        "program_id": encode_id("Program", run.program_id),
        "run_id": run.run_id,
        "scored": run.scored,
        "changes": run.changes,
        "tier1": run.distribution.get(1, 0),
        "tier2": run.distribution.get(2, 0),
        "tier3": run.distribution.get(3, 0),
        "untiered": run.distribution.get(None, 0),
    }


@tiers.command("recompute")
@click.option(
    "--program", "slug", default=None, help="Only this program (slug); default: all active."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def recompute(slug: str | None, as_json: bool) -> None:
    """Rescore every advocate, reassign tiers, and record tier changes as events.

    Without --program this is the scheduled job: every active program, then queued asks whose
    moment passed and lapsed reference reservations are expired.
    """

    async def work(session: AsyncSession) -> dict[str, object]:
        now = utcnow()
        if slug is not None:
            pk = await program_id_for_slug(session, slug)
            runs = [await recompute_tiers(session, pk, now=now, reason="on_demand")]
            return {"runs": [_describe(r) for r in runs]}
        runs = await recompute_all_tiers(session, now=now, reason="scheduled")
        asks, reservations = await expire_due(session, now=now)
        return {
            "runs": [_describe(r) for r in runs],
            "expired_asks": asks,
            "expired_reservations": reservations,
        }

    result = run_with_session(load_settings(), work)
    if as_json:
        click.echo(json.dumps(result))
        return
    runs = result["runs"]
    assert isinstance(runs, list)
    for run in runs:
        click.echo(
            f"program {run['program_id']}: {run['scored']} scored, {run['changes']} tier "
            f"change(s); tier 1/2/3: {run['tier1']}/{run['tier2']}/{run['tier3']}"
        )
    if not runs:
        click.echo("no active programs")
