"""The per-reader model: what a reader's ratings add to their keywords. Pure, vectorised.

Keywords stay the cold start and stay in charge of exclusions; the ratings rerank, admit papers
that share no keyword, and push out near-duplicates of what the reader voted down.

Representation: the stored paper vectors (digest/rank/vectors.py) weighted by idf, L2-normalised;
similarity = cosine. The idf comes from a background larger than one day: a document-frequency
table of every paper the service has seen when the caller passes one (``DocFreq``), else the
papers being ranked plus every rated paper of the batch. For one reader and one paper j:

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
    admitted : no keyword rule passed, trusted, u_j >= ADMIT
    dropped  : cosine >= NEAR_DUP to a down-voted paper (a new version of what they refused)
    explore  : when the list has room under max_papers, the best remaining paper with
               EXPLORE * ADMIT <= u_j < ADMIT (the model is unsure about it)

u is scale-free (calibrated on the reader's own votes), so the same thresholds hold for a reader
of a narrow topic and one of a broad field. Values are explained in bench/README.md ("Ranking").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..models import RatedPaper
from .vectors import DIM, matrix

__all__ = [
    "ADMIT", "WEIGHT", "EXPLORE", "NEAR_DUP", "MIN_UPS", "MIN_DOWNS", "MIN_AUC", "U_CLIP",
    "DocFreq", "Pool", "Ratings", "decide",
]

ADMIT = 0.8  # u at which a paper with no keyword gets in: 80 % of the way from your downs to your ups
WEIGHT = 1.5  # one unit of u is worth this much relevance (1.5 = the default min_score)
EXPLORE = 0.6  # the "unsure" band for the exploration slot: u in [EXPLORE * ADMIT, ADMIT)
NEAR_DUP = 0.5  # cosine to a down-voted paper from which a paper counts as its near-duplicate
MIN_UPS = 2  # up-votes before the model does anything (level_up needs a pair)
MIN_DOWNS = 2  # down-votes before they calibrate the zero and the model must pass the auc check
MIN_AUC = 0.7  # leave-one-out: the model must order 70 % of (up, down) pairs right to be used
U_CLIP = 2.0  # |u| beyond this adds nothing: one rating never outweighs every keyword
_GRAM_CHUNK = 1024  # readers per block of the leave-one-out calibration

VIA_KEYWORDS, VIA_MODEL, VIA_EXPLORE = 0, 1, 2

DocFreq = tuple[np.ndarray, int]
"""(df, n): df an int array of shape (vectors.DIM,), the number of papers with each hashed
feature, over n papers (every paper the service has seen); e.g. ``document_frequencies(blobs)``."""


def document_frequencies(blobs: Sequence[bytes | None]) -> DocFreq:
    """The DocFreq of these paper vectors (additive: sum the dfs and ns of two sets)."""
    x = matrix(blobs)
    return np.bincount(x.indices, minlength=DIM).astype(np.int64), x.shape[0]


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


def distinct_votes(lst: Sequence[RatedPaper]) -> dict[str, RatedPaper]:
    """The last vote on each paper (by rated_at, then order given), ratings without a vector
    or with vote 0 dropped."""
    last: dict[str, RatedPaper] = {}
    for r in sorted(lst, key=_when):
        last.pop(r.key, None)
        last[r.key] = r
    return {k: r for k, r in last.items() if r.vector and r.vote}


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
        index: dict[str, int] = {}
        blobs: list[bytes] = []
        titles: list[str] = []
        ups, downs = [], []
        for lst in rated:
            u, d = [], []
            for r in distinct_votes(lst).values():
                i = index.get(r.key)
                if i is None:
                    i = index[r.key] = len(blobs)
                    blobs.append(r.vector)
                    titles.append(r.title)
                (u if r.vote > 0 else d).append(i)
            ups.append(np.array(u, np.int64))
            downs.append(np.array(d, np.int64))
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

    def scores(self, readers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(s = up - down, near-duplicate of a down-vote), dense (readers x pool)."""
        s = _mean_sim(self.sim, [self.ups[k] for k in readers])
        downs = [self.downs[k] for k in readers]
        if any(len(d) for d in downs):
            s -= _mean_sim(self.sim, downs)
            dup = _mean_sim(self.sim >= NEAR_DUP, downs, mean=False) > 0
        else:
            dup = np.zeros(s.shape, bool)
        return s, dup


