"""Privacy after a realistic journey (the demo data plus landing hits and claims from known
IPv4 and IPv6 addresses): no raw IP address anywhere in the database, and an erasure leaves
no PII of that person while every report's aggregates stay the same."""

from __future__ import annotations

import dataclasses
import re

import httpx
from sqlalchemy import select, text

from tests.conftest import TEST_SECRET
from tests.web.conftest import csrf_from
from vouch.attribution import reports
from vouch.attribution.erasure import erase_advocate, erase_referred_person
from vouch.cli.demo_seed import seed_demo_data
from vouch.core.clock import utcnow
from vouch.models import Advocate, Base, Referral, ReferralLink

IPS = ["203.0.113.77", "198.51.100.23", "2001:db8:85a3::8a2e:370:7334"]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


async def database_text(session) -> str:
    """Every row of every table as JSON text: what a dump would show."""
    chunks = []
    for table in Base.metadata.sorted_tables:
        rows = await session.scalars(text(f'SELECT row_to_json(t)::text FROM "{table.name}" t'))
        chunks.extend(rows)
    return "\n".join(chunks)


async def all_reports(session, program_id):
    f = reports.ReportFilter(program_id=program_id)
    everything = reports.ReportFilter()
    out = {}
    for name, flt in (("program", f), ("all", everything)):
        out[name] = {
            "pipeline": [
                dataclasses.replace(r, label="")
                for g in ("program", "advocate", "channel")
                for r in await reports.pipeline(session, flt, group_by=g)
            ],
            "funnel": await reports.funnel(session, flt),
            "ttfr": await reports.time_to_first_referral(session, flt),
            "retention": await reports.retention(session, flt, after_days=90, now=NOW),
            "cost": await reports.cost_and_roi(session, flt),
            "leaders": [
                dataclasses.replace(r, name="")
                for r in await reports.leaderboard(session, flt, limit=50)
            ],
        }
    return out


NOW = utcnow()


async def test_no_raw_ip_in_the_database_and_erasure_keeps_aggregates(app, session, codec):
    summary = await seed_demo_data(session, codec, secret=TEST_SECRET, now=NOW)
    await session.commit()
    code = summary.share_code
    for n, ip in enumerate(IPS):
        transport = httpx.ASGITransport(app=app, client=(ip, 40_000 + n))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"user-agent": BROWSER}
        ) as c:
            page = await c.get(f"/r/{code}", headers={"x-forwarded-for": ip})
            assert page.status_code == 200
            claimed = await c.post(
                f"/r/{code}/claim",
                data={
                    "email": f"privacy{n}@friends-{n}.example",
                    "name": f"Private Person {n}",
                    "consent": "yes",
                    "csrf": csrf_from(page.text),
                },
            )
            assert claimed.status_code == 303
    await app.state.clicks.flush()
    dump = await database_text(session)
    assert "privacy0@friends-0.example" in dump  # the dump does see the data
    for ip in IPS:
        assert ip not in dump
        assert ip.replace(":", "") not in dump
    ipv4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
    assert not [m for m in ipv4.findall(dump) if m in IPS]
    assert not re.search(r"2001:db8", dump, re.IGNORECASE)

    # Erasure: one referred friend (by email) and the advocate whose link they used.
    referral = await session.scalar(
        select(Referral).where(Referral.email == "privacy1@friends-1.example")
    )
    assert referral is not None
    advocate = await session.get(Advocate, referral.advocate_id)
    assert advocate is not None
    advocate_pii = [v for v in (advocate.email, advocate.first_name, advocate.last_name) if v]
    program_id = referral.program_id
    before = await all_reports(session, program_id)
    erased = await erase_referred_person(
        session, secret=TEST_SECRET, email="privacy1@friends-1.example"
    )
    assert erased.referrals == 1
    await erase_advocate(session, advocate.id, secret=TEST_SECRET)
    await session.commit()
    after = await all_reports(session, program_id)
    assert after == before
    dump = await database_text(session)
    for pii in ("privacy1@friends-1.example", "Private Person 1", "friends-1.example"):
        assert pii not in dump
    assert advocate_pii[0] not in dump  # the advocate's email, unique to them
    row = await session.get(Advocate, advocate.id, populate_existing=True)
    assert (row.email, row.first_name, row.last_name) == (None, None, None)
    # The other friends are untouched.
    assert "privacy0@friends-0.example" in dump
    links = (
        await session.scalars(select(ReferralLink).where(ReferralLink.advocate_id == advocate.id))
    ).all()
    assert links
