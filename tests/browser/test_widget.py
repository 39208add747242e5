"""The embeddable widget in a real browser, embedded in a page on ANOTHER origin (as a
customer's product would): it fetches through CORS with its widget token, shows the share
link, channels, stats, rewards and next ask, copies in one click and records share events."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from tests.attribution.factories import make_referral
from tests.browser.conftest import _free_port
from tests.browser.test_journey import query, wait_for, with_engine
from tests.factories import make_advocate, make_link, make_program, make_reward_rule
from vouch.core.codes import LinkCodec
from vouch.core.sessions import SerialSession
from vouch.models import Ask, Reward, ShareEvent
from vouch.web.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.committing]


def seed(database_url: str, codec: LinkCodec) -> tuple[str, int]:
    async def run(engine) -> tuple[str, int]:
        from vouch.attribution import lifecycle
        from vouch.core.clock import utcnow

        factory = async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False)
        async with factory() as s:
            program = await make_program(s, name="Acme")
            advocate = await make_advocate(s, first_name="Grace", email="grace@example.com")
            link = await make_link(s, codec, advocate=advocate, program=program)
            await make_reward_rule(s, program=program, trigger="won", amount_minor=5000)
            referral = await make_referral(s, program=program, advocate=advocate, link=link)
            await lifecycle.transition(
                s, referral.id, "won", source="crm", actor="crm", now=utcnow()
            )
            s.add(
                Ask(
                    advocate_id=advocate.id,
                    program_id=program.id,
                    type="review",
                    moment="nps_promoter",
                    status="sent",
                    queued_at=utcnow(),
                    sent_at=utcnow(),
                )
            )
            await s.commit()
            return str(link.code), advocate.id

    code, advocate_id = with_engine(database_url, run)
    return str(code), int(advocate_id)


@pytest.fixture
def two_origins(settings, database_url, committing_engine):
    """Vouch on one port, a customer's page on another; Vouch allows that origin by CORS."""
    vouch_port, shop_port = _free_port(), _free_port()
    vouch = f"http://127.0.0.1:{vouch_port}"
    shop = f"http://127.0.0.1:{shop_port}"
    app = create_app(
        settings.model_copy(
            update={
                "database_url": database_url,
                "public_base_url": vouch,
                "cors_origins": [shop],
            }
        )
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=vouch_port, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    page: dict[str, bytes] = {}

    class Shop(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page["html"])

        def log_message(self, *args):
            pass

    shop_server = ThreadingHTTPServer(("127.0.0.1", shop_port), Shop)
    shop_thread = threading.Thread(target=shop_server.serve_forever, daemon=True)
    shop_thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield vouch, shop, app, page
    finally:
        shop_server.shutdown()
        server.should_exit = True
        thread.join(timeout=15)


def test_widget_embedded_on_another_origin(two_origins, browser, database_url, settings):
    from selenium.webdriver.common.by import By

    vouch, shop, app, page = two_origins
    code, advocate_id = seed(
        database_url, LinkCodec(settings.resolved_hashid_salt(), settings.hashid_min_length)
    )
    token = app.state.widget_tokens.mint(advocate_id)
    page["html"] = (
        '<!doctype html><html><body><h1>Shop</h1><div id="vouch-widget"></div>'
        f'<script src="{vouch}/static/widget.js" data-token="{token}" data-target="#vouch-widget"></script>'
        "</body></html>"
    ).encode()
    browser.get(f"{shop}/account")
    host = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#vouch-widget[data-vouch-ready]")
    )[0]
    root = host.shadow_root
    share_url = f"{vouch}/r/{code}"
    assert root.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == share_url
    channels = {
        a.get_attribute("data-channel"): a.get_attribute("href")
        for a in root.find_elements(By.CSS_SELECTOR, "a.vw-channel")
    }
    assert sorted(channels) == ["email", "linkedin", "sms", "whatsapp", "x"]
    assert "ch%3Dwhatsapp" in channels["whatsapp"]
    stats = {
        d.get_attribute("data-stat"): d.find_element(By.TAG_NAME, "dd").text
        for d in root.find_elements(By.CSS_SELECTOR, "[data-stat]")
    }
    assert stats["friends"] == "1"
    assert stats["rewards"] in ("$50.00", "US$50.00", "USD 50.00")
    assert root.find_element(By.CSS_SELECTOR, "[data-ask]").get_attribute("data-ask") == "review"

    root.find_element(By.CSS_SELECTOR, "button.vw-button").click()
    status = wait_for(lambda: root.find_element(By.CSS_SELECTOR, ".vw-status").text)
    assert status in ("Copied!", "Press Ctrl+C (or ⌘C) to copy.")

    def recorded() -> set[str]:
        return {k for (k,) in query(database_url, select(ShareEvent.kind))}

    wait_for(lambda: {"page_opened", "link_copied"} <= recorded())
    assert query(database_url, select(Reward.amount_minor)) == [(5000,)]


