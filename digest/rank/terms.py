"""What "a keyword matches a paper" means, in one place.

A reader's term compiles into a :class:`Term`. A *run* is a sequence of consecutive tokens of one
field where every separator is "joinable" (whitespace and at most one hyphen or dash: so a phrase
never spans a comma, a full stop, a slash or a bracket). A term matches a run when

* **acronym** (a short all-caps word such as MoE, RL, VLM, LoRA): the run is one token spelled
  exactly like the term, or like the term plus "s" (MoEs, VLMs). Case-sensitive, whole word.
* otherwise, either
  - **same words**: the run has as many tokens as the term and each token has the same stem
    (case-insensitive, plurals and -ing/-ed folded): "Mixtures-of-Experts" ~ "mixture of experts";
  - **joined or split**: the run has at most ``MAX_JOIN`` tokens, none of them a lone letter, and
    its *join key* equals the term's: every token lowercased and glued, the last one stemmed:
    "finetuning" ~ "fine-tuning" ~ "fine tuning" ~ "fine-tuned".

:func:`find_runs` is the straightforward scanner (the reference semantics). ``index.py`` finds the
same runs through postings of sorted token positions; a property test checks they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .text import Token, clean_text, is_acronym, stem, tokenize

__all__ = ["Term", "compile_term", "find_runs", "MAX_JOIN", "MAX_TERM_WORDS", "seq_key", "join_key"]

MAX_JOIN = 3  # a joined/split variant spans at most this many tokens of the paper
MAX_TERM_WORDS = 32  # longer "keywords" are cut


@dataclass(frozen=True, slots=True)
class Term:
    written: str  # as the reader wrote it
    acronym: bool
    n: int  # tokens in the term (1 for an acronym)
    seq: str  # "mixtur of expert": stems joined by spaces
    join: str  # "mixtureofexpert": lowercase tokens glued, the last one stemmed
    raw: str = ""  # acronym: the exact spelling

    @property
    def valid(self) -> bool:
        return self.n > 0


def _glue(raws: Sequence[str]) -> str:
    return "".join(r.lower().replace("'", "").replace("’", "") for r in raws)


def seq_key(tokens: Sequence[Token]) -> str:
    return " ".join(t.stem for t in tokens)


def join_key(tokens: Sequence[Token]) -> str:
    return _glue([t.raw for t in tokens[:-1]]) + tokens[-1].stem


def compile_term(written: str) -> Term:
    """Compile one keyword or exclusion as the reader wrote it (markup is stripped first)."""
    clean, _ = clean_text(written.strip())
    clean = clean.strip()
    if is_acronym(clean):
        return Term(written, True, 1, clean, clean, raw=clean)
    tokens = tokenize(clean)[:MAX_TERM_WORDS]
    if not tokens:
        return Term(written, False, 0, "", "")
    return Term(written, False, len(tokens), seq_key(tokens), join_key(tokens))


def _short(tok: Token) -> bool:
    return len(tok.raw) < 2 and not tok.raw.isdigit()


def find_runs(tokens: Sequence[Token], term: Term) -> list[tuple[int, int]]:
    """Every run of ``tokens`` the term matches, as (first token index, token count), in order."""
    if not term.valid:
        return []
    found: list[tuple[int, int]] = []
    if term.acronym:
        plural = term.raw + "s"
        for i, tok in enumerate(tokens):
            if tok.raw == term.raw or tok.raw == plural:
                found.append((i, 1))
        return found
    n_tokens = len(tokens)
    first = term.seq.split(" ", 1)[0]
    for i in range(n_tokens):
        head = tokens[i]
        # cheap test: could a run start here at all?
        if head.stem != first and head.stem != term.join and not term.join.startswith(_glue([head.raw])):
            continue
        # how far a run starting here may reach
        reach = 1
        while reach < max(term.n, MAX_JOIN) and i + reach < n_tokens and tokens[i + reach - 1].joins_next:
            reach += 1
        for length in range(1, reach + 1):
            run = tokens[i : i + length]
            if length == term.n and seq_key(run) == term.seq:
                found.append((i, length))
            elif (
                length <= MAX_JOIN
                and join_key(run) == term.join
                and not any(_short(t) for t in run)
            ):
                found.append((i, length))
    return found
