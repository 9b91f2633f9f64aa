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

__all__ = ["paper_vectors", "paper_dense", "load_ratings", "EMBEDDED", "DENSE_EMBEDDED"]

log = logging.getLogger("digest.ratings")


class _Counter:
    """Papers embedded by this process since it started (tests and `bench/` read it)."""

    def __init__(self) -> None:
        self.total = 0
        self.last = 0


EMBEDDED = _Counter()
DENSE_EMBEDDED = _Counter()  # the semantic extra's embeddings


def _kept(papers: Sequence[Paper], read, make, save, *, counter: _Counter, what: str, model: str) -> tuple[list[bytes], int]:
    """Each paper's stored form: read for the papers that have one, made (in one batch) and saved
    for the others; counted and logged (counts only). (forms aligned with `papers`, how many were made)"""
    stored = read([p.key for p in papers]) if papers else {}
    missing, keys = [], set(stored)
    for p in papers:
        if p.key not in keys:
            keys.add(p.key)
            missing.append(p)
    if missing:
        fresh = make(missing)
        save(list(zip(missing, fresh)))
        stored.update((p.key, v) for p, v in zip(missing, fresh))
    made = len(missing)
    counter.last = made
    counter.total += made
    log.info(
        "%s: %d embedded, %d stored", what, made, len(papers) - made,
        extra={"embedded": made, "stored": len(papers) - made, "model": model},
    )
    return [stored[p.key] for p in papers], made


def paper_vectors(store: Store, papers: Sequence[Paper], *, now: dt.datetime) -> tuple[list[bytes], int]:
    """The vector of every paper, aligned with `papers`, and how many had to be embedded: those
    the store has for the current model are read, the others embedded and saved (a read-only
    store saves nothing: a dry-run embeds them again next time)."""
    from digest.rank.vectors import VECTOR_MODEL, embed  # numpy/scipy: only when a run needs them

    return _kept(
        papers,
        lambda keys: store.vectors(VECTOR_MODEL, keys),
        embed,
        lambda rows: store.save_vectors(VECTOR_MODEL, [(p.key, p.title, v) for p, v in rows], now=now),
        counter=EMBEDDED, what="paper vectors", model=VECTOR_MODEL,
    )


def paper_dense(store: Store, papers: Sequence[Paper]) -> tuple[list[bytes], int]:
    """With the semantic extra: every paper's dense embedding, read from the store or computed
    (in batches, the model loaded once per process) and kept beside the paper's vector, so no
    run, `digest rank` or replica computes it twice. Call after `paper_vectors`, which stores the
    papers' rows. (embeddings aligned with `papers`, how many were computed)"""
    from digest.rank.semantic import DENSE_MODEL, embed_papers  # computing one without the extra: ConfigError

    return _kept(
        papers,
        lambda keys: store.dense(DENSE_MODEL, keys),
        embed_papers,
        lambda rows: store.save_dense(DENSE_MODEL, [(p.key, v) for p, v in rows]),
        counter=DENSE_EMBEDDED, what="dense embeddings", model=DENSE_MODEL,
    )


def load_ratings(store: Store, subscriber_ids: Sequence[str]) -> dict[str, list[RatedPaper]]:
    """Every rating of each of these readers, with the rated papers' titles and vectors."""
    from digest.rank.vectors import VECTOR_MODEL

    if not subscriber_ids:
        return {}
    return store.ratings_many(list(subscriber_ids), VECTOR_MODEL)
