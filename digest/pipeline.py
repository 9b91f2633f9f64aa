"""The pipeline: sources → merge → seen-store → rank → render → deliver → store.

It composes the stages and owns the order that makes delivery safe:

    claim the edition → render → the server accepts the message → mark sent + papers seen (one tx)

The claim's lease runs on the real clock and is renewed while the message is in flight, so a slow
send never loses its edition to another replica. An edition that already has a record (pending
after a temporary failure, or abandoned by a dead worker) and is older than `edition_max_age` is
expired instead of sent late.

It is handed concrete objects (a Store, a Mailer, a Renderer) and never chooses them: the CLI
does. A failure for one subscriber is recorded as that subscriber's outcome and never stops the
others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from digest import sources as sources_stage
from digest.deliver import Mailer
from digest.errors import DeliveryError, DigestError, Problem
from digest.models import Edition, Paper, ScoredPaper, SourceResult, SourceSpec, Subscription
from digest.rank import Ranker
from digest.render import Renderer, build_message, message_id_for
from digest.schedule import fire_time
from digest.store import Store
from digest.tokens import unsubscribe_url

__all__ = ["Outcome", "Delivery", "gather", "plan", "send_editions", "local_date"]

log = logging.getLogger("digest.pipeline")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one subscriber in one run (the `--json` row of `digest send`)."""

    user: str
    status: str  # sent | dry-run | already-sent | failed | skipped-<reason>
    papers: int = 0
    message_id: str | None = None
    edition_date: dt.date | None = None
    error: str | None = None
    permanent: bool = False  # a failure the server said not to retry (5xx)
    seconds: float | None = None  # time the mailer took to deliver

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "user": self.user,
            "status": self.status,
            "papers": self.papers,
            "message_id": self.message_id,
        }
        if self.edition_date:
            out["date"] = self.edition_date.isoformat()
        if self.error:
            out["error"] = self.error
        return out


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


def local_date(sub: Subscription, now: dt.datetime) -> dt.date:
    return now.astimezone(zoneinfo.ZoneInfo(sub.timezone)).date()


async def gather(specs: Sequence[SourceSpec], *, day: dt.date) -> tuple[list[Paper], list[SourceResult]]:
    """Fetch every source and merge them: one Paper per identity, withdrawn papers dropped."""
    results = await sources_stage.fetch_all(specs, day=day)
    papers = [p for p in sources_stage.merge(results) if not p.withdrawn]
    return papers, results


def plan(
    sub: Subscription,
    ranker: Ranker,
    *,
    seen: set[str],
    papers: Sequence[Paper],
    edition_date: dt.date,
) -> Edition:
    """The edition one subscriber would get: their sources only, nothing already sent, best first."""
    skip = set(seen)
    if sub.sources is not None:
        wanted = set(sub.sources)
        skip.update(p.key for p in papers if not wanted.intersection(p.sources))
    ranked: list[ScoredPaper] = ranker.rank(sub, skip=frozenset(skip))
    shown, rest = ranked[: sub.max_papers], ranked[sub.max_papers :]
    return Edition(sub, edition_date, tuple(shown), more=len(rest), more_papers=tuple(rest))


async def send_editions(
    subs: Sequence[Subscription],
    papers: Sequence[Paper],
    delivery: Delivery,
    *,
    now: dt.datetime,
    edition_date: dt.date | Mapping[str, dt.date] | None = None,
    semantic: bool = False,
) -> list[Outcome]:
    """Build and deliver an edition to each subscriber that has not had it yet.

    The edition date is `edition_date` (one date, or one per subscriber id), else each
    subscriber's local date at `now`.
    """
    ranker = Ranker(papers, now=now, semantic=semantic)
    state = delivery.store.subscribers()
    seen_by_sub = delivery.store.seen_many([s.id for s in subs])
    limit = asyncio.Semaphore(max(1, delivery.mailer.concurrency) * 2)
    outcomes: list[Outcome] = [None] * len(subs)  # type: ignore[list-item]

    async def one(index: int, sub: Subscription) -> None:
        async with limit:
            if isinstance(edition_date, Mapping):
                day = edition_date.get(sub.id) or local_date(sub, now)
            else:
                day = edition_date or local_date(sub, now)
            try:
                outcome = await _deliver_one(sub, day, ranker, papers, seen_by_sub[sub.id], state, delivery, now)
            except DigestError as exc:  # a bug-free failure we can name: record it, go on
                outcome = Outcome(sub.id, "failed", edition_date=day, error=str(exc))
                log.error("edition failed", extra={"subscriber": sub.id, "date": day.isoformat(), "error": str(exc)})
            outcomes[index] = outcome
            if delivery.on_outcome:
                delivery.on_outcome(outcome)

    await asyncio.gather(*(one(i, s) for i, s in enumerate(subs)))
    return outcomes


