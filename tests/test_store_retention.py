"""Retention: the daily prune keeps what a run needs, on real SQLite and real PostgreSQL.

Issue 12, item 8: the seen-store only grew (1,000 readers x 60 papers a day: 136 MB in 30 days).
What must hold: old seen rows, finished editions and unrated papers go; a paper a source still
lists, every rating and the paper it refers to, and every unsubscribe stay; one process prunes
once a day, in bounded transactions; and a pruned paper is never sent again.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings
from digest.errors import ConfigError
from digest.store import SentEdition, Store, open_store
from digest.store.retention import prune
from digest.store.sql import ts
from tests.pg import pg_server, pg_url  # noqa: F401  (fixtures)
from tests.test_store_ratings import store, url  # noqa: F401  (fixtures: real SQLite, real PostgreSQL)

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
TODAY = NOW.date()
OLD, RECENT = TODAY - dt.timedelta(days=120), TODAY - dt.timedelta(days=10)
RETENTION = dt.timedelta(days=90)


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(7), dt.timezone.utc)


def sent(store: Store, sub: str, day: dt.date, keys: tuple[str, ...]) -> None:
    store.mark_sent_many([SentEdition(sub, day, f"<{sub}.{day}@x>", keys)], now=at(day))


def test_the_prune_deletes_what_retention_no_longer_needs_and_keeps_the_rest(store: Store) -> None:
    store.save_vectors("m", [(k, k, b"v") for k in ("arxiv:old", "arxiv:rated", "arxiv:listed")], now=at(OLD))
    store.save_vectors("m", [("arxiv:new", "arxiv:new", b"v")], now=at(RECENT))
    sent(store, "alice", OLD, ("arxiv:old", "arxiv:rated", "arxiv:listed"))
    sent(store, "alice", RECENT, ("arxiv:new",))
    store.mark_failed("bob", OLD, error="550", permanent=False, now=at(OLD))  # pending: may still go out
    store.rate("alice", "arxiv:rated", 1, now=at(OLD))
    store.unsubscribe("carol", now=at(OLD))
    # `digest send --date` of an old day, run today: sent today, so kept for `retention` from today
    store.mark_sent_many([SentEdition("dora", OLD, "<d>", ("arxiv:backfill",))], now=NOW)

    done = prune(store, retention=RETENTION, listed={"arxiv:listed"}, complete=True, now=NOW)

    assert done is not None and (done.seen, done.editions, done.papers) == (2, 1, 1)
    assert store.seen("alice") == {"arxiv:listed", "arxiv:new"}  # still listed: still seen
    assert store.edition("alice", OLD) is None and store.edition("alice", RECENT).status == "sent"
    assert store.edition("bob", OLD).status == "pending"
    assert store.titles(["arxiv:old", "arxiv:rated", "arxiv:listed", "arxiv:new"]).keys() == {
        "arxiv:rated", "arxiv:listed", "arxiv:new"
    }  # fmt: skip
    rated = store.ratings_many(["alice"], "m")["alice"]
    assert [(r.key, r.vote, r.vector) for r in rated] == [("arxiv:rated", 1, b"v")]  # the reader's model
    assert store.subscriber("carol").unsubscribed_at is not None
    assert store.seen("dora") == {"arxiv:backfill"} and store.edition("dora", OLD).status == "sent"


def test_one_prune_a_day_whoever_asks(url: str, store: Store) -> None:
    sent(store, "alice", OLD, ("arxiv:1",))
    replica = open_store(url)
    try:
        assert prune(store, retention=RETENTION, listed=(), complete=True, now=NOW) is not None
        sent(store, "alice", OLD - dt.timedelta(days=1), ("arxiv:2",))
        assert prune(replica, retention=RETENTION, listed=(), complete=True, now=NOW) is None
        assert prune(store, retention=RETENTION, listed=(), complete=True, now=NOW + dt.timedelta(hours=16)) is None
        assert store.seen("alice") == {"arxiv:2"}  # left for tomorrow's prune
        tomorrow = prune(replica, retention=RETENTION, listed=(), complete=True, now=NOW + dt.timedelta(days=1))
        assert tomorrow is not None and tomorrow.seen == 1 and store.seen("alice") == set()
    finally:
        replica.close()


def test_no_prune_without_retention_after_a_failed_source_or_read_only(url: str, store: Store) -> None:
    sent(store, "alice", OLD, ("arxiv:1",))
    assert prune(store, retention=None, listed=(), complete=True, now=NOW) is None
    assert prune(store, retention=RETENTION, listed=(), complete=False, now=NOW) is None  # its papers may be listed
    ro = open_store(url, read_only=True)
    try:
        assert prune(ro, retention=RETENTION, listed=(), complete=True, now=NOW) is None
    finally:
        ro.close()
    assert store.seen("alice") == {"arxiv:1"}


def test_the_prune_goes_in_bounded_batches(store: Store) -> None:
    for day in range(5):
        keys = tuple(f"arxiv:{day}.{k}" for k in range(9))
        edition = OLD - dt.timedelta(days=day)
        store.mark_sent_many([SentEdition(f"r{u}", edition, "<m>", keys) for u in range(7)], now=at(OLD))
    done = store.prune(before=TODAY - RETENTION, keep={"arxiv:0.0"}, today=TODAY, batch=4)
    assert done is not None and (done.seen, done.editions) == (5 * 7 * 9 - 7, 5 * 7)
    assert store.seen_many([f"r{u}" for u in range(7)]) == {f"r{u}": {"arxiv:0.0"} for u in range(7)}


def test_the_seen_rows_are_found_through_an_index(tmp_path: Path) -> None:
    path = tmp_path / "digest.db"
    open_store(f"sqlite:///{path}").close()
    plan = sqlite3.connect(path).execute(
        "EXPLAIN QUERY PLAN SELECT rowid FROM seen WHERE substr(sent_at, 1, 10) < '2026-01-01' LIMIT 10"
    ).fetchall()
    assert "seen_sent_day" in " ".join(str(row[-1]) for row in plan)


# -- settings and a real run ---------------------------------------------------------------------


def settings_file(project: Path, **extra: object) -> Path:
    path = project / "config" / "digest.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(extra)
    path.write_text(yaml.safe_dump(data))
    return path


def test_retention_must_outlive_every_source_lookback(project: Path) -> None:
    base = yaml.safe_load((project / "config" / "digest.yaml").read_text())
    sources = [dict(base["sources"][0], lookback_days=7), base["sources"][1]]
    with pytest.raises(ConfigError, match=r"retention: must be at least 9d"):
        load_settings(settings_file(project, retention="8d", sources=sources))
    assert load_settings(settings_file(project, retention="9d", sources=sources)).retention == dt.timedelta(days=9)
    assert load_settings(settings_file(project, retention=None)).retention is None
    (project / "config" / "digest.yaml").write_text(yaml.safe_dump(base))
    assert load_settings(project / "config" / "digest.yaml").retention == RETENTION  # the default


def test_a_run_prunes_and_never_sends_a_pruned_paper_again(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    config = settings_file(project)
    digest = lambda *a: CliRunner().invoke(cli, ["--config", str(config), *a], catch_exceptions=False)  # noqa: E731
    today = dt.datetime.now(dt.timezone.utc).date()
    first = digest("send", "--json", "--date", today.isoformat())
    assert first.exit_code == 0, first.stderr
    alice = [r for r in json.loads(first.stdout) if r["user"] == "alice"][0]
    assert alice["status"] == "sent" and alice["papers"] > 0
    store = open_store("sqlite:///data/digest.db")
    today_keys = store.seen("alice")
    assert today_keys
    long_ago = today - dt.timedelta(days=200)
    # Backdate what alice was sent today, as if sent 200 days ago, and add a paper no source lists.
    db = sqlite3.connect("data/digest.db")
    db.execute("UPDATE seen SET sent_at=? WHERE subscriber_id='alice'", (ts(at(long_ago)),))
    db.execute("UPDATE meta SET value='2000-01-01' WHERE key='pruned_on'")
    db.commit()
    db.close()
    sent(store, "alice", long_ago, ("arxiv:gone",))
    store.close()

    tomorrow = today + dt.timedelta(days=1)
    again = digest("send", "--json", "--date", tomorrow.isoformat())
    assert again.exit_code == 0, again.stderr
    store = open_store("sqlite:///data/digest.db")
    try:  # the run pruned the paper no source lists; the ones still listed kept their rows
        assert store.seen("alice") == today_keys
    finally:
        store.close()
    db = sqlite3.connect("data/digest.db")
    sent_tomorrow = {k for (k,) in db.execute(
        "SELECT paper_key FROM seen WHERE subscriber_id='alice' AND edition_date=?", (tomorrow.isoformat(),)
    )}  # fmt: skip
    db.close()
    assert not sent_tomorrow & today_keys  # before: pruned at 200 days old, so sent again
    papers = {r["user"]: r["papers"] for r in json.loads(again.stdout)}
    assert len(sent_tomorrow) == papers["alice"]


def test_the_service_prunes_after_a_run(tmp_path: Path) -> None:
    import asyncio

    from tests.service_helpers import local_send_at, reader
    from tests.test_service import _run_until, in_process

    now = dt.datetime.now(dt.timezone.utc)
    send_at, when = local_send_at("UTC", minutes=-60, now=now)
    service, store, _ = in_process(tmp_path, {"lea": reader("lea@example.org", send_at=send_at)}, catch_up=1)
    try:
        day = when.date()
        sent(store, "lea", day - dt.timedelta(days=200), ("arxiv:gone",))
        assert store.claim("lea", day, worker="w", now=now, lease=dt.timedelta(minutes=10))
        store.mark_failed("lea", day, error="451 try later", permanent=False, now=now)  # the retry job sends it
        def pruned() -> bool:
            return store.edition("lea", day).status == "sent" and "arxiv:gone" not in store.seen("lea")

        asyncio.run(_run_until(service, pruned, 15))  # before: timed out, nothing was ever pruned
        assert "arxiv:gone" not in store.seen("lea") and store.seen("lea")
        assert store.edition("lea", day - dt.timedelta(days=200)) is None
    finally:
        store.close()
