"""The SQLite store's paper vectors and ratings (schema version 2): a mixin of SqliteStore.

Uses the store's connection (`self._db`), its write transaction (`self._tx()`) and its read-only
switch (`self._write()`): in read-only mode (`--dry-run`) nothing is written.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from digest.models import RatedPaper
from digest.store import VOTES
from digest.store.sql import parse_time, ts

__all__ = ["SqliteRatings"]

_BATCH = 500  # keys per IN (...) query: well under SQLite's bound-parameter limit
_VOTE = "SELECT vote FROM ratings WHERE subscriber_id=? AND paper_key=?"


def _batches(keys: Collection[str]) -> Iterator[list[str]]:
    items = list(dict.fromkeys(keys))
    for lo in range(0, len(items), _BATCH):
        yield items[lo : lo + _BATCH]


class SqliteRatings:
    _db: sqlite3.Connection

    def _tx(self) -> Any: ...  # provided by SqliteStore

    def _write(self) -> bool: ...  # provided by SqliteStore

    def _version(self) -> int: ...  # provided by SqliteStore

    def _v2(self) -> bool:
        """Whether the tables exist: a read-only store (dry-run) on a database an older digest
        wrote is not migrated, and then holds no vectors and no ratings."""
        ready = getattr(self, "_v2_ready", None)
        if ready is None:
            ready = self._v2_ready = self._version() >= 2
        return ready

    def save_vectors(self, model: str, rows: Sequence[tuple[str, str, bytes]], *, now: dt.datetime) -> None:
        if not self._write() or not rows:
            return
        at = ts(now)
        with self._tx():
            self._db.executemany(
                "INSERT INTO papers(paper_key, title, model, vector, first_seen) VALUES(?, ?, ?, ?, ?) "
                "ON CONFLICT(paper_key) DO UPDATE SET title=excluded.title, model=excluded.model, "
                "vector=excluded.vector WHERE papers.model <> excluded.model",
                [(key, title, model, bytes(vector), at) for key, title, vector in rows],
            )

    def vectors(self, model: str, keys: Collection[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for batch in _batches(keys if self._v2() else ()):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT paper_key, vector FROM papers WHERE model=? AND paper_key IN ({marks})", (model, *batch)
            )
            out.update((key, bytes(vector)) for key, vector in rows)
        return out

    def newest_vectors(self, model: str, limit: int) -> list[bytes]:
        if not self._v2():
            return []
        rows = self._db.execute(
            "SELECT vector FROM papers WHERE model=? ORDER BY first_seen DESC, paper_key LIMIT ?", (model, limit)
        )
        return [bytes(vector) for (vector,) in rows]

    def _v4(self) -> bool:
        """Whether papers have the dense columns (see `_v2`)."""
        ready = getattr(self, "_v4_ready", None)
        if ready is None:
            ready = self._v4_ready = self._version() >= 4
        return ready

    def save_dense(self, model: str, rows: Sequence[tuple[str, bytes]]) -> None:
        if not self._write() or not rows:
            return
        with self._tx():
            self._db.executemany(
                "UPDATE papers SET dense_model=?, dense=? WHERE paper_key=?",
                [(model, bytes(vector), key) for key, vector in rows],
            )

    def dense(self, model: str, keys: Collection[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for batch in _batches(keys if self._v4() else ()):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT paper_key, dense FROM papers WHERE dense_model=? AND paper_key IN ({marks})", (model, *batch)
            )
            out.update((key, bytes(vector)) for key, vector in rows)
        return out

    def titles(self, keys: Collection[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for batch in _batches(keys if self._v2() else ()):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(f"SELECT paper_key, title FROM papers WHERE paper_key IN ({marks})", batch)
            out.update((key, title) for key, title in rows)
        return out

    def rate(self, subscriber_id: str, paper_key: str, vote: int, *, now: dt.datetime) -> int:
        if vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}, not {vote!r}")
        key = (subscriber_id, paper_key)
        if not self._write():
            if not self._v2():
                return 0
            row = self._db.execute(_VOTE, key).fetchone()
            return int(row[0]) if row else 0
        with self._tx():
            row = self._db.execute(_VOTE, key).fetchone()
            if vote == 0:
                self._db.execute("DELETE FROM ratings WHERE subscriber_id=? AND paper_key=?", key)
            elif row is None or row[0] != vote:  # the same vote again keeps its first time
                self._db.execute(
                    "INSERT INTO ratings(subscriber_id, paper_key, vote, rated_at) VALUES(?, ?, ?, ?) "
                    "ON CONFLICT(subscriber_id, paper_key) DO UPDATE SET vote=excluded.vote, "
                    "rated_at=excluded.rated_at",
                    (*key, vote, ts(now)),
                )
        return int(row[0]) if row else 0

    def ratings_many(self, subscriber_ids: list[str], model: str) -> dict[str, list[RatedPaper]]:
        out: dict[str, list[RatedPaper]] = {s: [] for s in subscriber_ids}
        for batch in _batches(subscriber_ids if self._v2() else ()):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                "SELECT r.subscriber_id, r.paper_key, r.vote, r.rated_at, p.title, p.model, p.vector "
                "FROM ratings r LEFT JOIN papers p ON p.paper_key = r.paper_key "
                f"WHERE r.subscriber_id IN ({marks}) ORDER BY r.subscriber_id, r.rated_at, r.paper_key",
                batch,
            )
            for sub, key, vote, rated_at, title, stored_model, vector in rows:
                same = stored_model == model and vector is not None
                out[sub].append(
                    RatedPaper(key, int(vote), title or "", bytes(vector) if same else None, parse_time(rated_at))
                )
        return out

    def rating_counts(self) -> dict[str, tuple[int, int]]:
        if not self._v2():
            return {}
        rows = self._db.execute(
            "SELECT subscriber_id, SUM(vote > 0), SUM(vote < 0) FROM ratings GROUP BY subscriber_id"
        )
        return {sub: (int(ups), int(downs)) for sub, ups, downs in rows}