async def _deliver_one(
    sub: Subscription,
    day: dt.date,
    ranker: Ranker,
    papers: Sequence[Paper],
    seen: set[str],
    state: dict,
    delivery: Delivery,
    now: dt.datetime,
) -> Outcome:
    store = delivery.store
    reason = _skip_reason(sub, state)
    if reason:
        return Outcome(sub.id, f"skipped-{reason}", edition_date=day)
    record = store.edition(sub.id, day)
    if record is not None and record.status in ("sent", "expired", "failed"):
        status = "already-sent" if record.status == "sent" else f"skipped-{record.status}"
        return Outcome(sub.id, status, record.paper_count or 0, record.message_id, day)
    if delivery.stop.is_set():
        return Outcome(sub.id, "skipped-stopping", edition_date=day)

    if record is not None and _too_old(sub, day, now, delivery.edition_max_age):
        # A retry (pending after a temporary failure, or a dead worker's claim) past its max age.
        if not store.claim(sub.id, day, worker=delivery.worker, now=delivery.clock(), lease=delivery.lease):
            return _claim_lost(store, sub.id, day)
        reason = f"older than edition_max_age ({delivery.edition_max_age}); never sent late"
        store.mark_expired(sub.id, day, reason=reason, now=now)
        log.warning("edition expired", extra={"subscriber": sub.id, "date": day.isoformat(), "error": reason})
        return Outcome(sub.id, "skipped-expired", record.paper_count or 0, record.message_id, day, error=reason)

    edition = plan(sub, ranker, seen=seen, papers=papers, edition_date=day)
    if not edition.papers and not sub.send_empty:
        return Outcome(sub.id, "skipped-empty", edition_date=day)
    if not store.claim(sub.id, day, worker=delivery.worker, now=delivery.clock(), lease=delivery.lease):
        return _claim_lost(store, sub.id, day)

    link = unsubscribe_url(delivery.public_url, sub.id, delivery.secret)
    message_id = message_id_for(sub.id, day, delivery.sender)
    keep = asyncio.create_task(_keep_claim(sub.id, day, delivery))  # a slow send outlives no lease
    try:
        rendered = delivery.renderer.render(edition, unsubscribe_url=link, now=now)
        message = build_message(
            edition, rendered, sender=delivery.sender, message_id=message_id, unsubscribe_url=link, date=now
        )
        started = time.monotonic()
        receipt = await delivery.mailer.send(message)
        seconds = time.monotonic() - started
    except DeliveryError as exc:
        keep.cancel()
        store.mark_failed(sub.id, day, error=str(exc), permanent=exc.permanent, now=now)
        if exc.permanent and store.permanent_failures_in_a_row(sub.id) >= delivery.suspend_after:
            store.suspend(sub.id, reason=str(exc), now=now)
            log.warning("subscriber suspended", extra={"subscriber": sub.id, "error": str(exc)})
        log.error(
            "edition failed",
            extra={"subscriber": sub.id, "date": day.isoformat(), "error": str(exc), "permanent": exc.permanent},
        )
        return Outcome(sub.id, "failed", edition_date=day, error=str(exc), permanent=exc.permanent)
    except BaseException:
        keep.cancel()
        store.release(sub.id, day, worker=delivery.worker)
        raise
    keep.cancel()
    store.mark_sent(sub.id, day, message_id=message_id, paper_keys=edition.paper_keys, now=now)
    count = len(edition.paper_keys)  # shown and listed under "and N more"
    log.info(
        "edition %s",
        delivery.sent_status,
        extra={
            "subscriber": sub.id,
            "date": day.isoformat(),
            "papers": count,
            "message_id": message_id,
            "receipt": receipt,
        },
    )
    return Outcome(sub.id, delivery.sent_status, count, message_id, day, seconds=seconds)


async def _keep_claim(sub_id: str, day: dt.date, delivery: Delivery) -> None:
    """Renew the claim every third of the lease while this worker renders and sends."""
    every = max(delivery.lease.total_seconds() / 3, 0.05)
    while True:
        await asyncio.sleep(every)
        try:
            delivery.store.renew(sub_id, day, worker=delivery.worker, until=delivery.clock() + delivery.lease)
        except DigestError as exc:  # the send goes on; at worst another worker may take over late
            log.warning("claim not renewed", extra={"subscriber": sub_id, "error": str(exc)})


def _too_old(sub: Subscription, day: dt.date, now: dt.datetime, max_age: dt.timedelta | None) -> bool:
    """Whether the edition's scheduled local send time is more than `max_age` before `now`."""
    if max_age is None:
        return False
    due = fire_time(sub, day) or fire_time(dataclasses.replace(sub, frequency="daily"), day)
    return due is not None and due + max_age < now


def _claim_lost(store: Store, sub_id: str, day: dt.date) -> Outcome:
    """Another worker has the edition: it sent it already, or it is sending it right now."""
    record = store.edition(sub_id, day)
    if record is not None and record.status == "sent":
        return Outcome(sub_id, "already-sent", record.paper_count or 0, record.message_id, day)
    return Outcome(sub_id, "skipped-claimed", edition_date=day)


def _skip_reason(sub: Subscription, state: dict) -> str | None:
    if sub.paused:
        return "paused"
    recorded = state.get(sub.id)
    if recorded is not None and recorded.unsubscribed_at is not None:
        return "unsubscribed"
    if recorded is not None and recorded.suspended_at is not None:
        return "suspended"
    return None


def invalid_outcomes(invalid: dict[str, list[Problem]]) -> list[Outcome]:
    """Subscribers whose file is broken: skipped with the first problem as the reason."""
    return [Outcome(sub_id, "skipped-invalid", error=str(problems[0])) for sub_id, problems in invalid.items()]
