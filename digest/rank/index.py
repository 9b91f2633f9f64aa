"""Per-paper features, built once per edition: every token of every field in flat arrays, and
postings (sorted token positions) per stem, per glued spelling and per exact spelling.

A term is resolved against all papers at once with a few sorted-array look-ups (phrase = positions
of word 1 whose following positions hold words 2..n), which finds exactly the runs that
:func:`digest.rank.terms.find_runs` finds by scanning (a property test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..models import Paper
from .terms import MAX_JOIN, Term, _glue
from .text import _TOKEN, JOINABLE, clean_text, stem

__all__ = ["FIELDS", "FIELD_WEIGHTS", "PaperIndex", "TermHits", "field_texts"]

# Title above abstract above other text (the AI summary and the AI keywords of a listing).
FIELDS = ("title", "abstract", "summary", "keywords")
FIELD_WEIGHTS = np.array([3.0, 1.0, 0.5, 0.5])
F_TITLE, F_ABSTRACT, F_SUMMARY, F_KEYWORDS = range(4)
NF = len(FIELDS)


def field_texts(paper: Paper) -> tuple[str, str, str, str]:
    return (
        paper.title or "",
        paper.abstract or "",
        paper.ai_summary or "",
        " ; ".join(paper.ai_keywords),
    )


@dataclass(frozen=True, slots=True)
class TermHits:
    """Where one term occurs, one row per (paper, field) cell holding it, in cell order."""

    paper: np.ndarray  # int32
    field: np.ndarray  # int8
    count: np.ndarray  # int32
    starts: np.ndarray  # int64: first token of every run, sorted
    lengths: np.ndarray  # int64: tokens in every run
    bounds: np.ndarray  # row r owns runs bounds[r]:bounds[r+1]

    @property
    def empty(self) -> bool:
        return len(self.paper) == 0


_E64 = np.zeros(0, np.int64)
_NO_HITS = TermHits(np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, np.int32), _E64, _E64, np.zeros(1, np.int64))


class _Postings:
    """Sorted positions per id, from one argsort."""

    def __init__(self, ids: np.ndarray, n_ids: int) -> None:
        self.order = np.argsort(ids, kind="stable")
        self.bounds = np.concatenate(([0], np.cumsum(np.bincount(ids, minlength=n_ids))))

    def get(self, i: int | None) -> np.ndarray:
        if i is None:
            return _E64
        return self.order[self.bounds[i] : self.bounds[i + 1]]


def _follows(starts: np.ndarray, offset: int, positions: np.ndarray) -> np.ndarray:
    """Mask of ``starts`` whose ``start + offset`` is in the sorted ``positions``."""
    if len(positions) == 0 or len(starts) == 0:
        return np.zeros(len(starts), bool)
    want = starts + offset
    idx = np.searchsorted(positions, want)
    idx[idx == len(positions)] = 0
    return positions[idx] == want


class PaperIndex:
    def __init__(self, papers: Sequence[Paper]) -> None:
        self.n = len(papers)
        self.texts: list[tuple[str, ...]] = []
        self._origins: dict[int, list[int]] = {}  # cell -> origin map, when markup was stripped
        vocab: dict[str, int] = {}  # raw token -> raw id
        raw_ids: list[int] = []
        cells: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        joins: list[bool] = []
        for p, paper in enumerate(papers):
            texts = field_texts(paper)
            self.texts.append(texts)
            for f, text in enumerate(texts):
                if not text:
                    continue
                clean, origin = clean_text(text)
                if clean != text:
                    self._origins[p * NF + f] = origin
                spans = [m.span() for m in _TOKEN.finditer(clean)]
                if not spans:
                    continue
                cell = p * NF + f
                for k, (s, e) in enumerate(spans):
                    raw = clean[s:e]
                    rid = vocab.get(raw)
                    if rid is None:
                        rid = vocab[raw] = len(vocab)
                    raw_ids.append(rid)
                    starts.append(s)
                    ends.append(e)
                    if k + 1 < len(spans):
                        nxt = spans[k + 1][0]
                        sep = clean[e:nxt]
                        joins.append(sep == " " or sep == "-" or JOINABLE.fullmatch(clean, e, nxt) is not None)
                    else:
                        joins.append(False)
                cells.extend([cell] * len(spans))
        self.raws = list(vocab)
        stems: dict[str, int] = {}
        glues: dict[str, int] = {}
        raw_stem = np.array([stems.setdefault(stem(r), len(stems)) for r in self.raws], np.int64)
        raw_glue = np.array([glues.setdefault(_glue([r]), len(glues)) for r in self.raws], np.int64)
        raw_short = np.array([len(r) < 2 and not r.isdigit() for r in self.raws], bool)
        rid_arr = np.asarray(raw_ids, np.int64)
        self.cell = np.asarray(cells, np.int64)
        self.start = np.asarray(starts, np.int64)
        self.end = np.asarray(ends, np.int64)
        self.joins = np.asarray(joins, bool)
        self.stem_vocab, self.glue_vocab, self.raw_vocab = stems, glues, vocab
        self.short = raw_short[rid_arr] if len(rid_arr) else np.zeros(0, bool)
        self.by_raw = _Postings(rid_arr, len(vocab))
        self.by_stem = _Postings(raw_stem[rid_arr] if len(rid_arr) else rid_arr, len(stems))
        self.by_glue = _Postings(raw_glue[rid_arr] if len(rid_arr) else rid_arr, len(glues))

    # ------------------------------------------------------------ look-up

    def runs(self, term: Term) -> tuple[np.ndarray, np.ndarray]:
        """(starts, lengths) of every run the term matches, sorted by start then length."""
        if not term.valid:
            return _E64, _E64
        if term.acronym:
            pos = np.union1d(
                self.by_raw.get(self.raw_vocab.get(term.raw)),
                self.by_raw.get(self.raw_vocab.get(term.raw + "s")),
            ).astype(np.int64)
            return pos, np.ones(len(pos), np.int64)
        found = [] if term.n == 1 else [self._phrase(term.seq.split(" "))]
        found += self._joined(term.join)  # for one word: the word itself, and its split spellings
        found = [f for f in found if len(f[0])]
        if not found:
            return _E64, _E64
        if len(found) == 1:
            return found[0]
        codes = np.unique(np.concatenate([s * 64 + length for s, length in found]))
        return codes // 64, codes % 64

    def _phrase(self, stems: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Same words: positions where the stems follow each other across joinable separators."""
        pos = self.by_stem.get(self.stem_vocab.get(stems[0]))
        for k, s in enumerate(stems[1:], start=1):
            if len(pos) == 0:
                break
            pos = pos[self.joins[pos + k - 1] & _follows(pos, k, self.by_stem.get(self.stem_vocab.get(s)))]
        return pos, np.full(len(pos), len(stems), np.int64)

    def _joined(self, key: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Joined or split: runs of 1..MAX_JOIN tokens whose glued spelling equals ``key``."""
        out = []
        single = self.by_stem.get(self.stem_vocab.get(key))
        out.append((single, np.ones(len(single), np.int64)))
        self._split(key, [], out)
        return out

    def _split(self, rest: str, heads: list[int], out: list) -> None:
        """Try every way to write ``rest`` as glued words + a stem, appending phrase matches."""
        if len(heads) + 1 >= MAX_JOIN:
            return
        for i in range(2, len(rest) - 1):
            gid = self.glue_vocab.get(rest[:i])
            if gid is None:
                continue
            parts = heads + [gid]
            tail = self.stem_vocab.get(rest[i:])
            if tail is not None:
                out.append(self._chain(parts, tail))
            self._split(rest[i:], parts, out)

    def _chain(self, glue_ids: list[int], tail: int) -> tuple[np.ndarray, np.ndarray]:
        pos = self.by_glue.get(glue_ids[0])
        pos = pos[~self.short[pos]]
        for k, gid in enumerate(glue_ids[1:], start=1):
            pos = pos[self.joins[pos + k - 1] & _follows(pos, k, self.by_glue.get(gid))]
        k = len(glue_ids)
        if len(pos):
            pos = pos[self.joins[pos + k - 1] & _follows(pos, k, self.by_stem.get(tail))]
        if len(pos):
            ok = np.ones(len(pos), bool)
            for j in range(1, k + 1):
                ok &= ~self.short[pos + j]
            pos = pos[ok]
        return pos, np.full(len(pos), k + 1, np.int64)

    def hits(self, term: Term) -> TermHits:
        starts, lengths = self.runs(term)
        if len(starts) == 0:
            return _NO_HITS
        cell = self.cell[starts]  # sorted, since token positions follow cell order
        change = np.flatnonzero(np.diff(cell)) + 1
        first = np.concatenate(([0], change))
        bounds = np.concatenate((first, [len(cell)]))
        uniq = cell[first]
        return TermHits(
            (uniq // NF).astype(np.int32),
            (uniq % NF).astype(np.int8),
            np.diff(bounds).astype(np.int32),
            starts,
            lengths,
            bounds,
        )

    def forms(self, hits: TermHits, row: int) -> tuple[str, ...]:
        """The exact strings of one row's runs in the paper's own text, each once, in text order."""
        cell = int(hits.paper[row]) * NF + int(hits.field[row])
        text = self.texts[cell // NF][cell % NF]
        origin = self._origins.get(cell)
        out: dict[str, None] = {}
        lo, hi = int(hits.bounds[row]), int(hits.bounds[row + 1])
        for s, n in zip(hits.starts[lo:hi].tolist(), hits.lengths[lo:hi].tolist()):
            a, b = int(self.start[s]), int(self.end[s + n - 1])
            form = text[origin[a] : origin[b - 1] + 1] if origin is not None else text[a:b]
            out.setdefault(form, None)
        return tuple(out)
