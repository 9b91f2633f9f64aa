"""The email HTML and the unsubscribe confirmation page in a real headless Chromium, at a phone
width (375 px) and a desktop mail-pane width (800 px): nothing overflows horizontally, and the
confirmation page's button really unsubscribes.

Needs Debian's `chromium` and `chromium-driver` (never a downloaded browser) and the `selenium`
package; skipped with the reason when they are missing. Screenshots go into the test's tmp dir
(the path is printed; set DIGEST_SCREENSHOTS=DIR to keep them somewhere).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.metrics import Metrics
from digest.tokens import make_token
from digest.web import RunningServer, make_app, start_server
from digest.web_rate import Rated

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTHS = (375, 800)
SECRET = b"browser-test-secret"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)

# Every element whose box (or content) leaves the viewport on the left or right, unless an ancestor clips
# or scrolls it (overflow hidden/auto/scroll), plus the document's own scroll width.
OVERFLOW_JS = """
const vw = window.innerWidth;
const clipped = (el) => {
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX;
    if (o === 'hidden' || o === 'auto' || o === 'scroll' || o === 'clip') return true;
  }
  return false;
};
const wide = [];
for (const el of document.querySelectorAll('body, body *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  // the box, or its content when that spills out of the box (overflow: visible)
  const right = Math.max(r.right, r.left + el.scrollWidth);
  if ((right > vw + 0.5 || r.left < -0.5 || r.width > vw + 0.5) && !clipped(el)) {
    wide.push(`${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''} [${Math.round(r.left)}, ${Math.round(right)}]`);
  }
}
return {vw: vw, scrollWidth: document.documentElement.scrollWidth, bodyScrollWidth: document.body.scrollWidth, wide: wide};
"""


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install -y {package})"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        pytest.skip(f"no headless Chromium: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"digest-chromium-{os.getpid()}"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=800,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_width(driver: Any, width: int) -> None:
    """Emulate a device `width` CSS px wide (mobile at phone widths: the viewport meta applies)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600,
    })


def screenshot(driver: Any, folder: Path, name: str) -> Path:
    """A full-page PNG (beyond the viewport)."""
    import base64

    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1},
    })
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def assert_no_horizontal_overflow(driver: Any, what: str) -> None:
    found = driver.execute_script(OVERFLOW_JS)
    assert found["scrollWidth"] <= found["vw"], f"{what}: page scrolls sideways: {found}"
    assert found["bodyScrollWidth"] <= found["vw"], f"{what}: body scrolls sideways: {found}"
    assert not found["wide"], f"{what}: elements wider than the {found['vw']} px viewport: {found['wide'][:10]}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ["DIGEST_SCREENSHOTS"]) if os.environ.get("DIGEST_SCREENSHOTS") else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture
def previews(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The HTML of real digests: `digest send --dry-run` over the saved payloads."""
    monkeypatch.chdir(project)
    out = project / "preview"
    result = CliRunner().invoke(cli, ["--config", "config/digest.yaml", "send", "--dry-run", "--date", "2025-10-09",
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("width", WIDTHS)
def test_email_html_fits_the_screen(browser: Any, previews: Path, shots: Path, width: int) -> None:
    set_width(browser, width)
    for page in sorted(previews.glob("*.html")):
        browser.get(page.as_uri())
        assert browser.execute_script("return window.innerWidth") == width
        assert browser.find_elements("css selector", "a[href*='/unsubscribe/']"), f"{page.name}: no unsubscribe link"
        assert_no_horizontal_overflow(browser, f"{page.name} at {width} px")
        screenshot(browser, shots, f"email-{page.stem}-{width}")


class WebServer:
    """digest.web's app on a real loopback port, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.known = {"alice"}
        self.unsubscribed: list[str] = []
        self.votes: dict[tuple[str, str], int] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: RunningServer | None = None

    def start(self) -> WebServer:
        app = make_app(
            secret=SECRET,
            unsubscribe=lambda sid: self.unsubscribed.append(sid) or True,
            is_known=lambda sid: sid in self.known,
            health=lambda: {"scheduler_running": True, "last_run": None, "next_run": None},
            metrics=Metrics(),
            rate=self.rate,
        )
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start_server(app, "127.0.0.1", 0), self.loop).result(10)
        return self

    def rate(self, sid: str, key: str, vote: int) -> Rated:
        previous = self.votes.pop((sid, key), 0)
        if vote:
            self.votes[(sid, key)] = vote
        return Rated(previous, "A paper's <title>")

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def web() -> Iterator[WebServer]:
    server = WebServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("width", WIDTHS)
