"""Retention: the seen-store keeps what a run needs, not everything ever sent.

Once a day, as part of a run, the rows of papers sent more than `retention` ago are deleted
(`Store.prune`). What keeps this safe:

* a paper is never sent twice because of it: `retention` is longer than any source can list a
  paper (settings check it against `lookback_days`), and a paper a source still lists today keeps
  its rows whatever its age (a feed that keeps an item for months);
* no prune after a run where a source failed: its papers, absent today, may still be listed;
* ratings, and the stored papers they refer to, are the reader's model: never pruned.
  Unsubscribes and suspensions are never pruned either.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Collection
from typing import Any

from digest.errors import StoreError
from digest.store import Pruned, Store, open_store

__all__ = ["prune", "prune_aside"]

log = logging.getLogger("digest.store")


def prune(
    store: Store, *, retention: dt.timedelta | None, listed: Collection[str], complete: bool, now: dt.datetime
) -> Pruned | None:
    """Run the day's prune if it is due: `listed` are the keys today's sources listed, `complete`
    whether every source answered. A failure is logged (the run's sending is already done) and
    the prune is tried again the next day."""
    if retention is None or not complete:
        return None
    utc = now.astimezone(dt.timezone.utc)
    before = (utc - retention).date()
    try:
        done = store.prune(before=before, keep=listed, today=utc.date())
    except StoreError as exc:
        log.error("pruning the store failed: %s", exc)
        return None
    if done is not None:
        log.info(
            "pruned the store: %d seen rows, %d editions, %d papers from before %s in %.2f s",
            done.seen, done.editions, done.papers, before.isoformat(), done.seconds,
        )  # fmt: skip
    return done


async def prune_aside(url: str, **kwargs: Any) -> Pruned | None:
    """`prune` on a connection of its own, in a worker thread, for `digest run`: at 10,000 readers
    a day's prune deletes ~2 million rows (seconds), which must not hold up the event loop (the
    health check, unsubscribes). Its batches take the write lock only briefly."""

    def work() -> Pruned | None:
        try:
            store = open_store(url)
        except StoreError as exc:
            log.error("pruning the store failed: %s", exc)
            return None
        try:
            return prune(store, **kwargs)
        finally:
            store.close()

    return await asyncio.to_thread(work)
