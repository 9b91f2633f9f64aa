"""Paper vectors: a fixed representation of a paper's text, computed once and stored with it.

``hash-v1``: feature hashing (no fitted vocabulary, so a vector never changes and needs nothing
beyond numpy) of the paper's stemmed words and word pairs:

* text: title (counted twice: it is the author's own summary), abstract, AI summary, AI keywords;
  markup stripped and tokenised as for keyword matching (digest/rank/text.py), stems lowercased;
* features: every stem that is not a stop word or a lone character, and every pair of adjacent
  such stems that the text joins (no comma, full stop or bracket between them);
* index: ``crc32(feature) mod DIM`` (stable across processes and machines);
* value: sublinear tf ``1 + ln(count)``, then the vector is L2-normalised.

A blob is ``int32 indices (sorted) || float16 values``, little-endian, 6 bytes per feature (an
abstract gives ~150-250 features, about 1-1.5 KB). Weighting by rarity (idf) is left to the model,
which computes it over the papers it ranks (digest/rank/model.py).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ..models import Paper
from .text import clean_text, tokenize

__all__ = ["VECTOR_MODEL", "DIM", "embed", "embed_one", "decode", "matrix"]

VECTOR_MODEL = "hash-v1"
DIM = 1 << 20  # hash buckets: collisions are rare at ~10^5 distinct features
TITLE_REPEAT = 2

_STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do doe doing down during each few for from further
    had ha have having he her here hi how i if in into is it it' its itself just let me more most
    my no nor not now of off on once onli or other our out over own same she should so some such
    than that the their them then there these they thi those through to too under until up veri
    via wa we were what when where which while who whom whi will with would you your we' new
    use us show propos present paper approach method result our work studi base""".split()
)


def _features(text: str, counts: Counter, repeat: int = 1) -> None:
    clean, _ = clean_text(text)
    prev: str | None = None
    for tok in tokenize(clean):
        s = tok.stem
        if s in _STOP or (len(s) < 2 and not s.isdigit()):
            prev = None
            continue
        counts[s] += repeat
        if prev is not None:
            counts[prev + " " + s] += repeat
        prev = s if tok.joins_next else None


# np.log of each count, computed once per count (a call on a Python int costs ~1 µs; the same
# np.float64 comes back, so every vector is bit for bit what it was)
_LOGS: dict[int, np.float64] = {}


def _encode(counts: Counter) -> bytes:
    if not counts:
        return b""
    acc: dict[int, float] = {}
    logs = _LOGS
    for feat, c in counts.items():
        i = zlib.crc32(feat.encode("utf-8")) & (DIM - 1)
        log = logs.get(c)
        if log is None:
            log = logs[c] = np.log(c)
        acc[i] = acc.get(i, 0.0) + 1.0 + log
    idx = np.fromiter(sorted(acc), np.int32, len(acc))
    val = np.array([acc[i] for i in idx.tolist()], np.float64)
    val /= np.sqrt(val @ val)
    return idx.astype("<i4").tobytes() + val.astype("<f2").tobytes()


def embed_one(paper: Paper) -> bytes:
    counts: Counter = Counter()
    _features(paper.title, counts, TITLE_REPEAT)
    for text in (paper.abstract, paper.ai_summary or "", " . ".join(paper.ai_keywords)):
        if text:
            _features(text, counts)
    return _encode(counts)


def embed(papers: Sequence[Paper]) -> list[bytes]:
    """One blob per paper: a pure function of its text, stable forever for VECTOR_MODEL."""
    return [embed_one(p) for p in papers]


def decode(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(indices int32, values float32) of one blob."""
    n = len(blob) // 6
    idx = np.frombuffer(blob, "<i4", n)
    val = np.frombuffer(blob, "<f2", n, offset=4 * n).astype(np.float32)
    return idx, val


def matrix(blobs: Sequence[bytes | None]) -> sp.csr_matrix:
    """Rows = blobs (None or b"" gives an empty row), DIM columns, float32, L2-normalised rows."""
    lengths = np.array([len(b) // 6 if b else 0 for b in blobs], np.int64)
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    total = int(indptr[-1])
    if total == 0:
        return sp.csr_matrix((len(blobs), DIM), dtype=np.float32)
    joined = b"".join(b for b in blobs if b)
    # Each blob is indices then values; gather both halves with one pass over the joined bytes.
    raw = np.frombuffer(joined, np.uint8)
    starts = np.repeat(indptr[:-1] * 6, lengths)  # byte offset of each row's blob
    within = np.arange(total) - np.repeat(indptr[:-1], lengths)  # feature number in its row
    n_row = np.repeat(lengths, lengths)
    idx_off = starts + 4 * within
    val_off = starts + 4 * n_row + 2 * within
    idx = raw[idx_off[:, None] + np.arange(4)].copy().view("<i4").ravel()
    val = raw[val_off[:, None] + np.arange(2)].copy().view("<f2").ravel().astype(np.float32)
    return sp.csr_matrix((val, idx, indptr), shape=(len(blobs), DIM))
