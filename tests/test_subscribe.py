"""The pieces of `/subscribe`: the `signup` setting, the form's validation, the confirmation and
CSRF tokens, the rate limiter, the id and the atomic file write; and the page in-process (on a
real loopback port) for a domain-restricted instance and the per-address limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.config import load_settings
from digest.config.settings import SignupDomains
from digest.errors import ConfigError
from digest.metrics import Metrics
from digest.models import OutgoingMessage
from digest.subscribe import (
    Draft, RateLimiter, address_hash, allowed, make_confirm_token, make_form_token, parse_form,
    verify_confirm_token, verify_form_token,
)
from digest.subscribe_files import subscriber_id_for, write_subscription
from digest.tokens import make_token, verify_token
from digest.web import RunningServer, make_app, start_server
from tests.service_helpers import http, wait_for
from tests.test_browser import WebServer

SECRET = b"s" * 32
NOW = dt.datetime(2025, 10, 9, 6, 0, tzinfo=dt.timezone.utc)
DRAFT = Draft("ada@lab.example.org", ("LoRA", "mixture of experts"), "Europe/Berlin", "07:30", "weekdays")


# -- the setting ----------------------------------------------------------------------------------


def test_signup_setting(tmp_path: Path) -> None:
    path = tmp_path / "digest.yaml"
    path.write_text("sender: d@example.org\n")
    assert load_settings(path).signup == "closed"
    path.write_text("signup: open\n")
    assert load_settings(path).signup == "open"
    path.write_text("signup:\n  domains: [Lab.Example.org, '@other.example']\n")
    assert load_settings(path).signup == SignupDomains(domains=["lab.example.org", "other.example"])
    for bad, message in (
        ("signup: maybe\n", "must be closed, open, or {domains: [lab.example.org, ...]}"),
        ("signup: {domains: []}\n", "domains: List should have at least 1 item"),
        ("signup: {domains: [not a domain]}\n", "domains: not a domain name: 'not a domain' (like lab.example.org)"),
        ("signup: {domain: [x.org]}\n", "domain: unknown setting"),
    ):
        path.write_text(bad)
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        [problem] = str(info.value).splitlines()
        assert problem.startswith(f"{path}:1: signup: ") and message in problem, problem


def test_who_may_subscribe() -> None:
    domains = SignupDomains(domains=["lab.example.org"])
    assert allowed("open", "x@anywhere.example")
    assert not allowed("closed", "x@lab.example.org")
    assert allowed(domains, "x@lab.example.org") and allowed(domains, "x@LAB.example.org")
    assert not allowed(domains, "x@evil-lab.example.org") and not allowed(domains, "x@sub.lab.example.org")


# -- the form -------------------------------------------------------------------------------------


def test_form_is_validated_like_digest_check() -> None:
    draft, errors = parse_form({"email": " Ada@Lab.Example.ORG ", "keywords": "LoRA\r\n\r\nmixture of experts\nLoRA",
                                "timezone": "Europe/Berlin", "send_at": "7:30", "frequency": "weekdays"})
    assert errors == {} and draft == Draft("Ada@lab.example.org", ("LoRA", "mixture of experts"),
                                           "Europe/Berlin", "07:30", "weekdays")
    draft, errors = parse_form({"email": "nope", "timezone": "Mars/Olympus", "send_at": "25:00", "frequency": "hourly",
                                "keywords": "\n".join(f"k{i}" for i in range(31))})
    assert draft is None and set(errors) == {"email", "timezone", "send_at", "frequency", "keywords"}
    assert "unknown time zone 'Mars/Olympus'" in errors["timezone"]
    assert parse_form({})[1]["email"] == "required"
    assert parse_form({"email": "a@example.org"}) == (Draft("a@example.org"), {})  # UTC, 07:00, daily


# -- tokens ---------------------------------------------------------------------------------------


def test_confirmation_token() -> None:
    token = make_confirm_token(DRAFT, SECRET, now=NOW)
    assert verify_confirm_token(token, SECRET, now=NOW + dt.timedelta(hours=47)) == DRAFT
    assert verify_confirm_token(token, SECRET, now=NOW + dt.timedelta(hours=48, seconds=1)) is None  # expired
    assert verify_confirm_token(token, b"o" * 32, now=NOW) is None  # another key
    assert verify_confirm_token(token, b"o" * 32, now=NOW, old_secrets=[SECRET]) == DRAFT  # key rotation
    for bad in (token[:-1], token[:-2] + "AA", token + "A", "", "x" * 9000, "a/b", make_token("ada", SECRET)):
        assert verify_confirm_token(bad, SECRET, now=NOW) is None
    assert verify_token(token, SECRET) is None  # never an unsubscribe token either


def test_form_token() -> None:
    token = make_form_token(SECRET, now=1_000_000)
    assert verify_form_token(token, SECRET, now=1_000_000 + 7000)
    assert not verify_form_token(token, SECRET, now=1_000_000 + 7201)  # older than 2 h
    assert not verify_form_token(token, b"o" * 32, now=1_000_000)
    assert not verify_form_token(None, SECRET) and not verify_form_token("", SECRET)
    stamp, nonce, tag = token.split(".")
    assert not verify_form_token(f"{stamp}.{nonce[:-1]}B.{tag}", SECRET, now=1_000_000)
    assert make_form_token(SECRET, now=1) != make_form_token(SECRET, now=1)  # a fresh nonce each time


def test_address_hash_is_keyed() -> None:
    assert address_hash("Ada@x.org", SECRET) == address_hash("ada@x.org ", SECRET)
    assert address_hash("ada@x.org", SECRET) != address_hash("ada@x.org", b"o" * 32)
    assert re.fullmatch(r"[0-9a-f]{12}", address_hash("ada@x.org", SECRET))


def test_rate_limiter() -> None:
    limiter = RateLimiter(3, 3600, max_keys=2)
    assert [limiter.hit("a", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limiter.retry_after("a", now=3) == 3598
    assert limiter.hit("a", now=3601)  # the first hit left the window
    limiter.hit("b", now=4), limiter.hit("c", now=5)  # at most two keys are kept: "a" is forgotten
    assert limiter.hit("a", now=3602) and limiter.hit("a", now=3603)


# -- the file -------------------------------------------------------------------------------------


def test_id_from_the_address() -> None:
    assert subscriber_id_for("Ada.Lovelace+ml@x.org") == "ada.lovelace-ml"
    assert subscriber_id_for("ada@x.org", {"ada", "ada-2"}) == "ada-3"
    assert subscriber_id_for("../../etc/passwd@x.org") == "etc-passwd"
    assert subscriber_id_for('"..."@x.org') == "reader"
    assert subscriber_id_for("é@x.org") == "reader"
    assert len(subscriber_id_for("a" * 64 + "@x.org")) == 40


def test_write_is_atomic_restrictive_and_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    first = write_subscription(folder, DRAFT, now=NOW)
    assert first.id == "ada" and first.path == folder.resolve() / "ada.yaml"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert first.keywords[1].term == "mixture of experts" and first.send_at == dt.time(7, 30)
    text = first.path.read_text()
    (folder / "ada-2.yml").write_text("email: someone@else.org\n")  # the operator's file
    second = write_subscription(folder, DRAFT, now=NOW, known_ids={"ada-3"})
    assert second.id == "ada-4" and first.path.read_text() == text
    assert sorted(os.listdir(folder)) == ["ada-2.yml", "ada-4.yaml", "ada.yaml"]  # nothing else left
    with pytest.raises(ConfigError):  # does not validate: nothing is written
        write_subscription(folder, Draft("bob@x.org", timezone="Mars/Olympus"), now=NOW)
    assert sorted(os.listdir(folder)) == ["ada-2.yml", "ada-4.yaml", "ada.yaml"]


# -- the page, in-process -------------------------------------------------------------------------


class SignupServer(WebServer):
    """make_app with /subscribe on a loopback port, in a thread; records what it would send."""

    def __init__(self, **subscribe: object) -> None:
        self.sent: list[OutgoingMessage] = []
        self.created: list[Draft] = []
        self.subscribe = subscribe
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: RunningServer | None = None

    async def send(self, message: OutgoingMessage) -> None:
        self.sent.append(message)

    def start(self) -> SignupServer:
        options = {"signup": "open", "public_url": "http://127.0.0.1:1", "sender": "Digest <d@example.org>",
                   "send": self.send, "subscribed": lambda email: False, "create": self.created.append,
                   **self.subscribe}
        app = make_app(secret=SECRET, unsubscribe=lambda s: True, is_known=lambda s: False,
                       health=lambda: {"scheduler_running": True}, metrics=Metrics(), subscribe=options)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start_server(app, "127.0.0.1", 0), self.loop).result(10)
        return self

    def post(self, **fields: str) -> tuple[int, str, dict[str, str]]:
        _, page, _ = http("GET", self.server.url + "/subscribe")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, **fields}).encode()
        return http("POST", self.server.url + "/subscribe", data=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})


@pytest.fixture
def restricted() -> Iterator[SignupServer]:
    server = SignupServer(signup=SignupDomains(domains=["lab.example.org"]), per_address=(2, 3600)).start()
    try:
        yield server
    finally:
        server.stop()


def test_domain_restricted_instance(restricted: SignupServer) -> None:
    status, body, _ = restricted.post(email="eve@elsewhere.example")
    assert status == 403 and "Only addresses at lab.example.org can subscribe here." in body
    assert 'value="eve@elsewhere.example"' in body  # the form again, filled in
    status, body, _ = restricted.post(email="ada@lab.example.org", timezone="Mars/Olympus")
    assert status == 400 and "unknown time zone" in body and "&#x27;Mars/Olympus&#x27;" in body
    status, body, _ = restricted.post(email="ada@lab.example.org", keywords="<script>alert(1)</script>")
    assert status == 200 and "Check your inbox" in body
    [message] = wait_for(lambda: restricted.sent, 5, "the confirmation")
    assert message.recipient == "ada@lab.example.org" and b"/subscribe/confirm/" in message.data
    assert restricted.created == []  # nothing until confirmed


def test_per_address_limit(restricted: SignupServer) -> None:
    codes = [restricted.post(email="ada@lab.example.org")[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    assert restricted.post(email="bob@lab.example.org")[0] == 200  # another address still may
    wait_for(lambda: len(restricted.sent) == 3, 5, "three emails")
