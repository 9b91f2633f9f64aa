"""The snippet under each paper: the text that lets a reader check the reason by eye.

A reader told "matches fine-tuning in the abstract" must see fine-tuning highlighted. So, for the
exact forms that matched (``Match.forms``):

1. the AI summary, when it holds one of them (labelled "AI summary");
2. else the abstract's sentences from the first one that holds a match, as many as fit, with
   an ellipsis where the abstract was cut before or after them;
3. else (matches only in the title or keywords, or a trending paper): the AI summary, else the
   abstract's beginning, as before.

Everything is cleaned first (TeX typeset, whitespace collapsed), so the forms are looked for in
the text the reader sees, exactly as the highlighter does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from .textutil import clean, form_pattern, shorten

__all__ = ["Snippet", "choose_snippet", "SNIPPET_MAX", "SUMMARY_MAX", "AI_SUMMARY"]

SNIPPET_MAX = 300  # characters of abstract
SUMMARY_MAX = 600  # a safety cap on AI summaries (they are normally one or two sentences)
AI_SUMMARY = "AI summary"
ELLIPSIS = "…"

# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or opening mark.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"“'])")

Snippet = tuple[str, str]  # (label: "" or AI_SUMMARY, text)


@functools.lru_cache(maxsize=4096)
def _cleaned(text: str, limit: int) -> str:
    return clean(text[: limit * 2]) if limit else clean(text)


@functools.lru_cache(maxsize=4096)
def _sentences(abstract: str) -> tuple[tuple[int, int], ...]:
    """(start, end) of each sentence of a cleaned abstract."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(abstract):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(abstract)))
    return tuple(spans)


def _holds(text: str, forms: Iterable[str]) -> list[int]:
    """Start offsets of the forms in ``text`` (cleaned forms, at word boundaries)."""
    found = []
    for form in forms:
        if form and form in text:
            m = form_pattern(form).search(text)
            if m is not None:
                found.append(m.start())
    return found


def _window(abstract: str, first: int) -> str:
    """The sentences from the one holding offset ``first``, as many as fit in SNIPPET_MAX."""
    spans = _sentences(abstract)
    i = next(k for k, (s, e) in enumerate(spans) if s <= first <= e or first < s)
    start, end = spans[i]
    if end - start > SNIPPET_MAX and first - start > SNIPPET_MAX // 2:
        # one long sentence with the match far in: start a few words before the match
        cut = abstract.rfind(" ", start, max(first - 60, start))
        start = cut + 1 if cut > start else start
    j = i + 1
    while j < len(spans) and spans[j][1] - start <= SNIPPET_MAX:
        end = spans[j][1]
        j += 1
    text = shorten(abstract[start:end], SNIPPET_MAX - (1 if start else 0))
    if start:
        text = ELLIPSIS + text
    if end < len(abstract) and not text.endswith(ELLIPSIS):
        text += " " + ELLIPSIS if text.endswith((".", "!", "?")) else ELLIPSIS
    return text


# Readers with the same interests get the same snippet of a paper: (summary, abstract, forms) ->
# snippet is pure, so it is kept (10,000 readers of the send benchmark: 110,000 snippets, 31,500
# different ones). The key holds the paper's own strings, so an entry costs little beyond its text.
@functools.lru_cache(maxsize=32768)
def choose_snippet(summary: str | None, abstract: str, forms: tuple[str, ...]) -> Snippet:
    """(label, text) of the snippet for one reader's matched ``forms`` (see the module doc)."""
    ai = shorten(_cleaned(summary or "", SUMMARY_MAX), SUMMARY_MAX)
    cleaned_forms = tuple(f for f in dict.fromkeys(clean(f) for f in forms) if f)
    if cleaned_forms:
        if ai and _holds(ai, cleaned_forms):
            return AI_SUMMARY, ai
        full = _cleaned(abstract, 0)
        found = _holds(full, cleaned_forms)
        if found:
            return "", _window(full, min(found))
    if ai:
        return AI_SUMMARY, ai
    return "", shorten(_cleaned(abstract, SNIPPET_MAX), SNIPPET_MAX)
