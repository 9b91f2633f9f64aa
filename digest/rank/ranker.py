"""The Ranker: per-paper features once per edition, then every subscriber scored with sparse
matrix products (subscribers x terms) @ (terms x papers).

Relevance of a paper for a reader (see bench/README.md, "Ranking"):

    relevance = sum over the reader's keywords k of  weight_k * sum over fields f of
                FIELD_WEIGHT[f] * (1 + ln count_kf)                (count_kf >= 1)

    FIELD_WEIGHT: title 3, abstract 1, AI summary 0.5, AI keywords 0.5

A paper is included when it is not withdrawn, no exclusion matches it anywhere, and
``relevance >= min_score`` (default DEFAULT_MIN_SCORE) and there is enough evidence: a keyword in
the title, or at least MIN_BODY_HITS keyword occurrences in the abstract and AI keywords (the
AI summary stands in for a missing abstract).
Included papers are ordered by ``relevance + boost(prior)``, then the prior, newest, key.

With ``mentions=True`` (what an edition uses), papers that fail only the evidence rule but carry
at least MENTION_MIN of relevance (one abstract mention of a weight-1 keyword) follow the included
ones, best first, with ``via="mention"``: the email lists them under "and N more", never in full,
and never sends an edition that holds nothing else. On the judged bench this takes MAP from 0.528
to 0.613 with the same edition F1 (bench/README.md, "Ranking").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from ..models import Match, Paper, RatedPaper, ScoredPaper, Subscription
from .model import DocFreq
from .rated import ReaderModels
from .results import Results, keyword_weights
from .index import F_ABSTRACT, F_KEYWORDS, F_SUMMARY, F_TITLE, FIELD_WEIGHTS, PaperIndex, TermHits
from .prior import boost, trending_prior
from .terms import Term, compile_term

__all__ = ["Ranker", "Planned", "rank", "DEFAULT_MIN_SCORE", "MIN_BODY_HITS", "MENTION_MIN"]

DEFAULT_MIN_SCORE = 1.5
_DECIMALS = 9
_EPS = 1e-3  # evidence per matching term, so no stored product entry is 0
_CHUNK = 4096  # subscribers per block of sparse products
MIN_BODY_HITS = 2
MENTION_MIN = 1.0  # relevance of a listed mention: one abstract mention of a weight-1 keyword


class Planned(NamedTuple):
    """One reader's row of `score_many`: paper positions best first, their scores (None: the
    trending digest), and how many of them passed the inclusion rule (`full`); the rest are
    mentions, which an edition only lists."""

    positions: np.ndarray
    scores: np.ndarray | None
    full: int


class _TermTable:
    """Distinct terms (as written) of a batch, with their hits as sparse (terms x papers) rows."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.written: list[str] = []

    def add(self, written: str) -> int:
        i = self.ids.get(written)
        if i is None:
            i = self.ids[written] = len(self.written)
            self.written.append(written)
        return i


