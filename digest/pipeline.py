"""The pipeline: sources → merge → seen-store → rank → render → deliver → store.

It composes the stages and owns the order that makes delivery safe:

    claim the edition → render → the server accepts the message → mark sent + papers seen (one tx)

It is handed concrete objects (a Store, a Mailer, a Renderer) and never chooses them: the CLI
does. A failure for one subscriber is recorded as that subscriber's outcome and never stops the
others.
"""

from __future__ import annotations

import asyncio
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

    edition = plan(sub, ranker, seen=seen, papers=papers, edition_date=day)
    if not edition.papers and not sub.send_empty:
        return Outcome(sub.id, "skipped-empty", edition_date=day)
    if not store.claim(sub.id, day, worker=delivery.worker, now=now, lease=delivery.lease):
        return Outcome(sub.id, "already-sent", edition_date=day)

    link = unsubscribe_url(delivery.public_url, sub.id, delivery.secret)
    message_id = message_id_for(sub.id, day, delivery.sender)
    try:
        rendered = delivery.renderer.render(edition, unsubscribe_url=link, now=now)
        message = build_message(
            edition, rendered, sender=delivery.sender, message_id=message_id, unsubscribe_url=link, date=now
        )
        started = time.monotonic()
        receipt = await delivery.mailer.send(message)
        seconds = time.monotonic() - started
    except DeliveryError as exc:
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
        store.release(sub.id, day, worker=delivery.worker)
        raise
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
