"""The console in a real browser, on a phone-sized and a laptop-sized window: sign in, read
the numbers (checked against the GraphQL reports API), moderate, sign out. A screenshot of each
page is kept in tests/artifacts/ for people to look at."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.browser.test_journey import csp_violations, wait_for, with_engine
from vouch.access.api_keys import create_api_key, parse_scopes
from vouch.api.ids import encode_id
from vouch.cli.demo_seed import seed_demo_data
from vouch.core.clock import utcnow
from vouch.core.codes import LinkCodec
from vouch.core.sessions import SerialSession

pytestmark = [pytest.mark.browser, pytest.mark.committing]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def seed(database_url: str, codec: LinkCodec, secret: str) -> tuple[str, int]:
    async def run(engine) -> tuple[str, int]:
        factory = async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False)
        async with factory() as s:
            await seed_demo_data(s, codec, secret=secret, now=utcnow())
            key = await create_api_key(s, name="console test", scopes=parse_scopes(["admin"]))
            from sqlalchemy import select

            from vouch.models import Program

            program_id = await s.scalar(select(Program.id).order_by(Program.id).limit(1))
            await s.commit()
            return key.plaintext, int(program_id or 0)

    key, program_id = with_engine(database_url, run)
    return str(key), int(program_id)


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.set_window_size(width, min(max(height + 120, 700), 6000))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_console_in_a_browser(live_server, browser, database_url, settings):
    from selenium.webdriver.common.by import By

    codec = LinkCodec(settings.resolved_hashid_salt(), settings.hashid_min_length)
    key, program_id = seed(database_url, codec, settings.resolved_secret())
    base = live_server.url

    browser.get(f"{base}/console")
    assert browser.current_url == f"{base}/console/login"
    shot(browser, "console-login-phone")
    browser.find_element(By.ID, "api_key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    charts = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.chart"))
    assert browser.current_url == f"{base}/console"
    assert len(charts) == 5

    # The funnel shown is the funnel the reports API gives for the same program and period.
    since = browser.find_element(By.ID, "since").get_attribute("value")
    until = browser.find_element(By.ID, "until").get_attribute("value")
    shown = {
        row.get_attribute("data-step"): int(row.find_elements(By.TAG_NAME, "td")[0].text)
        for row in browser.find_elements(By.CSS_SELECTOR, "#funnel tr[data-step]")
    }
    api = httpx.post(
        f"{base}/graphql",
        json={
            "query": "query($p: ID!, $s: Date!, $u: Date!) { reports(programId: $p, since: $s, until: $u) { funnel { step count } } }",
            "variables": {"p": encode_id("Program", program_id), "s": since, "u": until},
        },
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    ).json()
    assert shown == {s["step"]: s["count"] for s in api["data"]["reports"]["funnel"]}
    assert shown["clicks"] > 0
    assert shown["won"] > 0
    assert csp_violations(browser) == []
    shot(browser, "console-overview-phone")

    browser.set_window_size(1366, 900)
    browser.refresh()
    shot(browser, "console-overview-laptop")

    browser.get(f"{base}/console/moderation")
    count = int(browser.find_element(By.CSS_SELECTOR, "h1 .count").text)
    shot(browser, "console-moderation-laptop")
    assert count >= 0
    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait_for(lambda: browser.current_url == f"{base}/console/login")
    browser.get(f"{base}/console")
    assert browser.current_url == f"{base}/console/login"
    assert re.search(r"Sign in", browser.page_source)
