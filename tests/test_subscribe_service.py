"""`/subscribe` against the real `digest run` on loopback, with aiosmtpd receiving the mail:
subscribe → the confirmation arrives → GET on its link changes nothing → POST confirms → the file
exists (mode 0600), passes `digest check`, is armed at once, and the next edition goes to the new
reader; an address already subscribed gets the same page and a different mail; forged, altered
and expired links, a missing CSRF token and the honeypot change nothing; the rate limit answers
429; nothing of the address reaches the logs."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import stat
import time
import urllib.parse
from pathlib import Path

import pytest

from digest.subscribe import Draft, make_confirm_token
from tests.service_helpers import (
    Service, digest_cli, http, local_send_at, make_project, next_minute_send_at, reader, wait_for,
)
from tests.smtpd import SmtpServer

pytestmark = pytest.mark.slow

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KEY = secrets.token_hex(32)
UTC = dt.timezone.utc


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def post_form(url: str, fields: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    return http("POST", url + "/subscribe", data=urllib.parse.urlencode(fields).encode(), headers=FORM)


def mails_to(smtpd: SmtpServer, address: str) -> list:
    return [r.message for r in smtpd.handler.received if address in r.rcpt_tos]


def test_subscribe_end_to_end(tmp_path: Path, smtpd: SmtpServer) -> None:
    tz = "Europe/Berlin"
    later, _ = local_send_at(tz, minutes=150)  # bob: no edition due while the test runs
    config = make_project(tmp_path, smtpd, {"bob": reader("bob@example.org", timezone=tz, send_at=later)},
                          signup="open", secret_key=KEY)
    subs = config.parent / "subscriptions"
    service = Service(config).start()
    try:
        service.wait_healthy()
        url = service.url
        status, page, headers = http("GET", url + "/subscribe")
        assert status == 200 and 'name="email"' in page and 'name="keywords"' in page and "<script" not in page
        assert 'value="UTC"' in page and "mixture of experts" in page
        assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-store"

        send_at, when = next_minute_send_at(tz, margin=8)
        fields = {"csrf": csrf_of(page), "email": "Carol@Example.org", "keywords": "reasoning\r\nreinforcement learning",
                  "timezone": tz, "send_at": send_at, "frequency": "daily", "website": ""}
        status, sent_page, _ = post_form(url, fields)
        assert status == 200 and "Check your inbox" in sent_page
        [confirm] = wait_for(lambda: mails_to(smtpd, "Carol@example.org"), 10, "the confirmation email")
        assert confirm["Subject"] == "Confirm your paper digest subscription"
        text = confirm.get_body(("plain",)).get_content()
        link = re.search(r"(http://\S+/subscribe/confirm/[A-Za-z0-9_-]+)", text).group(1)
        assert link.startswith(url) and "48 hours" in text and "reinforcement learning" in text
        assert sorted(p.name for p in subs.iterdir()) == ["bob.yaml"]  # nothing written yet

        # GET (a link scanner) shows a button and changes nothing
        status, body, _ = http("GET", link)
        assert status == 200 and body.count("<form") == 1 and "Confirm" in body and "Carol@example.org" in body
        # forged, altered, expired: 400 for GET and POST, nothing written
        token = link.rsplit("/", 1)[1]
        draft = Draft("mallory@example.org", ("x",), "UTC", "07:00", "daily")
        forged = make_confirm_token(draft, secrets.token_bytes(32), now=dt.datetime.now(UTC))
        expired = make_confirm_token(draft, KEY.encode(), now=dt.datetime.now(UTC) - dt.timedelta(hours=49))
        altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        for bad in (forged, expired, altered, "nonsense"):
            for method in ("GET", "POST"):
                status, body, _ = http(method, f"{url}/subscribe/confirm/{bad}", data=b"" if method == "POST" else None)
                assert status == 400 and "not valid" in body, (method, bad)
        assert sorted(p.name for p in subs.iterdir()) == ["bob.yaml"]

        # POST confirms: the file, restrictive, valid, armed at once; the page says when
        status, body, _ = http("POST", link, data=b"", headers=FORM)
        assert status == 200 and "You are subscribed" in body, body
        assert f"at {send_at} ({tz})" in body
        path = subs / "carol.yaml"
        assert sorted(p.name for p in subs.iterdir()) == ["bob.yaml", "carol.yaml"]  # no temporary left
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "reinforcement learning" in path.read_text() and "Carol@example.org" in path.read_text()
        check = digest_cli(config, "check")
        assert check.returncode == 0 and "2 valid subscription(s), 0 invalid" in check.stdout + check.stderr, check.stderr
        assert service.health()["subscribers"] == 2  # picked up without waiting for the rescan
        status, body, _ = http("POST", link, data=b"", headers=FORM)  # replayed: nothing more
        assert status == 200 and "Already subscribed" in body and len(list(subs.iterdir())) == 2

        # an address already subscribed: the same page, a different mail, nothing written
        status, page, _ = http("GET", url + "/subscribe")
        status, again, _ = post_form(url, {**fields, "csrf": csrf_of(page), "email": "bob@example.org"})
        assert status == 200 and again == sent_page
        [note] = wait_for(lambda: mails_to(smtpd, "bob@example.org"), 10, "the already-subscribed email")
        assert note["Subject"] == "Your paper digest subscription" and "already subscribed" in note.get_content()
        assert "/subscribe/confirm/" not in note.get_content()
        # with bob's "Edit your interests" link: his settings page, and nothing in it is written
        manage = re.search(r"(http://\S+/manage/[A-Za-z0-9_-]+)", note.get_content()).group(1)
        status, body, _ = http("GET", manage)
        assert manage.startswith(url) and status == 200 and "bob@example.org" in body and 'name="term-0" value=""' in body  # he has no keywords

        # no CSRF token, a forged one: 400; the honeypot: the usual page, nothing sent
        before = len(smtpd.handler.received)
        for bad_csrf in ({}, {"csrf": "1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"}):
            form = {k: v for k, v in fields.items() if k != "csrf"} | bad_csrf | {"email": "dave@example.org"}
            status, body, _ = post_form(url, form)
            assert status == 400 and "expired" in body
        status, page, _ = http("GET", url + "/subscribe")
        status, body, _ = post_form(url, {**fields, "csrf": csrf_of(page), "email": "eve@example.org",
                                          "website": "http://spam.example"})
        assert status == 200 and body == sent_page

        # the next edition goes to the new reader, at their send_at
        digest = wait_for(lambda: [m for m in mails_to(smtpd, "Carol@example.org") if "Confirm" not in m["Subject"]],
                          (when - dt.datetime.now(UTC)).total_seconds() + 30, "carol's first digest")[0]
        assert "/unsubscribe/" in digest["List-Unsubscribe"]
        assert not [m for m in smtpd.handler.received[before:] if {"dave@example.org", "eve@example.org"} & set(m.rcpt_tos)]

        # the per-client limit (10 an hour): 429 with Retry-After, and no mail for the refused
        answers = []
        for n in range(12):
            status, page, _ = http("GET", url + "/subscribe")
            answers.append(post_form(url, {**fields, "csrf": csrf_of(page), "email": f"r{n}@example.org"}))
        codes = [a[0] for a in answers]
        assert codes[:8] == [200] * 8 and codes[-1] == 429, codes  # 2 signups above + 8 = 10
        assert int(answers[-1][2]["Retry-After"]) > 0 and "Too many" in answers[-1][1]
        time.sleep(1)
        assert not mails_to(smtpd, "r11@example.org")

        logs = service.text()
        assert "/subscribe/confirm/<redacted>" in logs and "signup confirmed" in logs
        assert "/manage/<redacted>" in logs
        for private in ("carol@example.org", "Carol@example.org", "bob@example.org", token, manage):
            assert private not in logs
        assert service.stop() == 0
    finally:
        service.kill()


def test_closed_by_default(tmp_path: Path) -> None:
    config = make_project(tmp_path, None, {})
    service = Service(config).start()
    try:
        service.wait_healthy()
        for method in ("GET", "POST"):
            status, _, _ = http(method, service.url + "/subscribe", data=b"" if method == "POST" else None)
            assert status == 404
        assert service.stop() == 0
    finally:
        service.kill()
