"""Rank stage: pure scoring of papers against one reader's interests.

Public API (used by the pipeline and the CLI):

    Ranker(papers, *, now)                      # build per-paper features once per edition
    Ranker.rank(sub, *, skip=frozenset())       # -> list[ScoredPaper], every paper passing the
                                                #    inclusion rule and not in `skip`, best first
    rank(papers, sub, *, now, skip=frozenset()) # convenience: Ranker(papers, now=now).rank(sub, ...)

INTERFACE STUB: being implemented; the signatures above are the contract.
"""
