"""An existing SQLite database that is empty or damaged is refused, never silently made anew.

Issue 12, item 4: a 0-byte database used to be re-created, and every reader got today's edition
again, the seen history and the unsubscribe key were gone, and an unsubscribed reader was mailed.
8 KB of garbage mid-file went unnoticed by `digest check`; on the last pages it ended in a
traceback. Each case here runs the real `digest` command on a real database full of data.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from digest.errors import StoreError
from digest.store import SentEdition, open_store

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 11, 21)
NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)


def digest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digest", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(project)},
    )


def delivered(project: Path) -> int:
    new = project / "data" / "outbox" / "new"
    return len(list(new.iterdir())) if new.exists() else 0


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def db(project: Path) -> Path:
    """The example's database after a day's run (alice, bob, chen sent; bob then unsubscribed),
    plus 30 days of history for 100 more readers: a few MB of real pages."""
    result = digest(project, "send", "--date", DAY.isoformat())
    assert result.returncode == 0, result.stderr
    path = project / "data" / "digest.db"
    store = open_store(f"sqlite:///{path}")
    for day in range(30):
        edition = DAY - dt.timedelta(days=30 - day)
        keys = tuple(f"arxiv:2609.{day * 100 + i:05d}" for i in range(30))
        sent = [SentEdition(f"reader-{u:03d}", edition, f"<{u}.{day}@x>", keys) for u in range(100)]
        store.mark_sent_many(sent, now=NOW)
    store.unsubscribe("bob", now=NOW)
    store.close()
    return path


def garble(path: Path, where: str) -> None:
    """8 KB of garbage: in the middle of the file, on its last pages, or over its header."""
    size = path.stat().st_size
    offset = {"mid-file": size // 2 - 4096, "last-pages": size - 8192, "header": 0}[where]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(random.Random(12).randbytes(8192))


def test_a_zero_byte_database_is_refused_and_left_as_it_is(project: Path, db: Path) -> None:
    db.write_bytes(b"")
    before = delivered(project)
    result = digest(project, "send", "--date", DAY.isoformat())
    assert result.returncode == 1
    line = one_error_line(result)
    assert "data/digest.db is empty (0 bytes)" in line and "backup" in line and "--init" in line
    assert delivered(project) == before  # before the fix: every reader mailed again, bob too
    assert db.stat().st_size == 0  # never re-created behind the operator's back
    check = digest(project, "check")
    assert check.returncode != 0 and "empty (0 bytes)" in one_error_line(check)
    service = digest(project, "run")
    assert service.returncode == 1 and "empty (0 bytes)" in one_error_line(service)


@pytest.mark.parametrize("where", ["mid-file", "last-pages", "header"])
def test_a_damaged_database_is_refused_before_anything_is_sent(project: Path, db: Path, where: str) -> None:
    garble(db, where)
    before = delivered(project)
    result = digest(project, "send", "--date", (DAY + dt.timedelta(days=1)).isoformat())
    assert result.returncode == 1
    line = one_error_line(result)
    assert "data/digest.db is damaged" in line and "backup" in line and "--init" in line
    assert delivered(project) == before
    check = digest(project, "check")  # before the fix: exit 0
    assert check.returncode != 0
    assert "data/digest.db is damaged" in one_error_line(check)


def test_init_moves_a_damaged_database_aside_and_starts_afresh(project: Path, db: Path) -> None:
    garble(db, "mid-file")
    damaged = db.read_bytes()
    result = digest(project, "send", "--init", "--date", DAY.isoformat())
    assert result.returncode == 0, result.stderr
    assert "moved it to" in result.stderr and "damaged-" in result.stderr
    aside = list(db.parent.glob("digest.db.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # kept for inspection, never deleted
    store = open_store(f"sqlite:///{db}", read_only=True)
    try:
        store.verify()
        assert store.edition("alice", DAY).status == "sent"  # a new database: history starts here
    finally:
        store.close()


def test_init_keeps_a_sound_database(project: Path, db: Path) -> None:
    before = delivered(project)
    result = digest(project, "send", "--init", "--date", DAY.isoformat(), "--json")
    assert result.returncode == 0, result.stderr
    assert delivered(project) == before  # alice and chen had today's edition; bob unsubscribed
    assert not list(db.parent.glob("*.damaged-*"))
    assert "unsubscribed" in digest(project, "check").stdout


def test_init_cannot_be_combined_with_dry_run(project: Path, db: Path) -> None:
    result = digest(project, "send", "--init", "--dry-run")
    assert result.returncode == 2 and "--dry-run" in result.stderr


def test_a_missing_database_is_created_whole(tmp_path: Path) -> None:
    path = tmp_path / "new" / "digest.db"
    store = open_store(f"sqlite:///{path}")
    store.close()
    assert [p.name for p in path.parent.iterdir()] == ["digest.db"]  # no temporary file left
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]


def test_a_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    for read_only in (False, True):
        with pytest.raises(StoreError, match="has no digest tables.*--init"):
            open_store(f"sqlite:///{path}", read_only=read_only)


def test_damage_found_after_opening_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "digest.db"
    store = open_store(f"sqlite:///{path}")
    for day in range(20):
        keys = tuple(f"arxiv:2609.{day * 100 + i:05d}" for i in range(30))
        edition = DAY - dt.timedelta(days=day)
        store.mark_sent_many([SentEdition(f"r{u}", edition, "<m>", keys) for u in range(100)], now=NOW)
    store.close()
    store = open_store(f"sqlite:///{path}")  # opened while sound; then a disk goes bad under it
    garble(path, "mid-file")
    # found by the check or by the first query it breaks, whichever reaches the garbled pages first
    with pytest.raises(StoreError, match=r"is damaged \((quick_check: .*|.*malformed.*)\).*backup.*--init"):
        store.verify()
        for day in range(20):
            store.seen_many([f"r{u}" for u in range(100)])
    store.close()


def test_processes_creating_the_database_at_once_all_use_one_whole_database(tmp_path: Path) -> None:
    path = tmp_path / "data" / "digest.db"
    code = (
        "import sys, datetime as dt; from digest.store import open_store; s = open_store(sys.argv[1]); "
        "s.unsubscribe(sys.argv[2], now=dt.datetime.now(dt.timezone.utc)); print(s.secret().hex()); s.close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{path}", f"r{i}"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]  # fmt: skip
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len({out for out, _ in outs}) == 1  # one database, one unsubscribe key
    store = open_store(f"sqlite:///{path}", read_only=True)
    try:
        assert set(store.subscribers()) == {f"r{i}" for i in range(6)}  # nobody's write went to a lost file
    finally:
        store.close()
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["digest.db"]
