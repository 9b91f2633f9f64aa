"""The PostgreSQL store's upkeep: `verify` and the daily `prune` (retention), a mixin of
PostgresStore. See `Store.prune` for what is deleted and what is always kept.

Which replica prunes is decided by one upsert on `meta.pruned_on` (the first to move it to today
wins; the others skip). Each batch of PRUNE_BATCH rows is one statement, hence one short
transaction, found through an index (seen by the day it was sent, editions by status); rows go
by `ctid`, so a batch never re-reads what it deleted. Autovacuum reuses the space.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from digest.store import Pruned
from digest.store.sql import FINISHED_IN, PRUNE_BATCH

__all__ = ["PostgresUpkeep", "PRUNE_BATCH"]

T = TypeVar("T")

CLAIM_PRUNE = """
INSERT INTO meta AS m (key, value) VALUES ('pruned_on', %(today)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE m.value COLLATE "C" < excluded.value
RETURNING 1
"""

PRUNE_SEEN = """
DELETE FROM seen WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM seen WHERE substr(sent_at, 1, 10) < %(before)s AND NOT (paper_key = ANY(%(keep)s::text[]))
     LIMIT %(batch)s))
"""

PRUNE_EDITIONS = f"""
DELETE FROM editions WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM editions WHERE status IN {FINISHED_IN} AND updated_at COLLATE "C" < %(before)s
     LIMIT %(batch)s))
"""

# papers are few (those the sources listed): no index needed
PRUNE_PAPERS = """
DELETE FROM papers WHERE ctid = ANY(ARRAY(
    SELECT p.ctid FROM papers p
     WHERE p.first_seen COLLATE "C" < %(before)s AND NOT (p.paper_key = ANY(%(keep)s::text[]))
       AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.paper_key = p.paper_key)
     LIMIT %(batch)s))
"""


class PostgresUpkeep:
    read_only: bool

    def _call(self, fn: Callable[[Any, bool], T]) -> T: ...  # provided by PostgresStore

    def verify(self) -> None:
        """PostgreSQL checks its own pages (and a damaged one fails the statement that reads it)."""
        if not self.read_only:
            self._call(lambda c, _: c.execute("SELECT 1").fetchone())

    def prune(
        self, *, before: dt.date, keep: Collection[str], today: dt.date, batch: int = PRUNE_BATCH
    ) -> Pruned | None:
        if self.read_only:
            return None
        started = time.perf_counter()
        won = self._call(lambda c, _: c.execute(CLAIM_PRUNE, {"today": today.isoformat()}).fetchone())
        if won is None:
            return None
        params = {"before": before.isoformat(), "keep": sorted(set(keep)), "batch": batch}
        counts = [self._batches(statement, params) for statement in (PRUNE_SEEN, PRUNE_EDITIONS, PRUNE_PAPERS)]
        return Pruned(*counts, seconds=time.perf_counter() - started)

    def _batches(self, statement: str, params: dict[str, Any]) -> int:
        total = 0
        while True:
            count = self._call(lambda c, _: c.execute(statement, params).rowcount)
            total += count
            if count < params["batch"]:
                return total
