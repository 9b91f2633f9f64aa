"""The per-reader model: what a reader's ratings add to their keywords. Pure, vectorised.

Keywords stay the cold start and stay in charge of exclusions; the ratings rerank, admit papers
that share no keyword, and push out near-duplicates of what the reader voted down.

Representation: the stored paper vectors (digest/rank/vectors.py) weighted by idf, L2-normalised;
similarity = cosine. The idf comes from a background larger than one day: a document-frequency
table of the newest papers the store holds when the caller passes one (``DocFreq``; every run
does, digest/ratings.py), else the papers being ranked plus every rated paper of the batch. For
one reader and one paper j:

    s_j    = mean cosine of j to the reader's up-votes - mean cosine to their down-votes (Rocchio)

The reader's own ratings calibrate s, leave-one-out (each rated paper scored against the others):

    level_up   = mean s of the up-voted papers        ("as like your up-votes as they are")
    level_zero = mean s of the down-voted papers (>= MIN_DOWNS of them), else the mean s of the
                 papers being ranked (a typical paper of the day)
    u_j        = (s_j - level_zero) / (level_up - level_zero), clipped to [-U_CLIP, U_CLIP]
    auc        = share of (up, down) pairs the leave-one-out s orders right

The model is *trusted* only with evidence: >= MIN_UPS up-votes, and, when there are >= MIN_DOWNS
down-votes, auc >= MIN_AUC (it tells the reader's ups from downs on papers it did not see).
An untrusted model changes nothing: the reader gets the keyword ranking.

    score    = relevance + WEIGHT * u_j                       (trusted readers)
    admitted : no keyword rule passed, trusted, u_j >= ADMIT and cosine >= ADMIT_COS to one
               up-vote (a close sibling of a paper they liked, not just "on the topic")
    dropped  : cosine >= NEAR_DUP to a down-voted paper (a new version of what they refused)
    explore  : when the list has room under max_papers, the best remaining paper with u_j and
               that cosine each at least EXPLORE times its admission threshold (the model is unsure)

u is scale-free (calibrated on the reader's own votes), so the same thresholds hold for a reader
of a narrow topic and one of a broad field. Values are explained in bench/README.md ("Ranking").
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..models import RatedPaper
from .vectors import DIM, matrix

__all__ = [
    "ADMIT", "ADMIT_COS", "WEIGHT", "EXPLORE", "NEAR_DUP", "MIN_UPS", "MIN_DOWNS", "MIN_AUC", "U_CLIP",
    "DocFreq", "Pool", "Ratings", "decide",
]

ADMIT = 1.0  # u at which a paper with no keyword may get in: as like your ups as they are to each other
ADMIT_COS = 0.2  # ... and only as a close sibling of one up-vote: cosine >= 0.2 to it (see README)
WEIGHT = 3.0  # one unit of u is worth this much relevance (3 = one title mention of a keyword)
EXPLORE = 0.6  # the "unsure" band for the exploration slot: both u and that cosine within
#                [EXPLORE * threshold, threshold) for admission, the paper not admitted
NEAR_DUP = 0.5  # cosine to a down-voted paper from which a paper counts as its near-duplicate
MIN_UPS = 2  # up-votes before the model does anything (level_up needs a pair)
MIN_DOWNS = 2  # down-votes before they calibrate the zero and the model must pass the auc check
MIN_AUC = 0.7  # leave-one-out: the model must order 70 % of (up, down) pairs right to be used
U_CLIP = 2.0  # |u| beyond this adds nothing: one rating never outweighs every keyword
_GRAM_CHUNK = 1024  # readers per block of the leave-one-out calibration

VIA_KEYWORDS, VIA_MODEL, VIA_EXPLORE = 0, 1, 2
_KEY, _VOTE = attrgetter("key"), attrgetter("vote")

DocFreq = tuple[np.ndarray, int]
"""(df, n): df an int array of shape (vectors.DIM,), the number of papers with each hashed
feature, over n papers (every paper the service has seen); e.g. ``document_frequencies(blobs)``."""


def document_frequencies(blobs: Sequence[bytes | None]) -> DocFreq:
    """The DocFreq of these paper vectors (additive: sum the dfs and ns of two sets)."""
    parts = [np.frombuffer(b, "<i4", len(b) // 6) for b in blobs if b]  # a blob's indices come first
    idx = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return np.bincount(idx, minlength=DIM).astype(np.int64), len(blobs)


class Pool:
    """The papers being ranked, as idf-weighted unit rows over the features they use."""

    def __init__(self, blobs: Sequence[bytes | None], *, background: DocFreq | None = None,
                 extra: Sequence[bytes | None] = ()) -> None:
        x = matrix(blobs)
        df_pool = np.bincount(x.indices, minlength=DIM)
        self.used = np.flatnonzero(df_pool)
        if background is not None:
            df_all, n = background
            df = np.maximum(np.asarray(df_all)[self.used], df_pool[self.used])
            n = max(int(n), x.shape[0])
        else:
            df = df_pool[self.used].astype(np.int64)
            n = x.shape[0]
            if len(extra):
                ex = matrix(extra)
                df = df + np.bincount(ex.indices, minlength=DIM)[self.used]
                n += ex.shape[0]
        self.col = np.full(DIM, -1, np.int64)
        self.col[self.used] = np.arange(len(self.used))
        # smoothed idf; a feature no pool paper has gets the largest value (it only adds to norms)
        self.idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        self.idf_absent = np.float32(np.log(1.0 + n) + 1.0)
        self.x = self.project(x)

    def project(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """Rows of raw vectors -> idf-weighted unit rows over the pool's features."""
        col = self.col[x.indices]
        inside = col >= 0
        w = np.where(inside, self.idf[np.maximum(col, 0)], self.idf_absent) * x.data
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        norm = np.sqrt(np.bincount(rows, weights=w.astype(np.float64) ** 2, minlength=x.shape[0]))
        norm[norm == 0] = 1.0
        data = (w / norm[rows]).astype(np.float32)
        return sp.csr_matrix(
            (data[inside], (rows[inside], col[inside])), shape=(x.shape[0], len(self.used))
        )


