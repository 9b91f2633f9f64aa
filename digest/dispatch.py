"""Dispatch: claimed, built messages → the Mailer → the store, recorded by group commit.

    async with Dispatcher(delivery, now=..., done=..., finish=...) as dispatcher:
        job = dispatcher.hold(index, subscriber_id, day, paper_keys)  # an edition this worker claimed
        ...                                                           # built meanwhile (renewed)
        await dispatcher.put(job, built)                              # queued for sending

* `2 × mailer.concurrency` senders take messages from a bounded queue (the queue is the
  back-pressure that keeps rendering at most a couple of chunks ahead of SMTP).
* A message the server accepted joins the commit buffer; the committer records everything in
  the buffer as sent, papers seen, in ONE transaction (`Store.mark_sent_many`), then reports those
  outcomes. It runs as soon as it can, so each commit holds only what was accepted while the
  previous one ran (at most MAX_COMMIT editions): nothing is ever recorded before its message was
  accepted, and a crash can lose the record of at most the buffer, whose resend carries the same
  Message-ID.
* One renewer extends the lease of every claim held (being built, queued, in flight, or accepted
  and not yet committed) every quarter of the lease.
* A temporary or permanent failure is recorded at once for that reader (and may suspend them);
  a stop (`delivery.stop`) gives queued claims back unsent; on the way out (normally, or on an
  error or cancellation) the buffer is committed and every claim not sent is released.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from digest.editions import Built
from digest.errors import DeliveryError, DigestError
from digest.models import OutgoingMessage
from digest.store import SentEdition

if TYPE_CHECKING:
    from digest.pipeline import Delivery, Outcome

__all__ = ["Dispatcher", "Job", "MAX_COMMIT"]

log = logging.getLogger("digest.pipeline")

MAX_COMMIT = 64  # editions recorded in one transaction at most


class Job:
    """A claimed edition on its way: built, sent, then recorded (or given back)."""

    __slots__ = ("index", "key", "paper_keys", "built", "message", "receipt", "seconds")

    def __init__(self, index: int, sub_id: str, day: dt.date, paper_keys: tuple[str, ...]) -> None:
        self.index = index  # the reader's position in the run's subscriber list
        self.key = (sub_id, day)
        self.paper_keys = paper_keys  # every paper the edition delivers
        self.built: Built | None = None
        self.message: OutgoingMessage | None = None
        self.receipt = ""
        self.seconds = 0.0


class Dispatcher:
    def __init__(
        self,
        delivery: Delivery,
        *,
        now: dt.datetime,
        done: Callable[[int, Outcome], None],
        finish: Callable[[Built], OutgoingMessage],
        queue_size: int = 64,
    ) -> None:
        self.delivery = delivery
        self.finish = finish  # the message of a built edition (its MIME bytes, made if need be)
        self.now = now
        self.done = done
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue(max(1, queue_size))
        self.held: dict[tuple[str, dt.date], Job] = {}  # claimed by us, no final outcome yet
        self.accepted: list[Job] = []  # accepted by the server, not yet committed
        self._wake = asyncio.Event()
        self._senders: list[asyncio.Task[None]] = []
        self._helpers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Dispatcher:
        n = max(1, self.delivery.mailer.concurrency) * 2
        self._senders = [asyncio.create_task(self._sender()) for _ in range(n)]
        self._helpers = [asyncio.create_task(self._committer()), asyncio.create_task(self._renewer())]
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                for _ in self._senders:
                    await self.queue.put(None)
                await asyncio.gather(*self._senders)
            else:
                for task in self._senders:
                    task.cancel()
                await asyncio.gather(*self._senders, return_exceptions=True)
        finally:
            for task in self._senders:
                task.cancel()
            while self.accepted:  # whatever the server accepted is recorded, whatever happens next
                self._commit()
            for task in self._helpers:
                task.cancel()
            await asyncio.gather(*self._helpers, return_exceptions=True)
            for job in list(self.held.values()):  # claimed and never sent: give them back
                self._release(job)

    def hold(self, index: int, sub_id: str, day: dt.date, paper_keys: tuple[str, ...]) -> Job:
        """An edition this worker has just claimed: its claim is renewed from now on, and given back
        if the run ends before it is sent."""
        job = Job(index, sub_id, day, paper_keys)
        self.held[job.key] = job
        return job

    async def put(self, job: Job, built: Built) -> None:
        """Queue a held edition, now built, for sending (waits while the queue is full)."""
        from digest.pipeline import Outcome

        (sub_id, day) = job.key
        if built.status != "ok":  # rendering failed: this reader fails, the edition stays claimable
            self._release(job)
            log.error("edition failed", extra={"subscriber": sub_id, "date": day.isoformat(), "error": built.error})
            self.done(job.index, Outcome(sub_id, "failed", edition_date=day, error=built.error))
            return
        job.built = built
        await self.queue.put(job)

    # -- senders ------------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            job = await self.queue.get()
            if job is None:
                return
            await self._send(job)

    async def _send(self, job: Job) -> None:
        from digest.pipeline import Outcome

        d, (sub_id, day), index = self.delivery, job.key, job.index
        if d.stop.is_set():
            self._release(job)
            self.done(index, Outcome(sub_id, "skipped-stopping", edition_date=day))
            return
        assert job.built is not None
        try:
            job.message = self.finish(job.built)
            job.built = None  # the rendered parts are not needed any more
        except DigestError as exc:  # cannot be built: this reader fails, the edition stays claimable
            self._release(job)
            log.error("edition failed", extra={"subscriber": sub_id, "date": day.isoformat(), "error": str(exc)})
            self.done(index, Outcome(sub_id, "failed", edition_date=day, error=str(exc)))
            return
        started = time.monotonic()
        try:
            job.receipt = await d.mailer.send(job.message)
        except DeliveryError as exc:
            self.held.pop(job.key, None)
            self.done(index, self._failure(job, exc))
            return
        except Exception as exc:  # a bug: this reader fails, their edition stays claimable, others go on
            log.exception("sending failed unexpectedly", extra={"subscriber": sub_id})
            self._release(job)
            self.done(index, Outcome(sub_id, "failed", edition_date=day, error=f"internal error: {exc!r}"))
            return
        except BaseException:
            self._release(job)
            raise
        job.seconds = time.monotonic() - started
        self.accepted.append(job)
        self._wake.set()

    def _failure(self, job: Job, exc: DeliveryError) -> Outcome:
        from digest.pipeline import Outcome

        d, (sub_id, day) = self.delivery, job.key
        try:
            d.store.mark_failed(sub_id, day, error=str(exc), permanent=exc.permanent, now=self.now)
            if exc.permanent and d.store.permanent_failures_in_a_row(sub_id) >= d.suspend_after:
                d.store.suspend(sub_id, reason=str(exc), now=self.now)
                log.warning("subscriber suspended", extra={"subscriber": sub_id, "error": str(exc)})
        except DigestError as store_exc:
            log.error("failure not recorded", extra={"subscriber": sub_id, "error": str(store_exc)})
        log.error(
            "edition failed",
            extra={"subscriber": sub_id, "date": day.isoformat(), "error": str(exc), "permanent": exc.permanent},
        )
        return Outcome(sub_id, "failed", edition_date=day, error=str(exc), permanent=exc.permanent)

    def _release(self, job: Job) -> None:
        self.held.pop(job.key, None)
        try:
            self.delivery.store.release(*job.key, worker=self.delivery.worker)
        except DigestError as exc:  # the lease runs out on its own
            log.warning("claim not released", extra={"subscriber": job.key[0], "error": str(exc)})

    # -- group commit ---------------------------------------------------------------------------

    async def _committer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.accepted:
                self._commit()
                await asyncio.sleep(0)  # let the senders run between two transactions

    def _commit(self) -> None:
        from digest.pipeline import Outcome

        d = self.delivery
        batch = self.accepted[:MAX_COMMIT]
        del self.accepted[: len(batch)]
        sent = []
        for job in batch:
            assert job.message is not None
            sent.append(SentEdition(job.key[0], job.key[1], job.message.message_id, job.paper_keys))
        try:
            d.store.mark_sent_many(sent, now=self.now)
        except DigestError as exc:  # accepted but not recorded: the claim's lease runs out, the resend is the same message
            for job in batch:
                self.held.pop(job.key, None)
                log.error("edition failed", extra={"subscriber": job.key[0], "date": job.key[1].isoformat(), "error": str(exc)})
                self.done(job.index, Outcome(job.key[0], "failed", edition_date=job.key[1], error=str(exc)))
            return
        for job in batch:
            self.held.pop(job.key, None)
            (sub_id, day), message = job.key, job.message
            assert message is not None
            log.info(
                "edition %s",
                d.sent_status,
                extra={
                    "subscriber": sub_id,
                    "date": day.isoformat(),
                    "papers": len(job.paper_keys),
                    "message_id": message.message_id,
                    "receipt": job.receipt,
                    "bytes": len(message.data),
                },
            )
            self.done(
                job.index,
                Outcome(sub_id, d.sent_status, len(job.paper_keys), message.message_id, day, seconds=job.seconds,
                        size=len(message.data)),
            )

    # -- leases ---------------------------------------------------------------------------------

    async def _renewer(self) -> None:
        every = max(self.delivery.lease.total_seconds() / 4, 0.05)
        while True:
            await asyncio.sleep(every)
            if self.held:
                self.renew(list(self.held))

    def renew(self, keys: list[tuple[str, dt.date]]) -> None:
        """Extend the lease of these claims (all held by this worker) from now."""
        d = self.delivery
        try:
            d.store.renew_many(keys, worker=d.worker, until=d.clock() + d.lease)
        except DigestError as exc:  # the sends go on; at worst another worker may take over late
            log.warning("claims not renewed", extra={"claims": len(keys), "error": str(exc)})
