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
* A temporary or permanent failure about the reader (RCPT, DATA) is recorded at once for that
  reader (and may suspend them). A failure of the relay (RelayError) is never the reader's: the
  claim is given back (pending) and, when it halts, the run halts.
* The background tasks (senders, committer, renewer) are supervised: one that dies halts the run
  with its error, so nothing ever waits for a task that is gone. A store error while recording
  halts the run too (sending on without recording would only make duplicates).
* A halt (`delivery.halt`) cancels the senders, gives every queued claim back unsent as
  `skipped-deferred`; a stop (`delivery.stop`) lets the messages in flight finish and gives the
  queued claims back as `skipped-stopping`. On the way out (normally, or on an error or
  cancellation) the buffer is committed and every claim not sent is released.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from digest.editions import Built
from digest.errors import DeliveryError, DigestError, RelayError, StoreError
from digest.models import OutgoingMessage
from digest.runstate import Delivery, Outcome
from digest.store import SentEdition

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
        self._senders = [self._spawn(self._sender()) for _ in range(n)]
        self._helpers = [self._spawn(self._committer()), self._spawn(self._renewer())]
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None and not self.delivery.halted:
                for _ in self._senders:
                    await self.queue.put(None)
            else:
                for task in self._senders:
                    task.cancel()
            await asyncio.gather(*self._senders, return_exceptions=True)
        finally:
            for task in self._senders:
                task.cancel()
            self._drain()  # queued and never taken (a halt): given back
            while self.accepted:  # whatever the server accepted is recorded, whatever happens next
                self._commit()
            for task in self._helpers:
                task.cancel()
            await asyncio.gather(*self._helpers, return_exceptions=True)
            for job in list(self.held.values()):  # claimed and never sent: give them back
                self._release(job)

    # -- supervision ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        task.add_done_callback(self._supervise)
        return task

    def _supervise(self, task: asyncio.Task[None]) -> None:
        """A background task that ended with an error halts the run: nobody waits for it."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.error("a delivery task died", exc_info=error)
        self.halt(str(error) if isinstance(error, DigestError) else f"internal error: {error!r}")

    def halt(self, reason: str) -> None:
        """Stop starting messages: the senders are cancelled (each gives its claim back) and the
        queue is drained; the pipeline stops claiming."""
        if self.delivery.halted is None:
            self.delivery.halt(reason)
        current = asyncio.current_task()
        for task in self._senders:
            if task is not current:
                task.cancel()
        self._drain()

    def _drain(self) -> None:
        while not self.queue.empty():
            job = self.queue.get_nowait()
            if job is not None:
                self._give_back(job)

    def _give_back(self, job: Job) -> None:
        """A claim this run will not send: released, with the outcome of a stopping run."""
        self._release(job)
        self.done(job.index, self.delivery.stopped(*job.key))

    def hold(self, index: int, sub_id: str, day: dt.date, paper_keys: tuple[str, ...]) -> Job:
        """An edition this worker has just claimed: its claim is renewed from now on, and given back
        if the run ends before it is sent."""
        job = Job(index, sub_id, day, paper_keys)
        self.held[job.key] = job
        return job

    async def put(self, job: Job, built: Built) -> None:
        """Queue a held edition, now built, for sending (waits while the queue is full)."""
        (sub_id, day) = job.key
        if self.delivery.stopping():
            self._give_back(job)
            return
        if built.status != "ok":  # rendering failed: this reader fails, the edition stays claimable
            self._release(job)
            log.error("edition failed", extra={"subscriber": sub_id, "date": day.isoformat(), "error": built.error})
            self.done(job.index, Outcome(sub_id, "failed", edition_date=day, error=built.error))
            return
        job.built = built
        await self.queue.put(job)

    # -- senders ------------------------------------------------------------------------------

    async def _sender(self) -> None:
        while not self.delivery.halted:  # a halt cancels the other senders; this one ends here
            job = await self.queue.get()
            if job is None:
                return
            await self._send(job)

    async def _send(self, job: Job) -> None:
        d, (sub_id, day), index = self.delivery, job.key, job.index
        if d.stopping():
            self._give_back(job)
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
        except RelayError as exc:  # the relay's fault, not this reader's: pending (with the reason), never counted
            if exc.halts:
                self.halt(str(exc))
            self.held.pop(job.key, None)
            try:
                d.store.mark_failed(sub_id, day, error=str(exc), permanent=False, now=self.now)
            except StoreError as store_exc:
                self.halt(f"store: {store_exc}")
            self.done(index, Outcome(sub_id, "skipped-deferred", edition_date=day, error=str(exc)))
            return
        except DeliveryError as exc:
            self.held.pop(job.key, None)
            self.done(index, self._failure(job, exc))
            return
        except Exception as exc:  # a bug: this reader fails, their edition stays claimable, others go on
            log.exception("sending failed unexpectedly", extra={"subscriber": sub_id})
            self._release(job)
            self.done(index, Outcome(sub_id, "failed", edition_date=day, error=f"internal error: {exc!r}"))
            return
        except BaseException:  # cancelled (a halt, or the run's own cancellation)
            if d.halted:
                self._give_back(job)
            else:
                self._release(job)
            raise
        job.seconds = time.monotonic() - started
        self.accepted.append(job)
        self._wake.set()

    def _failure(self, job: Job, exc: DeliveryError) -> Outcome:
        d, (sub_id, day) = self.delivery, job.key
        try:
            d.store.mark_failed(sub_id, day, error=str(exc), permanent=exc.permanent, now=self.now)
            if exc.permanent and d.store.permanent_failures_in_a_row(sub_id) >= d.suspend_after:
                d.store.suspend(sub_id, reason=str(exc), now=self.now)
                log.warning("subscriber suspended", extra={"subscriber": sub_id, "error": str(exc)})
        except StoreError as store_exc:  # cannot record: sending on would only pile up more of this
            log.error("failure not recorded", extra={"subscriber": sub_id, "error": str(store_exc)})
            self.halt(f"store: {store_exc}")
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
            self.halt(f"store: cannot record {len(batch)} delivered editions: {exc}")
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