class Ranker(Results):
    """Scores papers against subscriptions; pure (``now`` is explicit), deterministic."""

    def __init__(
        self,
        papers: Sequence[Paper],
        *,
        now: dt.datetime,
        semantic: bool = False,
        vectors: Sequence[bytes] | None = None,
        doc_freq: DocFreq | Callable[[], DocFreq | None] | None = None,
        dense: Sequence[bytes] | None = None,
    ) -> None:
        """``vectors``: the stored vector of each paper (embedded here when needed, if None);
        ``doc_freq``: document frequencies of the vector features over every paper seen (the
        model's idf background; None: the papers being ranked; a function: asked for it the first
        time a reader with ratings is ranked, so a run without ratings reads none), see
        digest/rank/model.py;
        ``dense``: with ``semantic``, each paper's stored embedding (embedded here when None)."""
        self.papers = tuple(papers)
        self.models = ReaderModels(self, vectors, doc_freq)  # the per-reader model, with ratings
        self.now = now
        self.index = PaperIndex(self.papers)
        n = len(self.papers)
        self.prior, self.stamp = trending_prior(self.papers, now)
        self.boost = boost(self.prior)
        self.withdrawn = np.array([p.withdrawn for p in self.papers], bool)
        self.has_abstract = np.array([bool(p.abstract.strip()) for p in self.papers], bool)
        keys = [p.key for p in self.papers]
        self.key_rank = np.empty(n, np.int64)
        self.key_rank[np.argsort(np.array(keys, dtype=object), kind="stable")] = np.arange(n)
        self.pos_of_key: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            self.pos_of_key.setdefault(k, []).append(i)
        # trending order: prior, newest, key
        self.trending_order = np.lexsort((self.key_rank, -self.stamp, -self.prior))
        self.tiebreak = np.empty(n, np.int64)  # position in the trending order: prior, newest, key
        self.tiebreak[self.trending_order] = np.arange(n)
        self._compiled: dict[str, Term] = {}
        self._hits: dict[tuple, TermHits] = {}
        self._matches: dict[tuple[str, int], tuple[Match, ...]] = {}
        self._rows: dict[str, dict[int, tuple[int, int]]] = {}  # term -> paper -> (first row, rows)
        self._explained: dict[tuple, tuple[tuple[Match, ...], str]] = {}  # (paper, terms hit) -> matches, why
        self._semantic = None
        if semantic:
            from .semantic import SemanticMatcher  # raises ConfigError without the extra

            self._semantic = SemanticMatcher(self, dense)

    # ------------------------------------------------------------ terms

    def term(self, written: str) -> Term:
        t = self._compiled.get(written)
        if t is None:
            t = self._compiled[written] = compile_term(written)
        return t

    def hits(self, written: str) -> TermHits:
        t = self.term(written)
        k = (t.acronym, t.seq, t.join)
        h = self._hits.get(k)
        if h is None:
            h = self._hits[k] = self.index.hits(t)
        return h

    def _term_matrices(self, table: _TermTable) -> tuple[sp.csr_matrix, ...]:
        """(relevance, evidence, title hits, any hit), terms x papers, all with one structure.

        evidence = 2 * title hits + body hits + _EPS (so ">= MIN_BODY_HITS" reads "a title hit or
        enough body hits", and no stored entry is ever 0: products keep the same structure)."""
        shape = (len(table.written), len(self.papers))
        hits = [self.hits(w) for w in table.written]
        u = np.repeat(np.arange(len(hits)), [len(h.paper) for h in hits])
        if len(u) == 0:
            empty = sp.csr_matrix(shape)
            return empty, empty, empty, empty
        paper = np.concatenate([h.paper for h in hits])
        field = np.concatenate([h.field for h in hits])
        count = np.concatenate([h.count for h in hits]).astype(float)
        rel = FIELD_WEIGHTS[field] * (1.0 + np.log(count))
        title = np.where(field == F_TITLE, count, 0.0)
        body_field = (field == F_ABSTRACT) | (field == F_KEYWORDS)
        body_field |= (field == F_SUMMARY) & ~self.has_abstract[paper]
        evidence = 2.0 * title + np.where(body_field, count, 0.0) + _EPS
        return tuple(
            sp.csr_matrix((d, (u, paper)), shape=shape)
            for d in (rel, evidence, title, np.ones(len(u)))
        )

    def relevance(self, sub: Subscription) -> np.ndarray:
        """Relevance of every paper for ``sub`` (inclusion rule not applied; 0 = no keyword)."""
        table = _TermTable()
        weights = {table.add(t): w for t, w in keyword_weights(sub).items()}
        rel_m = self._term_matrices(table)[0]
        w = np.zeros(len(table.written))
        for u, x in weights.items():
            w[u] = x
        return np.round(np.asarray(rel_m.T @ w).ravel(), _DECIMALS)

    # ------------------------------------------------------------ ranking

    def rank(
        self,
        sub: Subscription,
        *,
        skip: Collection[str] = frozenset(),
        rated: Sequence[RatedPaper] = (),
        mentions: bool = False,
    ) -> list[ScoredPaper]:
        """Every paper passing the inclusion rule (or admitted by the reader's ratings) and not in
        ``skip``, best first; with ``mentions``, then the mentions (``via="mention"``)."""
        return self.rank_many([sub], {sub.id: skip}, rated_by_sub={sub.id: rated}, mentions=mentions)[sub.id]

    def rank_many(
        self,
        subs: Iterable[Subscription],
        skip_by_sub: Mapping[str, Collection[str]] | None = None,
        *,
        limit: int | None = None,
        rated_by_sub: Mapping[str, Sequence[RatedPaper]] | None = None,
        mentions: bool = False,
    ) -> dict[str, list[ScoredPaper]]:
        """Rank many subscribers at once (vectorised). ``limit`` caps how many ScoredPaper objects
        are built per subscriber (the ordering is the same); None builds them all."""
        subs = list(subs)
        skip_by_sub = skip_by_sub or {}
        order = self.score_many(subs, skip_by_sub, rated_by_sub=rated_by_sub, mentions=mentions)
        return {
            sub.id: self.materialise(sub, papers, rel, limit, full=full)
            for sub, (papers, rel, full) in zip(subs, order)
        }

    def score_many(
        self,
        subs: Sequence[Subscription],
        skip_by_sub: Mapping[str, Collection[str]],
        *,
        rated_by_sub: Mapping[str, Sequence[RatedPaper]] | None = None,
        mentions: bool = False,
    ) -> list[Planned]:
        """Per subscriber: the paper positions passing, best first; their score without the
        trending boost, or None for the trending digest; with ``mentions``, the mentions after
        them (``Planned.full`` counts the others). Readers with keywords and ratings are ranked by
        the per-reader model (digest/rank/model.py); `materialise` says which papers it put there."""
        ratings, model_row = self.models.prepare(subs, rated_by_sub)
        table = _TermTable()
        kw_rows, kw_cols, kw_w, ex_rows, ex_cols = [], [], [], [], []
        for s, sub in enumerate(subs):
            for term, w in keyword_weights(sub).items():
                kw_rows.append(s)
                kw_cols.append(table.add(term))
                kw_w.append(w)
            for term in sub.exclude:
                ex_rows.append(s)
                ex_cols.append(table.add(term))
        rel_m, ev_m, title_m, any_m = self._term_matrices(table)
        shape = (len(subs), len(table.written))
        W = sp.csr_matrix((np.asarray(kw_w, float), (kw_rows, kw_cols)), shape=shape)
        B = sp.csr_matrix((np.ones(len(kw_rows)), (kw_rows, kw_cols)), shape=shape)
        E = sp.csr_matrix((np.ones(len(ex_rows)), (ex_rows, ex_cols)), shape=shape)
        thr = np.array([DEFAULT_MIN_SCORE if s.min_score is None else s.min_score for s in subs])
        skip_mask = self._skip_mask(subs, skip_by_sub)
        n = len(self.papers)
        result: list[Planned] = []
        for lo in range(0, len(subs), _CHUNK):
            hi = min(lo + _CHUNK, len(subs))
            chunk = subs[lo:hi]
            # Sparse (chunk x papers) products with one structure: the pairs some keyword hits.
            rel_c = W[lo:hi] @ rel_m
            ev_c = B[lo:hi] @ ev_m
            if not (np.array_equal(rel_c.indptr, ev_c.indptr) and np.array_equal(rel_c.indices, ev_c.indices)):
                ev_c = _align(ev_c, rel_c)  # never seen; kept for safety
            rows = np.repeat(np.arange(hi - lo), np.diff(rel_c.indptr))
            cols = rel_c.indices.astype(np.int64)
            r = np.round(rel_c.data, _DECIMALS)  # so sums in any order agree
            ok = (r >= thr[lo + rows] - 1e-6) & (ev_c.data >= MIN_BODY_HITS - 1e-6)
            excl_c = E[lo:hi] @ any_m
            blocked = self.withdrawn[cols].copy()
            if excl_c.nnz:
                blocked |= _pairs_in(rows, cols, excl_c, n)
            if skip_mask is not None:
                blocked |= skip_mask[rows + lo, cols]
            if self._semantic is not None:
                title = _align(B[lo:hi] @ title_m, rel_c).data > 0
                result += [Planned(p, x, len(p)) for p, x in
                           self._semantic_chunk(chunk, rows, cols, r, ok, title, excl_c, skip_mask, lo, ratings)]
                continue
            keep = ok & ~blocked
            mention = ~ok & ~blocked & (r >= MENTION_MIN - 1e-6) if mentions else np.zeros_like(keep)
            modelled: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            if ratings is not None and (model_row[lo:hi] >= 0).any():
                modelled, taken = self.models.chunk(
                    chunk, ratings, model_row[lo:hi], rows, cols, r, ok,
                    lambda k: self._blocked_row(k, excl_c, skip_mask, lo),
                )  # fmt: skip
                if mentions:  # a modelled reader's mentions follow the model's list, less those it took
                    mention &= ~taken | ~_in_lists(modelled, rows, cols, (hi - lo, n))
                keep &= ~taken
            listed = keep | mention
            rows, cols, r, mention = rows[listed], cols[listed], r[listed], mention[listed]
            order = np.lexsort((self.tiebreak[cols], -(r + self.boost[cols]), mention, rows))
            rows, cols, r, mention = rows[order], cols[order], r[order], mention[order]
            cuts = np.searchsorted(rows, np.arange(hi - lo + 1))
            full_before = np.concatenate(([0], np.cumsum(~mention)))  # passing papers before each pair
            for k, sub in enumerate(chunk):
                if k in modelled:  # the model's list, then (only mentions are left in the slice) its mentions
                    (got, got_r), a, b = modelled[k], cuts[k], cuts[k + 1]
                    result.append(Planned(np.concatenate((got, cols[a:b])), np.concatenate((got_r, r[a:b])), len(got)))
                elif sub.keywords:
                    a, b = cuts[k], cuts[k + 1]
                    result.append(Planned(cols[a:b], r[a:b], int(full_before[b] - full_before[a])))
                else:
                    trending = self._trending(self._blocked_row(k, excl_c, skip_mask, lo))
                    result.append(Planned(trending, None, len(trending)))
        return result

    def _blocked_row(self, k: int, excl_c: sp.csr_matrix, skip_mask: np.ndarray | None, lo: int) -> np.ndarray:
        blocked = self.withdrawn.copy()
        blocked[excl_c.indices[excl_c.indptr[k] : excl_c.indptr[k + 1]]] = True
        if skip_mask is not None:
            blocked |= skip_mask[lo + k]
        return blocked

    def _trending(self, blocked: np.ndarray) -> np.ndarray:
        return self.trending_order[~blocked[self.trending_order]]

    def _semantic_chunk(self, subs, rows, cols, r, lex_ok, title, excl_c, skip_mask, lo, ratings=None):
        """The semantic extra: its own inclusion rule and bonus, per subscriber (dense rows)."""
        n = len(self.papers)
        cuts = np.searchsorted(rows, np.arange(len(subs) + 1))
        result: list[tuple[np.ndarray, np.ndarray | None]] = []
        for k, sub in enumerate(subs):
            blocked = self._blocked_row(k, excl_c, skip_mask, lo)
            if not sub.keywords:
                result.append((self._trending(blocked), None))
                continue
            sl = slice(cuts[k], cuts[k + 1])
            rel, ok_l, tit = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
            rel[cols[sl]], ok_l[cols[sl]], tit[cols[sl]] = r[sl], lex_ok[sl], title[sl]
            ok, bonus = self._semantic.decide(sub, rel, ok_l, tit)
            if ratings is not None and self.models.row_of(sub) >= 0:
                result += self.models.rows(
                    [sub], ratings, np.array([self.models.row_of(sub)]), (rel + bonus)[None], ok[None], blocked[None]
                )
                continue
            papers = np.flatnonzero(ok & ~blocked)
            total = rel[papers] + bonus[papers]
            order = np.lexsort((self.tiebreak[papers], -(total + self.boost[papers])))
            result.append((papers[order], total[order]))
        return result

    def _skip_mask(
        self, subs: Sequence[Subscription], skip_by_sub: Mapping[str, Collection[str]]
    ) -> np.ndarray | None:
        rows, cols = [], []
        for s, sub in enumerate(subs):
            for k in skip_by_sub.get(sub.id, ()):
                for i in self.pos_of_key.get(k, ()):
                    rows.append(s)
                    cols.append(i)
        if not rows:
            return None
        mask = np.zeros((len(subs), len(self.papers)), bool)
        mask[rows, cols] = True
        return mask


