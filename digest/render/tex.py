"""TeX in titles and abstracts, as a reader reads it typeset: ``Adapt-$\\infty$`` → ``Adapt-∞``,
``$\\sim0.01$%`` → ``~0.01%``, ``$12.1\\times$`` → ``12.1×``, ``T\\"ULU`` → ``TÜLU``.

The conversion is pylatexenc's latex-to-text (a maintained LaTeX parser with a large table of
symbols and accents), applied with care for text that is mostly *not* TeX:

* a bare ``%`` is a percent sign (to TeX, a comment that would eat the rest of the line), a bare
  ``&`` an ampersand and a bare ``~`` a tilde ("~10x");
* math (``$…$``, ``\\(…\\)``) is converted only when it has a plain form: every macro in it is
  one pylatexenc knows (an unknown one would vanish) and none is structural (``\\frac``,
  ``\\sum``, ``\\begin``…, and sub/superscripts of more than one symbol); otherwise it stays as
  written, dollars and all. ``$5 and $10`` is not math (no macro, no script, spaces inside).

Text without ``\\``, ``$`` or a backquote is returned as it is, at no cost.
"""

from __future__ import annotations

import functools
import re

__all__ = ["tex_to_text"]

_TEXY = re.compile(r"[\\$`]")
_MATH = re.compile(r"(?<!\\)\$(?P<d>[^$]{1,400}?)(?<!\\)\$|\\\((?P<p>.{1,400}?)\\\)", re.S)
_MACRO = re.compile(r"\\([A-Za-z]+)")
_BRACED_SCRIPT = re.compile(r"[_^]\{([^{}]*)\}")
# Math with these has no one-line plain form that a reader would trust: kept as written.
_STRUCTURAL = frozenset(
    "frac dfrac tfrac cfrac over binom choose begin end left right middle sum prod int iint oint "
    "lim limsup liminf sup inf max min underbrace overbrace stackrel substack overset underset "
    "hat widehat tilde widetilde bar overline underline vec dot ddot matrix pmatrix cases".split()
)
# What a reader types for these (pylatexenc's table gives ∼ U+223C and a no-break space).
_PLAIN = {"sim": "~", "ldots": "…", "dots": "…", "cdots": "⋯", "%": "%"}
_TILDE = "\ue000"  # a bare ~ is carried through the parser as this private-use character


@functools.lru_cache(maxsize=1)
def _converter():  # type: ignore[no-untyped-def]
    """(pylatexenc converter, names of the macros it knows, the parser's context): built once."""
    from pylatexenc import latex2text, latexwalker

    base = latex2text.get_default_latex_context_db()
    known = {m.macroname for m in base.iter_macro_specs()} | set(_PLAIN)
    db = latex2text.get_default_latex_context_db()
    db.add_context_category(
        "digest-plain", prepend=True,
        macros=[latex2text.MacroTextSpec(n, simplify_repl=t) for n, t in _PLAIN.items()],
    )  # fmt: skip
    conv = latex2text.LatexNodes2Text(latex_context=db, math_mode="text", strict_latex_spaces=False)
    return conv, known, latexwalker.get_default_latex_context_db()


def _to_text(latex: str) -> str:
    from pylatexenc import latexwalker

    if not latex:
        return ""
    conv, _, walker_db = _converter()
    try:
        walker = latexwalker.LatexWalker(latex, latex_context=walker_db, tolerant_parsing=True)
        nodes, _, _ = walker.get_latex_nodes()
        return conv.nodelist_to_text(nodes)
    except (latexwalker.LatexWalkerError, ValueError, IndexError, RecursionError):
        return latex


def _escape_text(text: str) -> str:
    """Outside math: the characters TeX treats specially but a plain abstract does not."""
    text = re.sub(r"(?<!\\)%", r"\\%", text)
    text = re.sub(r"(?<!\\)&", r"\\&", text)
    text = re.sub(r"(?<!\\)#", r"\\#", text)
    text = re.sub(r"(?<!\\)\$", r"\\$", text)  # a lone dollar (a price) stays a dollar
    _, known, _ = _converter()
    # a macro pylatexenc does not know would vanish: it stays as written (C:\Users, \cite)
    text = _MACRO.sub(lambda m: m.group(0) if m.group(1) in known else "\\textbackslash{}" + m.group(1), text)
    return text.replace("~", _TILDE)


def _math_has_plain_form(math: str) -> bool:
    _, known, _ = _converter()
    names = _MACRO.findall(math)
    if not names and (len(math) > 24 or re.search(r"\s", math.strip())):
        return False  # "$5 and $" is two prices, not math
    if any(n in _STRUCTURAL or n not in known for n in names):
        return False
    return all(re.fullmatch(r"\\?[A-Za-z0-9]", s.strip()) for s in _BRACED_SCRIPT.findall(math))


@functools.lru_cache(maxsize=65536)  # the same titles and snippets go to many readers (8,192 thrashed: 19,618 misses for 1,500 readers)
def tex_to_text(text: str) -> str:
    """``text`` with its TeX typeset as plain Unicode; math with no plain form kept as written."""
    if not _TEXY.search(text):
        return text
    out: list[str] = []
    pos = 0
    for m in _MATH.finditer(text):
        out.append(_to_text(_escape_text(text[pos : m.start()])))
        math = m.group("d") if m.group("d") is not None else m.group("p")
        out.append(_to_text(math.replace("~", " ")) if _math_has_plain_form(math) else m.group(0))
        pos = m.end()
    out.append(_to_text(_escape_text(text[pos:])))
    return "".join(out).replace(_TILDE, "~")
