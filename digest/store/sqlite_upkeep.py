"""The SQLite store's upkeep: `verify` (quick_check) and the daily `prune` (retention), a mixin of
SqliteStore. See `Store.prune` for what is deleted and what is always kept.

The prune deletes in batches of PRUNE_BATCH rows, each its own short write transaction found
through an index (seen by the day it was sent, editions by status), so a run or an unsubscribe
waits at most one batch. SQLite keeps the freed pages and fills them again: the file stops
growing rather than shrinking (VACUUM would shrink it, at the price of rewriting it).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from digest.store import Pruned
from digest.store.sql import FINISHED_IN, PRUNE_BATCH
from digest.store.sqlite_file import damage, quick_check

__all__ = ["SqliteUpkeep", "PRUNE_BATCH"]


class SqliteUpkeep:
    _db: sqlite3.Connection
    path: Path | None

    def _tx(self) -> Any: ...  # provided by SqliteStore

    def _write(self) -> bool: ...  # provided by SqliteStore

    def verify(self) -> None:
        found = quick_check(self._db)
        if found:
            more = f", and {len(found) - 1} more" if len(found) > 1 else ""
            raise damage(self.path or Path(":memory:"), f"is damaged (quick_check: {found[0]}{more})")

    def prune(
        self, *, before: dt.date, keep: Collection[str], today: dt.date, batch: int = PRUNE_BATCH
    ) -> Pruned | None:
        if not self._write():
            return None
        started = time.perf_counter()
        with self._tx():  # the first process to get here today does it
            won = self._db.execute(
                "INSERT INTO meta(key, value) VALUES('pruned_on', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value WHERE meta.value < excluded.value",
                (today.isoformat(),),
            ).rowcount
        if not won:
            return None
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep_keys (key TEXT PRIMARY KEY)")
        self._db.execute("DELETE FROM keep_keys")
        self._db.executemany("INSERT OR IGNORE INTO keep_keys VALUES (?)", ((k,) for k in keep))
        day = before.isoformat()
        seen = self._batches(
            "DELETE FROM seen WHERE rowid IN (SELECT rowid FROM seen WHERE substr(sent_at, 1, 10) < ? "
            "AND paper_key NOT IN (SELECT key FROM keep_keys) LIMIT ?)",
            day,
            batch,
        )
        editions = self._batches(
            "DELETE FROM editions WHERE rowid IN (SELECT rowid FROM editions "
            f"WHERE status IN {FINISHED_IN} AND updated_at < ? LIMIT ?)",
            day,
            batch,
        )
        papers = self._batches(  # first_seen is a UTC time: before the day `before` starts
            "DELETE FROM papers WHERE rowid IN (SELECT rowid FROM papers WHERE first_seen < ? "
            "AND paper_key NOT IN (SELECT paper_key FROM ratings) "
            "AND paper_key NOT IN (SELECT key FROM keep_keys) LIMIT ?)",
            day,
            batch,
        )
        return Pruned(seen, editions, papers, time.perf_counter() - started)

    def _batches(self, statement: str, day: str, batch: int) -> int:
        total = 0
        while True:
            with self._tx():
                count = self._db.execute(statement, (day, batch)).rowcount
            total += count
            if count < batch:
                return total