def test_widget_demo_page_needs_a_valid_token(live_server, browser):
    import httpx

    response = httpx.get(f"{live_server.url}/widget/demo?token=forged", timeout=5)
    assert response.status_code == 400
    assert "vouch demo" in response.text


def seed_experiment(database_url: str, codec: LinkCodec) -> tuple[int, int]:
    """One program running a holdout experiment: one advocate held out, one treated."""

    async def run(engine) -> tuple[int, int]:
        from vouch.core.clock import utcnow
        from vouch.models import Experiment, ExperimentAssignment

        factory = async_sessionmaker(engine, class_=SerialSession, expire_on_commit=False)
        async with factory() as s:
            program = await make_program(s, name="Acme")
            held = await make_advocate(s, first_name="Hana", email="hana@example.com")
            treated = await make_advocate(s, first_name="Tom", email="tom@example.com")
            for person in (held, treated):
                await make_link(s, codec, advocate=person, program=program)
            experiment = Experiment(
                program_id=program.id, name="Q1", holdout_bps=5000, started_at=utcnow()
            )
            s.add(experiment)
            await s.flush()
            for person, arm in ((held, "holdout"), (treated, "treatment")):
                s.add(
                    ExperimentAssignment(
                        experiment_id=experiment.id,
                        advocate_id=person.id,
                        arm=arm,
                        stratum=1,
                        hash_key="0" * 16,
                        assigned_at=utcnow(),
                    )
                )
            await s.commit()
            return held.id, treated.id

    held, treated = with_engine(database_url, run)
    return int(held), int(treated)


def test_widget_hides_the_referral_prompt_from_a_holdout_advocate(
    two_origins, browser, database_url, settings
):
    from selenium.webdriver.common.by import By

    vouch, shop, app, page = two_origins
    held, treated = seed_experiment(
        database_url, LinkCodec(settings.resolved_hashid_salt(), settings.hashid_min_length)
    )

    def open_widget(advocate_id: int):
        token = app.state.widget_tokens.mint(advocate_id)
        page["html"] = (
            '<!doctype html><html><body><h1>Shop</h1><div id="vouch-widget"></div>'
            f'<script src="{vouch}/static/widget.js" data-token="{token}" '
            'data-target="#vouch-widget"></script></body></html>'
        ).encode()
        browser.get(f"{shop}/account?a={advocate_id}")
        return wait_for(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#vouch-widget[data-vouch-ready]")
        )[0]

    host = open_widget(treated)
    assert host.get_attribute("data-vouch-prompt") == "shown"
    root = host.shadow_root
    assert root.find_element(By.CSS_SELECTOR, ".vw-title").text == "Share and earn, Tom"
    assert "/r/" in root.find_element(By.CSS_SELECTOR, "input").get_attribute("value")
    assert len(root.find_elements(By.CSS_SELECTOR, "a.vw-channel")) == 5

    def kinds(advocate_id: int) -> set[str]:
        rows = query(
            database_url, select(ShareEvent.kind).where(ShareEvent.advocate_id == advocate_id)
        )
        return {k for (k,) in rows}

    wait_for(lambda: "page_opened" in kinds(treated))

    host = open_widget(held)
    assert host.get_attribute("data-vouch-prompt") == "hidden"
    root = host.shadow_root
    # No call to action at all: no link, no copy button, no channels, no invitation to share,
    # and nothing that tells the advocate about the experiment.
    assert root.find_elements(By.CSS_SELECTOR, "input, button, a.vw-channel, .vw-status") == []
    assert root.find_element(By.CSS_SELECTOR, ".vw-title").text == "Your rewards, Hana"
    text = root.find_element(By.CSS_SELECTOR, "section.vw").text.lower()
    for word in ("share", "invite", "refer", "experiment", "holdout"):
        assert word not in text
    stats = {
        d.get_attribute("data-stat"): d.find_element(By.TAG_NAME, "dd").text
        for d in root.find_elements(By.CSS_SELECTOR, "[data-stat]")
    }
    assert stats["friends"] == "0"
    time.sleep(0.5)  # no page_opened is recorded for a widget that showed no prompt
    assert kinds(held) == set()