def test_unsubscribe_page_fits_and_its_button_unsubscribes(browser: Any, web: WebServer, shots: Path, width: int) -> None:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert web.server is not None
    set_width(browser, width)
    url = f"{web.server.url}/unsubscribe/{make_token('alice', SECRET)}"
    browser.delete_all_cookies()
    browser.get(url)
    assert browser.title == "Unsubscribe"
    assert web.unsubscribed == []  # showing the page changes nothing
    assert_no_horizontal_overflow(browser, f"confirmation page at {width} px")
    button = browser.find_element("css selector", "button[type=submit]")
    assert button.text == "Unsubscribe" and button.size["width"] <= width
    screenshot(browser, shots, f"unsubscribe-confirm-{width}")

    button.click()
    WebDriverWait(browser, 10).until(ec.title_is("Unsubscribed"))
    assert "You are unsubscribed" in browser.find_element("css selector", "h1").text
    assert web.unsubscribed == ["alice"]  # the callback (the store, in the service) recorded it
    assert_no_horizontal_overflow(browser, f"done page at {width} px")
    screenshot(browser, shots, f"unsubscribe-done-{width}")

    browser.get(f"{web.server.url}/unsubscribe/{make_token('alice', b'forged')}")
    assert browser.title == "Invalid link"
    assert web.unsubscribed == ["alice"]


def test_a_rating_link_of_a_rendered_email_records_the_vote(browser: Any, web: WebServer, shots: Path,
                                                           tmp_path: Path) -> None:
    """Open the email, follow its first "More like this", confirm: the vote is recorded once."""
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from digest.render import Renderer
    from digest.tokens import RatingLinks
    from tests.test_render_data import CASES, NOW, UNSUB

    assert web.server is not None
    edition = CASES["keyword"]()
    sub = dataclasses.replace(edition.subscription, id="alice")
    edition = dataclasses.replace(edition, subscription=sub)
    links = RatingLinks(web.server.url, "alice", SECRET)
    page = tmp_path / "email.html"
    page.write_text(Renderer().render(edition, unsubscribe_url=UNSUB, now=NOW, rating_links=links).html)
    set_width(browser, 375)
    browser.get(page.as_uri())
    first = browser.find_element("css selector", "p.rate a")
    assert first.text == "More like this" and first.size["height"] >= 20  # small, still tappable
    first.click()
    WebDriverWait(browser, 10).until(ec.title_is("More like this?"))
    assert web.votes == {}  # showing the page records nothing
    assert_no_horizontal_overflow(browser, "rating confirmation at 375 px")
    screenshot(browser, shots, "rate-confirm-375")
    browser.find_element("css selector", "button[type=submit]").click()
    WebDriverWait(browser, 10).until(ec.title_is("More like this"))
    key = edition.papers[0].paper.key
    assert web.votes == {("alice", key): 1}
    assert "A paper's <title>" in browser.find_element("css selector", "p").text  # escaped, shown as text
    screenshot(browser, shots, "rate-done-375")
    browser.find_element("css selector", "button[type=submit]").click()  # undo
    WebDriverWait(browser, 10).until(ec.title_is("Rating removed"))
    assert web.votes == {}


def test_the_overflow_check_is_not_vacuous(browser: Any) -> None:
    set_width(browser, 375)
    browser.get("data:text/html,<meta name=viewport content='width=device-width'><body><div>ok</div>"
                "<pre>" + "x" * 200 + "</pre></body>")
    found = browser.execute_script(OVERFLOW_JS)
    assert found["scrollWidth"] > 375 and any(w.startswith("pre") for w in found["wide"])


# Links a reader taps, their heights; and the highlight's text/background contrast (WCAG formula).
TARGETS_JS = """
const out = [];
for (const a of document.querySelectorAll('.more a, .rate a, .meta a, .footer a')) {
  const r = a.getBoundingClientRect();
  out.push({text: a.textContent.trim().slice(0, 40), h: r.height});
}
const lum = (c) => {
  const v = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map(x => x / 255)
    .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
};
const marks = [];
for (const m of document.querySelectorAll('mark')) {
  const s = getComputedStyle(m);
  const [a, b] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
  marks.push((a + 0.05) / (b + 0.05));
}
return {targets: out, marks: marks, bg: getComputedStyle(document.body).backgroundColor};
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", WIDTHS)
def test_email_light_and_dark_tap_targets_and_highlights(browser: Any, previews: Path, shots: Path,
                                                          width: int, scheme: str) -> None:
    """Issue 13: every link in the "and N more" list, the rating links, the metadata links and the
    footer link is at least 24 px high; highlights keep a 4.5:1 contrast; dark mode is dark."""
    set_width(browser, width)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
    try:
        page = previews / "alice.html"
        browser.get(page.as_uri())
        assert_no_horizontal_overflow(browser, f"{page.name} at {width} px, {scheme}")
        found = browser.execute_script(TARGETS_JS)
        assert found["targets"] and found["marks"]
        small = [t for t in found["targets"] if t["h"] < 24]
        assert not small, f"tap targets under 24 px at {width} px: {small[:5]}"
        assert min(found["marks"]) >= 4.5, found["marks"]
        dark = found["bg"] not in ("rgb(243, 244, 246)", "rgb(255, 255, 255)")
        assert dark == (scheme == "dark"), found["bg"]
        screenshot(browser, shots, f"email-alice-{width}-{scheme}")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
