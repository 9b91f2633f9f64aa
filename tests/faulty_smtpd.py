"""A real SMTP server (aiosmtpd, 127.0.0.1, port 0, own thread) that fails the way relays fail.

Builds on tests/smtpd.py (same `Received` records, same start/stop) and adds the faults that file
cannot express. Every knob is a plain attribute of `FaultyHandler`, changed between runs:

- `greet_421` (n): the next n connections get `421` instead of the greeting, then are closed.
- `silent_greeting`: connections are accepted and then nothing is ever said (no banner).
- `session_cap` (n): in each session, `421 … per session` on MAIL after n messages, then close
  (Amazon SES's "Maximum message count per session reached").
- `rcpt_replies` {address: reply}: this recipient always gets that RCPT reply ("550 …").
- `rcpt_temp` {address: n}: the first n RCPTs for this address get `rcpt_temp_reply` (451).
- `drop_in_data` (n): the next n messages: hang up when the body has arrived, store nothing, no reply.
- `silent_after_data` (n): the next n messages are STORED, then no reply, ever (RFC 1047: the
  client cannot know the server has the message).
- `reply_delay` (s): every message is stored first, then the 250 comes this much later (the window
  where a killed client leaves a delivered message unrecorded).
- `slow_rcpt` {address: s}: the DATA reply for this recipient comes s seconds late (not stored
  before the reply).
- `mail_reply`: every MAIL FROM gets this reply ("550 5.7.1 sender not allowed").
- `silent_after` (n): after n messages were stored, the server never answers a MAIL FROM again
  (a relay that stops mid-run).
- `reject_login()`: an authenticator that refuses every login (535), as for a wrong password.

It counts what it saw: `rcpt_attempts`/`data_attempts` per address, `commands` (every verb, in
order, e.g. to prove no AUTH was sent), `sessions`, `received_at` (monotonic time of each store).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from tests.smtpd import Received, SmtpServer

__all__ = ["FaultyHandler", "FaultySmtpServer", "Received"]


@dataclass
class FaultyHandler:
    received: list[Received] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    greet_421: int = 0
    silent_greeting: bool = False
    session_cap: int | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    rcpt_temp: dict[str, int] = field(default_factory=dict)
    rcpt_temp_reply: str = "451 4.3.0 try again later"
    drop_in_data: int = 0
    silent_after_data: int = 0
    reply_delay: float = 0.0
    slow_rcpt: dict[str, float] = field(default_factory=dict)
    mail_reply: str | None = None
    silent_after: int | None = None
    sessions: int = 0
    commands: list[str] = field(default_factory=list)
    rcpt_attempts: Counter = field(default_factory=Counter)
    data_attempts: Counter = field(default_factory=Counter)
    capped: int = 0  # how many times session_cap closed a session
    unanswered: int = 0  # messages stored whose 250 is still being held back (reply_delay)

    def _store(self, envelope: Envelope) -> None:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        self.received_at.append(time.monotonic())

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        done = getattr(session, "messages_done", 0)
        if self.session_cap is not None and done >= self.session_cap:
            self.capped += 1
            asyncio.get_running_loop().call_soon(server.transport.close)  # after the reply is written
            return "421 4.7.0 Maximum message count per session reached"
        if self.silent_after is not None and len(self.received) >= self.silent_after:
            await asyncio.Event().wait()  # cancelled when the client gives up and hangs up
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        self.rcpt_attempts[address] += 1
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        if self.rcpt_temp.get(address, 0) > 0:
            self.rcpt_temp[address] -= 1
            return self.rcpt_temp_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            self.data_attempts[address] += 1
        if self.drop_in_data > 0:
            self.drop_in_data -= 1
            server.transport.close()
            return "250 never seen"
        slow = max((self.slow_rcpt.get(a, 0.0) for a in envelope.rcpt_tos), default=0.0)
        if slow:
            await asyncio.sleep(slow)
        self._store(envelope)
        session.messages_done = getattr(session, "messages_done", 0) + 1  # type: ignore[attr-defined]
        if self.silent_after_data > 0:
            self.silent_after_data -= 1
            await asyncio.Event().wait()  # cancelled when the client gives up and hangs up
        if self.reply_delay:
            self.unanswered += 1
            try:
                await asyncio.sleep(self.reply_delay)
            finally:
                self.unanswered -= 1
        return "250 2.0.0 queued"

    @property
    def messages(self) -> list:
        return [r.message for r in self.received]

    def by_recipient(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for r in self.received:
            for rcpt in r.rcpt_tos:
                out.setdefault(rcpt, []).append(r)
        return out


class _FaultySMTP(SMTP):
    """aiosmtpd's SMTP with connect-level faults and a log of every command verb."""

    async def _handle_client(self) -> None:
        handler: FaultyHandler = self.event_handler  # type: ignore[assignment]
        if handler.silent_greeting:
            await asyncio.Event().wait()
            return
        if handler.greet_421 > 0:
            handler.greet_421 -= 1
            await self.push("421 4.3.2 service not available, try later")
            self.transport.close()  # type: ignore[union-attr]
            return
        await super()._handle_client()

    async def smtp_EHLO(self, arg: str) -> None:
        self.event_handler.commands.append("EHLO")
        await super().smtp_EHLO(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        self.event_handler.commands.append("AUTH")
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str) -> None:
        self.event_handler.commands.append("MAIL")
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str) -> None:
        self.event_handler.commands.append("DATA")
        await super().smtp_DATA(arg)

    async def smtp_STARTTLS(self, arg: str) -> None:
        self.event_handler.commands.append("STARTTLS")
        await super().smtp_STARTTLS(arg)


def accept_any_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object) -> AuthResult:
    return AuthResult(success=True)


def reject_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object) -> AuthResult:
    return AuthResult(success=False, handled=False)


class FaultySmtpServer(SmtpServer):
    """`FaultySmtpServer().start()`; `offer_auth=True` advertises AUTH without TLS (to prove a client
    that must not send credentials does not); other keywords go to aiosmtpd's SMTP."""

    def __init__(self, handler: FaultyHandler | None = None, *, offer_auth: bool = False, **smtp_kwargs: object) -> None:
        kwargs: dict[str, object] = {}
        if offer_auth:
            kwargs = {"authenticator": accept_any_login, "auth_require_tls": False}
        kwargs.update(smtp_kwargs)  # e.g. tls_context=…, require_starttls=True (then AUTH only after TLS)
        super().__init__(handler or FaultyHandler(), **kwargs)  # type: ignore[arg-type]

    def _factory(self) -> SMTP:
        self.handler.sessions += 1
        kwargs = {"data_size_limit": 10_000_000, "hostname": "test.local"}
        kwargs.update(self._smtp_kwargs)
        return _FaultySMTP(self.handler, **kwargs)  # type: ignore[arg-type]
