"""PostgreSQL seen-store: several replicas (on several hosts) share one database.

Same schema and semantics as the SQLite store (digest.store.sql). What differs:

* Claims are one statement, one round trip: a conditional `UPDATE … WHERE <claimable> RETURNING`
  (take over a pending edition or an expired lease) and, when there is no row yet,
  `INSERT … ON CONFLICT DO NOTHING` (a fresh claim). Under READ COMMITTED the UPDATE locks the row and
  re-checks its WHERE on the newest version, and the INSERT yields to a concurrent one, so two workers
  racing for one edition never both win; a lost race writes nothing (no row lock, no WAL flush). When
  the edition is held, the same statement returns the holder; if that holder is a process of this host
  that no longer runs, a compare-and-set UPDATE (a second round trip, only then) takes it over.
* `mark_sent` is one statement too (a data-modifying CTE): the edition becomes `sent` and its papers
  `seen` atomically; `mark_sent_many` runs that statement for each edition inside one transaction
  (psycopg pipelines them: one round trip for the lot).
* Migrations run inside a transaction holding `pg_advisory_xact_lock`, so replicas starting at once
  do not race on CREATE TABLE.
* Read-only mode (`--dry-run`) sets the session read-only and never migrates, creates a secret or writes.
* One connection per store, autocommit at the protocol level: every method is one statement (its own
  transaction) or an explicit `BEGIN … COMMIT` block, so no transaction is ever left open between calls.
  A dropped connection is reopened once and the call retried (every call is safe to retry); a second
  failure raises StoreError. Error texts never contain the password.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from digest.errors import StoreError
from digest.store import EditionRecord, SentEdition
from digest.store.pg_ratings import PostgresRatings
from digest.store.pg_readers import PostgresReaders
from digest.store.pg_upkeep import PostgresUpkeep
from digest.store.pg_sql import CLAIM, MARK_SENT, TAKE_OVER, UPSERT_STATUS, sent_params
from digest.store.pg_url import redact, safe_url
from digest.store.sql import SCHEMA, SCHEMA_VERSION, owner_is_dead_here, row_to_edition, ts

__all__ = ["PostgresStore", "redact"]

T = TypeVar("T")

# pg_advisory_xact_lock key for migrations: any constant bigint, the same for every replica.
MIGRATION_LOCK = 0x6469676573740001  # "digest" + 1

class PostgresStore(PostgresReaders, PostgresRatings, PostgresUpkeep):
    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self._url = url
        self.url = safe_url(url)  # for display
        self.read_only = read_only
        self._lock = threading.RLock()
        self._ephemeral_secret: bytes | None = None
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._conn = self._connect()
        if not read_only:
            self._call(self._migrate)
        # the schema this store works with: read-only, an older database's is not migrated
        self._schema = self._call(self._version) if read_only else SCHEMA_VERSION

    @property
    def _empty(self) -> bool:
        """Read-only on a database with no schema yet: an empty store."""
        return self._schema == 0

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, read_only={self.read_only})"

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        try:
            conn = psycopg.connect(
                self._url,
                autocommit=True,  # no implicit transaction left open; writes use explicit BEGIN/COMMIT or one statement
                row_factory=dict_row,
                connect_timeout=10,
                application_name="digest",
            )
            if self.read_only:
                conn.execute("SET default_transaction_read_only = on")
            return conn
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self.url}: {self._text(exc)}") from None

    def _text(self, exc: BaseException) -> str:
        return redact(str(exc).strip() or type(exc).__name__, self._url)

    def _call(self, fn: Callable[[psycopg.Connection[dict[str, Any]], bool], T]) -> T:
        """Run `fn(conn, retried)`; on a dropped connection reconnect once and run it again."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                return fn(self._conn, False)
            except StoreError:
                raise
            except psycopg.OperationalError as exc:
                if self._conn is not None and not (self._conn.broken or self._conn.closed):
                    raise StoreError(f"PostgreSQL error: {self._text(exc)}") from None
                first = self._text(exc)
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL error: {self._text(exc)}") from None
            # the connection dropped: one new connection, one more try
            try:
                if self._conn is not None:
                    self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
            try:
                self._conn = self._connect()
                return fn(self._conn, True)
            except StoreError as exc:
                raise StoreError(
                    f"lost the connection to PostgreSQL ({first}) and could not reconnect: {exc}"
                ) from None
            except psycopg.Error as exc:
                raise StoreError(
                    f"lost the connection to PostgreSQL ({first}), and again after reconnecting: {self._text(exc)}"
                ) from None

    # -- schema -----------------------------------------------------------------------------

    @staticmethod
    def _version(conn: psycopg.Connection[dict[str, Any]], retried: bool = False) -> int:
        # pg_tables, not to_regclass: a replica that waited for the migration lock inside its
        # transaction still has the name cache of before the other replica's migration (it takes
        # no table lock, so no invalidation is read), where `meta` may not exist yet; a catalog
        # query takes a fresh snapshot per statement and sees the committed migration.
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
            "AND tablename = 'meta') AS present"
        ).fetchone()
        if not row or not row["present"]:
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row["value"]) if row else 0

    def _migrate(self, conn: psycopg.Connection[dict[str, Any]], retried: bool) -> None:
        if self._version(conn) == SCHEMA_VERSION:  # the common case: no lock, no transaction
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            version = self._version(conn)  # again, under the lock: another replica may have done it
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database schema version {version} is newer than this digest ({SCHEMA_VERSION}): upgrade digest"
                )
            for target, statements in SCHEMA.items():
                if target <= version:
                    continue
                for statement in statements:  # idempotent, as every CREATE ... IF NOT EXISTS
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(target),),
                )

    def _write(self) -> bool:
        """Whether writes go through (False in read-only mode, where they are dropped)."""
        return not self.read_only

    # -- papers -----------------------------------------------------------------------------

    def edition_papers(self, subscriber_id: str, edition_date: dt.date) -> set[str]:
        if self._empty:
            return set()
        rows = self._call(
            lambda c, _: c.execute(
                "SELECT paper_key FROM seen WHERE subscriber_id = %s AND edition_date = %s",
                (subscriber_id, edition_date.isoformat()),
            ).fetchall()
        )
        return {r["paper_key"] for r in rows}

    def seen(self, subscriber_id: str) -> set[str]:
        if self._empty:
            return set()
        rows = self._call(
            lambda c, _: c.execute("SELECT paper_key FROM seen WHERE subscriber_id = %s", (subscriber_id,)).fetchall()
        )
        return {r["paper_key"] for r in rows}

    def seen_many(self, subscriber_ids: list[str], among: Collection[str] | None = None) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {s: set() for s in subscriber_ids}
        if self._empty or not subscriber_ids or (among is not None and not among):
            return out
        if among is None:
            query, params = "SELECT subscriber_id, paper_key FROM seen WHERE subscriber_id = ANY(%s::text[])", (
                list(subscriber_ids),
            )
        else:  # the primary key (subscriber_id, paper_key) answers both conditions
            query = "SELECT subscriber_id, paper_key FROM seen WHERE subscriber_id = ANY(%s::text[]) AND paper_key = ANY(%s::text[])"
            params = (list(subscriber_ids), list(among))
        rows = self._call(lambda c, _: c.execute(query, params).fetchall())
        for r in rows:
            out[r["subscriber_id"]].add(r["paper_key"])
        return out

    # -- editions ---------------------------------------------------------------------------

    def edition(self, subscriber_id: str, edition_date: dt.date) -> EditionRecord | None:
        if self._empty:
            return None
        row = self._call(
            lambda c, _: c.execute(
                "SELECT * FROM editions WHERE subscriber_id = %s AND edition_date = %s",
                (subscriber_id, edition_date.isoformat()),
            ).fetchone()
        )
        return row_to_edition(row) if row else None

    def editions(self, subscriber_id: str, limit: int = 10) -> list[EditionRecord]:
        if self._empty:
            return []
        rows = self._call(
            lambda c, _: c.execute(
                'SELECT * FROM editions WHERE subscriber_id = %s ORDER BY edition_date COLLATE "C" DESC LIMIT %s',
                (subscriber_id, limit),
            ).fetchall()
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
        if not self._write():
            current = self.edition(subscriber_id, edition_date)
            return current is None or current.status in ("pending", "claimed")
        params = {
            "sub": subscriber_id,
            "day": edition_date.isoformat(),
            "worker": worker,
            "now": ts(now),
            "until": ts(now + lease),
        }

        def run(conn: psycopg.Connection[dict[str, Any]], retried: bool) -> bool:
            row = conn.execute(CLAIM, params).fetchone()
            if row is None:  # a concurrent insert our snapshot missed: held by someone else
                return False
            if row["won"]:
                return True
            if retried and row["claimed_by"] == worker and row["lease_until"] == params["until"]:
                return True  # our first try committed before the connection dropped
            if row["status"] != "claimed" or not owner_is_dead_here(row["claimed_by"]):
                return False
            taken = conn.execute(TAKE_OVER, {**params, "owner": row["claimed_by"]}).fetchone()
            return taken is not None

        return self._call(run)

    def claim_many(
        self, editions: Sequence[tuple[str, dt.date]], *, worker: str, now: dt.datetime, lease: dt.timedelta
    ) -> list[bool]:
        # One statement (one transaction) per edition, exactly as `claim`: a claim never waits on
        # another replica's row locks for longer than one statement.
        return [self.claim(s, d, worker=worker, now=now, lease=lease) for s, d in editions]

    def renew(self, subscriber_id: str, edition_date: dt.date, *, worker: str, until: dt.datetime) -> None:
        self.renew_many([(subscriber_id, edition_date)], worker=worker, until=until)

    def renew_many(self, editions: Sequence[tuple[str, dt.date]], *, worker: str, until: dt.datetime) -> None:
        if not self._write() or not editions:
            return
        rows = [(ts(until), s, d.isoformat(), worker) for s, d in editions]

        def run(conn: psycopg.Connection[dict[str, Any]], retried: bool) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "UPDATE editions SET lease_until = %s WHERE subscriber_id = %s AND edition_date = %s "
                    "AND status = 'claimed' AND claimed_by = %s",
                    rows,
                )

        self._call(run)

    def mark_sent(
        self,
        subscriber_id: str,
        edition_date: dt.date,
        *,
        message_id: str,
        paper_keys: tuple[str, ...],
        now: dt.datetime,
    ) -> None:
        if not self._write():
            return
        params = sent_params(SentEdition(subscriber_id, edition_date, message_id, tuple(paper_keys)), ts(now))
        self._call(lambda c, _: c.execute(MARK_SENT, params))

    def mark_sent_many(self, sent: Sequence[SentEdition], *, now: dt.datetime) -> None:
        if not self._write() or not sent:
            return
        at = ts(now)
        # Sorted by subscriber: concurrent transactions take row locks in one order.
        rows = [sent_params(e, at) for e in sorted(sent, key=lambda e: (e.subscriber_id, e.edition_date))]

        def run(conn: psycopg.Connection[dict[str, Any]], retried: bool) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(MARK_SENT, rows)

        self._call(run)

    def mark_failed(
        self, subscriber_id: str, edition_date: dt.date, *, error: str, permanent: bool, now: dt.datetime
    ) -> None:
        if self._write():
            self._upsert_status(subscriber_id, edition_date, "failed" if permanent else "pending", now, error=error)

    def mark_expired(self, subscriber_id: str, edition_date: dt.date, *, reason: str, now: dt.datetime) -> None:
        if self._write():
            self._upsert_status(subscriber_id, edition_date, "expired", now, error=reason)

    def release(self, subscriber_id: str, edition_date: dt.date, *, worker: str) -> None:
        if self._write():
            self._call(
                lambda c, _: c.execute(
                    "UPDATE editions SET status = 'pending', claimed_by = NULL, lease_until = NULL "
                    "WHERE subscriber_id = %s AND edition_date = %s AND status = 'claimed' AND claimed_by = %s",
                    (subscriber_id, edition_date.isoformat(), worker),
                )
            )

    def _upsert_status(
        self, subscriber_id: str, edition_date: dt.date, status: str, now: dt.datetime, *, error: str | None
    ) -> None:
        params = {
            "sub": subscriber_id,
            "day": edition_date.isoformat(),
            "status": status,
            "message_id": None,
            "count": None,
            "error": error,
            "now": ts(now),
        }
        self._call(lambda c, _: c.execute(UPSERT_STATUS, params))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except psycopg.Error:
                    pass
                self._conn = None
