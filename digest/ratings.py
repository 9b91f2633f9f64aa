"""What a run reads from the store for the ranking: the papers' vectors (each paper is embedded
once, the first time a run meets it, and kept), the idf background of the newest stored papers,
and the readers' ratings; `ranker_for` builds the Ranker from them.

Used by `send_editions` (every send and `digest run`), `digest rank` and the manage preview. The
ratings are the readers' own: nothing of them is logged, only counts of papers embedded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from digest.models import Paper, RatedPaper
from digest.store import Store

if TYPE_CHECKING:
    from digest.rank import Ranker
    from digest.rank.model import DocFreq

__all__ = ["ranker_for", "paper_vectors", "paper_dense", "background", "load_ratings", "EMBEDDED", "DENSE_EMBEDDED"]

log = logging.getLogger("digest.ratings")

BACKGROUND = 5000
"""How many of the newest stored papers the model's idf is taken from: at a few hundred papers a
day, weeks of them, so a word common this month counts as common; reading them costs ~0.1 s."""


def ranker_for(store: Store, papers: Sequence[Paper], *, now: dt.datetime, semantic: bool) -> Ranker:
    """The Ranker of these papers as every run, `digest rank` and the preview build it: the
    papers' stored vectors (new ones embedded and kept), the idf background of the store's newest
    papers, and with the semantic extra the stored dense embeddings."""
    from digest.rank import Ranker

    vectors, _ = paper_vectors(store, papers, now=now)  # embeds only papers new to the store
    dense = paper_dense(store, papers)[0] if semantic else None  # likewise, with the extra
    # the background is read only if a reader with ratings is ranked: the store must still be open then
    return Ranker(papers, now=now, semantic=semantic, vectors=vectors, dense=dense, doc_freq=lambda: background(store))


def background(store: Store) -> DocFreq | None:
    """Document frequencies of the vector features over the store's newest BACKGROUND papers
    (None when it holds none): what makes a word rare or common for the per-reader model."""
    from digest.rank.model import document_frequencies
    from digest.rank.vectors import VECTOR_MODEL

    blobs = store.newest_vectors(VECTOR_MODEL, BACKGROUND)
    return document_frequencies(blobs) if blobs else None


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
