"""Paper vectors and ratings (schema version 2) in the real SQLite and the real PostgreSQL stores."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.models import RatedPaper
from digest.store import Store, open_store
from digest.store.sql import SCHEMA_VERSION
from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures)

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(hours=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/digest.db"
    pytest.importorskip("psycopg")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    s = open_store(url)
    try:
        yield s
    finally:
        s.close()


def test_schema_is_version_2() -> None:
    assert SCHEMA_VERSION >= 2


def test_vectors_are_kept_once_per_model(store: Store) -> None:
    assert store.vectors("hash-v1", ["arxiv:1", "arxiv:2"]) == {}
    store.save_vectors("hash-v1", [("arxiv:1", "One", b"\x00\x01\xff"), ("arxiv:2", "Two", b"")], now=NOW)
    assert store.vectors("hash-v1", ["arxiv:1", "arxiv:2", "arxiv:3"]) == {"arxiv:1": b"\x00\x01\xff", "arxiv:2": b""}
    # the same model again: the stored row is left as it is
    store.save_vectors("hash-v1", [("arxiv:1", "One, renamed", b"\x09")], now=LATER)
    assert store.vectors("hash-v1", ["arxiv:1"]) == {"arxiv:1": b"\x00\x01\xff"}
    assert store.titles(["arxiv:1", "arxiv:9"]) == {"arxiv:1": "One"}
    # another model replaces it; the old model has no vector for it any more
    store.save_vectors("hash-v2", [("arxiv:1", "One", b"\x07" * 300)], now=LATER)
    assert store.vectors("hash-v2", ["arxiv:1"]) == {"arxiv:1": b"\x07" * 300}
    assert store.vectors("hash-v1", ["arxiv:1"]) == {}
    assert store.vectors("hash-v1", []) == {}


def test_many_keys_at_once(store: Store) -> None:
    rows = [(f"arxiv:{i}", f"Paper {i}", i.to_bytes(4, "big")) for i in range(1200)]
    store.save_vectors("m", rows, now=NOW)
    got = store.vectors("m", [k for k, _, _ in rows] + ["arxiv:nope"])
    assert len(got) == 1200 and got["arxiv:1199"] == (1199).to_bytes(4, "big")


def test_newest_vectors_are_the_latest_stored_papers_of_the_model(store: Store) -> None:
    assert store.newest_vectors("m", 10) == []
    for day in range(5):  # one paper a day, the oldest first
        store.save_vectors("m", [(f"arxiv:{day}", f"Paper {day}", bytes([day]))], now=NOW + dt.timedelta(days=day))
    store.save_vectors("other", [("arxiv:9", "Another model's", b"x")], now=NOW + dt.timedelta(days=9))
    assert store.newest_vectors("m", 3) == [b"\x04", b"\x03", b"\x02"]
    assert store.newest_vectors("m", 100) == [bytes([d]) for d in (4, 3, 2, 1, 0)]
    assert store.newest_vectors("other", 3) == [b"x"]


def test_votes_last_wins_zero_removes_and_rate_returns_the_previous_vote(store: Store) -> None:
    store.save_vectors("m", [("arxiv:1", "Task arithmetic", b"v1")], now=NOW)
    assert store.rate("alice", "arxiv:1", 1, now=NOW) == 0
    assert store.rate("alice", "arxiv:1", 1, now=LATER) == 1  # idempotent
    assert store.ratings_many(["alice"], "m")["alice"] == [RatedPaper("arxiv:1", 1, "Task arithmetic", b"v1", NOW)]
    assert store.rate("alice", "arxiv:1", -1, now=LATER) == 1  # the last vote wins
    assert [(r.key, r.vote, r.rated_at) for r in store.ratings_many(["alice"], "m")["alice"]] == [("arxiv:1", -1, LATER)]
    assert store.rate("alice", "arxiv:1", 0, now=LATER) == -1  # undo
    assert store.ratings_many(["alice"], "m") == {"alice": []}
    assert store.rate("alice", "arxiv:1", 0, now=LATER) == 0
    with pytest.raises(ValueError):
        store.rate("alice", "arxiv:1", 2, now=NOW)


def test_ratings_many_joins_title_and_vector_of_the_model(store: Store) -> None:
    store.save_vectors("m", [("arxiv:1", "One", b"v1"), ("arxiv:2", "Two", b"v2")], now=NOW)
    store.rate("alice", "arxiv:2", 1, now=NOW)
    store.rate("alice", "arxiv:1", -1, now=LATER)
    store.rate("alice", "arxiv:gone", 1, now=LATER)  # a paper with no stored row: no title, no vector
    store.rate("bob", "arxiv:1", 1, now=NOW)
    got = store.ratings_many(["alice", "bob", "carol"], "m")
    assert got["alice"] == [
        RatedPaper("arxiv:2", 1, "Two", b"v2", NOW),
        RatedPaper("arxiv:1", -1, "One", b"v1", LATER),
        RatedPaper("arxiv:gone", 1, "", None, LATER),
    ]
    assert got["bob"] == [RatedPaper("arxiv:1", 1, "One", b"v1", NOW)]
    assert got["carol"] == []
    assert [r.vector for r in store.ratings_many(["bob"], "other-model")["bob"]] == [None]
    assert store.rating_counts() == {"alice": (2, 1), "bob": (1, 0)}


def test_read_only_writes_nothing(store: Store, url: str) -> None:
    store.save_vectors("m", [("arxiv:1", "One", b"v1")], now=NOW)
    store.rate("alice", "arxiv:1", 1, now=NOW)
    ro = open_store(url, read_only=True)
    try:
        ro.save_vectors("m", [("arxiv:2", "Two", b"v2")], now=NOW)
        assert ro.rate("alice", "arxiv:1", -1, now=LATER) == 1
        assert ro.rate("alice", "arxiv:2", 1, now=LATER) == 0
        assert ro.vectors("m", ["arxiv:1", "arxiv:2"]) == {"arxiv:1": b"v1"}
        assert ro.rating_counts() == {"alice": (1, 0)}
    finally:
        ro.close()
    assert store.vectors("m", ["arxiv:2"]) == {}
    assert [(r.key, r.vote) for r in store.ratings_many(["alice"], "m")["alice"]] == [("arxiv:1", 1)]


def test_read_only_on_a_version_1_database_reads_nothing(tmp_path: Path) -> None:
    """A dry-run by a new digest on a database an older one wrote: no migration, no ratings, no error."""
    path = tmp_path / "old.db"
    open_store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE papers; DROP TABLE ratings; UPDATE meta SET value='1' WHERE key='schema_version';")
    db.close()
    ro = open_store(f"sqlite:///{path}", read_only=True)
    try:
        assert ro.vectors("m", ["arxiv:1"]) == {} and ro.titles(["arxiv:1"]) == {}
        assert ro.ratings_many(["alice"], "m") == {"alice": []} and ro.rating_counts() == {}
        assert ro.rate("alice", "arxiv:1", 1, now=NOW) == 0
    finally:
        ro.close()
    rw = open_store(f"sqlite:///{path}")  # a real run migrates it
    try:
        rw.rate("alice", "arxiv:1", 1, now=NOW)
        assert rw.rating_counts() == {"alice": (1, 0)}
    finally:
        rw.close()


@pytest.mark.postgres
def test_read_only_store_on_a_fresh_postgres_database_is_empty(pg_url: str) -> None:  # noqa: F811
    pytest.importorskip("psycopg")
    ro = open_store(pg_url, read_only=True)
    try:
        assert ro.vectors("m", ["arxiv:1"]) == {} and ro.rating_counts() == {}
        assert ro.ratings_many(["alice"], "m") == {"alice": []}
    finally:
        ro.close()


def test_dense_embeddings_are_kept_beside_the_papers_vector(store: Store, url: str) -> None:
    """The semantic extra's embedding of a paper (schema version 4): stored once, read back by
    any later run or replica, pruned with the paper's row; a read-only store writes none."""
    assert SCHEMA_VERSION >= 4
    store.save_vectors("hash-v1", [("arxiv:1", "One", b"v1"), ("arxiv:2", "Two", b"v2")], now=NOW)
    assert store.dense("minilm", ["arxiv:1", "arxiv:2"]) == {}
    store.save_dense("minilm", [("arxiv:1", b"\x01" * 768), ("arxiv:9", b"\x09" * 768)])  # arxiv:9 has no row
    assert store.dense("minilm", ["arxiv:1", "arxiv:2", "arxiv:9"]) == {"arxiv:1": b"\x01" * 768}
    assert store.dense("other", ["arxiv:1"]) == {}  # another model's embedding is not this one's
    assert store.vectors("hash-v1", ["arxiv:1"]) == {"arxiv:1": b"v1"}  # the vector is untouched
    ro = open_store(url, read_only=True)
    try:
        ro.save_dense("minilm", [("arxiv:2", b"\x02" * 768)])
        assert ro.dense("minilm", ["arxiv:1", "arxiv:2"]) == {"arxiv:1": b"\x01" * 768}
    finally:
        ro.close()
    assert store.dense("minilm", ["arxiv:2"]) == {}


def test_read_only_on_a_version_3_database_has_no_dense_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    open_store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    db.executescript(
        "ALTER TABLE papers DROP COLUMN dense; ALTER TABLE papers DROP COLUMN dense_model; "
        "UPDATE meta SET value='3' WHERE key='schema_version';"
    )
    db.close()
    ro = open_store(f"sqlite:///{path}", read_only=True)
    try:
        assert ro.dense("minilm", ["arxiv:1"]) == {}
        ro.save_dense("minilm", [("arxiv:1", b"x")])  # nothing, no error
    finally:
        ro.close()
    rw = open_store(f"sqlite:///{path}")  # a real run adds the columns
    try:
        rw.save_vectors("hash-v1", [("arxiv:1", "One", b"v1")], now=NOW)
        rw.save_dense("minilm", [("arxiv:1", b"d")])
        assert rw.dense("minilm", ["arxiv:1"]) == {"arxiv:1": b"d"}
    finally:
        rw.close()
