"""Writing the subscription file of a confirmed signup into ``subscriptions_dir``.

- The id is derived from the address's local part (``Alice.Smith+x@…`` → ``alice.smith-x``), made
  to match the id rule of ``digest check``, and made unique (``alice-2``, …) against the files
  present and the ids the service knows.
- The file is written into a fresh hidden directory inside ``subscriptions_dir`` (hidden entries
  are never read as subscriptions), mode 0600, fsynced, and validated there with the parser
  ``digest check`` uses; only then is it hard-linked into place, which fails rather than replace
  a file that appeared meanwhile (then the next id is tried). So a reader never sees half a file,
  an existing file is never overwritten, and nothing is written outside ``subscriptions_dir``:
  the id cannot hold a path separator, and every path is checked to be directly inside it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import secrets
from collections.abc import Container, Iterable
from pathlib import Path

import yaml

from digest.config.subscriptions import ID_PATTERN, load_subscription
from digest.errors import ConfigError
from digest.models import Subscription
from digest.subscribe import Draft

__all__ = ["subscriber_id_for", "write_subscription", "FILE_MODE"]

FILE_MODE = 0o600
_JUNK = re.compile(r"[^a-z0-9._-]+")


def subscriber_id_for(email: str, taken: Container[str] = ()) -> str:
    """An id from the local part of `email`, unused in `taken`."""
    local = email.rpartition("@")[0].lower()
    base = _JUNK.sub("-", local).strip("._-")[:40].rstrip("._-") or "reader"
    if not ID_PATTERN.match(base):  # pragma: no cover - the substitution above guarantees it
        base = "reader"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _ids_on_disk(folder: Path) -> set[str]:
    return {p.stem for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml")} if folder.is_dir() else set()


def render_file(draft: Draft, *, now: dt.datetime) -> str:
    stamp = now.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = yaml.safe_dump(draft.as_file(), sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"# Created by the /subscribe page on {stamp}, confirmed by the reader by email.\n{body}"


def write_subscription(
    folder: Path, draft: Draft, *, now: dt.datetime, known_ids: Iterable[str] = (),
    source_names: Iterable[str] | None = None,
) -> Subscription:
    """Write `draft` as a new subscription file in `folder`; return it as ``digest check`` reads it.
    Raises ConfigError if the file does not validate (nothing is left behind then)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    root = folder.resolve()
    names = list(source_names) if source_names is not None else None
    text = render_file(draft, now=now).encode("utf-8")
    known = set(known_ids)
    staging = root / f".subscribe-{secrets.token_hex(8)}"
    os.mkdir(staging, 0o700)
    try:
        for _ in range(100):
            sub_id = subscriber_id_for(draft.email, known | _ids_on_disk(root))
            final = root / f"{sub_id}.yaml"
            if final.parent != root or not ID_PATTERN.match(sub_id):  # pragma: no cover - belt and braces
                raise ConfigError(f"subscriptions_dir: refusing to write {final}")
            tmp = staging / f"{sub_id}.yaml"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
            try:
                os.write(fd, text)
                os.fsync(fd)
            finally:
                os.close(fd)
            checked = load_subscription(tmp, names)
            if not isinstance(checked, Subscription):
                raise ConfigError([str(p) for p in checked])
            try:
                os.link(tmp, final)  # atomic, and never replaces an existing file
            except FileExistsError:
                os.unlink(tmp)
                known.add(sub_id)
                continue
            os.unlink(tmp)
            _fsync_dir(root)
            return dataclasses.replace(checked, path=final)  # the same bytes, linked: no second read
        raise ConfigError("subscriptions_dir: could not find a free subscriber id")  # pragma: no cover
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
