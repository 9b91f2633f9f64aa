"""Reasons: the Match records of a scored paper and its one-line "why"."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Match, Paper

__all__ = ["why_line", "trending_why", "liked_why"]

_MAX_TERMS = 3
_FIELD_WORD = {"title": "title", "abstract": "abstract", "summary": "AI summary", "keywords": "AI keywords"}


def _times(n: int) -> str:
    return f" ({n}×)" if n > 1 else ""


def _describe(term: str, matches: Sequence[Match]) -> str:
    fields = [m for m in matches if m.field != "semantic"]
    if len(fields) == 1:
        m = fields[0]
        return f'"{term}"{_times(m.count)} in the {_FIELD_WORD.get(m.field, m.field)}'
    names = [_FIELD_WORD.get(m.field, m.field) + _times(m.count) for m in fields]
    return f'"{term}" in the ' + ", ".join(names[:-1]) + " and " + names[-1]


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def why_line(ordered_terms: Sequence[str], by_term: dict[str, list[Match]], paper: Paper) -> str:
    """``matches "mixture of experts" in the title and "LoRA" (3×) in the abstract``.

    ``ordered_terms``: the matched terms, strongest first.
    """
    lexical = [t for t in ordered_terms if any(m.field != "semantic" for m in by_term[t])]
    semantic = [t for t in ordered_terms if t not in lexical]
    parts: list[str] = []
    if lexical:
        shown = [_describe(t, by_term[t]) for t in lexical[:_MAX_TERMS]]
        if len(lexical) > _MAX_TERMS:
            shown.append(f"{len(lexical) - _MAX_TERMS} more")
        parts.append("matches " + _join(shown))
    if semantic:
        parts.append(f'is about "{semantic[0]}" (semantic match)')
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
