"""``vouch erase``: GDPR erasure from the command line (the same functions as the API)."""

from __future__ import annotations

import json

import click
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.attribution.erasure import erase_advocate, erase_referred_person
from vouch.cli.runner import handle_errors, load_settings, run_with_session
from vouch.core.emails import check_email
from vouch.core.errors import NotFound
from vouch.core.ids import encode_id
from vouch.models import Advocate


@click.group()
def erase() -> None:
    """Erase a person's personal data; aggregates and reports stay unchanged."""


@erase.command("advocate")
@click.argument("external_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def erase_advocate_cmd(external_id: str, as_json: bool) -> None:
    """Erase the advocate with this CRM id (their links stop resolving)."""
    settings = load_settings()

    async def work(session: AsyncSession) -> str:
        advocate_id = await session.scalar(
            select(Advocate.id).where(Advocate.external_id == external_id[:128])
        )
        if advocate_id is None:
            raise NotFound(f"no advocate with external id '{external_id[:64]}'")
        await erase_advocate(session, advocate_id, secret=settings.resolved_secret())
        return encode_id("Advocate", int(advocate_id))

    advocate_id = run_with_session(settings, work)
    if as_json:
        click.echo(json.dumps({"erased": "advocate", "advocate_id": advocate_id}))
    else:
        click.echo(f"advocate {advocate_id} erased; their referrals and rewards still count")


@erase.command("person")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@handle_errors
def erase_person_cmd(email: str, as_json: bool) -> None:
    """Erase a referred friend, in every program, by email."""
    settings = load_settings()
    address = check_email(email)

    async def work(session: AsyncSession) -> tuple[int, int]:
        result = await erase_referred_person(
            session, secret=settings.resolved_secret(), email=address
        )
        return result.referrals, result.clicks

    referrals, clicks = run_with_session(settings, work)
    if as_json:
        click.echo(json.dumps({"erased": "person", "referrals": referrals, "clicks": clicks}))
    else:
        click.echo(
            f"erased the person from {referrals} referral(s) and {clicks} click(s); counts stay"
        )
