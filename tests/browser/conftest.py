"""Real headless Chromium against the app served by uvicorn on 127.0.0.1, with committed data.

Without Chromium and chromedriver the browser tests are skipped LOUDLY (install the Debian
packages ``chromium`` and ``chromium-driver``), unless ``VOUCH_REQUIRE_BROWSER=1`` (set by CI),
in which case they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from vouch.core.settings import Settings
from vouch.web.app import create_app

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver",)
INSTALL_HINT = (
    "BROWSER TESTS SKIPPED: headless Chromium is not installed. "
    "Install the Debian packages `chromium` and `chromium-driver` "
    "(apt-get install chromium chromium-driver) to run them."
)


def _find(candidates: tuple[str, ...], name: str) -> str | None:
    for path in candidates:
        if os.path.exists(path) and os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def _require_browser() -> tuple[str, str]:
    chromium = _find(CHROMIUM_CANDIDATES, "chromium")
    driver = _find(DRIVER_CANDIDATES, "chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.environ.get("VOUCH_REQUIRE_BROWSER") == "1":
        pytest.fail("VOUCH_REQUIRE_BROWSER=1 but " + INSTALL_HINT, pytrace=False)
    warnings.warn(INSTALL_HINT, stacklevel=1)
    print("\n" + "!" * 100 + "\n" + INSTALL_HINT + "\n" + "!" * 100)  # noqa: T201
    pytest.skip(INSTALL_HINT)


@dataclass
class LiveServer:
    url: str
    app: Any


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(
    settings: Settings, database_url: str, committing_engine: Any
) -> Iterator[LiveServer]:
    """The real app (own engine, real commits) in a background thread; data is truncated after
    the test by ``committing_engine``."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    live_settings = settings.model_copy(
        update={"database_url": database_url, "public_base_url": url, "click_flush_interval": 0.1}
    )
    app = create_app(live_settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(url=url, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver_path = _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=412,915",
        # A person's browser: HeadlessChrome's own user agent is classified as a bot (no
        # cookies, not a visit), as the preview services that use it are.
        "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0 Safari/537.36",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
