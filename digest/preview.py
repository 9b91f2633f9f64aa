"""`digest send --dry-run`: a view of the (read-only) store under which today's edition is built
even for readers who already had it, and the preview folder kept free of stale files.

A preview should show what the reader gets today. After a real send every edition of the day is
`sent` and its papers are marked seen, so a plain read-only run would build nothing. Under
`PreviewStore` an edition sent on the previewed day is not there, nor are the seen marks it made,
so the preview is that edition again (same papers, as ranking is deterministic for the same inputs);
`mark` then turns those readers' rows into `already-sent`, with the Message-ID that went out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from digest.runstate import Outcome
from digest.store import EditionRecord, Store

__all__ = ["PreviewStore", "clear_previews"]

SUFFIXES = (".eml", ".html", ".txt")


class PreviewStore:
    """`store` (opened read-only) as a dry-run should see it; everything else passes through."""

    def __init__(self, store: Store, days: Mapping[str, dt.date]) -> None:
        self._store = store
        self.already: dict[str, EditionRecord] = {}
        self._hidden: dict[str, set[str]] = {}
        for sub_id, day in days.items():
            record = store.edition(sub_id, day)
            if record is not None and record.status == "sent":
                self.already[sub_id] = record
                self._hidden[sub_id] = store.edition_papers(sub_id, day)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _previewed(self, sub_id: str, day: dt.date) -> bool:
        record = self.already.get(sub_id)
        return record is not None and record.edition_date == day

    def edition(self, subscriber_id: str, edition_date: dt.date) -> EditionRecord | None:
        if self._previewed(subscriber_id, edition_date):
            return None
        return self._store.edition(subscriber_id, edition_date)

    def seen(self, subscriber_id: str) -> set[str]:
        return self._store.seen(subscriber_id) - self._hidden.get(subscriber_id, set())

    def seen_many(self, subscriber_ids: list[str], among: Collection[str] | None = None) -> dict[str, set[str]]:
        seen = self._store.seen_many(subscriber_ids, among)
        return {k: v - self._hidden.get(k, set()) for k, v in seen.items()}

    def claim(self, subscriber_id: str, edition_date: dt.date, **kwargs: Any) -> bool:
        return self.claim_many([(subscriber_id, edition_date)], **kwargs)[0]

    def claim_many(self, editions: Sequence[tuple[str, dt.date]], **kwargs: Any) -> list[bool]:
        others = [e for e in editions if not self._previewed(*e)]
        won = iter(self._store.claim_many(others, **kwargs) if others else [])
        return [True if self._previewed(*e) else next(won) for e in editions]

    def mark(self, outcomes: Iterable[Outcome]) -> list[Outcome]:
        """Rows of readers whose edition went out already: `already-sent`, with its Message-ID."""
        out = []
        for o in outcomes:
            record = self.already.get(o.user)
            if record is not None and o.status == "dry-run" and record.edition_date == o.edition_date:
                o = dataclasses.replace(o, status="already-sent", message_id=record.message_id)
            out.append(o)
        return out

    def close(self) -> None:
        self._store.close()


def clear_previews(out: Path, ids: Iterable[str] = ()) -> int:
    """Remove what an earlier preview wrote into `out`, so no stale file outlives the reader or
    the edition it showed: every `<stem>.eml` that is one of our messages (its Message-ID is a
    digest's, `<digest.DATE.HASH@...>`) with its `.html` and `.txt`, and `<id>.eml/.html/.txt` of
    each of `ids`. Nothing else in the folder is touched. Returns how many files went."""
    if not out.is_dir():
        return 0
    stems = set(ids)
    for eml in out.glob("*.eml"):
        try:
            with eml.open("rb") as f:
                head = f.read(16384)
        except OSError:
            continue
        if re.search(rb"^Message-ID: <digest\.[0-9-]+\.[0-9a-f]+@", head, re.MULTILINE | re.IGNORECASE):
            stems.add(eml.stem)
    removed = 0
    for stem in stems:
        for suffix in SUFFIXES:
            path = out / f"{stem}{suffix}"
            if path.parent == out and path.is_file():
                path.unlink()
                removed += 1
    return removed
