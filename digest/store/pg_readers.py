"""The PostgreSQL store's readers: unsubscribes, suspensions, and the key that signs their links
(created by the first replica to need it; every replica keeps the first); a mixin of
PostgresStore. Every method is one statement through the store's `_call` (see postgres.py)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from digest.store import SubscriberState
from digest.store.sql import FailureStreak, row_to_state, ts

__all__ = ["PostgresReaders"]

T = TypeVar("T")


class PostgresReaders(FailureStreak):
    _empty: bool
    _ephemeral_secret: bytes | None

    def _call(self, fn: Callable[[Any, bool], T]) -> T: ...  # provided by PostgresStore

    def _write(self) -> bool: ...  # provided by PostgresStore

    def subscriber(self, subscriber_id: str) -> SubscriberState:
        if self._empty:
            return SubscriberState(subscriber_id)
        row = self._call(
            lambda c, _: c.execute("SELECT * FROM subscribers WHERE subscriber_id = %s", (subscriber_id,)).fetchone()
        )
        return row_to_state(row) if row else SubscriberState(subscriber_id)

    def subscribers(self) -> dict[str, SubscriberState]:
        if self._empty:
            return {}
        rows = self._call(lambda c, _: c.execute("SELECT * FROM subscribers").fetchall())
        return {r["subscriber_id"]: row_to_state(r) for r in rows}

    def unsubscribe(self, subscriber_id: str, *, now: dt.datetime) -> bool:
        if not self._write():
            return False
        cur = self._call(
            lambda c, _: c.execute(
                "INSERT INTO subscribers AS s (subscriber_id, unsubscribed_at) VALUES (%s, %s) "
                "ON CONFLICT (subscriber_id) DO UPDATE SET unsubscribed_at = excluded.unsubscribed_at "
                "WHERE s.unsubscribed_at IS NULL",
                (subscriber_id, ts(now)),
            )
        )
        return cur.rowcount > 0

    def resubscribe(self, subscriber_id: str) -> bool:
        if not self._write():
            return False
        cur = self._call(
            lambda c, _: c.execute(
                "UPDATE subscribers SET unsubscribed_at = NULL, suspended_at = NULL, suspended_reason = NULL "
                "WHERE subscriber_id = %s AND (unsubscribed_at IS NOT NULL OR suspended_at IS NOT NULL)",
                (subscriber_id,),
            )
        )
        return cur.rowcount > 0

    def suspend(self, subscriber_id: str, *, reason: str, now: dt.datetime) -> None:
        if self._write():
            self._call(
                lambda c, _: c.execute(
                    "INSERT INTO subscribers (subscriber_id, suspended_at, suspended_reason) VALUES (%s, %s, %s) "
                    "ON CONFLICT (subscriber_id) DO UPDATE SET suspended_at = excluded.suspended_at, "
                    "suspended_reason = excluded.suspended_reason",
                    (subscriber_id, ts(now), reason),
                )
            )

    def secret(self) -> bytes:
        def run(conn: psycopg.Connection[dict[str, Any]], retried: bool) -> bytes | None:
            if self._empty:
                return None
            query = "SELECT value FROM meta WHERE key = 'unsubscribe_secret'"
            row = conn.execute(query).fetchone()
            if row is None and self._write():  # first use by any replica creates it; all keep the first
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('unsubscribe_secret', %s) ON CONFLICT (key) DO NOTHING",
                    (secrets.token_bytes(32).hex(),),
                )
                row = conn.execute(query).fetchone()
            return bytes.fromhex(row["value"]) if row else None

        value = self._call(run)
        if value is not None:
            return value
        # dry-run with no secret yet: links in previews are not valid
        self._ephemeral_secret = self._ephemeral_secret or secrets.token_bytes(32)
        return self._ephemeral_secret
