"""The SQLite store's readers: unsubscribes, suspensions, and the key that signs their links; a
mixin of SqliteStore (its connection `self._db`, write transaction `self._tx()` and read-only
switch `self._write()`)."""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
from typing import Any

from digest.store import SubscriberState
from digest.store.sql import FailureStreak, row_to_state, ts

__all__ = ["SqliteReaders"]


class SqliteReaders(FailureStreak):
    _db: sqlite3.Connection
    _ephemeral_secret: bytes | None

    def _tx(self) -> Any: ...  # provided by SqliteStore

    def _write(self) -> bool: ...  # provided by SqliteStore

    def subscriber(self, subscriber_id: str) -> SubscriberState:
        row = self._db.execute("SELECT * FROM subscribers WHERE subscriber_id=?", (subscriber_id,)).fetchone()
        return row_to_state(row) if row else SubscriberState(subscriber_id)

    def subscribers(self) -> dict[str, SubscriberState]:
        return {r["subscriber_id"]: row_to_state(r) for r in self._db.execute("SELECT * FROM subscribers")}

    def unsubscribe(self, subscriber_id: str, *, now: dt.datetime) -> bool:
        if not self._write():
            return False
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO subscribers(subscriber_id, unsubscribed_at) VALUES(?, ?) "
                "ON CONFLICT(subscriber_id) DO UPDATE SET unsubscribed_at=excluded.unsubscribed_at "
                "WHERE subscribers.unsubscribed_at IS NULL",
                (subscriber_id, ts(now)),
            )
            return cur.rowcount > 0

    def resubscribe(self, subscriber_id: str) -> bool:
        if not self._write():
            return False
        cur = self._db.execute(
            "UPDATE subscribers SET unsubscribed_at=NULL, suspended_at=NULL, suspended_reason=NULL "
            "WHERE subscriber_id=? AND (unsubscribed_at IS NOT NULL OR suspended_at IS NOT NULL)",
            (subscriber_id,),
        )
        return cur.rowcount > 0

    def suspend(self, subscriber_id: str, *, reason: str, now: dt.datetime) -> None:
        if self._write():
            self._db.execute(
                "INSERT INTO subscribers(subscriber_id, suspended_at, suspended_reason) VALUES(?, ?, ?) "
                "ON CONFLICT(subscriber_id) DO UPDATE SET suspended_at=excluded.suspended_at, "
                "suspended_reason=excluded.suspended_reason",
                (subscriber_id, ts(now), reason),
            )

    def secret(self) -> bytes:
        row = self._db.execute("SELECT value FROM meta WHERE key='unsubscribe_secret'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        if not self._write():  # dry-run with no secret yet: links in previews are not valid
            self._ephemeral_secret = self._ephemeral_secret or secrets.token_bytes(32)
            return self._ephemeral_secret
        value = secrets.token_bytes(32)
        self._db.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('unsubscribe_secret', ?)", (value.hex(),)
        )
        return self.secret()