def _align(m: sp.csr_matrix, like: sp.csr_matrix) -> sp.csr_matrix:
    """``m``'s values on ``like``'s structure (0 where ``m`` has no entry)."""
    out = like.copy()
    out.data = np.asarray(m[like.nonzero()]).ravel() if like.nnz else out.data
    return out


def _in_lists(lists: Mapping[int, tuple[np.ndarray, np.ndarray]], rows: np.ndarray, cols: np.ndarray,
              shape: tuple[int, int]) -> np.ndarray:
    """For each (row, col) pair: whether `col` is in row's list (`lists`: row -> (positions, _))."""
    mask = np.zeros(shape, bool)
    if lists:
        mask[np.repeat(list(lists), [len(got) for got, _ in lists.values()]),
             np.concatenate([got for got, _ in lists.values()])] = True  # fmt: skip
    return mask[rows, cols]


def _pairs_in(rows: np.ndarray, cols: np.ndarray, m: sp.csr_matrix, n: int) -> np.ndarray:
    """Mask of the (row, col) pairs that are stored entries of ``m``."""
    m = m.tocoo()
    have = np.sort(m.row.astype(np.int64) * n + m.col)
    want = rows * n + cols
    idx = np.minimum(np.searchsorted(have, want), len(have) - 1)
    return have[idx] == want


def rank(
    papers: Sequence[Paper],
    sub: Subscription,
    *,
    now: dt.datetime,
    skip: Collection[str] = frozenset(),
    semantic: bool = False,
) -> list[ScoredPaper]:
    """Convenience: ``Ranker(papers, now=now).rank(sub, skip=skip)``."""
    return Ranker(papers, now=now, semantic=semantic).rank(sub, skip=skip)
