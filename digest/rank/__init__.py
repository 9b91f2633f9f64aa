"""Rank stage: pure scoring of papers against one reader's interests.

Public API (used by the pipeline and the CLI):

    Ranker(papers, *, now, semantic=False)      # build per-paper features once per edition
    Ranker.rank(sub, *, skip=frozenset())       # -> list[ScoredPaper], every paper passing the
                                                #    inclusion rule and not in `skip`, best first
    Ranker.rank_many(subs, skip_by_sub=None, *, limit=None)
                                                # -> {sub.id: list[ScoredPaper]}, vectorised
    rank(papers, sub, *, now, skip=frozenset()) # convenience: Ranker(papers, now=now).rank(sub, ...)

Matching rules: digest/rank/terms.py; scoring and the inclusion rule: digest/rank/ranker.py;
the trending prior: digest/rank/prior.py; all three documented in bench/README.md ("Ranking").
``semantic=True`` needs the extra (``pip install 'paper-digest-mailer[semantic]'``), else ConfigError.
"""

from .ranker import DEFAULT_MIN_SCORE, MENTION_MIN, MIN_BODY_HITS, Planned, Ranker, rank
from .terms import compile_term, find_runs
from .text import clean_text, stem, tokenize

__all__ = [
    "Ranker",
    "Planned",
    "MENTION_MIN",
    "rank",
    "DEFAULT_MIN_SCORE",
    "MIN_BODY_HITS",
    "compile_term",
    "find_runs",
    "clean_text",
    "stem",
    "tokenize",
]
