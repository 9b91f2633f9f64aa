"""The SQLite store's file: opened only when it is a digest database, created only when missing.

An existing file that is empty (0 bytes), is not an SQLite database, has no digest schema, or is
damaged is an error that names the file and what to do; it is never re-created behind the
operator's back (that re-sent today's edition to every reader, forgot every unsubscribe and
changed the key of every unsubscribe link). `--init` moves such a file aside (never deletes it)
and starts a new database. A missing file is created whole: schema written into a temporary file,
then linked into place, so no process ever sees a half-made database under the real name.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from digest.errors import StoreError

__all__ = [
    "Transaction", "store_errors", "connect", "create", "damage", "DAMAGED", "is_empty", "move_aside", "problem",
    "quick_check", "unusable",
]  # fmt: skip

# SQLite primary result codes of a file that is not (or no longer) a sound database.
DAMAGED = {11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}
QUICK_CHECK_ROWS = 5  # problems quick_check reports at most (one is enough to refuse the file)


_C = TypeVar("_C", bound=type)


def store_errors(cls: _C) -> _C:
    """Every public method of `cls` raises StoreError, never a bare sqlite3.Error: a full disk, a
    read-only file or a damaged page after the file was opened is the store's error, which the
    pipeline knows how to stop on (a bare OperationalError used to kill a sender task unseen)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def translated(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise problem(self.path, exc) from None

        return translated

    for name in dir(cls):  # the class's own methods and its mixins'
        value = getattr(cls, name)
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, wrap(value))
    return cls


class Transaction:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def what_to_do(path: Path) -> str:
    return (
        f"restore {path.name} from a backup, or start a new database with `digest send --init` "
        f"(or `digest run --init`), which keeps this file as {path.name}.damaged-<time>"
    )


def damage(path: Path, what: str) -> StoreError:
    """The one-line error for a file that is not a usable digest database."""
    return StoreError(f"SQLite database {path} {what}: {what_to_do(path)}")


def problem(path: Path | None, exc: sqlite3.Error) -> StoreError:
    """A sqlite3 error as the store's error; a damaged file says what to do about it."""
    if path is not None and getattr(exc, "sqlite_errorcode", None) is not None:
        if exc.sqlite_errorcode & 0xFF in DAMAGED:  # type: ignore[attr-defined]
            return damage(path, f"is damaged ({exc})")
    return StoreError(f"SQLite database {path or ':memory:'}: {exc}")


def connect(target: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        db = sqlite3.connect(f"file:{Path(target).resolve()}?mode=ro", uri=True, isolation_level=None)
    else:
        db = sqlite3.connect(target, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    db.row_factory = sqlite3.Row
    return db


def sidecars(path: Path) -> tuple[Path, Path]:
    """The write-ahead log and its shared-memory index beside `path`."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def tidy_after_read_only(path: Path) -> None:
    """Remove the -wal/-shm a read-only connection left beside `path` (issue 15: a dry-run must
    leave the folder as it found it). A read-only connection to a WAL database creates them and,
    unable to checkpoint, cannot remove them; a read-write connection that is the last one to close
    does. Only an empty log is tidied this way (nothing to write back into the file), and when
    another process still has the database open its close leaves both in place, as it should."""
    wal, _ = sidecars(path)
    try:
        if not wal.exists() or wal.stat().st_size or not os.access(path, os.W_OK):
            return
        db = sqlite3.connect(f"file:{path.resolve()}?mode=rw", uri=True, isolation_level=None, timeout=0)
        try:
            db.execute("PRAGMA schema_version").fetchone()  # opens the log, takes part in WAL
        finally:
            db.close()
    except (OSError, sqlite3.Error):
        pass  # a leftover file is untidy, not wrong


def is_empty(path: Path) -> bool:
    """0 bytes, with no write-ahead log that could hold its first pages."""
    wal, _ = sidecars(path)
    return path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)


def create(path: Path, migrate: Callable[[sqlite3.Connection], None]) -> None:
    """Make a new database at `path` (missing): the schema goes into a temporary file in the same
    folder, which is then linked to `path`. If another process created `path` meanwhile, its
    database is kept and ours discarded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        db = connect(temp)
        try:
            migrate(db)
        finally:
            db.close()  # checkpoints the log into the file and removes it
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError:  # a file system without hard links
            if not path.exists():
                os.rename(temp, path)
    finally:
        for leftover in (temp, *sidecars(temp)):
            leftover.unlink(missing_ok=True)


def quick_check(db: sqlite3.Connection) -> list[str]:
    """What `PRAGMA quick_check` finds wrong (empty: nothing). It reads every page once."""
    rows = db.execute(f"PRAGMA quick_check({QUICK_CHECK_ROWS})").fetchall()
    lines = [line.strip() for r in rows for line in str(r[0]).splitlines()]
    if lines == ["ok"]:
        return []
    return [line for line in lines if line and not line.startswith("*** in database")] or ["quick_check failed"]


def unusable(path: Path) -> str | None:
    """Why the existing file at `path` cannot be used as a digest database (None: it can)."""
    if is_empty(path):
        return "is empty (0 bytes)"
    try:
        db = connect(path, read_only=True)
        try:
            if db.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()[0] == 0:
                return "has no digest tables"
            found = quick_check(db)
            return f"is damaged ({found[0]})" if found else None
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"is damaged ({exc})"


def move_aside(path: Path, now: dt.datetime) -> Path:
    """Rename `path` (and its write-ahead log) to `<name>.damaged-<UTC time>`: no data is deleted."""
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    wal, shm = sidecars(path)
    if wal.exists() and wal.stat().st_size > 0:  # pages not yet in the file: they go with it
        os.rename(wal, sidecars(aside)[0])
    wal.unlink(missing_ok=True)  # empty
    shm.unlink(missing_ok=True)  # an index of the log, rebuilt from it
    os.rename(path, aside)
    return aside
