"""The optional semantic extra (skipped when `pip install '.[semantic]'` was not done)."""

from __future__ import annotations

import datetime as dt

import pytest

from digest.models import Keyword, Paper, Subscription
from digest.rank import Ranker
from digest.rank.semantic import available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="semantic extra not installed: pip install '.[semantic]'"),
]

NOW = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
PAPERS = [
    Paper(key="arxiv:2501.00001", title="Continual learning with replay",
          abstract="We study continual learning and catastrophic forgetting when tasks arrive in sequence."),
    Paper(key="arxiv:2501.00002", title="Lifelong learning without forgetting",
          abstract="Neural networks trained on a sequence of tasks forget earlier tasks. We propose a regulariser "
                   "that keeps old knowledge while learning new tasks incrementally."),
    Paper(key="arxiv:2501.00003", title="Faster attention kernels", abstract="We speed up GPU attention kernels by tiling."),
    Paper(key="arxiv:2501.00004", title="Protein folding with diffusion", abstract="A diffusion model for protein structures."),
]
SUB = Subscription(id="r", email="r@example.org",
                   keywords=(Keyword("continual learning"), Keyword("catastrophic forgetting")))


def test_semantic_finds_a_paper_without_the_readers_words():
    plain = [s.paper.key for s in Ranker(PAPERS, now=NOW).rank(SUB)]
    assert plain == ["arxiv:2501.00001"]
    res = Ranker(PAPERS, now=NOW, semantic=True).rank(SUB)
    assert [s.paper.key for s in res] == ["arxiv:2501.00001", "arxiv:2501.00002"]
    found = res[1]
    assert [m.field for m in found.matches] == ["semantic"]
    assert found.matches[0].term in ("continual learning", "catastrophic forgetting")
    assert found.why.startswith("close in meaning to ")
    # the trending digest is unchanged by the setting
    assert Ranker(PAPERS, now=NOW, semantic=True).rank(Subscription(id="t", email="t@example.org")) == Ranker(
        PAPERS, now=NOW
    ).rank(Subscription(id="t", email="t@example.org"))


def test_embeddings_are_computed_once_and_kept_in_the_store(tmp_path):
    """A paper is run through the model once: the next run (a new process's store connection)
    reads its embedding back and computes none, and ranks exactly as with fresh embeddings."""
    from digest.ratings import DENSE_EMBEDDED, paper_dense, paper_vectors
    from digest.store import open_store

    url = f"sqlite:///{tmp_path}/digest.db"
    store = open_store(url)
    try:
        paper_vectors(store, PAPERS, now=NOW)
        first, made = paper_dense(store, PAPERS)
        assert made == len(PAPERS) and DENSE_EMBEDDED.last == len(PAPERS)
    finally:
        store.close()
    store = open_store(url)
    try:
        again, made = paper_dense(store, PAPERS)
    finally:
        store.close()
    assert made == 0 and again == first and all(len(b) == 768 for b in again)
    fresh = Ranker(PAPERS, now=NOW, semantic=True).rank(SUB)
    stored = Ranker(PAPERS, now=NOW, semantic=True, dense=again).rank(SUB)
    assert [(s.paper.key, s.score, s.why) for s in stored] == [(s.paper.key, s.score, s.why) for s in fresh]
