"""Text handling for matching: markup stripping (with an offset map), tokens, light stemming.

Everything here is pure and deterministic. The matching rules built on it live in ``terms.py``.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import NamedTuple

__all__ = ["Token", "clean_text", "tokenize", "stem", "is_acronym", "JOINABLE"]

# ---------------------------------------------------------------- markup stripping

_INLINE_TAGS = "a|abbr|b|code|em|i|mark|s|small|span|strong|sub|sup|tt|u|var"
_MARKUP = re.compile(
    r"(?P<sp><!--.*?-->"  # HTML comments and block tags: replaced by a space
    r"|</?(?!(?:" + _INLINE_TAGS + r")\b)[A-Za-z][^<>]*>"
    r"|\\[A-Za-z]+(?![A-Za-z])\*?(?!\s*\{))"  # other TeX commands without an argument: \alpha, \LaTeX
    r"|(?P<esc>\\[%&_#{}$])"  # TeX escapes: \% -> %
    r"|(?P<drop></?(?:" + _INLINE_TAGS + r")\b[^<>]*>"  # inline tags: removed, words stay joined
    r"|\\[A-Za-z]+\*?\s*\{"  # \emph{, \cite{ ... (the argument is kept as text)
    r"|[{}$^])",  # TeX grouping and math delimiters
    re.S,
)
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]{1,31});")


def clean_text(text: str) -> tuple[str, list[int]]:
    """Strip HTML tags, entities and TeX markup. Returns (clean, origin).

    ``origin[i]`` is the index in ``text`` of ``clean[i]``, so a match found in the clean text can be
    reported as the exact substring of the original text that the reader will see. HTML entities
    are decoded (every char of a decoded entity maps to the entity's first char). Inline tags,
    braces and ``$`` vanish without a trace ("<i>MoE</i>s" -> "MoEs", "{L}o{RA}" -> "LoRA");
    block tags and argument-less TeX commands become a space.
    """
    if not text:
        return "", []
    out: list[str] = []
    origin: list[int] = []
    pos = 0
    for m in _MARKUP.finditer(text):
        _keep(text, pos, m.start(), out, origin)
        pos = m.end()
        if m.group("sp"):
            out.append(" ")
            origin.append(m.start())
        elif m.group("esc"):
            out.append(text[m.start() + 1])
            origin.append(m.start() + 1)
    _keep(text, pos, len(text), out, origin)
    return "".join(out), origin


def _keep(text: str, start: int, end: int, out: list[str], origin: list[int]) -> None:
    if start >= end:
        return
    chunk = text[start:end]
    if "&" not in chunk:
        out.append(chunk)
        origin.extend(range(start, end))
        return
    p = 0
    for m in _ENTITY.finditer(chunk):
        out.append(chunk[p : m.start()])
        origin.extend(range(start + p, start + m.start()))
        decoded = html.unescape(m.group())
        out.append(decoded)
        origin.extend([start + m.start()] * len(decoded))
        p = m.end()
    out.append(chunk[p:])
    origin.extend(range(start + p, end))


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# Separators across which a phrase may continue: whitespace and at most one hyphen or dash.
JOINABLE = re.compile(r"\s*[-‐‑‒–—]?\s*")


class Token(NamedTuple):
    raw: str  # as written (clean text)
    stem: str  # lowercased and lightly stemmed
    start: int  # offsets in the clean text
    end: int
    joins_next: bool  # the separator to the next token lets a phrase continue


def tokenize(clean: str) -> list[Token]:
    spans = [m.span() for m in _TOKEN.finditer(clean)]
    tokens: list[Token] = []
    last = len(spans) - 1
    fullmatch = JOINABLE.fullmatch
    for i, (s, e) in enumerate(spans):
        if i < last:
            nxt = spans[i + 1][0]
            sep = clean[e:nxt]
            joins = sep == " " or sep == "-" or fullmatch(clean, e, nxt) is not None
        else:
            joins = False
        raw = clean[s:e]
        tokens.append(Token(raw, stem(raw), s, e, joins))
    return tokens


# ---------------------------------------------------------------- stemming

_VOWEL = re.compile(r"[aeiouy]")
_NO_UNDOUBLE = frozenset("lsz")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light inflectional stemmer: plurals, -ing, -ed, possessives, final -e and -y.

    Deliberately conservative (no derivational suffixes): "generalization" and "general" stay apart,
    while "mixtures"/"mixture", "tuning"/"tuned"/"tune", "studies"/"study" meet.
    """
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    elif w.endswith("'"):
        w = w[:-1]
    if len(w) <= 3 or not w.isalpha():
        return w
    # plurals
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "i"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("es") and w[-3] in "sxz" and len(w) > 4:
        w = w[:-2]
    elif w.endswith(("ches", "shes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and not (
        w.endswith("as") and len(w) <= 4
    ):
        w = w[:-1]
    # -ing / -ed (the rest must keep a vowel and at least 3 letters)
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and not w.endswith("eed"):
            rest = w[: -len(suffix)]
            if len(rest) >= 3 and _VOWEL.search(rest[:-1] or rest):
                if len(rest) >= 4 and rest[-1] == rest[-2] and rest[-1] not in _NO_UNDOUBLE:
                    rest = rest[:-1]
                w = rest
            break
    # final -e and consonant -y, so "tune"/"tuning" and "study"/"studies" meet
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    elif w.endswith("y") and len(w) > 3 and w[-2] not in "aeiou":
        w = w[:-1] + "i"
    return w


def is_acronym(term: str) -> bool:
    """A short all-caps word (MoE, RL, VLM, LoRA, GRPO): matched case-sensitively as a whole word."""
    if not (2 <= len(term) <= 8) or not term.isalnum():
        return False
    upper = sum(c.isupper() for c in term)
    lower = sum(c.islower() for c in term)
    return upper >= 2 and upper > lower and term[0].isupper()
