"""Helpers for the microsite tests: a program + advocate + link, CSRF scraping, form posts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_advocate, make_link, make_program
from vouch.models import Advocate, Program, ReferralLink

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
HUMAN_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@dataclass
class Setup:
    program: Program
    advocate: Advocate
    link: ReferralLink

    @property
    def code(self) -> str:
        assert self.link.code is not None
        return self.link.code


async def make_setup(session: AsyncSession, codec: Any, **program: Any) -> Setup:
    values: dict[str, Any] = {
        "name": "Acme Analytics",
        "offer_title": "20% off your first year",
        "offer_terms": "New customers only. One per company.",
    }
    values.update(program)
    prog = await make_program(session, **values)
    advocate = await make_advocate(
        session, first_name="Grace", last_name="Hopper", email="grace.hopper@gmail.com"
    )
    link = await make_link(session, codec, advocate=advocate, program=prog)
    await session.commit()
    return Setup(program=prog, advocate=advocate, link=link)


@pytest.fixture
async def setup(session: AsyncSession, codec: Any) -> Setup:
    return await make_setup(session, codec)


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf field in the page"
    return match.group(1)


async def open_offer(client: httpx.AsyncClient, code: str, **params: str) -> httpx.Response:
    return await client.get(f"/r/{code}", params=params, headers={"user-agent": HUMAN_UA})


async def claim(
    client: httpx.AsyncClient,
    code: str,
    *,
    email: str = "friend@example.org",
    name: str = "Katherine Johnson",
    company: str = "NASA",
    consent: bool = True,
    csrf: str | None = None,
) -> httpx.Response:
    if csrf is None:
        page = await open_offer(client, code)
        csrf = csrf_from(page.text)
    data = {"csrf": csrf, "email": email, "name": name, "company": company}
    if consent:
        data["consent"] = "yes"
    return await client.post(f"/r/{code}/claim", data=data, headers={"user-agent": HUMAN_UA})


async def count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)
