"""`digest run`: the long-running service.

- Every subscriber has one APScheduler job, a DateTrigger at their next fire instant, computed by
  the pure functions in `digest.schedule` (so daylight-saving rules live in one tested place, not
  in a cron trigger). When it fires, the job queues the edition and re-arms itself.
- Queued editions are sent in small batches that share one fetch of the sources (cached for a
  few minutes), so 10,000 readers at 07:00 cost one fetch, not 10,000.
- On start, and after any downtime, the newest edition due within `catch_up` is sent once;
  older ones are logged as missed, never sent late in a burst.
- Subscription files are re-read every `rescan_interval` seconds and on SIGHUP. A file that
  becomes invalid is logged with path and line (once per change, not at every rescan), and that
  reader keeps their last valid version until the file is fixed; a new file is picked up and
  armed at the next rescan.
- A timer that fires later than `catch_up` (the host was suspended, the loop was stuck) is
  logged as missed and re-armed for the next edition; it is never lost.
- Editions left `pending` by a temporary failure are retried every few minutes until they are
  older than `edition_max_age`, then marked expired.
- With `signup` not `closed`, `/subscribe` is served (digest/web_subscribe.py): a confirmed
  signup's file is written into the folder and armed at once, without waiting for a rescan.
- SIGTERM/SIGINT: start nothing new, let messages in flight finish (bounded by the SMTP
  deadline), record them, exit 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import time
from collections.abc import Callable

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from digest.config import Settings, load_subscriptions
from digest.config.subscriptions import FileCache
from digest.deliver import Mailer
from digest.errors import ConfigError
from digest.metrics import Metrics
from digest.models import Paper, Subscription
from digest.pipeline import Delivery, Outcome, gather, send_editions
from digest.render import Renderer
from digest.schedule import due_edition, fire_time, missed_editions, next_fire
from digest.service_http import PROBE_EVERY, PROBE_TIMEOUT, ServiceHttp
from digest.store import FINISHED, Store
from digest.store.retention import prune_aside
from digest.store.sqlite import worker_id
from digest.web import start_server, stop_server

__all__ = ["Service", "parse_listen", "PROBE_TIMEOUT", "PROBE_EVERY"]

log = logging.getLogger("digest.service")
UTC = dt.timezone.utc


def parse_listen(listen: str) -> tuple[str, int]:
    """`0.0.0.0:8080`, `[::]:8080` or `:8080` → (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class Service(ServiceHttp):
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        mailer_factory: Callable[[], Mailer],
        secret: bytes,
        old_secrets: tuple[bytes, ...] = (),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
        batch_delay: float = 0.5,
        fetch_ttl: float = 300.0,
        retry_interval: float = 300.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.mailer_factory = mailer_factory
        self.secret = secret
        self.old_secrets = old_secrets  # accepted on links already mailed (key rotation)
        self.clock = clock
        self.batch_delay = batch_delay
        self.fetch_ttl = fetch_ttl
        self.retry_interval = retry_interval
        self.metrics = Metrics()
        self.renderer = Renderer()
        self.worker = worker_id()
        self.subs: dict[str, Subscription] = {}
        self.invalid: dict[str, tuple[str, ...]] = {}  # id -> problems of its broken file, as logged
        self._files = FileCache()  # a rescan re-reads only the files that changed
        self.queue: dict[str, dt.date] = {}
        self.stopping = asyncio.Event()
        self.delivery_stop = asyncio.Event()
        self.last_run: dt.datetime | None = None
        self.last_error: str | None = None  # why the last run halted; None: it did not
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._drain: asyncio.Task[None] | None = None
        self._papers: tuple[float, list[Paper]] | None = None
        self._sources_ok = False  # whether every source answered the last fetch (retention needs it)
        self._pruned_on: dt.date | None = None  # the UTC day this process last asked for the prune
        self.port: int | None = None
        self._probe: tuple[float, str | None] | None = None  # (when, error) of the last store probe
        self._probing: asyncio.Future[object] | None = None

    # -- life cycle ----------------------------------------------------------------------

    async def run(self) -> None:
        host, port = parse_listen(self.settings.listen)
        try:
            server = await start_server(self._app(), host, port)
        except OSError as exc:
            raise ConfigError(f"listen: cannot serve HTTP on {self.settings.listen}: {exc.strerror or exc}") from None
        self.port = server.port
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            self.reload()
            self.catch_up()
            # Coroutine jobs: APScheduler runs plain functions in a thread pool, but the store,
            # the queue and the scheduler's own state belong to this event loop.
            periodic = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
            self.scheduler.add_job(self._rescan_job, "interval", seconds=self.settings.rescan_interval,
                                   id="_rescan", **periodic)
            self.scheduler.add_job(self._retry_job, "interval", seconds=self.retry_interval, id="_retry", **periodic)
            self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
            self.scheduler.start()
            log.info("service started", extra={"listen": f"{host}:{server.port}", "subscribers": len(self.subs)})
            await self.stopping.wait()
        finally:
            await self._shutdown()
            await stop_server(server)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        log.info("stopping: no new editions; letting messages in flight finish")
        self.stopping.set()
        self.delivery_stop.set()

    async def _shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._drain is not None and not self._drain.done():
            grace = self.settings.smtp.deadline + 5
            try:
                await asyncio.wait_for(asyncio.shield(self._drain), timeout=grace)
            except TimeoutError:
                log.warning("messages still in flight after %s s; their editions stay pending", grace)
                self._drain.cancel()
                await asyncio.gather(self._drain, return_exceptions=True)  # claims released before exit
        log.info("service stopped")

    # -- subscriptions -------------------------------------------------------------------

    async def _rescan_job(self) -> None:
        self.reload()

    async def _retry_job(self) -> None:
        self.retry_pending()

    def reload(self) -> None:
        """Re-read the subscription folder; (re)arm changed readers; drop removed ones."""
        try:
            loaded = load_subscriptions(self.settings.subscriptions_dir, self.settings.source_names, cache=self._files)
        except Exception:  # an unreadable folder must not stop the service: keep what we have
            log.exception("could not re-read the subscription folder; keeping the current readers",
                          extra={"path": str(self.settings.subscriptions_dir)})
            return
        fresh = {s.id: s for s in loaded.subscriptions}
        invalid: dict[str, tuple[str, ...]] = {}
        for sub_id, problems in loaded.invalid.items():
            kept = self.subs.get(sub_id)
            invalid[sub_id] = tuple(str(p) for p in problems)
            if invalid[sub_id] != self.invalid.get(sub_id):  # log each new problem once, not every rescan
                for problem in problems:
                    log.error(
                        "invalid subscription file%s",
                        ": keeping the last valid version" if kept else "; reader skipped until it is fixed",
                        extra={"problem": str(problem), "path": problem.path, "line": problem.line,
                               "subscriber": sub_id},
                    )
            if kept is not None:
                fresh[sub_id] = kept
        for sub_id in set(self.invalid) - set(invalid):
            if sub_id in fresh:
                log.info("subscription file valid again", extra={"subscriber": sub_id})
        self.invalid = invalid
        for sub_id in set(self.subs) - set(fresh):
            log.info("subscription removed", extra={"subscriber": sub_id})
            self._unschedule(sub_id)
        for sub_id, sub in fresh.items():
            if self.subs.get(sub_id) != sub:
                self.subs[sub_id] = sub
                self._arm(sub)
        self.subs = fresh

    def _arm(self, sub: Subscription, *, after: dt.datetime | None = None) -> None:
        """Schedule the reader's next edition strictly after now (and after ``after``: the
        instant that just fired, so a timer that fires a hair early cannot fire twice)."""
        now = self.clock()
        day, when = next_fire(sub, max(now, after) if after is not None else now)
        self.scheduler.add_job(
            self._fire,
            DateTrigger(run_date=when, timezone=UTC),
            id=sub.id,
            args=(sub.id, day, when),
            replace_existing=True,
            misfire_grace_time=max(1, int(self.settings.catch_up.total_seconds())),
            coalesce=True,
        )

    def _unschedule(self, sub_id: str) -> None:
        if self.scheduler.get_job(sub_id):
            self.scheduler.remove_job(sub_id)

    async def _fire(self, sub_id: str, day: dt.date, when: dt.datetime | None = None) -> None:
        sub = self.subs.get(sub_id)
        if sub is None:
            return
        if when is not None:
            late = (self.clock() - when).total_seconds()
            log.info("edition due", extra={"subscriber": sub_id, "date": day.isoformat(),
                                           "scheduled": when.isoformat(), "late_ms": round(late * 1000)})
        self.enqueue(sub_id, day)
        self._arm(sub, after=when)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        """A reader's timer fired more than `catch_up` late: log it, arm the next edition."""
        sub = self.subs.get(event.job_id)
        if sub is None or self.stopping.is_set():
            return
        log.warning("edition missed: the timer fired later than catch_up; not sent late",
                    extra={"subscriber": sub.id, "scheduled": event.scheduled_run_time.isoformat()})
        self._arm(sub)

    def catch_up(self) -> None:
        """Queue each reader's newest edition due within `catch_up`; log older ones as missed."""
        now = self.clock()
        window = self.settings.catch_up
        history = {sub.id: self.store.editions(sub.id, limit=8) for sub in self.subs.values()}
        first_start = not any(history.values())  # nothing ever recorded: the service was never up, so never down
        for sub in self.subs.values():
            records = history[sub.id]
            recent = {r.edition_date: r.status for r in records}
            due = due_edition(sub, now, catch_up=window)
            if due is not None and recent.get(due[0]) in FINISHED:
                due = None  # already done before the restart: nothing to catch up
            if due is not None:
                log.info("edition due while the service was down: sending it now (catch-up)",
                         extra={"subscriber": sub.id, "date": due[0].isoformat(), "scheduled": due[1].isoformat()})
                self.enqueue(sub.id, due[0])
            if first_start:
                continue
            # Look back to the reader's last recorded edition (at most a week), or one day for a
            # reader with none yet.
            since = now - dt.timedelta(days=1)
            if records:
                last = fire_time(sub, max(recent))
                since = max(now - dt.timedelta(days=7), min(last, now) if last else since)
            for day in missed_editions(sub, since, now, catch_up=window):
                if day not in recent and (due is None or day != due[0]):
                    log.warning("edition missed while the service was down: older than catch_up, not sent late",
                                extra={"subscriber": sub.id, "date": day.isoformat(),
                                       "catch_up_s": window.total_seconds()})

    def retry_pending(self) -> None:
        """Re-queue editions a temporary failure left pending; expire those past edition_max_age."""
        now = self.clock()
        for sub in self.subs.values():
            for record in self.store.editions(sub.id, limit=3):
                if record.status != "pending":
                    continue
                due_at = fire_time(sub, record.edition_date) or now
                if now - due_at > self.settings.edition_max_age:
                    self.store.mark_expired(sub.id, record.edition_date, reason="older than edition_max_age", now=now)
                    log.warning("edition expired, never sent late",
                                extra={"subscriber": sub.id, "date": record.edition_date.isoformat()})
                else:
                    self.enqueue(sub.id, record.edition_date)

    # -- sending -------------------------------------------------------------------------

    def enqueue(self, sub_id: str, day: dt.date) -> None:
        if self.stopping.is_set():
            return
        self.queue[sub_id] = day
        self.metrics.editions_pending.set(len(self.queue))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._send_queued())

    async def _send_queued(self) -> None:
        await asyncio.sleep(self.batch_delay)  # let editions due at the same instant batch up
        while self.queue and not self.delivery_stop.is_set():
            batch, self.queue = self.queue, {}
            self.metrics.editions_pending.set(len(batch))  # still pending until sent or skipped
            subs = [self.subs[s] for s in batch if s in self.subs]
            try:
                await self._send(subs, batch)
            except Exception:  # a bug: log it, keep the service alive; editions stay claimable
                log.exception("sending a batch failed")
            self.metrics.editions_pending.set(len(self.queue))

    async def _send(self, subs: list[Subscription], dates: dict[str, dt.date]) -> None:
        now = self.clock()
        papers = await self._fetch(now)
        mailer = self.mailer_factory()
        delivery = Delivery(
            store=self.store,
            mailer=mailer,
            renderer=self.renderer,
            sender=self.settings.sender,
            public_url=self.settings.public_url,
            secret=self.secret,
            worker=self.worker,
            lease=self.settings.claim_lease,
            suspend_after=self.settings.suspend_after,
            edition_max_age=self.settings.edition_max_age,
            clock=self.clock,
            on_outcome=self._count,
            stop=self.delivery_stop,
        )
        async with mailer:
            outcomes = await send_editions(
                subs, papers, delivery, now=now, edition_date=dates, semantic=self.settings.semantic
            )
        self.last_run = self.clock()
        # A halted run (the relay or the store failed): its editions are pending again and the
        # retry job sends them; until a run gets through, /healthz says why nothing goes out.
        self.last_error = delivery.halted
        if delivery.halted is None and not any(o.failed for o in outcomes):
            self.metrics.run_succeeded()
        day = now.astimezone(dt.timezone.utc).date()
        if delivery.halted is None and self._sources_ok and self._pruned_on != day:  # once a day, off the loop
            self._pruned_on, listed = day, {p.key for p in papers}
            await prune_aside(
                self.settings.database_url, retention=self.settings.retention, listed=listed,
                complete=self._sources_ok, now=now,
            )  # fmt: skip

    def _count(self, outcome: Outcome) -> None:
        if outcome.status == "sent":
            self.metrics.sent(outcome.seconds)
        elif outcome.failed:
            self.metrics.failed("permanent" if outcome.permanent else "temporary")
        elif outcome.status.startswith("skipped-"):
            self.metrics.skipped(outcome.status.removeprefix("skipped-"))

    async def _fetch(self, now: dt.datetime) -> list[Paper]:
        if self._papers is not None and time.monotonic() - self._papers[0] < self.fetch_ttl:
            return self._papers[1]
        papers, results = await gather(self.settings.source_specs, day=now.date())
        for result in results:
            self.metrics.fetched(result.name, len(result.papers), error=not result.ok)
        if any(r.ok for r in results):
            self._papers = (time.monotonic(), papers)
            self._sources_ok = all(r.ok for r in results)
        return papers
