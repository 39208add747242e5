"""``vouch rewards release``: approve rewards whose holding period has ended (the scheduled
backlog run; the scheduler calls the same domain function)."""

from __future__ import annotations

import json

import click
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution.rewards import release_due_rewards
from vouch.cli.runner import handle_errors, load_settings, run_with_session
from vouch.core.clock import utcnow


@click.group()
def rewards() -> None:
    """Rewards: release those whose holding period has ended."""


@rewards.command("release")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def release(as_json: bool) -> None:
    """Approve pending rewards whose holding period has ended, in programs that auto-approve
    rewards. One transaction; safe to run concurrently and repeatedly."""

    async def work(session: AsyncSession) -> dict[str, object]:
        released = await release_due_rewards(session, utcnow())
        return {"approved": len(released), "reward_ids": [r.id for r in released]}

    result = run_with_session(load_settings(), work)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['approved']} reward(s) approved at the end of their holding period")
