"""What the SQL stores share: the schema (by version), time encoding, row mapping, owner liveness."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Mapping
from typing import Any

from digest.store import FINISHED, EditionRecord, SubscriberState

__all__ = ["FailureStreak", "SCHEMA", "SCHEMA_VERSION", "PRUNE_BATCH", "FINISHED_IN", "ts", "parse_time", "row_to_edition", "row_to_state", "owner_is_dead_here"]

# version -> statements that bring the schema from version-1 to version. Portable SQL (SQLite and
# PostgreSQL); times are ISO 8601 UTC text, so they sort and compare as text on both engines.
SCHEMA: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS editions (
            subscriber_id TEXT NOT NULL,
            edition_date TEXT NOT NULL,
            status TEXT NOT NULL,
            message_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            claimed_by TEXT,
            lease_until TEXT,
            paper_count INTEGER,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, edition_date)
        )""",
        "CREATE INDEX IF NOT EXISTS editions_status ON editions(status, edition_date)",
        """CREATE TABLE IF NOT EXISTS seen (
            subscriber_id TEXT NOT NULL,
            paper_key TEXT NOT NULL,
            edition_date TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, paper_key)
        )""",
        """CREATE TABLE IF NOT EXISTS subscribers (
            subscriber_id TEXT PRIMARY KEY,
            unsubscribed_at TEXT,
            suspended_at TEXT,
            suspended_reason TEXT
        )""",
    ],
    # Papers' vectors (embedded once, kept) and readers' ratings. `vector` is BYTEA: PostgreSQL's
    # byte string; SQLite gives the name NUMERIC affinity, which stores blobs exactly as given.
    # A rating outlives the paper's row (LEFT JOIN): its vector is then unknown, not the vote.
    2: [
        """CREATE TABLE IF NOT EXISTS papers (
            paper_key TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT NOT NULL,
            vector BYTEA NOT NULL,
            first_seen TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS ratings (
            subscriber_id TEXT NOT NULL,
            paper_key TEXT NOT NULL,
            vote INTEGER NOT NULL,
            rated_at TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, paper_key)
        )""",
    ],
    # Retention: the daily prune finds seen rows by the UTC day they were sent (not the edition's
    # date, which `digest send --date` may set in the past), through this index on an expression.
    3: ["CREATE INDEX IF NOT EXISTS seen_sent_day ON seen ((substr(sent_at, 1, 10)))"],
    # The semantic extra's dense embedding of a paper, kept beside its stored vector (and pruned
    # with it): a run, a `digest rank` or a replica never runs the model on a paper twice.
    4: ["ALTER TABLE papers ADD COLUMN dense_model TEXT", "ALTER TABLE papers ADD COLUMN dense BYTEA"],
    # The per-reader model's idf background is the newest stored papers (`newest_vectors`); the
    # daily prune deletes papers by the same column.
    5: ["CREATE INDEX IF NOT EXISTS papers_first_seen ON papers(first_seen)"],
}
SCHEMA_VERSION = max(SCHEMA)

PRUNE_BATCH = 5000  # rows to a transaction of the daily prune: about 10 ms of SQLite's time
FINISHED_IN = "(" + ", ".join(f"'{status}'" for status in FINISHED) + ")"  # SQL: status IN FINISHED_IN


class FailureStreak:
    """`permanent_failures_in_a_row`, the same on both stores (from their `editions`)."""

    def editions(self, subscriber_id: str, limit: int = 10) -> list[EditionRecord]: ...  # the store's

    def permanent_failures_in_a_row(self, subscriber_id: str) -> int:
        count = 0
        for record in self.editions(subscriber_id, limit=50):
            if record.status == "failed":
                count += 1
            elif record.status in ("sent", "expired"):
                break
        return count


def ts(moment: dt.datetime) -> str:
    """An aware datetime as sortable UTC text."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def row_to_edition(row: Mapping[str, Any]) -> EditionRecord:
    return EditionRecord(
        subscriber_id=row["subscriber_id"],
        edition_date=dt.date.fromisoformat(row["edition_date"]),
        status=row["status"],
        message_id=row["message_id"],
        attempts=row["attempts"],
        error=row["error"],
        claimed_by=row["claimed_by"],
        lease_until=parse_time(row["lease_until"]),
        paper_count=row["paper_count"],
        updated_at=parse_time(row["updated_at"]),  # type: ignore[arg-type]
    )


def row_to_state(row: Mapping[str, Any]) -> SubscriberState:
    return SubscriberState(
        row["subscriber_id"],
        parse_time(row["unsubscribed_at"]),
        parse_time(row["suspended_at"]),
        row["suspended_reason"],
    )


def owner_is_dead_here(owner: str | None) -> bool:
    """True when `owner` (host:pid:token) names a process on this host that no longer runs."""
    if not owner:
        return True
    parts = owner.split(":")
    if len(parts) < 3 or parts[0] != socket.gethostname():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
