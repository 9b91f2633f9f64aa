"""Text clean-up shared by the parsers. Pure functions.

Abstracts come as hard-wrapped plain text (HF, arXiv), as HTML (generic feeds) or as plain text
that may contain ``<`` and ``>`` from TeX (``$a<b$``). Paragraphs are kept as ``\\n\\n``; everything
else is collapsed to single spaces. TeX is kept as is.

Every text that enters through :func:`collapse` or :func:`clean_abstract` loses the characters no
title, abstract or name needs and that can hurt further on: bidi embeddings, overrides and isolates
(U+202A-202E, U+2066-2069: a title that displays reversed in a Subject), C0/C1 controls other than
whitespace, and lone surrogates (which cannot be encoded, so they would fail the store or the mail).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["collapse", "clean_abstract", "html_to_text", "clean_plain", "scrub", "UNSAFE_CHARS", "decode_utf8_replacing"]

# A blank line, or a newline followed by an indent (arXiv's "\n  " paragraph mark).
_PARA_RE = re.compile(r"\n[ \t]*\n\s*|\n[ \t]{2,}(?=\S)")
_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Only real HTML tags, so that TeX like "$a<b$ and $c>d$" survives clean_plain.
_KNOWN_TAG_RE = re.compile(
    r"</?(?:a|abbr|b|br|cite|code|div|em|font|h[1-6]|i|li|ol|p|pre|q|s|small|span|strong|sub|sup|"
    r"tt|u|ul)(?:\s+[^<>]*)?/?>",
    re.IGNORECASE,
)
_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
                         "blockquote", "pre", "table", "tr"})  # fmt: skip
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title"})
UNSAFE_CHARS = "\u202a-\u202e\u2066-\u2069\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff"
_UNSAFE_RE = re.compile(f"[{UNSAFE_CHARS}]+")


def scrub(text: str) -> str:
    """``text`` without bidi controls, non-whitespace control characters and lone surrogates."""
    return text if text.isprintable() else _UNSAFE_RE.sub("", text)


def decode_utf8_replacing(data: bytes) -> tuple[str, int]:
    """``data`` decoded as UTF-8 with each invalid byte sequence replaced by U+FFFD, and how many
    were replaced (U+FFFD characters the body already held are not counted)."""
    text = data.decode("utf-8", errors="replace")
    return text, text.count("\ufffd") - data.count("\ufffd".encode())


def collapse(text: str | None) -> str:
    """All runs of whitespace to one space, stripped (and :func:`scrub` -bed)."""
    return " ".join(scrub(text).split()) if text else ""


def clean_abstract(text: str | None) -> str:
    """Hard wraps joined into spaces, paragraphs separated by one blank line."""
    if not text:
        return ""
    text = scrub(text).replace("\r\n", "\n").replace("\r", "\n").strip()
    paragraphs = (collapse(p) for p in _PARA_RE.split(text))
    return "\n\n".join(p for p in paragraphs if p)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str | None) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, block elements as paragraphs."""
    if not markup:
        return ""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return clean_abstract("".join(parser.parts))


def _tag_replacement(m: re.Match[str]) -> str:
    name = m.group(0).strip("</>").split()[0].rstrip("/").lower() if m.group(0).strip("</>") else ""
    return "\n\n" if name in _BLOCK_TAGS else ""


def clean_plain(text: str | None) -> str:
    """Plain text that may carry stray HTML: known tags dropped, ``&name;`` entities decoded.

    Conservative on purpose: ``<`` and ``>`` that are not real tags (TeX) are kept.
    """
    if not text:
        return ""
    text = _KNOWN_TAG_RE.sub(_tag_replacement, text)
    text = _ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), text)
    return clean_abstract(text)
