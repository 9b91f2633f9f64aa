"""Store stage: which papers each reader was sent, and the state of every edition.

An edition (subscriber, local date) moves through these states:

    (none) --claim--> claimed --mark_sent--> sent
                         |  \\--mark_failed(permanent=False)--> pending --claim--> claimed ...
                         |   \\-mark_failed(permanent=True)---> failed
                         \\--(lease runs out: the worker died)--> claimable again
    pending/claimed --mark_expired--> expired   (older than edition_max_age: never sent late)

`mark_sent` records the edition as sent and its papers as seen in ONE transaction, and is only
called after the SMTP server (or the Maildir) accepted the message. `mark_sent_many` does the same
for several editions in one transaction (a group commit): every message it records was accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from digest.errors import ConfigError
from digest.models import RatedPaper

__all__ = ["Store", "EditionRecord", "SentEdition", "SubscriberState", "Pruned", "open_store", "CLAIMABLE", "FINISHED", "VOTES"]

CLAIMABLE = ("pending",)  # plus "claimed" with an expired lease or a dead local owner
FINISHED = ("sent", "failed", "expired")  # an edition in one of these is done: never sent again
VOTES = (-1, 0, 1)  # "not for me", no rating (undo), "more like this"


@dataclass(frozen=True, slots=True)
class EditionRecord:
    subscriber_id: str
    edition_date: dt.date
    status: str  # claimed | pending | sent | failed | expired
    message_id: str | None
    attempts: int
    error: str | None
    claimed_by: str | None
    lease_until: dt.datetime | None
    paper_count: int | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SentEdition:
    """An edition whose message the server accepted: what `mark_sent_many` records."""

    subscriber_id: str
    edition_date: dt.date
    message_id: str
    paper_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SubscriberState:
    subscriber_id: str
    unsubscribed_at: dt.datetime | None = None
    suspended_at: dt.datetime | None = None
    suspended_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one daily prune deleted (digest/store/retention.py)."""

    seen: int
    editions: int
    papers: int
    seconds: float


