"""The RevOps console: API-key sign-in for a session cookie, CSRF on every form, the numbers
the reports API gives, moderation with a reason, and CSV for every table."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select

from tests.attribution.factories import make_referral
from tests.factories import make_advocate, make_api_key, make_link, make_program
from vouch.attribution import lifecycle, reports
from vouch.attribution.reports import ReportFilter
from vouch.core.clock import utcnow
from vouch.core.ids import encode_id
from vouch.models import Referral


async def _sign_in(client, key: str):
    form = await client.get("/console/login")
    assert form.status_code == 200
    csrf = _csrf(form.text)
    return await client.post("/console/login", data={"csrf": csrf, "api_key": key})


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_console_requires_sign_in(client):
    response = await client.get("/console")
    assert (response.status_code, response.headers["location"]) == (303, "/console/login")
    export = await client.get("/console/export/funnel.csv")
    assert export.status_code == 303


async def test_bad_key_and_missing_login_csrf_are_refused(client, session):
    bad = await _sign_in(client, "vk_not_a_key")
    assert bad.status_code == 401
    assert "not valid or was revoked" in bad.text
    assert "vouch_console=" not in bad.headers.get("set-cookie", "")
    forged = await client.post("/console/login", data={"csrf": "x", "api_key": "vk_x"})
    assert forged.status_code == 401
    assert "expired" in forged.text


async def test_session_cookie_is_strict_and_scoped(client, session):
    key = await make_api_key(session, scopes=["read"])
    response = await _sign_in(client, key)
    assert (response.status_code, response.headers["location"]) == (303, "/console")
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("vouch_console=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert key not in cookie


async def test_overview_numbers_match_the_reports_api(client, session, codec):
    program = await make_program(session, name="Refer a friend")
    advocate = await make_advocate(session, first_name="Grace", last_name="Hopper")
    link = await make_link(session, codec, advocate=advocate, program=program)
    now = utcnow()
    won = await make_referral(
        session, program=program, advocate=advocate, link=link, created_at=now
    )
    await make_referral(session, program=program, advocate=advocate, link=link, created_at=now)
    await lifecycle.transition(
        session,
        won.id,
        "won",
        source="crm_sync",
        actor="crm",
        now=now,
        won_amount_minor=480000,
        won_currency="USD",
    )
    key = await make_api_key(session, scopes=["read"])
    await _sign_in(client, key)
    page = await client.get(f"/console?program={encode_id('Program', program.id)}")
    assert page.status_code == 200
    assert "content-security-policy" in page.headers
    f = ReportFilter(
        program_id=program.id,
        since=date.today() - timedelta(days=180),
        until=date.today() + timedelta(days=1),
    )
    funnel = {s.step: s.count for s in await reports.funnel(session, f)}
    for step, count in funnel.items():
        label = "referrals won" if step == "won" else step  # not the pipeline's deals won
        assert re.search(
            rf'<tr data-step="{step}"><th scope="row">{label}</th><td>{count}</td>', page.text
        )
    assert funnel["leads"] == 2
    assert funnel["won"] == 1
    months = await reports.pipeline(session, f, group_by="month")
    assert len(months) == 1
    assert f'data-minor="{months[0].won_minor}"' in page.text
    assert "Grace Hopper" in page.text  # top advocates
    assert page.text.count("<svg") == 5


async def test_moderation_needs_csrf_and_a_moderating_key(client, session, codec):
    program = await make_program(session)
    advocate = await make_advocate(session)
    referral = await make_referral(session, program=program, advocate=advocate)
    referral.flags = ["disposable_email"]
    referral.moderation = "pending"
    await session.flush()

    public = encode_id("Referral", referral.id)
    reader = await make_api_key(session, scopes=["read"], name="analyst")
    await _sign_in(client, reader)
    queue = await client.get("/console/moderation")
    assert f'id="referral-{public}"' in queue.text
    assert "read-only key" in queue.text
    refused = await client.post(
        f"/console/moderation/{public}",
        data={"csrf": _csrf(queue.text), "decision": "reject", "reason": "fake"},
    )
    assert refused.status_code == 403

    admin = await make_api_key(session, scopes=["admin"], name="ops")
    await _sign_in(client, admin)
    queue = await client.get("/console/moderation")
    no_csrf = await client.post(
        f"/console/moderation/{public}", data={"decision": "reject", "reason": "fake"}
    )
    assert no_csrf.status_code == 403
    done = await client.post(
        f"/console/moderation/{public}",
        data={"csrf": _csrf(queue.text), "decision": "reject", "reason": "throwaway address"},
    )
    assert (done.status_code, done.headers["location"]) == (303, "/console/moderation?done=reject")
    row = await session.scalar(select(Referral).where(Referral.id == referral.id))
    await session.refresh(row)
    assert (row.moderation, row.moderation_reason, row.status) == (
        "rejected",
        "throwaway address",
        "rejected",
    )


async def test_every_table_exports_as_csv(client, session, codec):
    program = await make_program(session)
    advocate = await make_advocate(session)
    await make_referral(session, program=program, advocate=advocate)
    key = await make_api_key(session, scopes=["read"])
    await _sign_in(client, key)
    headers = {}
    for table in ("pipeline", "funnel", "leaderboard", "cost", "tiers", "asks", "moderation"):
        response = await client.get(
            f"/console/export/{table}.csv?program={encode_id('Program', program.id)}"
        )
        assert response.status_code == 200, table
        assert response.headers["content-type"].startswith("text/csv")
        headers[table] = response.text.splitlines()[0]
    assert headers["funnel"].startswith("step,count")
    assert headers["tiers"] == "tier,advocates"
    assert (await client.get("/console/export/secrets.csv")).status_code == 404


async def test_logout_clears_the_session(client, session):
    key = await make_api_key(session, scopes=["read"])
    await _sign_in(client, key)
    page = await client.get("/console/moderation")
    out = await client.post("/console/logout", data={"csrf": _csrf(page.text)})
    assert out.status_code == 303
    client.cookies.clear()
    assert (await client.get("/console")).status_code == 303


async def test_revoked_key_ends_the_session(client, session):
    from vouch.access.api_keys import revoke_api_key
    from vouch.models import ApiKey

    key = await make_api_key(session, scopes=["read"], name="temp")
    await _sign_in(client, key)
    assert (await client.get("/console/moderation")).status_code == 200
    row = await session.scalar(select(ApiKey).where(ApiKey.name == "temp"))
    await revoke_api_key(session, row.id)
    assert (await client.get("/console/moderation")).status_code == 303
