""""Edit your interests" against the real `digest run` on loopback, from the link of a real digest
received by aiosmtpd: GET changes nothing; a preview ranks the service's papers and writes
nothing; invalid input comes back inline with the messages of `digest check`; a save rewrites the
file keeping the operator's comments and order (mode 0600, still valid), re-arms the reader at
once, and the next edition follows the new keywords and time; a forged, expired or altered link,
a form without its token, a replayed form and a form older than the file on disk change nothing;
ratings are listed with undo; unsubscribe and subscribe again; nothing private in the logs."""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
import stat
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.store import open_store
from digest.tokens import ManageLinks, make_token
from tests.service_helpers import (
    Service, digest_cli, http, local_send_at, make_project, next_minute_send_at, reader, wait_for,
)
from tests.smtpd import SmtpServer

pytestmark = pytest.mark.slow

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KEY = secrets.token_hex(32)
UTC = dt.timezone.utc
TZ = "Europe/Berlin"
PAPER = "arxiv:2510.01135"  # Prompt Curriculum Learning for Efficient LLM Post-Training

DORA = """\
# Dora's digest. The operator wrote this file by hand; keep these comments.
email: dora@example.org
timezone: Europe/Berlin   # she works in Berlin
send_at: "{send_at}"
keywords:
  # what she reads about
  - graph neural networks   # her thesis
# she does not want these
exclude: [robotics]
send_empty: true          # she likes to know when nothing matched
"""


class Forms(HTMLParser):
    """The fields of every form of a page, as a browser would send them (buttons left out)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self.actions: list[str | None] = []
        self._field: tuple[str, str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({})
            self.actions.append(a.get("action"))
        elif tag == "input" and self.forms and a.get("name") and (a.get("type") != "checkbox" or "checked" in a):
            self.forms[-1][a["name"]] = a.get("value", "")
        elif tag in ("textarea", "select") and self.forms:
            self._field = (tag, a["name"])
            self.forms[-1][a["name"]] = ""
        elif tag == "option" and self._field and "selected" in a:
            self.forms[-1][self._field[1]] = a["value"]

    def handle_data(self, data: str) -> None:
        if self._field and self._field[0] == "textarea":
            self.forms[-1][self._field[1]] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("textarea", "select"):
            self._field = None


def post(url: str, fields: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    return http("POST", url, data=urllib.parse.urlencode(fields).encode(), headers=FORM)


def notice(page: str) -> str:
    match = re.search(r'<div class="note[^"]*" role="status">(.*?)</div>', page, re.S)
    return html.unescape(match.group(1)) if match else ""


def with_keywords(form: dict[str, str], *terms: tuple[str, str]) -> dict[str, str]:
    out = {k: v for k, v in form.items() if not k.startswith(("term-", "weight-"))}
    for i, (term, weight) in enumerate(terms):
        out[f"term-{i}"], out[f"weight-{i}"] = term, weight
    return out


def votes(base: Path) -> list[tuple[str, int]]:
    store = open_store(f"sqlite:///{base / 'data' / 'digest.db'}", read_only=True)
    try:
        return [(r.key, r.vote) for r in store.ratings_many(["dora"], "hash-v1")["dora"]]
    finally:
        store.close()


def first_digest(tmp_path: Path, smtpd: SmtpServer) -> tuple[Path, Path, str]:
    """A project with dora (a commented file) and bob; yesterday's edition sent to dora by
    `digest send` through aiosmtpd, her rating of PAPER recorded by `digest rate`. Returns the
    settings file, dora's file and the "Edit your interests" link of her digest."""
    later, _ = local_send_at(TZ, minutes=150)  # nothing else due while the test runs
    config = make_project(tmp_path, smtpd, {"bob": reader("bob@example.org", timezone=TZ, send_at=later)},
                          secret_key=KEY)
    path = config.parent / "subscriptions" / "dora.yaml"
    path.write_text(DORA.format(send_at=later))
    yesterday = dt.datetime.now(ZoneInfo(TZ)).date() - dt.timedelta(days=1)
    sent = digest_cli(config, "send", "--user", "dora", "--date", yesterday.isoformat())
    assert sent.returncode == 0, sent.stderr
    rated = digest_cli(config, "rate", "dora", "--up", PAPER)
    assert rated.returncode == 0, rated.stderr
    [message] = smtpd.handler.messages
    text = message.get_body(("plain",)).get_content()
    [link] = re.findall(r"Edit your interests \(keywords, time, how often, pause\): (\S+)", text)
    assert html.escape(link) in message.get_body(("html",)).get_content()
    return config, path, link


