"""The console's lab in a real browser: an experiment's lift chart and verdict, then the
backtest form: edit a copy of the rules, compare, read both ledgers side by side."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.test_console import seed, shot
from tests.browser.test_journey import csp_violations, wait_for
from vouch.api.ids import encode_id
from vouch.core.codes import LinkCodec

pytestmark = [pytest.mark.browser, pytest.mark.committing]
CREATE = """mutation($p: ID!) { createExperiment(input: {programId: $p, name: "Browser holdout",
  holdoutBps: 2000}) { experiment { id } errors { message } } }"""


def test_experiment_chart_and_backtest_form(live_server, browser, database_url, settings):
    from selenium.webdriver.common.by import By

    codec = LinkCodec(settings.resolved_hashid_salt(), settings.hashid_min_length)
    key, program_id = seed(database_url, codec, settings.resolved_secret())
    base = live_server.url
    created = httpx.post(
        f"{base}/graphql",
        json={"query": CREATE, "variables": {"p": encode_id("Program", program_id)}},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    ).json()
    assert created["data"]["createExperiment"]["errors"] == []

    browser.get(f"{base}/console/login")
    browser.find_element(By.ID, "api_key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.chart"))
    browser.set_window_size(1366, 900)

    browser.get(f"{base}/console/experiments")
    report = wait_for(lambda: browser.find_elements(By.ID, "report"))[0]
    assert report.get_attribute("data-verdict") == "insufficient_sample"
    assert "Too early to call." in browser.find_element(By.ID, "verdict").text
    outcomes = [
        row.get_attribute("data-outcome")
        for row in browser.find_elements(By.CSS_SELECTOR, "#outcomes tr[data-outcome]")
    ]
    assert outcomes == ["referrals", "pipeline_minor", "revenue_minor", "renewed", "expansions"]
    assert browser.find_elements(By.CSS_SELECTOR, "#report svg.chart")
    assert csp_violations(browser) == []
    shot(browser, "console-experiment-laptop")

    browser.get(f"{base}/console/backtest?program={program_id}")
    amount = wait_for(lambda: browser.find_elements(By.NAME, "rule-0-amount_minor"))[0]
    original = int(amount.get_attribute("value"))
    amount.clear()
    amount.send_keys(str(original * 2))
    browser.find_element(By.ID, "run-backtest").click()
    row = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#by-currency tr[data-currency]")
    )[0]
    actual, proposed, difference = (
        int(cell.get_attribute("data-minor"))
        for cell in row.find_elements(By.CSS_SELECTOR, "td[data-minor]")
    )
    assert actual > 0
    assert proposed > actual
    assert difference == proposed - actual
    assert browser.find_elements(By.ID, "actual-by-state")
    assert browser.find_elements(By.ID, "proposed-by-state")
    assert csp_violations(browser) == []
    shot(browser, "console-backtest-laptop")
