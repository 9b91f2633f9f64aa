"""Delivery against a real SMTP server on loopback, and into a real Maildir."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import mailbox
from pathlib import Path

import pytest

from digest.deliver.files import MaildirMailer, PreviewMailer
from digest.deliver.smtp import SmtpMailer
from digest.errors import PermanentDeliveryError, TemporaryDeliveryError
from digest.models import OutgoingMessage
from tests.smtpd import SmtpServer


def message(n: int = 0, to: str = "reader@example.org") -> OutgoingMessage:
    data = (
        f"From: Digest <d@example.org>\r\nTo: {to}\r\nSubject: test {n}\r\n"
        f"Message-ID: <m{n}@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
        "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello</p>\r\n--b--\r\n"
    ).encode()
    return OutgoingMessage(f"u{n}", dt.date(2026, 11, 21), "d@example.org", to, f"<m{n}@example.org>", data)


def mailer(server: SmtpServer, **kwargs: object) -> SmtpMailer:
    options = {"tls": "none", "timeout": 5, "deadline": 5, "backoff_initial": 0.01, "backoff_max": 0.05}
    options.update(kwargs)
    return SmtpMailer(host=server.host, port=server.port, **options)  # type: ignore[arg-type]


async def send_all(m: SmtpMailer, messages: list[OutgoingMessage]) -> list[object]:
    async with m:
        return await asyncio.gather(*(m.send(x) for x in messages), return_exceptions=True)


def test_many_messages_over_few_reused_connections(smtpd: SmtpServer) -> None:
    results = asyncio.run(send_all(mailer(smtpd, connections=2, messages_per_connection=10), [message(i) for i in range(30)]))
    assert all(isinstance(r, str) for r in results)
    got = sorted(m["Subject"] for m in smtpd.handler.messages)
    assert got == sorted(f"test {i}" for i in range(30))
    assert smtpd.handler.received[0].rcpt_tos == ["reader@example.org"]
    assert 3 <= smtpd.handler.sessions <= 4  # 30 messages / 10 per connection, over 2 connections


def test_a_4xx_is_retried_and_then_accepted(smtpd: SmtpServer) -> None:
    smtpd.handler.rcpt_reply, smtpd.handler.rcpt_times = "451 4.3.0 try again later", 2
    (result,) = asyncio.run(send_all(mailer(smtpd, retries=3), [message()]))
    assert isinstance(result, str)
    assert len(smtpd.handler.received) == 1


def test_a_4xx_that_persists_is_temporary(smtpd: SmtpServer) -> None:
    smtpd.handler.data_reply = "452 4.3.1 insufficient storage"
    (result,) = asyncio.run(send_all(mailer(smtpd, retries=2), [message()]))
    assert isinstance(result, TemporaryDeliveryError) and result.code == 452


def test_a_5xx_is_permanent_and_not_retried(smtpd: SmtpServer) -> None:
    smtpd.handler.rcpt_reply = "550 5.1.1 no such user"
    results = asyncio.run(send_all(mailer(smtpd, retries=3), [message(0, "gone@example.org"), message(1)]))
    assert isinstance(results[0], PermanentDeliveryError) and "550 5.1.1 no such user" in str(results[0])
    assert smtpd.handler.rcpt_times == 10**9 - 2  # one try for each message, no retries


def test_starttls_required_but_not_offered_sends_nothing(smtpd: SmtpServer) -> None:
    (result,) = asyncio.run(send_all(mailer(smtpd, tls="starttls", retries=2), [message()]))
    assert isinstance(result, TemporaryDeliveryError) and "STARTTLS" in str(result)
    assert smtpd.handler.received == []


def test_a_server_that_never_answers_hits_the_per_message_deadline(smtpd: SmtpServer) -> None:
    smtpd.handler.data_delay = 3.0
    (result,) = asyncio.run(send_all(mailer(smtpd, deadline=0.5, retries=0), [message()]))
    assert isinstance(result, TemporaryDeliveryError) and "within 0.5 s" in str(result)


def test_maildir_outbox_is_a_standard_maildir(tmp_path: Path) -> None:
    async def go() -> str:
        async with MaildirMailer(tmp_path / "outbox") as m:
            return await m.send(message())

    receipt = asyncio.run(go())
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    (stored,) = list(box)
    assert stored["Subject"] == "test 0"
    assert receipt.startswith(str(tmp_path / "outbox" / "new"))


def test_preview_writes_eml_html_and_text(tmp_path: Path) -> None:
    async def go() -> None:
        async with PreviewMailer(tmp_path / "out") as m:
            await m.send(message())

    asyncio.run(go())
    parsed = email.message_from_bytes((tmp_path / "out" / "u0.eml").read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "test 0"
    assert (tmp_path / "out" / "u0.txt").read_text().strip() == "hello"
    assert (tmp_path / "out" / "u0.html").read_text().strip() == "<p>hello</p>"
