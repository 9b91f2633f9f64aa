"""The SQLite seen-store: claims, one-transaction sends, read-only mode, schema, crash safety."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from digest.errors import StoreError
from digest.store import open_store
from digest.store.sqlite import worker_id
from digest.store.sql import SCHEMA_VERSION

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
DAY = dt.date(2026, 11, 21)
LEASE = dt.timedelta(minutes=10)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/digest.db"


def test_an_edition_is_claimed_once_and_sent_once(url: str) -> None:
    store = open_store(url)
    me, other = worker_id(), "elsewhere:1:abcd"
    assert store.claim("alice", DAY, worker=me, now=NOW, lease=LEASE)
    assert not store.claim("alice", DAY, worker=other, now=NOW, lease=LEASE)  # held by a live worker
    store.mark_sent("alice", DAY, message_id="<m@x>", paper_keys=("arxiv:1", "arxiv:2"), now=NOW)
    assert not store.claim("alice", DAY, worker=other, now=NOW + dt.timedelta(days=1), lease=LEASE)
    record = store.edition("alice", DAY)
    assert (record.status, record.message_id, record.paper_count) == ("sent", "<m@x>", 2)
    assert store.seen("alice") == {"arxiv:1", "arxiv:2"}
    assert store.seen("bob") == set()
    assert store.seen_many(["alice", "bob"]) == {"alice": {"arxiv:1", "arxiv:2"}, "bob": set()}
    # Only today's keys: what a run needs, however much was sent before.
    assert store.seen_many(["alice", "bob"], among={"arxiv:2", "arxiv:9"}) == {"alice": {"arxiv:2"}, "bob": set()}
    assert store.seen_many(["alice"], among=set()) == {"alice": set()}


def test_an_expired_lease_is_taken_over(url: str) -> None:
    store = open_store(url)
    assert store.claim("alice", DAY, worker="gone:1:x", now=NOW, lease=LEASE)
    assert not store.claim("alice", DAY, worker="b:2:y", now=NOW + LEASE / 2, lease=LEASE)
    assert store.claim("alice", DAY, worker="b:2:y", now=NOW + LEASE, lease=LEASE)
    assert store.edition("alice", DAY).attempts == 2


def test_a_claim_of_a_dead_local_process_is_taken_over_at_once(url: str) -> None:
    store = open_store(url)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = f"{worker_id().split(':')[0]}:{dead.stdout.strip()}:x"
    assert store.claim("alice", DAY, worker=owner, now=NOW, lease=LEASE)
    assert store.claim("alice", DAY, worker=worker_id(), now=NOW, lease=LEASE)


def test_temporary_failure_leaves_the_edition_pending_and_permanent_does_not(url: str) -> None:
    store = open_store(url)
    me = worker_id()
    store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    store.mark_failed("a", DAY, error="451 try later", permanent=False, now=NOW)
    assert store.edition("a", DAY).status == "pending"
    assert store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    store.mark_failed("a", DAY, error="550 no such user", permanent=True, now=NOW)
    assert store.edition("a", DAY).status == "failed"
    assert not store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    assert store.seen("a") == set()  # nothing is seen until a message is accepted
    assert store.permanent_failures_in_a_row("a") == 1


def test_release_gives_an_unsent_claim_back(url: str) -> None:
    store = open_store(url)
    me = worker_id()
    store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    store.release("a", DAY, worker=me)
    assert store.edition("a", DAY).status == "pending"
    assert store.claim("a", DAY, worker="other:1:x", now=NOW, lease=LEASE)


def test_unsubscribe_and_resubscribe(url: str) -> None:
    store = open_store(url)
    assert store.unsubscribe("a", now=NOW)
    assert not store.unsubscribe("a", now=NOW)  # already
    assert store.subscriber("a").unsubscribed_at == NOW
    assert set(store.subscribers()) == {"a"}
    assert store.resubscribe("a")
    assert store.subscriber("a").unsubscribed_at is None


def test_the_unsubscribe_secret_is_created_once_and_kept(url: str) -> None:
    first = open_store(url).secret()
    assert len(first) == 32
    assert open_store(url).secret() == first


def test_read_only_mode_never_writes(url: str, tmp_path: Path) -> None:
    store = open_store(url)
    store.mark_sent("a", DAY, message_id="<m>", paper_keys=("arxiv:1",), now=NOW)
    store.close()
    db = tmp_path / "digest.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    ro = open_store(url, read_only=True)
    assert ro.seen("a") == {"arxiv:1"}
    assert ro.seen_many(["a"], among={"arxiv:1"}) == {"a": {"arxiv:1"}}  # a dry run reads it so
    assert ro.claim("b", DAY, worker=worker_id(), now=NOW, lease=LEASE)
    ro.mark_sent("b", DAY, message_id="<n>", paper_keys=("arxiv:2",), now=NOW)
    ro.unsubscribe("a", now=NOW)
    ro.secret()
    assert ro.seen("b") == set() and ro.edition("b", DAY) is None
    ro.close()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_read_only_mode_creates_no_database(tmp_path: Path) -> None:
    ro = open_store(f"sqlite:///{tmp_path}/none/digest.db", read_only=True)
    assert ro.seen("a") == set()
    assert not (tmp_path / "none").exists()


def test_schema_is_versioned_and_a_newer_schema_is_refused(url: str, tmp_path: Path) -> None:
    open_store(url).close()
    db = sqlite3.connect(tmp_path / "digest.db")
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(url)


def test_unsupported_database_url() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        open_store("mysql://x")
