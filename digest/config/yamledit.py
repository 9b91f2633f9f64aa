"""Round-trip edits of a subscription file: change some keys, keep everything else as written.

The preferences page (digest/web_manage.py) rewrites a reader's file, which the operator may have
written by hand: comments, key order, quoting, flow or block lists and indentation are kept
(ruamel.yaml's round-trip mode, YAML 1.2 like digest/config/yamlfile.py).

- A key that is not in `changes` is not touched. A changed key keeps its place and its comments;
  a new key goes at the end of the file.
- A list (keywords, exclude) is edited item by item: an item that stays keeps its comments and
  its form (``- LoRA`` or ``- {term: LoRA, weight: 2}``), even when the list is reordered; a
  removed item takes its own end-of-line comment with it, but the comment lines below the list's
  last item (which belong to what follows) stay below the list.
- A quoted scalar stays quoted the same way; an unquoted ``send_at`` is written ``"HH:MM"``
  (YAML 1.1 tools would read ``07:30`` as a number).

The caller validates the result with the parser of ``digest check`` before it is written.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.emitter import RoundTripEmitter
from ruamel.yaml.error import CommentMark
from ruamel.yaml.events import MappingEndEvent
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, ScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from digest.sources.text import scrub

__all__ = ["edit_subscription"]

_QUOTED = ("send_at",)  # written "07:30" (unless quoted otherwise): a string in any YAML version


class _Emitter(RoundTripEmitter):
    """ruamel.yaml's round-trip emitter, with one fix: after a flow mapping that ends with a
    comment (``- {term: LoRA, weight: 2}  # note``) the next line starts on a new line. Without
    it, in a list whose key carries a comment, the next item after a plain one is glued to it
    (``- b   - d``), as ruamel.yaml 0.18 and 0.19 do on an unchanged round trip."""

    def expect_flow_mapping_key(self) -> None:
        commented = isinstance(self.event, MappingEndEvent) and bool(self.event.comment and self.event.comment[0])
        super().expect_flow_mapping_key()
        if commented:
            self.no_newline = False  # what the end of an uncommented flow mapping does


def _yaml(indent: int | None, offset: int | None) -> YAML:
    """A round-trip YAML with the file's indentation (README's ``  - item`` when it has none)."""
    yaml = YAML(typ="rt", pure=True)
    yaml.Emitter = _Emitter
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    if indent is None:
        indent, offset = 4, 2
    offset = offset or 0
    yaml.indent(mapping=max(2, indent - offset), sequence=max(indent, offset + 2), offset=offset)
    return yaml


def edit_subscription(text: str, changes: Mapping[str, Any]) -> str:
    """`text` (a subscription file: a mapping) with each key of `changes` set to its value.
    ``keywords`` takes a list of (term, weight), ``exclude`` a list of terms, the others a
    scalar. Raises ValueError if `text` is not a YAML mapping."""
    _, indent, offset = load_yaml_guess_indent(text)
    yaml = _yaml(indent, offset)
    doc = yaml.load(text)
    if not isinstance(doc, CommentedMap):
        raise ValueError("a subscription file must be a mapping")
    for key, value in changes.items():
        old = doc.get(key)
        if key in ("keywords", "exclude"):
            wanted = [(scrub(t).strip(), float(w)) for t, w in value] if key == "keywords" else [(scrub(t).strip(), None) for t in value]
            new, below = _edit_list(old, wanted, _keyword if key == "keywords" else _plain_term, flow=key == "exclude")
            if not new and key in doc:
                _emptied(doc, key, below)
        else:
            new = _scalar(key, old, value)
        doc[key] = new  # an existing key keeps its place and its comments; a new one goes last
    out = io.StringIO()
    if text.lstrip().startswith("---"):
        yaml.explicit_start = True
    yaml.dump(doc, out)
    return out.getvalue()


_PLAIN_EXTRA = frozenset(" -_./+()&'")


def _safe(text: str, extra: str = "") -> Any:
    """`text`, quoted unless it is plainly a word or a phrase (ruamel.yaml writes some strings
    plain that a YAML 1.1 parser, such as the one of ``digest check``, cannot read, e.g. ``:0``
    in a flow list); reserved words and numbers ruamel.yaml quotes itself."""
    plain = (text[:1].isalnum() and text == text.strip()
             and all(ch.isalnum() or ch in _PLAIN_EXTRA or ch in extra for ch in text))
    return text if plain else DoubleQuotedScalarString(text)


def _scalar(key: str, old: Any, value: Any) -> Any:
    if isinstance(value, str):
        if isinstance(old, ScalarString):
            return type(old)(value)  # the same quotes as before
        if key in _QUOTED:
            return DoubleQuotedScalarString(value)
        return _safe(value, extra=":")  # a time zone, weekly:mon (block context: a colon is fine)
    return value


def _number(weight: float) -> int | float:
    return int(weight) if float(weight).is_integer() else float(weight)


def _term_of(item: Any) -> str:
    """The term of a list item as ``digest check`` reads it (scrubbed), '' if it has none."""
    term = item.get("term") if isinstance(item, Mapping) else item
    return scrub(term).strip() if isinstance(term, str) else ""


def _keyword(old: Any, term: str, weight: float | None) -> Any:
    """The item for keyword (term, weight): `old` (the same term) adjusted, or a new one."""
    weight = 1.0 if weight is None else weight
    if isinstance(old, CommentedMap):
        if weight == 1.0 and set(old) <= {"term", "weight"}:
            return old["term"]  # {term: x, weight: 1} is just x
        if weight != 1.0 or "weight" in old:
            old["weight"] = _number(weight)
        return old
    if old is not None and weight == 1.0:
        return old  # a plain `- term`, as written
    if weight == 1.0:
        return _safe(term)
    item = CommentedMap([("term", old if old is not None else _safe(term)), ("weight", _number(weight))])
    item.fa.set_flow_style()
    return item


def _plain_term(old: Any, term: str, weight: float | None) -> Any:
    return old if old is not None else _safe(term)


def _emptied(doc: CommentedMap, key: str, below: str) -> None:
    """`key` is now ``[]``, on its own line: the comments between the key and its old items go
    (they were about the items); the lines that followed the list stay after it."""
    slot = doc.ca.items.get(key)
    if slot is None:
        if not below:
            return
        slot = doc.ca.items[key] = [None, None, None, None]
    slot[3] = None
    if below:
        slot[2] = _token("\n" + below, 0)


def _edit_list(
    old: Any, wanted: Sequence[tuple[str, float | None]], make: Callable[[Any, str, float | None], Any], *, flow: bool
) -> tuple[CommentedSeq, str]:
    """A list of `wanted` (term, weight) items that reuses the items of `old` with the same term
    (and their comments), and, when it is empty, the comment lines that followed the old list."""
    new = CommentedSeq()
    below = ""
    if isinstance(old, CommentedSeq):
        old_items = list(old)
        new.ca.comment = old.ca.comment
        flow = old.fa.flow_style() if old.fa.flow_style() is not None else flow
        if old_items:
            below = _take_lines_below(old, len(old_items) - 1)
        below += "".join(t.value for t in old.ca.end or () if isinstance(t, CommentToken))
    else:
        old_items = []
    terms = [_term_of(item) for item in old_items]
    used: dict[int, int] = {}  # old index -> new index
    for term, weight in wanted:
        i = next((i for i, t in enumerate(terms) if t == term and i not in used), None)
        if i is not None:
            used[i] = len(new)
        new.append(make(old_items[i] if i is not None else None, term, weight))
    for i, j in used.items():  # after the appends: an insert shifts the comments after it
        if i in old.ca.items:
            new.ca.items[j] = old.ca.items[i]
    if flow or not new:
        new.fa.set_flow_style()
    else:
        new.fa.set_block_style()
    if below and new:
        _add_lines_below(new, len(new) - 1, below)
        below = ""
    return new, below


def _tail(seq: CommentedSeq, index: int) -> list:
    """The comment slot that holds what follows item `index` of a block list: the end-of-line
    comment and the comment lines below it (on the item's last key for a block mapping)."""
    item = seq[index]
    if isinstance(item, CommentedMap) and len(item) and not item.fa.flow_style():
        slot = item.ca.items.setdefault(list(item)[-1], [None, None, None, None])
        return [slot, 2]
    return [seq.ca.items.setdefault(index, [None, None, None, None]), 0]


def _take_lines_below(seq: CommentedSeq, index: int) -> str:
    """Remove from item `index` the comment lines below it (the comment on its own line stays)
    and return them. They belong to what follows the list, not to the item."""
    slot, at = _tail(seq, index)
    token = slot[at]
    if not isinstance(token, CommentToken):
        return ""
    head, newline, rest = token.value.partition("\n")
    if not rest.strip():
        return ""
    slot[at] = _token(head + newline, token.column) if head.strip() else None
    return rest


def _add_lines_below(seq: CommentedSeq, index: int, lines: str) -> None:
    slot, at = _tail(seq, index)
    token = slot[at]
    if isinstance(token, CommentToken):
        own = token.value if token.value.endswith("\n") else token.value + "\n"
        slot[at] = _token(own + lines, token.column)
    else:
        slot[at] = _token("\n" + lines, 0)


def _token(value: str, column: int) -> CommentToken:
    return CommentToken(value, CommentMark(column), None)
