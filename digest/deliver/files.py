"""Mailers that write files: the Maildir outbox (no SMTP server configured) and the dry-run preview."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
from pathlib import Path

from digest.errors import RelayError
from digest.models import OutgoingMessage

__all__ = ["MaildirMailer", "PreviewMailer"]


class MaildirMailer:
    """Delivers into a standard Maildir (`new/`), which any mail client can open.

    `mailbox.Maildir` writes into `tmp/` and then links into `new/`, so a crash never leaves half
    a message in `new/`.
    """

    concurrency = 1

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box: mailbox.Maildir | None = None

    async def __aenter__(self) -> MaildirMailer:
        try:
            self._box = mailbox.Maildir(self.path, create=True)
        except OSError as exc:
            raise RelayError(f"cannot open Maildir {self.path}: {exc.strerror}", halts=True) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._box = None

    async def send(self, message: OutgoingMessage) -> str:
        assert self._box is not None, "use `async with MaildirMailer(...)`"
        try:
            key = await asyncio.to_thread(self._box.add, message.data.replace(b"\r\n", b"\n"))
        except OSError as exc:
            raise RelayError(f"cannot write to Maildir {self.path}: {exc.strerror}", halts=True) from None
        return f"{self.path}/new/{key}"


class PreviewMailer:
    """`--dry-run`: writes `<id>.eml`, `<id>.html` and `<id>.txt` into a folder and sends nothing."""

    concurrency = 1

    def __init__(self, out: Path) -> None:
        self.out = out

    async def __aenter__(self) -> PreviewMailer:
        self.out.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> str:
        parsed = email.message_from_bytes(message.data, policy=email.policy.default)
        eml = self.out / f"{message.subscriber_id}.eml"
        eml.write_bytes(message.data)
        for part in parsed.walk():
            kind = part.get_content_type()
            if kind in ("text/plain", "text/html"):
                suffix = ".txt" if kind == "text/plain" else ".html"
                path = self.out / f"{message.subscriber_id}{suffix}"
                path.write_text(part.get_content(), encoding="utf-8")
        return str(eml)
