"""Reasons: the Match records of a scored paper and its one-line "why"."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ..models import Match, Paper

__all__ = ["why_line", "trending_why", "liked_why"]

_MAX_TERMS = 3
# The reader's words for where a term was found: the email shows the title and a snippet of the
# abstract or the AI summary (labelled so); Hugging Face's AI keywords are on the paper's page.
_FIELD_WORD = {
    "title": "title",
    "abstract": "abstract",
    "summary": "AI summary",
    "keywords": "Hugging Face tags",
    "authors": "author list",
}
_FIELD_ORDER = {field: i for i, field in enumerate(_FIELD_WORD)}


def _join(parts: Sequence[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


_SEEN = ("title", "abstract", "summary")  # what the email shows (the snippet is one of the last two)


def _where(matches: Sequence[Match]) -> tuple[str, ...]:
    """Where a term was found, for the reader: at most the two first places the email shows
    (title, abstract, AI summary); the others only when it is in none of those."""
    return _where_fields(frozenset([m.field for m in matches]))


@functools.lru_cache(maxsize=256)
def _where_fields(fields: frozenset[str]) -> tuple[str, ...]:
    ordered = sorted(fields - {"semantic"}, key=lambda f: (_FIELD_ORDER.get(f, 99), f))
    seen = [f for f in ordered if f in _SEEN]
    return tuple(seen[:2] if seen else ordered)


def why_line(ordered_terms: Sequence[str], by_term: dict[str, list[Match]], paper: Paper) -> str:
    """``reinforcement learning, in the title; RL, in the title and abstract``: the reader's own
    terms (as they wrote them), strongest first, grouped by where they were found; no counts
    (the snippet shows them highlighted), no in-house words.

    ``ordered_terms``: the matched terms, strongest first (each once).
    """
    places = {t: _where(by_term[t]) for t in ordered_terms}
    lexical = [t for t in ordered_terms if places[t]]
    semantic = [t for t in ordered_terms if not places[t]]
    groups: dict[tuple[str, ...], list[str]] = {}
    for term in lexical[:_MAX_TERMS]:
        groups.setdefault(places[term], []).append(term)
    parts = [f"{_join(terms)}, in the {_join([_FIELD_WORD.get(f, f) for f in where])}" for where, terms in groups.items()]
    if len(lexical) > _MAX_TERMS:
        extra = len(lexical) - _MAX_TERMS
        parts[-1] += f" (and {extra} more term{'s' if extra > 1 else ''})"
    if semantic:
        parts.append(f"close in meaning to {semantic[0]}")
    # Upvotes and comments are shown beside the paper already: the why is about the reader's terms.
    return "; ".join(parts)


def trending_why(paper: Paper) -> str:
    bits = []
    if paper.upvotes:
        bits.append(f"{paper.upvotes} upvote" + ("s" if paper.upvotes != 1 else ""))
    if paper.comments:
        bits.append(f"{paper.comments} comment" + ("s" if paper.comments != 1 else ""))
    return "trending: " + (", ".join(bits) if bits else "new, no votes yet")


def liked_why(title: str, *, explore: bool = False) -> str:
    """Why the reader's ratings put a paper here: the up-voted paper it is most like."""
    title = " ".join(title.split())
    if explore:
        return f"exploring: close to «{title}» that you rated up, just below what your ratings admit; rate it to teach the ranking"
    return f"like «{title}» that you rated up"
