"""Small pure helpers for the render stage: cleaning, shortening, safe URLs, highlighting, dates.

Nothing here knows about templates or MIME; everything is cheap enough to run per paper.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from .tex import tex_to_text

__all__ = [
    "clean",
    "shorten",
    "safe_url",
    "github_url",
    "highlight_forms",
    "form_pattern",
    "wrap",
    "short_date",
    "long_date",
    "MARK_OPEN",
]

# Any run of whitespace, C0/C1 control characters, line/paragraph separators, BOM or lone
# surrogates becomes one space: display fields are single lines, and no value can smuggle a
# line break into a header or a fake line into the plain-text body.
_JUNK_RUN = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]+")
# Bidi embeddings, overrides and isolates are dropped (not spaced): a title must not display
# reversed in a Subject or a list. The sources stage strips them too; this covers stored text.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]+")

# The highlight is styled in place (it is produced at render time, after the CSS was inlined).
MARK_OPEN = '<mark style="background-color:#fff0a0;color:inherit;padding:0 1px">'
_MARK_CLOSE = "</mark>"

NBSP = "\u00a0"  # inside dates: never a line break there; plain text gets a normal space back

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAYS_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS_LONG = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def clean(value: object) -> str:
    """One line of display text: whitespace and control characters collapsed, ends stripped."""
    if not value:
        return ""
    text = tex_to_text(str(value))  # TeX typeset (Adapt-$\infty$ -> Adapt-∞); see tex.py
    # Fast path: isprintable() is False for every control, separator and whitespace
    # character except the ASCII space, so such text needs at most a strip.
    if text.isprintable() and "  " not in text:
        return text.strip()
    return _JUNK_RUN.sub(" ", _BIDI.sub("", text)).strip()


def shorten(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    n = max(limit - len(ellipsis), 1)
    cut = text[:n]
    if text[n] != " ":  # the cut falls inside a word: drop that word (unless it is huge)
        space = cut.rfind(" ")
        if space >= limit * 0.6:
            cut = cut[:space]
    return cut.rstrip(" ,;:.-–—(") + ellipsis


def safe_url(value: object) -> str | None:
    """The URL if it is an absolute http(s) URL without whitespace or controls, else None."""
    if not value or not isinstance(value, str):
        return None
    url = value.strip()
    if not url or _JUNK_RUN.search(url) or len(url) > 2048:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


_REPO_SLUG = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def github_url(value: object) -> tuple[str, str] | None:
    """(url, label) for a GitHub repo given as a URL or ``owner/name``; None if unusable."""
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    if _REPO_SLUG.fullmatch(value):
        return f"https://github.com/{value}", value
    url = safe_url(value)
    if url is None:
        return None
    parts = urlsplit(url)
    path = parts.path.strip("/")
    label = path if parts.netloc.lower().endswith("github.com") and path else url
    return url, label


@functools.lru_cache(maxsize=8192)
def form_pattern(form: str) -> re.Pattern[str]:
    """The (cached) pattern that finds ``form`` at word boundaries, as the highlighter does."""
    return re.compile(r"(?<!\w)" + re.escape(form) + r"(?!\w)")


def highlight_forms(text: str, forms: Iterable[str]) -> Markup:
    """``text`` HTML-escaped, with the exact ``forms`` (at word boundaries) wrapped in <mark>.

    Scanning left to right, at each position the longest form that occurs there is marked and the
    scan goes on after it. Each form's occurrences (overlapping ones too) are found with its own
    cached pattern (readers' combinations of forms rarely repeat; each form does), then that scan
    is replayed over them. Every piece is escaped on its own before any markup is added, so no
    unescaped text is ever marked up and a match can never fall inside an entity.
    """
    cleaned = {clean(f) for f in forms}
    cleaned.discard("")
    spans: list[tuple[int, int]] = []
    for form in cleaned:
        if form not in text:
            continue
        pattern, pos = form_pattern(form), 0
        while (m := pattern.search(text, pos)) is not None:
            spans.append((m.start(), -m.end()))
            pos = m.start() + 1
    if not spans:
        return escape(text)
    spans.sort()  # by start, longest first
    out: list[str] = []
    pos = 0
    for start, neg_end in spans:
        if start < pos:
            continue
        end = -neg_end
        out.append(escape(text[pos:start]))
        out.append(MARK_OPEN)
        out.append(escape(text[start:end]))
        out.append(_MARK_CLOSE)
        pos = end
    out.append(escape(text[pos:]))
    return Markup("".join(out))


@functools.lru_cache(maxsize=64)
def _line_re(width: int) -> re.Pattern[str]:
    # A line: the longest run from a non-space that ends before a space (or the end) within
    # ``width`` columns; else one over-long word (a URL) on a line of its own.
    return re.compile(r"\S.{0,%d}(?= |$)|\S+" % max(width - 1, 0))


@functools.lru_cache(maxsize=16384)  # the same titles, authors and snippets go to many readers
def wrap(text: str, indent: str = "", first: str | None = None, width: int = 76) -> str:
    """Plain text filled to ``width`` columns; URLs and long words are never broken, nor is a
    no-break space (it comes out as a plain space).

    ``text`` is one cleaned line. ``first`` (default ``indent``) starts the first line; it
    should be as long as ``indent`` (e.g. ``"1. "`` and ``"   "``).
    """
    first = indent if first is None else first
    if not text:
        return first.rstrip()
    lines = _line_re(width - len(indent)).findall(text)
    return (first + ("\n" + indent).join(lines)).replace(NBSP, " ")


def short_date(day: dt.date) -> str:
    """``Sat 21 Nov`` (English, independent of the process locale)."""
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"


def long_date(day: dt.date) -> str:
    """``Saturday, 21 November 2026``."""
    return f"{_DAYS_LONG[day.weekday()]}, {day.day} {_MONTHS_LONG[day.month - 1]} {day.year}"


def month_name(month: int) -> str:
    """``Feb`` for 2."""
    return _MONTHS[month - 1]


def day_month(day: dt.date, *, year_unless: int | None = None) -> str:
    """``26 Aug`` or ``26 Aug 2025`` (the year only when it differs from ``year_unless``), joined
    by no-break spaces: a date never wraps across lines (``wrap`` and HTML both keep it whole)."""
    text = f"{day.day}{NBSP}{_MONTHS[day.month - 1]}"
    return text if day.year == year_unless else f"{text}{NBSP}{day.year}"
