"""Mailing a friend their redemption code again (``offer.code_resend_requested``), when SMTP is
configured: a worker takes one due event at a time (``FOR UPDATE SKIP LOCKED``, so several
workers may run), sends it to the address that claimed, and records the outcome on the event.

An event is mailed at most once; a failed send is retried on later passes until
``MAX_ATTEMPTS``; events older than ``FRESH_FOR`` are not mailed (a code requested days ago,
before SMTP was configured, is not sent out of the blue)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from vouch.models import OutboxEvent

EVENT_TYPE = "offer.code_resend_requested"
MAX_ATTEMPTS = 5
FRESH_FOR = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CodeMail:
    event_id: int
    to: str
    subject: str
    body: str


def compose(payload: dict[str, object]) -> tuple[str, str]:
    """Subject and plain-text body of the message."""
    offer = str(payload.get("offer") or "your offer")
    lines = [f"Here is your code for {offer}:", "", f"    {payload.get('code')}", ""]
    expires = payload.get("expires_at")
    if isinstance(expires, str) and expires:
        lines.append(f"Valid until {datetime.fromisoformat(expires):%d %B %Y}.")
    lines.append("You received this because your address was entered to claim this offer.")
    return "Your offer code", "\n".join(lines) + "\n"


async def next_code_mail(session: AsyncSession, *, now: datetime) -> CodeMail | None:
    """The oldest due message, locked for this transaction; or None."""
    event = await session.scalar(
        select(OutboxEvent)
        .where(
            OutboxEvent.event_type == EVENT_TYPE,
            OutboxEvent.mailed_at.is_(None),
            OutboxEvent.mail_attempts < MAX_ATTEMPTS,
            OutboxEvent.created_at > now - FRESH_FOR,
        )
        .order_by(OutboxEvent.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if event is None:
        return None
    to = event.payload.get("email")
    if not isinstance(to, str) or not to:
        await mark_code_mail(session, event.id, sent=False, now=now, give_up=True)
        return await next_code_mail(session, now=now)
    subject, body = compose(event.payload)
    return CodeMail(event_id=event.id, to=to, subject=subject, body=body)


async def mark_code_mail(
    session: AsyncSession, event_id: int, *, sent: bool, now: datetime, give_up: bool = False
) -> None:
    """Record a send: mailed, or one more failed attempt (``give_up``: no more attempts)."""
    values: dict[str, object] = (
        {"mailed_at": now, "mail_attempts": OutboxEvent.mail_attempts + 1}
        if sent
        else {"mail_attempts": MAX_ATTEMPTS if give_up else OutboxEvent.mail_attempts + 1}
    )
    await session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(values))
