"""The ratings wiring of the Ranker: which readers go through the per-reader model
(digest/rank/model.py), their dense rows, and what the model put in their list (for the why)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..models import RatedPaper, Subscription
from .model import VIA_EXPLORE, VIA_MODEL, WEIGHT, DocFreq, Pool, Ratings, decide

if TYPE_CHECKING:
    from .ranker import Ranker

__all__ = ["ReaderModels", "VIA_EXPLORE", "VIA_MODEL"]

_DENSE_ROWS = 512  # readers per dense (readers x pool) block of the model's decision


class ReaderModels:
    """Per Ranker: the pool's vectors (built on the first ranking with ratings) and, per reader of
    the last batch, (ratings, row, {paper position: via})."""

    def __init__(
        self, ranker: Ranker, vectors: Sequence[bytes] | None, doc_freq: DocFreq | Callable[[], DocFreq | None] | None
    ) -> None:
        self.ranker = ranker
        self.vectors = None if vectors is None else list(vectors)
        self.doc_freq = doc_freq
        self.pool: Pool | None = None
        self.info: dict[str, tuple[Ratings, int, dict[int, int]]] = {}
        self.row_by_id: dict[str, int] = {}

    def prepare(
        self, subs: Sequence[Subscription], rated_by_sub: Mapping[str, Sequence[RatedPaper]] | None
    ) -> tuple[Ratings | None, np.ndarray]:
        """The batch's ratings against this pool, and per subscriber its row in them (-1: keywords
        only: no keywords, or no rating with a vector)."""
        model_row = np.full(len(subs), -1, np.int64)
        for sub in subs:
            self.info.pop(sub.id, None)
        self.row_by_id = {}
        rated_by_sub = rated_by_sub or {}
        todo = [
            s for s, sub in enumerate(subs)
            if sub.keywords and any(r.vector and r.vote for r in rated_by_sub.get(sub.id, ()))
        ]
        papers = self.ranker.papers
        if not todo or not papers:
            return None, model_row
        if self.pool is None:
            if self.vectors is None:
                from .vectors import embed

                self.vectors = embed(papers)
            background = self.doc_freq() if callable(self.doc_freq) else self.doc_freq
            self.pool = Pool(self.vectors, background=background)
        ratings = Ratings.build(self.pool, [rated_by_sub[subs[s].id] for s in todo])
        model_row[todo] = np.arange(len(todo))
        self.row_by_id = {subs[s].id: i for i, s in enumerate(todo)}
        return ratings, model_row

    def row_of(self, sub: Subscription) -> int:
        return self.row_by_id.get(sub.id, -1)

    def chunk(self, chunk, ratings: Ratings, local: np.ndarray, rows, cols, r, ok, blocked_row):
        """The modelled readers of one chunk of `score_many`: ({reader in chunk: (papers, scores)},
        mask of the (row, col) pairs they take out of the keyword path)."""
        n = len(self.ranker.papers)
        sel = local[rows] >= 0
        out = {}
        cuts = np.searchsorted(rows, np.arange(len(chunk) + 1))
        everyone = np.flatnonzero(local >= 0)
        for lo in range(0, len(everyone), _DENSE_ROWS):  # dense blocks small enough to stay in cache
            ks = everyone[lo : lo + _DENSE_ROWS]
            m_rel, m_ok = np.zeros((len(ks), n), np.float32), np.zeros((len(ks), n), bool)
            a, b = cuts[ks[0]], cuts[ks[-1] + 1]
            pick = sel[a:b]
            at = np.full(len(chunk), -1)
            at[ks] = np.arange(len(ks))
            rr, cc = at[rows[a:b][pick]], cols[a:b][pick]
            m_rel[rr, cc] = r[a:b][pick]
            m_ok[rr, cc] = ok[a:b][pick]
            m_blocked = np.stack([blocked_row(k) for k in ks])
            lists = self.rows([chunk[k] for k in ks], ratings, local[ks], m_rel, m_ok, m_blocked)
            out.update(zip(ks.tolist(), lists))
        return out, sel

    def rows(self, subs, ratings: Ratings, rows: np.ndarray, rel, kw_ok, blocked):
        """Readers x pool (dense) through the model: per reader (positions best first, scores);
        records which papers the model (not the keywords) put there, for `materialise`."""
        tiebreak, boost = self.ranker.tiebreak, self.ranker.boost
        s, dup, sibling, close = ratings.scores(rows)
        room = np.array([sub.max_papers for sub in subs])
        included, u, admit, explore = decide(
            rel, kw_ok, blocked, s, dup, sibling, close, ratings.level_up[rows], ratings.level_down[rows], ratings.auc[rows], room
        )
        rr, cc = np.nonzero(included)
        score = rel[rr, cc] + WEIGHT * u[rr, cc]  # float32, as rel + WEIGHT * u over the whole rows
        total = np.round(score.astype(np.float64), 6)
        order = np.lexsort((tiebreak[cc], -(total + boost[cc]), rr))
        rr, cc, total, admitted = rr[order], cc[order], total[order], admit[rr[order], cc[order]]
        cuts = np.searchsorted(rr, np.arange(len(subs) + 1))
        out = []
        for k, sub in enumerate(subs):
            a, b = cuts[k], cuts[k + 1]
            papers, scores = cc[a:b], total[a:b]
            marks = dict.fromkeys(papers[admitted[a:b]].tolist(), VIA_MODEL)
            if explore[k] >= 0:
                e = explore[k]
                papers = np.append(papers, e)
                scores = np.append(scores, rel[k, e] + WEIGHT * u[k, e])
                marks[int(e)] = VIA_EXPLORE
            self.info[sub.id] = (ratings, int(rows[k]), marks)
            out.append((papers, scores))
        return out

    def liked(self, sub: Subscription, p: int) -> tuple[int | None, str]:
        """(via code or None when the keywords put paper ``p`` there, the up-voted title it is most like)."""
        ratings, row, marks = self.info.get(sub.id, (None, -1, {}))
        via = marks.get(p)
        if via is None or ratings is None:
            return None, ""
        return via, ratings.titles[ratings.nearest_up(row, p)]
