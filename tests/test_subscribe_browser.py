"""The signup page in Debian's headless Chromium at 375 px and 800 px: nothing overflows, the form
works without JavaScript, and the confirmation link's button writes the subscription file."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.subscribe import Draft
from digest.subscribe_files import write_subscription
from tests.service_helpers import wait_for
from tests.test_browser import WIDTHS, assert_no_horizontal_overflow, browser, screenshot, set_width, shots  # noqa: F401
from tests.test_subscribe import SignupServer

pytestmark = pytest.mark.browser


@pytest.fixture
def signup(tmp_path: Path) -> Iterator[SignupServer]:
    folder = tmp_path / "subs"

    def create(draft: Draft) -> Any:
        return write_subscription(folder, draft, now=dt.datetime.now(dt.timezone.utc))

    server = SignupServer(create=create).start()
    server.folder = folder  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("width", WIDTHS)
def test_signup_in_chromium(browser: Any, signup: SignupServer, shots: Path, width: int) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})  # no JavaScript
    set_width(browser, width)
    browser.get(signup.server.url + "/subscribe")
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})  # for the checks only
    assert_no_horizontal_overflow(browser, f"/subscribe at {width} px")
    assert browser.find_element(By.ID, "timezone").get_attribute("value") == "UTC"
    trap = browser.find_element(By.CSS_SELECTOR, ".hp").rect
    assert trap["width"] <= 1 and trap["height"] <= 1  # the honeypot: not there for people
    screenshot(browser, shots, f"subscribe-form-{width}")
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.find_element(By.ID, "email").send_keys(f"ada{width}@lab.example.org")
    browser.find_element(By.ID, "keywords").send_keys("mixture of experts\nLoRA")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "Check your inbox" in browser.page_source, 10, "the answer page")
    [message] = wait_for(lambda: signup.sent, 5, "the confirmation email")
    link = re.search(rb"(/subscribe/confirm/[A-Za-z0-9_-]+)", message.data.replace(b"=\r\n", b"")).group(1).decode()
    browser.get(signup.server.url + link)
    assert "mixture of experts, LoRA" in browser.page_source
    assert not signup.folder.exists() or not list(signup.folder.iterdir())  # type: ignore[attr-defined]
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "You are subscribed" in browser.page_source, 10, "the done page")
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    assert_no_horizontal_overflow(browser, f"done page at {width} px")
    screenshot(browser, shots, f"subscribe-done-{width}")
    assert [p.name for p in signup.folder.iterdir()] == [f"ada{width}.yaml"]  # type: ignore[attr-defined]
