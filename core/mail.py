"""Outgoing e-mail over SMTP with aiosmtplib. Only workers send mail, never a request."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum

import aiosmtplib

SEND_TIMEOUT_SECONDS = 5.0  # below the idle-in-transaction timeout of the sending worker


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (port 587)
    TLS = "tls"  # implicit TLS (port 465)
    NONE = "none"  # a local relay only


class MailError(Exception):
    """The message was not accepted; the caller may retry later."""


@dataclass(frozen=True, slots=True)
class Mailer:
    host: str
    port: int
    sender: str
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = None

    async def send(self, *, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username or None,
                password=self.password or None,
                use_tls=self.security is SmtpSecurity.TLS,
                start_tls=self.security is SmtpSecurity.STARTTLS,
                timeout=SEND_TIMEOUT_SECONDS,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(type(exc).__name__) from exc