def _when(r: RatedPaper) -> float:
    return r.rated_at.timestamp() if r.rated_at is not None else 0.0


def _mean_sim(sim: np.ndarray, lists: Sequence[np.ndarray], mean: bool = True) -> np.ndarray:
    """(readers x pool): per reader the mean (or sum) of the rows of ``sim`` it lists."""
    lengths = np.array([len(x) for x in lists], np.int64)
    cols = np.concatenate(lists) if lengths.sum() else np.zeros(0, np.int64)
    vals = np.ones(len(cols), np.float32)
    if mean:
        vals /= np.repeat(np.maximum(lengths, 1), lengths).astype(np.float32)
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    r = sp.csr_matrix((vals, cols, indptr), shape=(len(lists), sim.shape[0]))
    return np.asarray(r @ sim.astype(np.float32, copy=False), np.float32)


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
        g = gram[idx[:, :, None], idx[:, None, :]]
        diag = np.arange(width)
        g[:, diag, diag] = 0.0  # leave one out: a paper is not compared with itself
        isup, isdn = (lab == 1).astype(np.float32), (lab == -1).astype(np.float32)
        n_up = isup.sum(1, keepdims=True) - isup  # other up-votes of each rated paper
        n_dn = isdn.sum(1, keepdims=True) - isdn
        s = np.einsum("kij,kj->ki", g, isup) / np.maximum(n_up, 1)
        s -= np.einsum("kij,kj->ki", g, isdn) / np.maximum(n_dn, 1)
        nu, nd = isup.sum(1), isdn.sum(1)
        lu = (s * isup).sum(1) / nu
        ld = np.where(nd >= MIN_DOWNS, (s * isdn).sum(1) / np.maximum(nd, 1), np.nan)
        # auc: ordered (up, down) pairs
        cmp = (s[:, :, None] > s[:, None, :]) + 0.5 * (s[:, :, None] == s[:, None, :])
        pairs = isup[:, :, None] * isdn[:, None, :]
        a = np.where(nd >= MIN_DOWNS, (cmp * pairs).sum((1, 2)) / np.maximum(pairs.sum((1, 2)), 1), np.nan)
        level_up[ks], level_down[ks], auc[ks] = lu, ld, a
    return level_up, level_down, auc


def decide(
    rel: np.ndarray,
    kw_ok: np.ndarray,
    blocked: np.ndarray,
    s: np.ndarray,
    dup: np.ndarray,
    level_up: np.ndarray,
    level_down: np.ndarray,
    auc: np.ndarray,
    room: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For readers x pool (dense): (included, score without boost, via code, explore column or -1).

    ``rel``: keyword relevance; ``kw_ok``: the keyword inclusion rule passed; ``blocked``:
    withdrawn, excluded or skipped (always out); ``s``: up - down similarity (overwritten);
    ``room``: per reader, max_papers."""
    has_down = np.isfinite(level_down)
    zero = np.where(has_down, level_down, s.mean(1, dtype=np.float64))
    scale = level_up - zero
    trusted = np.isfinite(level_up) & (scale > 1e-4) & (~has_down | (np.nan_to_num(auc) >= MIN_AUC))
    inv = np.where(trusted, 1.0 / np.where(trusted, scale, 1.0), 0.0)
    u = s
    u -= np.where(trusted, zero, 0.0).astype(np.float32)[:, None]
    u *= inv.astype(np.float32)[:, None]
    np.clip(u, -U_CLIP, U_CLIP, out=u)
    out = blocked | dup
    admit = u >= ADMIT
    admit &= ~kw_ok
    admit &= ~out
    included = kw_ok & ~out
    included |= admit
    score = rel + WEIGHT * u
    via = admit.astype(np.int8) * VIA_MODEL
    unsure = u >= EXPLORE * ADMIT
    unsure &= ~admit
    unsure &= ~kw_ok
    unsure &= ~out
    best = np.where(unsure, u, -np.inf)
    col = np.argmax(best, axis=1)
    has = np.isfinite(best[np.arange(len(col)), col]) & (included.sum(1) < room) & trusted
    explore = np.where(has, col, -1)
    return included, score, via, explore
