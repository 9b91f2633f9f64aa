"""What a run reads from the store for the per-reader model: the papers' vectors (each paper is
embedded once, the first time a run meets it, and kept) and the readers' ratings.

Used by `send_editions` (every send and `digest run`) and by `digest rank`. The ratings are the
readers' own: nothing of them is logged, only counts of papers embedded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from digest.models import Paper, RatedPaper
from digest.store import Store

__all__ = ["paper_vectors", "load_ratings", "EMBEDDED"]

log = logging.getLogger("digest.ratings")


class _Counter:
    """Papers embedded by this process since it started (tests and `bench/` read it)."""

    def __init__(self) -> None:
        self.total = 0
        self.last = 0


EMBEDDED = _Counter()


def paper_vectors(store: Store, papers: Sequence[Paper], *, now: dt.datetime) -> tuple[list[bytes], int]:
    """The vector of every paper, aligned with `papers`, and how many had to be embedded: those
    the store has for the current model are read, the others embedded and saved (a read-only
    store saves nothing: a dry-run embeds them again next time)."""
    from digest.rank.vectors import VECTOR_MODEL, embed  # numpy/scipy: only when a run needs them

    stored = store.vectors(VECTOR_MODEL, [p.key for p in papers]) if papers else {}
    missing, keys = [], set(stored)
    for p in papers:
        if p.key not in keys:
            keys.add(p.key)
            missing.append(p)
    if missing:
        fresh = embed(missing)
        store.save_vectors(VECTOR_MODEL, [(p.key, p.title, v) for p, v in zip(missing, fresh)], now=now)
        stored.update((p.key, v) for p, v in zip(missing, fresh))
    EMBEDDED.last = len(missing)
    EMBEDDED.total += len(missing)
    log.info(
        "paper vectors: %d embedded, %d stored",
        len(missing),
        len(papers) - len(missing),
        extra={"embedded": len(missing), "stored": len(papers) - len(missing), "model": VECTOR_MODEL},
    )
    return [stored[p.key] for p in papers], len(missing)


def load_ratings(store: Store, subscriber_ids: Sequence[str]) -> dict[str, list[RatedPaper]]:
    """Every rating of each of these readers, with the rated papers' titles and vectors."""
    from digest.rank.vectors import VECTOR_MODEL

    if not subscriber_ids:
        return {}
    return store.ratings_many(list(subscriber_ids), VECTOR_MODEL)
