""""Edit your interests" in Debian's headless Chromium, against the real `digest run` on loopback,
from the link of a real digest received by aiosmtpd: at 375 px and 800 px (and dark at 375 px)
nothing overflows; without JavaScript a reader previews new keywords, then changes keywords and
time and saves, and the subscription file keeps the operator's comments.

Screenshots go into the test's tmp dir, or DIGEST_SCREENSHOTS=DIR (README's docs/manage*.png
come from here: see README, "Letting readers subscribe")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.service_helpers import Service, digest_cli, next_minute_send_at, wait_for
from tests.smtpd import SmtpServer
from tests.test_browser import WIDTHS, assert_no_horizontal_overflow, browser, screenshot, set_width, shots  # noqa: F401
from tests.test_manage_service import TZ, first_digest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def scripts(driver: Any, enabled: bool) -> None:
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": not enabled})


def dark(driver: Any, on: bool) -> None:
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]})


def fill_keywords(driver: Any, *terms: tuple[str, str]) -> None:
    from selenium.webdriver.common.by import By

    for i, (term, weight) in enumerate(terms):
        for name, value in ((f"term-{i}", term), (f"weight-{i}", weight)):
            field = driver.find_element(By.ID, name)
            field.clear()
            field.send_keys(value)


def preview(driver: Any) -> bool:
    """Press Preview; whether the page shows an edition (the first press after the service
    started finds no papers yet and starts a fetch: the form comes back filled in, press again)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "button[value=preview]").click()
    wait_for(lambda: 'id="preview"' in driver.page_source, 10, "the preview")
    return "edition would hold" in driver.page_source


def test_preferences_in_chromium(browser: Any, shots: Path, tmp_path: Path, smtpd: SmtpServer) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    config, path, link = first_digest(tmp_path, smtpd)
    service = Service(config).start()
    try:
        service.wait_healthy()
        new = (("post-training", "2"), ("reinforcement learning", "1"))
        for width, dark_mode in [(w, False) for w in WIDTHS] + [(375, True)]:
            set_width(browser, width)
            dark(browser, dark_mode)
            scripts(browser, False)  # the page needs no JavaScript
            browser.get(link)
            fill_keywords(browser, *new)
            wait_for(lambda: preview(browser), 20, "a preview with papers", interval=0.5)
            scripts(browser, True)  # for the checks only
            assert_no_horizontal_overflow(browser, f"/manage at {width} px")
            trap = browser.find_element(By.CSS_SELECTOR, ".hp").rect
            assert trap["width"] <= 1 and trap["height"] <= 1  # the honeypot: not there for people
            screenshot(browser, shots, f"manage-{width}{'-dark' if dark_mode else ''}")
        dark(browser, False)
        assert "paused" not in path.read_text() and "post-training" not in path.read_text()  # a preview writes nothing

        # at 375 px, without JavaScript: new keywords and a new time, saved
        set_width(browser, 375)
        scripts(browser, False)
        browser.get(link)
        fill_keywords(browser, *new)
        send_at, _ = next_minute_send_at(TZ, margin=120)
        hours, minutes = (int(x) for x in send_at.split(":"))
        clock = browser.find_element(By.ID, "send_at")
        clock.send_keys(f"{hours % 12 or 12:02d}{minutes:02d}{'AM' if hours < 12 else 'PM'}")  # en-US time field
        browser.find_element(By.CSS_SELECTOR, "button[value=save]").click()
        wait_for(lambda: "Saved: your next digest follows these settings." in browser.page_source, 10, "the saved page")
        scripts(browser, True)
        assert_no_horizontal_overflow(browser, "the saved page at 375 px")
        screenshot(browser, shots, "manage-saved-375")
        text = path.read_text()
        for line in ("# Dora's digest. The operator wrote this file by hand; keep these comments.",
                     "timezone: Europe/Berlin   # she works in Berlin", "  # what she reads about",
                     "# she does not want these", "send_empty: true          # she likes to know when nothing matched"):
            assert line in text.splitlines(), text
        assert "  - {term: post-training, weight: 2}\n  - reinforcement learning\n" in text
        assert f'send_at: "{send_at}"' in text, text
        assert digest_cli(config, "check").returncode == 0
        assert service.stop() == 0
    finally:
        service.kill()
