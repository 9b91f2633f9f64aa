"""A real SMTP server (aiosmtpd) on 127.0.0.1, port 0, in its own thread and event loop.

It records what it accepts, and injects faults on the server side, the way a real relay fails:
set `handler.rcpt_reply` / `handler.data_reply` to a reply line ("451 4.3.0 try later"), a number
of times with `*_times`; `handler.data_delay` to answer slowly; `handler.drop_on_data` to hang up
after receiving the message without answering.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    received: list[Received] = field(default_factory=list)
    rcpt_reply: str | None = None
    rcpt_times: int = 10**9
    data_reply: str | None = None
    data_times: int = 10**9
    data_delay: float = 0.0
    drop_on_data: bool = False
    sessions: int = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        if self.rcpt_reply and self.rcpt_times > 0:
            self.rcpt_times -= 1
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.drop_on_data:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            server.transport.close()
            return "250 never seen"
        if self.data_reply and self.data_times > 0:
            self.data_times -= 1
            return self.data_reply
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 queued"

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]


class SmtpServer:
    """Start with `start()`, stop with `stop()`; `port` is the bound port."""

    def __init__(self, handler: RecordingHandler | None = None, **smtp_kwargs: object) -> None:
        self.handler = handler or RecordingHandler()
        self.host = "127.0.0.1"
        self.port = 0
        self._smtp_kwargs = smtp_kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def _factory(self) -> SMTP:
        self.handler.sessions += 1
        kwargs = {"data_size_limit": 10_000_000, "hostname": "test.local"}
        kwargs.update(self._smtp_kwargs)
        return SMTP(self.handler, **kwargs)  # type: ignore[arg-type]

    def start(self) -> SmtpServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(self._factory, self.host, 0), self._loop
        )
        self._server = future.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