def distinct_votes(lst: Sequence[RatedPaper]) -> list[RatedPaper]:
    """The last vote on each paper (by rated_at, then the order given); ratings without a vector
    or with vote 0 dropped."""
    if len({r.key for r in lst}) < len(lst):
        last: dict[str, RatedPaper] = {}
        for r in sorted(lst, key=_when):
            last.pop(r.key, None)
            last[r.key] = r
        lst = list(last.values())
    return [r for r in lst if r.vector and r.vote]


@dataclass
class Ratings:
    """The ratings of a batch of readers against one pool: similarities computed once per rated paper."""

    keys: list[str]  # distinct rated papers with a vector
    titles: list[str]
    sim: np.ndarray  # (rated x pool) cosine, float32
    ups: list[np.ndarray]  # per reader: indices into keys, oldest first
    downs: list[np.ndarray]
    level_up: np.ndarray  # per reader (nan: fewer than MIN_UPS up-votes)
    level_down: np.ndarray  # per reader (nan: fewer than MIN_DOWNS down-votes)
    auc: np.ndarray  # per reader (nan: not measurable)
    _near: tuple | None = None

    @staticmethod
    def vectors(rated: Sequence[Sequence[RatedPaper]]) -> list[bytes]:
        """The distinct rated vectors of a batch (for the idf background)."""
        seen: dict[str, bytes] = {}
        for lst in rated:
            for r in lst:
                if r.vector and r.key not in seen:
                    seen[r.key] = r.vector
        return list(seen.values())

    @classmethod
    def build(cls, pool: Pool, rated: Sequence[Sequence[RatedPaper]]) -> Ratings:
        votes = [distinct_votes(lst) for lst in rated]
        flat = [r for v in votes for r in v]
        keys = list(map(_KEY, flat))
        index = {k: i for i, k in enumerate(dict.fromkeys(keys))}  # rated papers, first seen first
        ids = np.fromiter(map(index.__getitem__, keys), np.int64, len(keys))
        up = np.fromiter(map(_VOTE, flat), np.int64, len(flat)) > 0
        first = np.unique(ids, return_index=True)[1].tolist() if len(ids) else []  # id order
        blobs = [flat[i].vector for i in first]
        titles = [flat[i].title for i in first]
        owner = np.repeat(np.arange(len(votes)), [len(v) for v in votes])
        ups, downs = (
            np.split(ids[mask], np.cumsum(np.bincount(owner[mask], minlength=len(votes)))[:-1])
            for mask in (up, ~up)
        )  # per reader, in the order of its votes
        n = pool.x.shape[0]
        if blobs:
            v = pool.project(matrix(blobs))
            sim = np.asarray((v @ pool.x.T).todense(), np.float32)
        else:
            v = sp.csr_matrix((0, len(pool.used)), dtype=np.float32)
            sim = np.zeros((0, n), np.float32)
        level_up, level_down, auc = _calibrate(v, ups, downs)
        return cls(list(index), titles, sim, ups, downs, level_up, level_down, auc)

    def nearest_up(self, k: int, paper: int) -> int:
        """The reader's up-voted paper most like pool paper ``paper`` (an index into keys)."""
        u = self.ups[k]
        return int(u[np.argmax(self.sim[u, paper])])

    def scores(self, readers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Dense (readers x pool): s = up - down; near-duplicate of a down-vote; cosine to one
        up-vote >= ADMIT_COS; and >= EXPLORE * ADMIT_COS."""
        ups = [self.ups[k] for k in readers]
        downs = [self.downs[k] for k in readers]
        s = _mean_sim(self.sim, ups, downs)
        if self._near is None:  # thresholded once per batch, kept sparse (few pairs pass)
            self._near = tuple(
                sp.csr_matrix(self.sim >= t, dtype=np.float32) for t in (NEAR_DUP, ADMIT_COS, EXPLORE * ADMIT_COS)
            )
        dup, sibling, close = (_any(m, lst) for m, lst in zip(self._near, (downs, ups, ups)))
        return s, dup, sibling, close


def _when(r: RatedPaper) -> float:
    return r.rated_at.timestamp() if r.rated_at is not None else 0.0


def _mean_sim(sim: np.ndarray, ups: Sequence[np.ndarray], downs: Sequence[np.ndarray]) -> np.ndarray:
    """(readers x pool): per reader the mean of the rows of ``sim`` of its ups minus the mean of
    those of its downs (one sparse product)."""
    lists = [np.concatenate((u, d)) for u, d in zip(ups, downs)]
    lengths = np.array([len(x) for x in lists], np.int64)
    cols = np.concatenate(lists) if lengths.sum() else np.zeros(0, np.int64)
    vals = np.concatenate(
        [np.repeat(np.float32((1.0 / len(u)) if len(u) else 0.0), len(u)) for u in ups]
        + [np.zeros(0, np.float32)]
    )  # fmt: skip
    w = np.zeros(len(cols), np.float32)
    starts = np.concatenate(([0], np.cumsum(lengths)))[:-1]
    nu = np.array([len(u) for u in ups], np.int64)
    nd = lengths - nu
    up_mask = np.arange(len(cols)) - np.repeat(starts, lengths) < np.repeat(nu, lengths)
    w[up_mask] = vals
    w[~up_mask] = -np.repeat(1.0 / np.maximum(nd, 1), nd).astype(np.float32)
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    r = sp.csr_matrix((w, cols, indptr), shape=(len(lists), sim.shape[0]))
    return np.asarray(r @ sim, np.float32)


def _any(m: sp.csr_matrix, lists: Sequence[np.ndarray]) -> np.ndarray:
    """(readers x pool) dense bool: per reader, whether any row of the 0/1 sparse ``m`` that it
    lists has the paper (one sparse product; its stored entries are the True ones)."""
    lengths = np.array([len(x) for x in lists], np.int64)
    cols = np.concatenate(lists) if lengths.sum() else np.zeros(0, np.int64)
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    r = sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=(len(lists), m.shape[0]))
    hit = r @ m
    out = np.zeros(hit.shape, bool)
    out[np.repeat(np.arange(hit.shape[0]), np.diff(hit.indptr)), hit.indices] = hit.data > 0
    return out


def _calibrate(v: sp.csr_matrix, ups: list[np.ndarray], downs: list[np.ndarray]):
    """Per reader, leave-one-out over its rated papers: (level_up, level_down, auc)."""
    nr = len(ups)
    level_up, level_down, auc = np.full(nr, np.nan), np.full(nr, np.nan), np.full(nr, np.nan)
    have = [k for k in range(nr) if len(ups[k]) >= MIN_UPS]
    if not have:
        return level_up, level_down, auc
    needed = np.unique(np.concatenate([np.concatenate((ups[k], downs[k])) for k in have]))
    sub = v[needed]
    gram = np.asarray((sub @ sub.T).todense(), np.float32)
    flat, size = gram.ravel(), gram.shape[0]
    pos = np.zeros(v.shape[0], np.int64)
    pos[needed] = np.arange(len(needed))
    for lo in range(0, len(have), _GRAM_CHUNK):
        ks = have[lo : lo + _GRAM_CHUNK]
        width = max(len(ups[k]) + len(downs[k]) for k in ks)
        idx = np.zeros((len(ks), width), np.int64)
        lab = np.zeros((len(ks), width), np.int8)
        for i, k in enumerate(ks):
            a, b = len(ups[k]), len(downs[k])
            idx[i, :a], idx[i, a : a + b] = pos[ups[k]], pos[downs[k]]
            lab[i, :a], lab[i, a : a + b] = 1, -1
        g = flat.take(idx[:, :, None] * size + idx[:, None, :])  # = gram[idx, idx.T], 4x faster
        diag = np.arange(width)
        g[:, diag, diag] = 0.0  # leave one out: a paper is not compared with itself
        isup, isdn = (lab == 1).astype(np.float32), (lab == -1).astype(np.float32)
        sums = g @ np.stack((isup, isdn), axis=2)  # (readers, width, 2): similarity to ups, downs
        n_up = isup.sum(1, keepdims=True) - isup  # other up-votes of each rated paper
        n_dn = isdn.sum(1, keepdims=True) - isdn
        s = sums[:, :, 0] / np.maximum(n_up, 1) - sums[:, :, 1] / np.maximum(n_dn, 1)
        nu, nd = isup.sum(1), isdn.sum(1)
        lu = (s * isup).sum(1) / nu
        enough = nd >= MIN_DOWNS
        ld = np.where(enough, (s * isdn).sum(1) / np.maximum(nd, 1), np.nan)
        # auc (Mann-Whitney): rank of each rated paper's s among the reader's rated papers
        s[lab == 0] = -np.inf
        ranks = np.argsort(np.argsort(s, axis=1), axis=1) + 1 - (lab == 0).sum(1, keepdims=True)
        a = ((ranks * isup).sum(1) - nu * (nu + 1) / 2) / np.maximum(nu * nd, 1)
        a = np.where(enough, a, np.nan)
        level_up[ks], level_down[ks], auc[ks] = lu, ld, a
    return level_up, level_down, auc


def decide(
    rel: np.ndarray,
    kw_ok: np.ndarray,
    blocked: np.ndarray,
    s: np.ndarray,
    dup: np.ndarray,
    sibling: np.ndarray,
    close: np.ndarray,
    level_up: np.ndarray,
    level_down: np.ndarray,
    auc: np.ndarray,
    room: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For readers x pool (dense): (included, u, admitted by the model, explore column or -1).
    The score without boost of an included pair is ``rel + WEIGHT * u`` (float32).

    ``rel``: keyword relevance (float32); ``kw_ok``: the keyword inclusion rule passed;
    ``blocked``: withdrawn, excluded or skipped (always out); ``s``: up - down similarity;
    ``room``: per reader, max_papers. The arrays are readers x pool and each pass over them costs
    as much as the arithmetic, so the steps work in place: ``s`` becomes u, and ``kw_ok``,
    ``blocked``, ``dup`` and ``sibling`` are used as scratch (their contents are lost)."""
    has_down = np.isfinite(level_down)
    zero = level_down.copy()
    if not has_down.all():  # a typical paper of the day, only where there are too few down-votes
        zero[~has_down] = s[~has_down].mean(1, dtype=np.float64)
    scale = level_up - zero
    trusted = np.isfinite(level_up) & (scale > 1e-4) & (~has_down | (np.nan_to_num(auc) >= MIN_AUC))
    inv = np.where(trusted, 1.0 / np.where(trusted, scale, 1.0), 0.0)
    u = s
    u -= np.where(trusted, zero, 0.0).astype(np.float32)[:, None]
    u *= inv.astype(np.float32)[:, None]
    np.clip(u, -U_CLIP, U_CLIP, out=u)
    out = blocked  # blocked | dup, in place
    out |= dup
    free = np.logical_or(kw_ok, out, out=dup)  # no longer a candidate for admission or exploration
    admit = u >= ADMIT
    admit &= sibling
    admit &= ~free
    included = np.logical_and(kw_ok, ~out, out=kw_ok)
    included |= admit
    unsure = np.greater_equal(u, EXPLORE * ADMIT, out=sibling)
    unsure &= close
    unsure &= ~free
    unsure &= ~admit
    best = np.where(unsure, u, -np.inf)
    col = np.argmax(best, axis=1)
    has = np.isfinite(best[np.arange(len(col)), col]) & (np.count_nonzero(included, axis=1) < room) & trusted
    explore = np.where(has, col, -1)
    return included, u, admit, explore
