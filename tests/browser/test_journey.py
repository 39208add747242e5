"""The whole journey in a real browser: open a link, see the offer, claim, see the code,
reload and see the same code; then the advocate copies their link on the share page."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.factories import make_advocate, make_link, make_program
from vouch.core.codes import LinkCodec
from vouch.core.engine import create_engine
from vouch.core.sessions import SerialSession
from vouch.models import Click, Referral, ShareEvent

pytestmark = [pytest.mark.browser, pytest.mark.committing]


def with_engine(database_url: str, work):
    """Run ``work(engine)`` on a fresh engine in its own loop: this test is synchronous (the
    browser blocks), and the session-scoped engine belongs to pytest's loop."""

    async def run():
        engine = create_engine(database_url, pool_size=1)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def seed(database_url: str, codec: LinkCodec) -> tuple[str, int]:
    async def run(engine) -> tuple[str, int]:
        factory = async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False)
        async with factory() as s:
            program = await make_program(
                s,
                name="Acme Analytics",
                offer_title="20% off your first year",
                offer_terms="New customers only.",
            )
            advocate = await make_advocate(
                s, first_name="Grace", last_name="Hopper", email="grace@example.com"
            )
            link = await make_link(s, codec, advocate=advocate, program=program)
            await s.commit()
            return str(link.code), advocate.id

    code, advocate_id = with_engine(database_url, run)
    return str(code), int(advocate_id)


def query(database_url: str, stmt):
    async def run(engine):
        async with engine.connect() as conn:
            return list((await conn.execute(stmt)).all())

    return with_engine(database_url, run)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def csp_violations(driver) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]


def claim_in_browser(driver, base: str, code: str, email: str, before_submit=None) -> str:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/r/{code}?ch=email")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Grace invited you"
    assert driver.find_element(By.ID, "offer").text == "20% off your first year"
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "name").send_keys("Katherine Johnson")
    driver.find_element(By.ID, "consent").click()
    if before_submit is not None:
        before_submit()
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(lambda: "/claimed?t=" in driver.current_url)
    assert driver.find_element(By.TAG_NAME, "h1").text == "Your offer code"
    return str(driver.find_element(By.ID, "redemption-code").text)


def test_friend_claims_and_advocate_shares(live_server, browser, database_url, codec):
    from selenium.webdriver.common.by import By

    base = live_server.url
    code, advocate_id = seed(database_url, codec)

    # Let the click buffer flush first, so the claim can cite the click as its evidence.
    redemption = claim_in_browser(
        browser,
        base,
        code,
        "katherine@example.org",
        before_submit=lambda: wait_for(lambda: query(database_url, select(Click.id))),
    )
    assert len(redemption) == 19
    browser.refresh()
    assert browser.find_element(By.ID, "redemption-code").text == redemption
    # Claiming again with the same address shows the same code, not a second one.
    assert claim_in_browser(browser, base, code, "Katherine@Example.org") == redemption
    assert csp_violations(browser) == []

    referrals = query(database_url, select(Referral.email, Referral.visitor_id, Referral.click_id))
    assert len(referrals) == 1
    email, visitor_id, click_id = referrals[0]
    assert email == "katherine@example.org"
    assert visitor_id is not None
    clicks = query(
        database_url,
        select(Click.id, Click.channel, Click.is_bot, Click.visitor_id).order_by(Click.id),
    )
    assert len(clicks) == 2
    assert clicks[0] == (click_id, "email", False, visitor_id)

    # The advocate's share page: copy the link to the clipboard in one click.
    browser.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    token = live_server.app.state.widget_tokens.mint(advocate_id)
    browser.get(f"{base}/share?token={token}")
    link_url = f"{base}/r/{code}"
    assert browser.find_element(By.ID, "share-link").get_attribute("value") == link_url
    assert browser.find_element(By.ID, "stat-friends").text == "1"
    browser.find_element(By.ID, "copy-link").click()
    wait_for(lambda: browser.find_element(By.ID, "copy-status").text == "Copied!")
    how = browser.find_element(By.ID, "copy-link").get_attribute("data-copied")
    assert how in ("clipboard", "fallback")
    clipboard = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, function (e) { done('ERROR ' + e); });"
    )
    assert clipboard == link_url
    # Editing a message and choosing a channel are part of the recorded share flow.
    area = browser.find_element(By.ID, "msg-whatsapp")
    area.send_keys(" See you there!")
    href = browser.find_element(By.ID, "send-whatsapp").get_attribute("href")
    assert href.startswith("https://wa.me/?text=")
    assert "See%20you%20there!" in href
    kinds = wait_for(
        lambda: (
            sorted(
                (k, c) for k, c in query(database_url, select(ShareEvent.kind, ShareEvent.channel))
            )
            if len(query(database_url, select(ShareEvent.kind))) >= 3
            else None
        )
    )
    assert kinds == [("link_copied", None), ("message_edited", "whatsapp"), ("page_opened", None)]
    assert csp_violations(browser) == []
