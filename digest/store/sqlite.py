"""SQLite seen-store: the default, for one host. WAL mode, versioned schema, one transaction per edition.

Several processes on the same host may share the file (a manual `digest send` next to `digest run`):
claims take the write lock (`BEGIN IMMEDIATE`), and a claim held by a process that no longer runs
on this host is taken over at once instead of waiting for its lease to run out.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import socket
import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path

from digest.errors import StoreError
from digest.store import EditionRecord, SentEdition
from digest.store.sqlite_file import (
    Transaction, connect, create, damage, is_empty, move_aside, problem, sidecars, store_errors,
    tidy_after_read_only, unusable,
)
from digest.store.sqlite_ratings import SqliteRatings
from digest.store.sqlite_readers import SqliteReaders
from digest.store.sqlite_upkeep import SqliteUpkeep
from digest.store.sql import SCHEMA, SCHEMA_VERSION, owner_is_dead_here, parse_time, row_to_edition, ts

__all__ = ["SqliteStore", "path_from_url"]

log = logging.getLogger("digest.store")


def path_from_url(url: str) -> Path | None:
    """`sqlite:///rel/path.db` → rel/path.db, `sqlite:////abs.db` → /abs.db, `sqlite://` → memory."""
    rest = url.removeprefix("sqlite:")
    if rest in ("", "//", "///:memory:", "//:memory:"):
        return None
    if not rest.startswith("///"):
        raise StoreError(f"database_url: expected sqlite:///path/to/file.db, got {url!r}")
    return Path(rest[3:])


@store_errors
class SqliteStore(SqliteReaders, SqliteRatings, SqliteUpkeep):
    def __init__(self, path: Path | None, *, read_only: bool = False, init: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._ephemeral_secret: bytes | None = None
        self._json: bool | None = None  # whether this SQLite has json_each (known after first use)
        self._left_sidecars = False
        try:
            if path is None or (read_only and not path.exists()):  # nothing recorded yet: an empty store
                self._db = connect(":memory:")
                self._migrate()
                return
            if init and not read_only:
                self._start_afresh(path)
            if not read_only and not path.exists():  # the first run: a new database
                create(path, self._migrate_into)
            if is_empty(path):  # an existing file is never silently made anew
                raise damage(path, "is empty (0 bytes)")
            # the -wal/-shm a read-only connection creates are removed on close (not those it found)
            self._left_sidecars = read_only and not any(p.exists() for p in sidecars(path))
            self._db = connect(path, read_only=read_only)
            if self._version() == 0:
                raise damage(path, "has no digest tables (not a digest database, or its first pages are damaged)")
            if not read_only:
                self._migrate()
        except sqlite3.Error as exc:
            raise problem(path, exc) from None

    # -- schema ---------------------------------------------------------------------------

    def _version(self) -> int:
        row = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if row is None:
            return 0
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate_into(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._migrate()

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {version} is newer than this digest ({SCHEMA_VERSION}): upgrade digest"
            )
        if version == SCHEMA_VERSION:
            return
        with self._tx():
            for target, statements in SCHEMA.items():
                if target <= version:
                    continue
                for statement in statements:
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(target),),
                )

    def _start_afresh(self, path: Path) -> None:
        """`--init`: an empty, foreign or damaged file is moved aside; a sound one is kept."""
        if not path.exists():
            return
        reason = unusable(path)
        if reason:
            aside = move_aside(path, dt.datetime.now(dt.timezone.utc))
            log.warning("--init: %s %s; moved it to %s and started a new database", path, reason, aside)

    def _tx(self) -> Transaction:
        return Transaction(self._db)

    def _write(self) -> bool:
        """Whether writes go through (False in read-only mode, where they are dropped)."""
        return not self.read_only

    # -- papers ---------------------------------------------------------------------------

    def seen(self, subscriber_id: str) -> set[str]:
        rows = self._db.execute("SELECT paper_key FROM seen WHERE subscriber_id=?", (subscriber_id,))
        return {r[0] for r in rows}

    def seen_many(self, subscriber_ids: list[str], among: Collection[str] | None = None) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {s: set() for s in subscriber_ids}
        wanted = set(subscriber_ids)
        if among is None:
            rows = self._db.execute("SELECT subscriber_id, paper_key FROM seen")
        else:  # filtered inside SQLite: only today's keys become Python objects
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS among_keys (key TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM among_keys")
            self._db.executemany("INSERT OR IGNORE INTO among_keys VALUES (?)", ((k,) for k in among))
            rows = self._db.execute(
                "SELECT subscriber_id, paper_key FROM seen WHERE paper_key IN (SELECT key FROM among_keys)"
            )
        for sub_id, key in rows:
            if sub_id in wanted:
                out[sub_id].add(key)
        return out

    # -- editions -------------------------------------------------------------------------

    def edition(self, subscriber_id: str, edition_date: dt.date) -> EditionRecord | None:
        row = self._db.execute(
            "SELECT * FROM editions WHERE subscriber_id=? AND edition_date=?",
            (subscriber_id, edition_date.isoformat()),
        ).fetchone()
        return row_to_edition(row) if row else None

    def edition_papers(self, subscriber_id: str, edition_date: dt.date) -> set[str]:
        rows = self._db.execute(
            "SELECT paper_key FROM seen WHERE subscriber_id=? AND edition_date=?",
            (subscriber_id, edition_date.isoformat()),
        )
        return {r[0] for r in rows}

    def editions(self, subscriber_id: str, limit: int = 10) -> list[EditionRecord]:
        rows = self._db.execute(
            "SELECT * FROM editions WHERE subscriber_id=? ORDER BY edition_date DESC LIMIT ?",
            (subscriber_id, limit),
        )
        return [row_to_edition(r) for r in rows]

    def claim(
        self,
        subscriber_id: str,
        edition_date: dt.date,
        *,
        worker: str,
        now: dt.datetime,
        lease: dt.timedelta,
    ) -> bool:
        return self.claim_many([(subscriber_id, edition_date)], worker=worker, now=now, lease=lease)[0]

    def claim_many(
        self, editions: Sequence[tuple[str, dt.date]], *, worker: str, now: dt.datetime, lease: dt.timedelta
    ) -> list[bool]:
        if not editions:
            return []
        if not self._write():
            out = []
            for subscriber_id, edition_date in editions:
                current = self.edition(subscriber_id, edition_date)
                out.append(current is None or current.status in ("pending", "claimed"))
            return out
        with self._tx():  # one write lock, one commit for the lot
            return [self._claim_one((s, d.isoformat()), worker, now, lease) for s, d in editions]

    def _claim_one(self, key: tuple[str, str], worker: str, now: dt.datetime, lease: dt.timedelta) -> bool:
        row = self._db.execute(
            "SELECT status, claimed_by, lease_until FROM editions WHERE subscriber_id=? AND edition_date=?",
            key,
        ).fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO editions(subscriber_id, edition_date, status, attempts, claimed_by, "
                "lease_until, created_at, updated_at) VALUES(?, ?, 'claimed', 1, ?, ?, ?, ?)",
                (*key, worker, ts(now + lease), ts(now), ts(now)),
            )
            return True
        status, owner, lease_until = row
        if status == "claimed":
            expired = lease_until is None or parse_time(lease_until) <= now
            if not (expired or owner_is_dead_here(owner)):
                return False
        elif status != "pending":
            return False
        self._db.execute(
            "UPDATE editions SET status='claimed', attempts=attempts+1, claimed_by=?, lease_until=?, "
            "updated_at=? WHERE subscriber_id=? AND edition_date=?",
            (worker, ts(now + lease), ts(now), *key),
        )
        return True

    def renew(self, subscriber_id: str, edition_date: dt.date, *, worker: str, until: dt.datetime) -> None:
        self.renew_many([(subscriber_id, edition_date)], worker=worker, until=until)

    def renew_many(self, editions: Sequence[tuple[str, dt.date]], *, worker: str, until: dt.datetime) -> None:
        if self._write() and editions:
            with self._tx():
                self._db.executemany(
                    "UPDATE editions SET lease_until=? WHERE subscriber_id=? AND edition_date=? "
                    "AND status='claimed' AND claimed_by=?",
                    [(ts(until), s, d.isoformat(), worker) for s, d in editions],
                )

    def mark_sent(
        self,
        subscriber_id: str,
        edition_date: dt.date,
        *,
        message_id: str,
        paper_keys: tuple[str, ...],
        now: dt.datetime,
    ) -> None:
        self.mark_sent_many([SentEdition(subscriber_id, edition_date, message_id, tuple(paper_keys))], now=now)

    def mark_sent_many(self, sent: Sequence[SentEdition], *, now: dt.datetime) -> None:
        if not self._write() or not sent:
            return
        at = ts(now)
        with self._tx():
            for e in sent:
                day = e.edition_date.isoformat()
                self._upsert_status(e.subscriber_id, day, "sent", now, message_id=e.message_id, count=len(e.paper_keys))
                self._insert_seen(e.subscriber_id, sorted(set(e.paper_keys)), day, at)

    def _insert_seen(self, subscriber_id: str, keys: list[str], day: str, at: str) -> None:
        """One edition's papers as seen. With JSON support, the rows are made inside SQLite from
        one JSON array (binding 4 values per row from Python costs as much as inserting them);
        sorted keys insert into the primary-key index in order. Same rows either way."""
        if not keys:
            return
        if self._json is None:
            try:
                self._json = self._db.execute("SELECT json_valid('[]')").fetchone()[0] == 1
            except sqlite3.Error:
                self._json = False
        payload = json.dumps(keys, ensure_ascii=False) if self._json else ""
        if self._json and "\\u0000" not in payload:
            self._db.execute(
                "INSERT OR IGNORE INTO seen(subscriber_id, paper_key, edition_date, sent_at) "
                "SELECT ?, value, ?, ? FROM json_each(?)",
                (subscriber_id, day, at, payload),
            )
        else:
            self._db.executemany(
                "INSERT OR IGNORE INTO seen(subscriber_id, paper_key, edition_date, sent_at) VALUES(?, ?, ?, ?)",
                [(subscriber_id, key, day, at) for key in keys],
            )

    def mark_failed(
        self, subscriber_id: str, edition_date: dt.date, *, error: str, permanent: bool, now: dt.datetime
    ) -> None:
        if self._write():
            with self._tx():
                status = "failed" if permanent else "pending"
                self._upsert_status(subscriber_id, edition_date.isoformat(), status, now, error=error)

    def mark_expired(self, subscriber_id: str, edition_date: dt.date, *, reason: str, now: dt.datetime) -> None:
        if self._write():
            with self._tx():
                self._upsert_status(subscriber_id, edition_date.isoformat(), "expired", now, error=reason)

    def release(self, subscriber_id: str, edition_date: dt.date, *, worker: str) -> None:
        if self._write():
            self._db.execute(
                "UPDATE editions SET status='pending', claimed_by=NULL, lease_until=NULL "
                "WHERE subscriber_id=? AND edition_date=? AND status='claimed' AND claimed_by=?",
                (subscriber_id, edition_date.isoformat(), worker),
            )

    def _upsert_status(
        self,
        subscriber_id: str,
        day: str,
        status: str,
        now: dt.datetime,
        *,
        message_id: str | None = None,
        count: int | None = None,
        error: str | None = None,
    ) -> None:
        self._db.execute(
            "INSERT INTO editions(subscriber_id, edition_date, status, attempts, message_id, paper_count, "
            "error, created_at, updated_at) VALUES(?, ?, ?, 1, ?, ?, ?, ?, ?) "
            "ON CONFLICT(subscriber_id, edition_date) DO UPDATE SET status=excluded.status, "
            "message_id=COALESCE(excluded.message_id, editions.message_id), "
            "paper_count=COALESCE(excluded.paper_count, editions.paper_count), error=excluded.error, "
            "claimed_by=NULL, lease_until=NULL, updated_at=excluded.updated_at",
            (subscriber_id, day, status, message_id, count, error, ts(now), ts(now)),
        )

    def close(self) -> None:
        self._db.close()
        if self.read_only and self._left_sidecars:
            tidy_after_read_only(self.path)


def worker_id() -> str:
    """`host:pid:random`: unique per process, and tells whether the owner is a local process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