class Store(Protocol):
    """The seen-store. Implementations: SqliteStore (default), PostgresStore (several replicas)."""

    def seen(self, subscriber_id: str) -> set[str]:
        """Keys of every paper this subscriber was ever sent."""
        ...

    def seen_many(self, subscriber_ids: list[str], among: Collection[str] | None = None) -> dict[str, set[str]]:
        """`seen` for many subscribers in one query; with `among` (today's paper keys), only those
        keys: what a run needs, however many papers its readers were sent before."""
        ...

    def edition(self, subscriber_id: str, edition_date: dt.date) -> EditionRecord | None: ...

    def edition_papers(self, subscriber_id: str, edition_date: dt.date) -> set[str]:
        """Keys of the papers the edition (subscriber, date) delivered (marked seen with it)."""
        ...

    def editions(self, subscriber_id: str, limit: int = 10) -> list[EditionRecord]:
        """The most recent editions of one subscriber, newest first."""
        ...

    def claim(
        self, subscriber_id: str, edition_date: dt.date, *, worker: str, now: dt.datetime, lease: dt.timedelta
    ) -> bool:
        """Take the edition for `worker`. False when it is sent, failed, expired or held by a live worker."""
        ...

    def claim_many(
        self, editions: Sequence[tuple[str, dt.date]], *, worker: str, now: dt.datetime, lease: dt.timedelta
    ) -> list[bool]:
        """`claim` for each (subscriber, date), in order: the same outcome as one `claim` call each."""
        ...

    def renew(self, subscriber_id: str, edition_date: dt.date, *, worker: str, until: dt.datetime) -> None: ...

    def renew_many(self, editions: Sequence[tuple[str, dt.date]], *, worker: str, until: dt.datetime) -> None:
        """`renew` for each (subscriber, date) this worker holds."""
        ...

    def mark_sent(
        self,
        subscriber_id: str,
        edition_date: dt.date,
        *,
        message_id: str,
        paper_keys: tuple[str, ...],
        now: dt.datetime,
    ) -> None: ...

    def mark_sent_many(self, sent: Sequence[SentEdition], *, now: dt.datetime) -> None:
        """`mark_sent` for every edition of `sent`, all in ONE transaction (all or none)."""
        ...

    def mark_failed(
        self, subscriber_id: str, edition_date: dt.date, *, error: str, permanent: bool, now: dt.datetime
    ) -> None: ...

    def mark_expired(self, subscriber_id: str, edition_date: dt.date, *, reason: str, now: dt.datetime) -> None: ...

    def release(self, subscriber_id: str, edition_date: dt.date, *, worker: str) -> None:
        """Give a claim back unsent (clean stop): the edition is pending again."""
        ...

    def subscriber(self, subscriber_id: str) -> SubscriberState: ...

    def subscribers(self) -> dict[str, SubscriberState]:
        """Every subscriber with a recorded state (unsubscribed or suspended)."""
        ...

    def unsubscribe(self, subscriber_id: str, *, now: dt.datetime) -> bool:
        """True when this call changed the state."""
        ...

    def resubscribe(self, subscriber_id: str) -> bool:
        """Clear unsubscribed and suspended. True when this call changed the state."""
        ...

    def suspend(self, subscriber_id: str, *, reason: str, now: dt.datetime) -> None: ...

    def permanent_failures_in_a_row(self, subscriber_id: str) -> int: ...

    def secret(self) -> bytes:
        """The key that signs unsubscribe links, created on first use and kept."""
        ...

    # -- paper vectors and ratings (digest/store/sqlite_ratings.py, pg_ratings.py) -------------

    def save_vectors(self, model: str, rows: Sequence[tuple[str, str, bytes]], *, now: dt.datetime) -> None:
        """Keep (paper key, title, vector) of `model`. A paper stored with the same model is left
        untouched; one stored with another model gets the new vector. Read-only: nothing."""
        ...

    def vectors(self, model: str, keys: Collection[str]) -> dict[str, bytes]:
        """The stored vectors of `model` for those of `keys` that have one."""
        ...

    def newest_vectors(self, model: str, limit: int) -> list[bytes]:
        """The stored vectors of `model` of the `limit` papers stored last (fewer if the store holds
        fewer): the background the per-reader model takes its idf from."""
        ...

    def save_dense(self, model: str, rows: Sequence[tuple[str, bytes]]) -> None:
        """Keep (paper key, dense embedding) of `model` (the semantic extra) beside the paper's
        stored vector; a paper with no stored row is skipped. Read-only: nothing."""
        ...

    def dense(self, model: str, keys: Collection[str]) -> dict[str, bytes]:
        """The stored dense embeddings of `model` for those of `keys` that have one."""
        ...

    def titles(self, keys: Collection[str]) -> dict[str, str]:
        """The stored title of each of `keys` the papers table knows."""
        ...

    def rate(self, subscriber_id: str, paper_key: str, vote: int, *, now: dt.datetime) -> int:
        """Record a vote: +1 "more like this", -1 "not for me" (the last vote wins), 0 removes it.
        Returns the vote it replaced (0: none), so a caller can offer undo."""
        ...

    def ratings_many(self, subscriber_ids: list[str], model: str) -> dict[str, list[RatedPaper]]:
        """Every rating of each subscriber (oldest first), with the paper's stored title and
        `model` vector (None when not stored)."""
        ...

    def rating_counts(self) -> dict[str, tuple[int, int]]:
        """subscriber -> (up-votes, down-votes), for `digest check`: counts, never titles."""
        ...

    # -- upkeep (digest/store/sqlite_upkeep.py, pg_upkeep.py) ----------------------------------

    def verify(self) -> None:
        """Raise StoreError when the database is damaged (SQLite: `PRAGMA quick_check`, which reads
        every page; PostgreSQL checks its own pages: nothing to do)."""
        ...

    def prune(self, *, before: dt.date, keep: Collection[str], today: dt.date) -> Pruned | None:
        """Delete what retention no longer needs, at most once per `today` across every process
        sharing the database (the others get None): seen rows recorded (sent) before the UTC day
        `before`, editions finished (sent, failed, expired) before it, and stored papers first met
        before it that nobody rated. Papers of `keep` (still listed in a source) keep their rows;
        ratings and the papers they refer to are never deleted. Small transactions, so sends and
        unsubscribes are not held up. Read-only: nothing, None."""
        ...

    def close(self) -> None: ...


def open_store(url: str, *, read_only: bool = False, init: bool = False) -> Store:
    """The store for `database_url`: `sqlite:///relative.db`, `sqlite:////abs.db`, `postgresql://…`.

    `read_only` (for --dry-run) never creates, migrates or writes anything. An existing SQLite file
    that is empty or damaged is an error; `init` moves it aside and starts a new database instead.
    """
    if url.startswith("sqlite:"):
        from digest.store.sqlite import SqliteStore, path_from_url

        return SqliteStore(path_from_url(url), read_only=read_only, init=init)
    if url.startswith(("postgresql:", "postgres:")):
        try:
            from digest.store.postgres import PostgresStore
        except ImportError as exc:
            raise ConfigError(
                f"database_url is PostgreSQL but its driver is missing ({exc.name}): "
                "pip install 'paper-digest-mailer[postgres]' (from a checkout: pip install '.[postgres]')"
            ) from None
        return PostgresStore(url, read_only=read_only)
    raise ConfigError(f"database_url: unsupported scheme in {url.split(':', 1)[0]!r} (sqlite or postgresql)")
