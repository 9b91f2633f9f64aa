"""The pipeline: sources → merge → seen-store → rank → render → deliver → store.

It composes the stages and owns the order that makes delivery safe:

    rank + render → claim the edition → the server accepts the message → mark sent + papers seen (one tx)

Readers go through in chunks (editions.py builds a chunk's messages, in a helper process for large
runs; dispatch.py sends them and records the accepted ones by group commit: each commit covers only
messages the server already accepted). Claims' leases run on the real clock and are renewed while
their messages wait and are in flight, so a slow send never loses its edition to another replica. An edition that already has a record (pending
after a temporary failure, or abandoned by a dead worker) and is older than `edition_max_age` is
expired instead of sent late.

It is handed concrete objects (a Store, a Mailer, a Renderer) and never chooses them: the CLI
does. A failure for one subscriber is recorded as that subscriber's outcome and never stops the
others.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from digest import sources as sources_stage
from digest.dispatch import Dispatcher, Job
from digest.editions import Builder, BuildProcess, Built, Item, build_in_process, edition_cut, not_for
from digest.errors import DigestError, Problem, StoreError
from digest.models import Edition, Paper, RatedPaper, ScoredPaper, SourceResult, SourceSpec, Subscription
from digest.rank import Ranker
from digest.ratings import load_ratings, ranker_for
from digest.runstate import Delivery, Outcome
from digest.schedule import fire_time
from digest.store import Store

__all__ = ["Outcome", "Delivery", "gather", "plan", "send_editions", "local_date"]

log = logging.getLogger("digest.pipeline")

CHUNK = 256  # readers built as one batch at most (ranked together)
CHUNK_IN_PROCESS = 32  # smaller when this process builds: the senders wait while it ranks
CLAIM_BATCH = 32  # claims to a transaction
PROCESS_MIN = 200  # readers in a run from which a helper process builds the messages (1,000 readers: 8.3 -> 5.9 s)


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
    rated: Sequence[RatedPaper] = (),
) -> Edition:
    """The edition one subscriber would get: their sources only, nothing already sent, best first
    (with their ratings, the per-reader model's ranking)."""
    skip = not_for(sub, papers).union(seen)
    ranked: list[ScoredPaper] = ranker.rank(sub, skip=skip, rated=rated, mentions=True)
    full = sum(1 for sp in ranked if sp.via != "mention")  # mentions come last, and are only listed
    n, delivered = edition_cut(sub.max_papers, full)
    rest = ranked[n:delivered]
    return Edition(sub, edition_date, tuple(ranked[:n]), more=len(rest), more_papers=tuple(rest))


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

    Readers go through in chunks: checked against the store, ranked, rendered and built as one
    batch (in a helper process for large runs), claimed in one transaction, then handed to
    `mailer.concurrency` senders; accepted messages are recorded by a group commit (dispatch.py).
    """
    ranker = ranker_for(delivery.store, papers, now=now, semantic=semantic)
    state = delivery.store.subscribers()
    seen_by_sub = delivery.store.seen_many([s.id for s in subs], among={p.key for p in papers})
    rated_by_sub = load_ratings(delivery.store, [s.id for s in subs])
    outcomes: list[Outcome] = [None] * len(subs)  # type: ignore[list-item]

    def done(index: int, outcome: Outcome) -> None:
        outcomes[index] = outcome
        if delivery.on_outcome:
            delivery.on_outcome(outcome)

    def day_of(sub: Subscription) -> dt.date:
        if isinstance(edition_date, Mapping):
            return edition_date.get(sub.id) or local_date(sub, now)
        return edition_date or local_date(sub, now)

    builder = Builder(
        ranker, subs, seen_by_sub, delivery.renderer,
        sender=delivery.sender, public_url=delivery.public_url, secret=delivery.secret, now=now,
        rated_by_sub=rated_by_sub,
    )  # fmt: skip
    process = None
    if len(subs) >= PROCESS_MIN and BuildProcess.available():
        process = BuildProcess(builder, workers=BuildProcess.default_workers())
    # The MIME bytes are made where the CPU is free: by the helper while it is ahead (its batch
    # was built before the senders needed it), else by this process as it sends.
    helper_ahead = False

    def build(items: list[Item]) -> asyncio.Future[list[Built]]:
        if process is None:
            return asyncio.ensure_future(build_in_process(builder, items))
        return asyncio.ensure_future(process.build(items, mime=helper_ahead))

    depth = process.workers + 1 if process else 2  # batches being built at once
    pending: collections.deque[tuple[list[_Claimed], asyncio.Future[list[Built]]]] = collections.deque()
    # Claims held at once: the batches being built, plus the senders' queue. Small enough that
    # replicas sending at once share the editions out as they go, large enough to bridge the
    # moments this process spends claiming the next batch.
    queue_size = max(16, 8 * delivery.mailer.concurrency)
    try:
        async with Dispatcher(delivery, now=now, done=done, finish=builder.finish, queue_size=queue_size) as dispatcher:
            # Chunks of at most 1/16 of the run: replicas sending the same run at once share it out.
            chunk = max(CHUNK_IN_PROCESS, min(CHUNK if process else CHUNK_IN_PROCESS, len(subs) // 16))
            for indexes in _chunks(len(subs), chunk):
                if delivery.halted:  # the rest are given their outcome below, without the store
                    break
                todo = _check(indexes, subs, day_of, state, delivery, now, done)
                claimed = await _plan_and_claim(todo, builder, delivery, dispatcher, done)
                if claimed:
                    items = [c.item for c in claimed]
                    pending.append((claimed, build(items)))
                if len(pending) >= depth:  # the oldest batch is queued for sending while the others build
                    helper_ahead = await _queue(*pending.popleft(), dispatcher)
            while pending:
                await _queue(*pending.popleft(), dispatcher)
    finally:
        for _, future in pending:
            future.cancel()
        if process is not None:
            process.close()
    for i, outcome in enumerate(outcomes):  # a halted run: the readers it never reached
        if outcome is None:
            done(i, delivery.stopped(subs[i].id, day_of(subs[i])))
    return outcomes


def _chunks(n: int, size: int) -> Iterator[range]:
    """range(n) in chunks of `size`, the first ones smaller: sending starts while the rest builds."""
    lo, step = 0, max(1, size // 8)
    while lo < n:
        yield range(lo, min(lo + step, n))
        lo += step
        step = min(size, step * 2)


@dataclass(frozen=True, slots=True)
class _Claimed:
    item: Item  # what the builder needs
    job: Job  # what the dispatcher holds


async def _plan_and_claim(
    todo: list[tuple[int, dt.date]],
    builder: Builder,
    delivery: Delivery,
    dispatcher: Dispatcher,
    done: Callable[[int, Outcome], None],
) -> list[_Claimed]:
    """Rank the readers of `todo` (vectorised), skip the empty editions, claim the others
    (CLAIM_BATCH to a transaction, letting the claim renewer run in between); the won ones are
    held (their claims renewed) until sent or given back."""
    subs, store = builder.subs, delivery.store
    if not todo:
        return []
    try:
        order = builder.plan([i for i, _ in todo])
    except DigestError as exc:
        for i, day in todo:
            done(i, _failed(subs[i].id, day, exc))
        return []
    ready = []
    for (i, day), planned in zip(todo, order):
        if not planned.full and not subs[i].send_empty:  # mentions alone make no edition
            done(i, Outcome(subs[i].id, "skipped-empty", edition_date=day))
        elif delivery.stopping():
            done(i, delivery.stopped(subs[i].id, day))
        else:
            ready.append((i, day, planned))
    claimed: list[_Claimed] = []
    started = delivery.clock()
    for lo in range(0, len(ready), CLAIM_BATCH):
        batch = ready[lo : lo + CLAIM_BATCH]
        keys = [(subs[i].id, day) for i, day, _ in batch]
        if delivery.stopping():
            for i, day, _ in batch:
                done(i, delivery.stopped(subs[i].id, day))
            continue
        try:
            won = store.claim_many(keys, worker=delivery.worker, now=delivery.clock(), lease=delivery.lease)
        except StoreError as exc:  # the store's fault, not these readers': the run stops here
            delivery.halt(f"store: {exc}")
            for i, day, _ in batch:
                done(i, delivery.stopped(subs[i].id, day))
            continue
        for (i, day, planned), (sub_id, _), ok in zip(batch, keys, won):
            if ok:
                job = dispatcher.hold(i, sub_id, day, builder.keys(builder.delivered(i, planned)))
                claimed.append(_Claimed(builder.item(i, day, planned), job))
                continue
            try:
                done(i, _claim_lost(store, sub_id, day))
            except DigestError as exc:
                done(i, _failed(sub_id, day, exc))
        await asyncio.sleep(0)
    if claimed and delivery.clock() - started > delivery.lease / 6:  # a slow store: renew at once
        dispatcher.renew([c.job.key for c in claimed])
    return claimed


async def _queue(claimed: list[_Claimed], future: asyncio.Future[list[Built]], dispatcher: Dispatcher) -> bool:
    """Hand a built batch to the senders (a failed build gives its claim back). True when the
    batch was ready before the senders needed it."""
    ready = future.done()
    for c, built in zip(claimed, await future):
        await dispatcher.put(c.job, built)
    return ready


def _check(
    indexes: range,
    subs: Sequence[Subscription],
    day_of: Callable[[Subscription], dt.date],
    state: dict,
    delivery: Delivery,
    now: dt.datetime,
    done: Callable[[int, Outcome], None],
) -> list[tuple[int, dt.date]]:
    """Readers of `indexes` that need an edition built; the others get their outcome now."""
    todo = []
    for i in indexes:
        sub = subs[i]
        day = day_of(sub)
        try:
            outcome = _before_build(sub, day, state, delivery, now)
        except StoreError as exc:  # the store's fault, not this reader's: the run stops here
            delivery.halt(f"store: {exc}")
            outcome = delivery.stopped(sub.id, day)
        except DigestError as exc:  # a bug-free failure we can name: record it, go on
            outcome = _failed(sub.id, day, exc)
        if outcome is None:
            todo.append((i, day))
        else:
            done(i, outcome)
    return todo


def _before_build(sub: Subscription, day: dt.date, state: dict, delivery: Delivery, now: dt.datetime) -> Outcome | None:
    """The outcome of a reader who gets no new edition in this run, or None: build theirs."""
    store = delivery.store
    reason = _skip_reason(sub, state)
    if reason:
        return Outcome(sub.id, f"skipped-{reason}", edition_date=day)
    record = store.edition(sub.id, day)
    if record is not None and record.status in ("sent", "expired", "failed"):
        status = "already-sent" if record.status == "sent" else f"skipped-{record.status}"
        return Outcome(sub.id, status, record.paper_count or 0, record.message_id, day)
    if delivery.stopping():
        return delivery.stopped(sub.id, day)
    if record is not None and _too_old(sub, day, now, delivery.edition_max_age):
        # A retry (pending after a temporary failure, or a dead worker's claim) past its max age.
        if not store.claim(sub.id, day, worker=delivery.worker, now=delivery.clock(), lease=delivery.lease):
            return _claim_lost(store, sub.id, day)
        reason = f"older than edition_max_age ({delivery.edition_max_age}); never sent late"
        store.mark_expired(sub.id, day, reason=reason, now=now)
        log.warning("edition expired", extra={"subscriber": sub.id, "date": day.isoformat(), "error": reason})
        return Outcome(sub.id, "skipped-expired", record.paper_count or 0, record.message_id, day, error=reason)
    return None


def _failed(sub_id: str, day: dt.date, exc: DigestError) -> Outcome:
    log.error("edition failed", extra={"subscriber": sub_id, "date": day.isoformat(), "error": str(exc)})
    return Outcome(sub_id, "failed", edition_date=day, error=str(exc))


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
