"""Reading and rewriting a reader's subscription file for the preferences page.

- Only a regular file directly inside ``subscriptions_dir`` whose stem is a valid subscriber id is
  read or written (never a symlink: replacing it would cut the operator's link); nothing is
  written anywhere else.
- A save is refused, and nothing written, when the file is not the version the page was loaded
  from (:func:`digest.manage.file_version`), so an operator's edit is never overwritten. The check
  is made again right before the rename.
- The new content is the old file with the changed keys only (digest/config/yamledit.py: comments
  and order kept). It is written into a fresh hidden directory inside ``subscriptions_dir`` (mode
  0600, fsynced), checked there with the parser of ``digest check`` and checked to say exactly
  what the form asked for; only then is it renamed over the old file (atomic: a reader, a rescan
  or ``digest check`` sees the old file or the new one, never half of one).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from digest.config.subscriptions import ID_PATTERN, load_subscription, parse_subscription
from digest.config.yamledit import edit_subscription
from digest.config.yamlfile import MAX_BYTES
from digest.errors import Problem
from digest.manage import Prefs, changes, file_version, prefs_of
from digest.models import Subscription
from digest.subscribe_files import FILE_MODE, _fsync_dir

__all__ = ["Loaded", "Saved", "Changed", "Refused", "subscription_file", "read_subscription", "rewrite_subscription"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A reader's file as read now: its bytes, version, and what ``digest check`` makes of it."""

    path: Path
    data: bytes
    version: str
    sub: Subscription | None  # None: the file has problems
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Saved:
    sub: Subscription  # as written (the same bytes, read back through the parser)
    version: str
    changed: bool  # False: the form asked for what the file already said; nothing written


@dataclass(frozen=True, slots=True)
class Changed:
    """The file is not the version the form was loaded from: nothing written."""

    now: Loaded


@dataclass(frozen=True, slots=True)
class Refused:
    """Nothing written: the result would not pass ``digest check`` (or not say what the form
    asked for), or the file cannot be edited here."""

    problems: tuple[str, ...]


def subscription_file(folder: Path, sub_id: str, known: Path | None = None) -> Path | None:
    """The file of `sub_id`: `known` (where the service found it) or ``<id>.yaml`` / ``<id>.yml``,
    if it is a regular file directly inside `folder`; else None."""
    if not ID_PATTERN.match(sub_id):
        return None
    root = Path(folder).resolve()
    candidates = [known] if known is not None else [root / f"{sub_id}.yaml", root / f"{sub_id}.yml"]
    for path in candidates:
        path = Path(path)
        if path.stem != sub_id or path.suffix not in (".yaml", ".yml"):
            continue
        path = path.parent.resolve() / path.name
        if path.parent != root:
            continue
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                return path
        except OSError:
            continue
    return None


def read_subscription(path: Path, source_names: Iterable[str] | None = None) -> Loaded:
    """Read `path` once (not following a symlink): its bytes, version and parse. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_BYTES + 1)
    finally:
        os.close(fd)
    parsed = parse_subscription(data, path, source_names)
    if isinstance(parsed, Subscription):
        return Loaded(path, data, file_version(data, st), parsed)
    return Loaded(path, data, file_version(data, st), None, tuple(parsed))


def rewrite_subscription(
    path: Path, prefs: Prefs, version: str, source_names: Iterable[str] | None = None
) -> Saved | Changed | Refused:
    """Write `prefs` into the file at `path` if it is still at `version` (see the module doc)."""
    names = list(source_names) if source_names is not None else None
    loaded = read_subscription(path, names)
    if loaded.version != version:
        return Changed(loaded)
    if loaded.sub is None:
        return Refused(tuple(p.message for p in loaded.problems))
    wanted = changes(prefs_of(loaded.sub), prefs)
    if not wanted:
        return Saved(loaded.sub, loaded.version, changed=False)
    try:
        text = edit_subscription(loaded.data.decode("utf-8"), wanted).encode("utf-8")
    except Exception as exc:  # ruamel could not read what our parser accepted: leave the file alone
        return Refused((f"the file could not be edited here ({type(exc).__name__}); the operator can edit it",))
    root = path.parent
    staging = root / f".manage-{secrets.token_hex(8)}"
    os.mkdir(staging, 0o700)
    try:
        tmp = staging / path.name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.write(fd, text)
            os.fsync(fd)
            new_version = file_version(text, os.fstat(fd))  # a rename keeps the inode and mtime
        finally:
            os.close(fd)
        checked = load_subscription(tmp, names)
        if not isinstance(checked, Subscription):
            return Refused(tuple(p.message if p.field == "-" else f"{p.field}: {p.message}" for p in checked))
        if prefs_of(checked) != prefs:  # pragma: no cover - a round-trip bug: never write it
            return Refused(("the file would not say what the form asked for; nothing was saved",))
        again = read_subscription(path, names)
        if again.version != version:  # the operator saved while we wrote
            return Changed(again)
        os.replace(tmp, path)
        _fsync_dir(root)
        return Saved(dataclasses.replace(checked, path=path), new_version, changed=True)
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
