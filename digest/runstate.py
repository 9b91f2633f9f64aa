"""What one send run shares between its stages: the Delivery (what to send with) and each reader's
Outcome. The pipeline and the dispatcher both import this module and never each other's types.

A run can be *halted*: a fault that is not any reader's (the relay refuses our login or stopped
answering, the store cannot be written, a background task died) stops it starting new messages.
Every reader not sent then gets `skipped-deferred` with the one-line reason, their editions stay
pending (sent by the next run or tick), and the command exits 1 with that reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from digest.deliver import Mailer
from digest.render import Renderer
from digest.store import Store

__all__ = ["Outcome", "Delivery"]

log = logging.getLogger("digest.pipeline")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one subscriber in one run (its `--json` row: report.outcome_json)."""

    user: str
    status: str  # sent | dry-run | already-sent | failed | skipped-<reason>
    papers: int = 0
    message_id: str | None = None
    edition_date: dt.date | None = None
    error: str | None = None
    permanent: bool = False  # a failure the server said not to retry (5xx)
    seconds: float | None = None  # time the mailer took to deliver
    size: int | None = None  # bytes of the message delivered

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class Delivery:
    """Everything `send_editions` needs besides the subscribers and papers."""

    store: Store
    mailer: Mailer
    renderer: Renderer
    sender: str
    public_url: str
    secret: bytes
    worker: str
    lease: dt.timedelta = dt.timedelta(minutes=10)
    suspend_after: int = 3
    sent_status: str = "sent"  # "dry-run" when the mailer only writes previews
    on_outcome: Callable[[Outcome], None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # set: start nothing new
    # A pending edition (or one a dead worker held) whose due instant is older than this is
    # expired, never sent late. None: no limit. A fresh edition is never expired.
    edition_max_age: dt.timedelta | None = None
    # The real clock, for claim leases: `now` of a run is its start, and a run can outlast a lease.
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.timezone.utc))
    halted: str | None = None  # set by `halt`: why this run stopped starting new messages

    def halt(self, reason: str) -> None:
        """Stop this run (only this one: `stop` may be the service's) from starting new messages.
        The first reason wins; it is logged once."""
        if self.halted is None:
            self.halted = reason
            log.error("run halted: %s", reason)

    def stopping(self) -> bool:
        return self.halted is not None or self.stop.is_set()

    def stopped(self, sub_id: str, day: dt.date | None) -> Outcome:
        """The outcome of a reader this run will not send to because it is stopping."""
        if self.halted is not None:
            return Outcome(sub_id, "skipped-deferred", edition_date=day, error=self.halted)
        return Outcome(sub_id, "skipped-stopping", edition_date=day)
