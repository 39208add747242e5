"""Issue 14, item 1 (mail): with SMTP configured, a worker mails the friend their code when
someone else claimed with their address: sent from the outbox, never inside the request, to the
address that claimed, once; a failed send is retried and never loses the event. Tested against
a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import socket
from email import message_from_bytes
from email.message import Message

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tests.web.conftest import claim
from vouch.core.clock import utcnow
from vouch.core.mail import Mailer, SmtpSecurity
from vouch.jobs.delivery import send_due_code_mails
from vouch.models import OfferRedemption, OutboxEvent


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield (
            inbox,
            Mailer(
                host="127.0.0.1",
                port=controller.port,
                sender="Acme offers <offers@acme.example>",
                security=SmtpSecurity.NONE,
            ),
        )
    finally:
        controller.stop()


def browser(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def resend_event(session):
    event = await session.scalar(
        select(OutboxEvent).where(OutboxEvent.event_type == "offer.code_resend_requested")
    )
    assert event is not None
    await session.refresh(event)
    return event


async def test_the_code_is_mailed_to_the_address_that_claimed_once(
    app, session, sessionmaker, setup, smtp
):
    inbox, mailer = smtp
    async with browser(app) as first, browser(app) as other:
        assert (await claim(first, setup.code, email="Ada.Lovelace@Example.org")).status_code == 303
        answer = await claim(other, setup.code, email="ada.lovelace@example.org")
        assert answer.status_code == 200
    # Nothing was sent while the request ran: the worker sends it.
    assert inbox.messages == []
    assert await send_due_code_mails(sessionmaker, mailer, now=utcnow()) == 1
    code = await session.scalar(select(OfferRedemption.code))
    [(sender, recipients, message)] = inbox.messages
    assert sender == "offers@acme.example"
    assert recipients == ["Ada.Lovelace@example.org"]
    assert message["Subject"] == "Your offer code"
    text = message.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert f"    {code}\n" in text
    assert "Here is your code for 20% off your first year:" in text
    event = await resend_event(session)
    assert event.mailed_at is not None
    assert event.mail_attempts == 1
    # A second pass sends nothing more.
    assert await send_due_code_mails(sessionmaker, mailer, now=utcnow()) == 0
    assert len(inbox.messages) == 1


async def test_an_unreachable_smtp_server_is_retried_and_loses_nothing(
    app, session, sessionmaker, setup, smtp
):
    inbox, mailer = smtp
    down = Mailer(
        host="127.0.0.1", port=free_port(), sender="x@acme.example", security=SmtpSecurity.NONE
    )
    async with browser(app) as first, browser(app) as other:
        await claim(first, setup.code, email="grace@example.org")
        await claim(other, setup.code, email="GRACE@example.org")
    assert await send_due_code_mails(sessionmaker, down, now=utcnow()) == 0
    event = await resend_event(session)
    assert (event.mailed_at, event.mail_attempts) == (None, 1)
    # The server is back: the next pass delivers it.
    assert await send_due_code_mails(sessionmaker, mailer, now=utcnow()) == 1
    assert [m[1] for m in inbox.messages] == [["grace@example.org"]]


async def test_erasure_takes_the_address_out_of_a_waiting_resend(
    app, session, sessionmaker, setup, smtp, settings
):
    from vouch.attribution.erasure import erase_referred_person

    inbox, mailer = smtp
    async with browser(app) as first, browser(app) as other:
        await claim(first, setup.code, email="hedy@example.org")
        await claim(other, setup.code, email="Hedy@example.org")
    await erase_referred_person(
        session, secret=settings.resolved_secret(), email="hedy@example.org"
    )
    await session.commit()
    event = await resend_event(session)
    assert "email" not in event.payload
    assert "code" not in event.payload
    assert await send_due_code_mails(sessionmaker, mailer, now=utcnow()) == 0
    assert inbox.messages == []
