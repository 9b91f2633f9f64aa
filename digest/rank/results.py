"""What a ranking shows: the ScoredPaper objects of one reader's row of `Ranker.score_many`,
with each paper's matches (highlighting) and its one-line why, cached across readers who share
terms. A mixin of `Ranker` (it reads the Ranker's papers, prior, index and models)."""

from __future__ import annotations

import math
from collections.abc import Mapping
import numpy as np

from ..models import Match, ScoredPaper, Subscription
from .explain import liked_why, trending_why, why_line
from .index import FIELD_WEIGHTS, FIELDS
from .rated import VIA_EXPLORE

__all__ = ["Results", "keyword_weights"]

_FW = dict(zip(FIELDS, FIELD_WEIGHTS.tolist()))
_EXPLAINED_MAX = 65536  # (paper, terms hit) explanations kept per Ranker (a few MB)


def keyword_weights(sub: Subscription) -> dict[str, float]:
    """The reader's terms with their weights (the largest if a term repeats), in their order.
    A weight of 0 or less switches a keyword off."""
    weights: dict[str, float] = {}
    for kw in sub.keywords:
        if kw.weight > 0 and kw.term.strip():
            weights[kw.term] = max(weights.get(kw.term, kw.weight), kw.weight)
    return weights


class Results:
    """Ranker's results half: reads its papers, prior, boost, index, models and caches."""

    def _term_rows(self, written: str) -> dict[int, tuple[int, int]]:
        """paper -> (first row, rows) of this term's hits."""
        rows = self._rows.get(written)
        if rows is None:
            h = self.hits(written)
            uniq, first, count = np.unique(h.paper, return_index=True, return_counts=True)
            rows = self._rows[written] = dict(zip(uniq.tolist(), zip(first.tolist(), count.tolist())))
        return rows

    def paper_matches(self, written: str, p: int) -> tuple[Match, ...]:
        """One term's matches in one paper, one Match per field (cached across subscribers)."""
        rows = self._term_rows(written)
        if p not in rows:
            return ()
        cached = self._matches.get((written, p))
        if cached is None:
            h = self.hits(written)
            cached = tuple(
                Match(written, FIELDS[int(h.field[r])], int(h.count[r]), self.index.forms(h, r))
                for r in range(rows[p][0], rows[p][0] + rows[p][1])
            )
            self._matches[(written, p)] = cached
        return cached

    def materialise(
        self,
        sub: Subscription,
        papers: np.ndarray,
        rel: np.ndarray | None,
        limit: int | None = None,
        *,
        liked: Mapping[int, tuple[int, str]] | None = None,
        full: int | None = None,
    ) -> list[ScoredPaper]:
        """The ScoredPaper objects of one reader's row of `score_many` (the first `limit`).
        `liked` ({paper: (via code, up-voted title)}, from `liked_marks`) stands in for this
        Ranker's own record of the ratings model: a forked helper process never ran score_many.
        Papers from position `full` on are mentions (``via="mention"``)."""
        if limit is not None:
            papers = papers[:limit]
        out = []
        if rel is None:
            for p in papers.tolist():
                paper = self.papers[p]
                out.append(ScoredPaper(paper, float(self.prior[p]), (), trending_why(paper), "trending"))
            return out
        weights = keyword_weights(sub)
        term_rows = [(t, w, self._term_rows(t)) for t, w in weights.items()]
        full = len(papers) if full is None else full
        for i, (p, r) in enumerate(zip(papers.tolist(), rel.tolist())):
            paper = self.papers[p]
            score = float(r + self.boost[p])
            if self._semantic is not None:
                matches, why = self._explain(sub, p, weights)
            else:
                # The matches and the why depend only on the paper and the reader's terms (with
                # weights) that hit it: readers with the same interests share them.
                hit = tuple((t, w) for t, w, rows in term_rows if p in rows)
                key = (p, hit)
                explained = self._explained.get(key)
                if explained is None:
                    if len(self._explained) >= _EXPLAINED_MAX:
                        self._explained.clear()
                    explained = self._explained[key] = self._explain(sub, p, dict(hit))
                matches, why = explained
            via, title = liked.get(p, (None, "")) if liked is not None else self.models.liked(sub, p)
            if via is not None:
                why = liked_why(title, explore=via == VIA_EXPLORE)
                out.append(ScoredPaper(paper, score, matches, why, "explore" if via == VIA_EXPLORE else "model"))
                continue
            if i >= full:
                via = "mention"
            elif matches and all(m.field == "semantic" for m in matches):
                via = "semantic"  # the semantic extra's: close in meaning, no keyword in it
            else:
                via = "keywords"
            out.append(ScoredPaper(paper, score, matches, why, via))
        return out

    def liked_marks(self, sub: Subscription, papers: np.ndarray) -> dict[int, tuple[int, str]]:
        """Which of `papers` the reader's ratings put there, and the up-voted title each is most
        like ({paper: (via code, title)}; empty for a reader without a model this run)."""
        out = {}
        for p in papers.tolist():
            via, title = self.models.liked(sub, p)
            if via is not None:
                out[p] = (via, title)
        return out

    def _explain(self, sub: Subscription, p: int, weights: Mapping[str, float]) -> tuple[tuple[Match, ...], str]:
        """The matches of paper `p` for these terms (plus semantic ones), and the one-line why."""
        by_term: dict[str, list[Match]] = {}
        strength: dict[str, float] = {}
        for term, w in weights.items():
            ms = self.paper_matches(term, p)
            if ms:
                by_term[term] = list(ms)
                strength[term] = w * sum(_FW[m.field] * (1.0 + math.log(m.count)) for m in ms)
        if self._semantic is not None:
            self._semantic.add_matches(sub, p, by_term, strength)
        ordered = sorted(by_term, key=lambda t: -strength[t])
        matches = tuple(m for t in by_term for m in by_term[t])
        return matches, why_line(ordered, by_term, self.papers[p])

