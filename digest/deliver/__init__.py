"""Deliver stage: hand a built message to a mail server, a Maildir, or a preview folder.

Every Mailer has the same shape, so `--dry-run` is just another Mailer chosen at the edge:

    async with mailer:
        receipt = await mailer.send(message)   # raises Temporary/PermanentDeliveryError

`send` is safe to call from many tasks at once; a Mailer bounds its own concurrency.
"""

from __future__ import annotations

from typing import Protocol

from digest.models import OutgoingMessage

__all__ = ["Mailer"]


class Mailer(Protocol):
    concurrency: int  # how many sends are worth running at once

    async def __aenter__(self) -> Mailer: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def send(self, message: OutgoingMessage) -> str:
        """Deliver one message; return a short receipt (the server's reply, or the file written)."""
        ...