def test_preferences_end_to_end(tmp_path: Path, smtpd: SmtpServer) -> None:
    config, path, link = first_digest(tmp_path, smtpd)
    service = Service(config).start()
    try:
        service.wait_healthy()
        assert link.startswith(service.url + "/manage/")
        original, before = path.read_bytes(), path.stat()

        def unchanged() -> bool:
            now = path.stat()
            return path.read_bytes() == original and (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

        # GET (a link scanner) changes nothing: the form, filled in from the file
        status, page, headers = http("GET", link)
        assert status == 200 and "<script" not in page and "dora@example.org" in page
        assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-store"
        form = Forms(page).forms[0]
        assert form["term-0"] == "graph neural networks" and form["exclude"] == "robotics"
        assert form["timezone"] == TZ and form["frequency"] == "daily" and form["max_papers"] == "5"
        assert "Prompt Curriculum Learning" in page and "more like this" in page  # her rating, listed
        assert unchanged()

        # forged, expired, altered, another purpose's token: 400 for GET and POST, nothing written
        token = link.rsplit("/", 1)[1]
        now = dt.datetime.now(UTC)
        forged = ManageLinks(service.url, secrets.token_bytes(32), now=now).token("dora")
        expired = ManageLinks(service.url, KEY.encode(), now=now - dt.timedelta(days=61)).token("dora")
        altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        for bad in (forged, expired, altered, make_token("dora", KEY.encode()), "nonsense"):
            for method in ("GET", "POST"):
                status, body, _ = (http("GET", f"{service.url}/manage/{bad}") if method == "GET"
                                   else post(f"{service.url}/manage/{bad}", {**form, "action": "save", "paused": "1"}))
                assert status == 400 and ("expired" in body if bad == expired else "not valid" in body), (method, bad)
        # a form without its token, a forged one, bob's, or with the honeypot filled: 400
        bob_page = http("GET", ManageLinks(service.url, KEY.encode(), now=now)("bob"))[1]
        bob_csrf = Forms(bob_page).forms[0]["csrf"]
        for bad_form in ({k: v for k, v in form.items() if k != "csrf"}, {**form, "csrf": "1.AAAAAAAAAAAAAAAAAAAAAA.x.y"},
                         {**form, "csrf": bob_csrf}, {**form, "website": "http://spam.example"}):
            status, body, _ = post(link, {**bad_form, "action": "save", "paused": "1"})
            assert status == 400 and "Nothing was changed" in body
        assert unchanged()

        # invalid input: the form again (400) with the messages of `digest check`, nothing written
        status, body, _ = post(link, {**with_keywords(form, ("LoRA", "abc")), "timezone": "Mars/Olympus", "action": "save"})
        assert status == 400 and "Nothing was saved" in body
        assert "unknown time zone &#x27;Mars/Olympus&#x27; (use an IANA name like Europe/Berlin)" in body
        assert "Keyword 1: Input should be a valid number" in body and 'value="Mars/Olympus"' in body
        assert unchanged()

        # preview: the service has fetched nothing yet (its only digest was sent by `digest send`),
        # so it fetches in the background; then the real ranker's edition for the new keywords
        wanted = with_keywords(form, ("post-training", "2"), ("reinforcement learning", "1"))
        status, body, _ = post(link, {**wanted, "action": "preview"})
        assert status == 200 and "being fetched" in body

        def previewed() -> str | None:
            body = post(link, {**wanted, "action": "preview"})[1]
            return body if "today's edition would hold" in body else None

        body = wait_for(previewed, 20, "a preview with papers", interval=0.5)
        listed = re.search(r"<ol>(.*?)</ol>", body, re.S).group(1)
        assert "Prompt Curriculum Learning for Efficient LLM Post-Training" in listed and "post-training" in listed
        assert Forms(body).forms[0]["term-0"] == "post-training"  # the form keeps what was typed
        assert unchanged()

        # save: new keywords and time; the file keeps its comments and order
        send_at, when = next_minute_send_at(TZ, margin=10)
        status, body, _ = post(link, {**wanted, "send_at": send_at, "action": "save"})
        assert status == 200 and notice(body).startswith("Saved"), notice(body)
        assert f"at {send_at} ({TZ})" in body  # the next digest, re-armed at once
        text = path.read_text()
        for comment in ("# Dora's digest. The operator wrote this file by hand; keep these comments.",
                        "timezone: Europe/Berlin   # she works in Berlin", "  # what she reads about",
                        "# she does not want these", "send_empty: true          # she likes to know when nothing matched"):
            assert comment in text.splitlines(), text
        assert "# her thesis" not in text  # it went with its keyword
        assert "  - {term: post-training, weight: 2}\n  - reinforcement learning\n" in text
        assert f'send_at: "{send_at}"' in text
        keys = [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]
        assert keys == ["email", "timezone", "send_at", "keywords", "exclude", "send_empty"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sorted(p.name for p in path.parent.iterdir()) == ["bob.yaml", "dora.yaml"]  # nothing else
        check = digest_cli(config, "check")
        assert check.returncode == 0, check.stdout + check.stderr
        saved = path.read_bytes()

        # the same form again (a replay): 409, nothing written
        status, body, _ = post(link, {**wanted, "send_at": send_at, "action": "save"})
        assert status == 409 and "sent already" in notice(body) and path.read_bytes() == saved

        # the operator edits the file while a page is open: that page's save changes nothing (409)
        stale = Forms(http("GET", link)[1]).forms[0]
        path.write_text(text.replace("send_empty: true", "send_empty: true\nmax_papers: 4  # the operator's edit"))
        status, body, _ = post(link, {**stale, "paused": "1", "action": "save"})
        assert status == 409 and "changed since you opened this page" in notice(body)
        assert "the operator&#x27;s edit" not in body and Forms(body).forms[0]["max_papers"] == "4"  # as it is now
        assert "max_papers: 4  # the operator's edit" in path.read_text() and "paused" not in path.read_text()

        # the next edition follows the new keywords, at the new time
        def todays() -> list:
            return [m for m in smtpd.handler.messages[1:] if "dora@example.org" in m["To"]]

        [digest] = wait_for(todays, (when - dt.datetime.now(UTC)).total_seconds() + 30, "dora's next edition")
        body_text = digest.get_body(("plain",)).get_content()
        assert "Matching your interests: post-training, reinforcement learning" in " ".join(body_text.split())
        assert "Prompt Curriculum Learning for Efficient LLM" in body_text

        # her rating: undo removes it, the notice's Undo puts it back
        page = http("GET", link)[1]
        forms = Forms(page).forms
        [undo] = [f for f in forms if f.get("paper") == PAPER]
        status, body, _ = post(link, {**undo, "action": "unrate"})
        assert status == 200 and "rating is removed" in notice(body) and votes(tmp_path) == []
        [again] = [f for f in Forms(body).forms if f.get("vote") == "1"]
        status, body, _ = post(link, {**again, "action": "rate"})
        assert status == 200 and votes(tmp_path) == [(PAPER, 1)]
        forged_paper = {**again, "paper": "arxiv:9999.99999"}
        assert post(link, {**forged_paper, "action": "rate"})[0] == 400 and votes(tmp_path) == [(PAPER, 1)]

        # unsubscribe from the page (the unsubscribe link's own endpoint), then subscribe again
        parsed = Forms(page)
        [action] = [a for a in parsed.actions if a and "unsubscribe" in a]
        status, body, _ = post(urllib.parse.urljoin(link, action), {"List-Unsubscribe": "One-Click"})
        assert status == 200 and "You are unsubscribed" in body
        page = http("GET", link)[1]
        assert "You unsubscribed on" in notice(page)
        [back] = [f for f in Forms(page).forms if len(f) == 1 and "csrf" in f][:1]
        status, body, _ = post(link, {**back, "action": "resubscribe"})
        assert status == 200 and "Welcome back" in notice(body)

        logs = service.text()
        assert "/manage/<redacted>" in logs and "preferences saved" in logs
        for private in ("dora@example.org", token, "post-training", "Mars/Olympus"):
            assert private not in logs, private
        assert service.stop() == 0
    finally:
        service.kill()


def test_rate_limits(tmp_path: Path, smtpd: SmtpServer) -> None:
    """60 POSTs an hour per reader: then 429 with Retry-After, and nothing is written."""
    config, path, link = first_digest(tmp_path, smtpd)
    service = Service(config).start()
    try:
        service.wait_healthy()
        form = Forms(http("GET", link)[1]).forms[0]
        codes = [post(link, {**form, "timezone": "Nowhere/Else", "action": "save"})[0] for _ in range(61)]
        assert codes[:60] == [400] * 60 and codes[60] == 429
        status, body, headers = post(link, {**form, "action": "save", "paused": "1"})
        assert status == 429 and int(headers["Retry-After"]) > 0 and "paused" not in path.read_text()
        assert http("GET", link)[0] == 200  # reading is not limited
        assert service.stop() == 0
    finally:
        service.kill()
