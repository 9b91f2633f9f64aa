"""Read a YAML file into plain data plus the line of every key and item, for `path:line` errors.

YAML 1.1 surprises are switched off: `7:30` stays the string "7:30" (not the base-60 integer
450), and duplicate keys are an error instead of the last one silently winning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from digest.errors import Problem

__all__ = ["YamlDoc", "load_yaml", "parse_yaml"]

Loc = tuple[str | int, ...]


# libyaml's parser (C) when PyYAML was built with it: ~20x faster than the pure-Python one, which
# matters for a folder of 10,000 subscription files; same nodes, same marks (lines), same errors.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader without sexagesimal numbers."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class YamlDoc:
    """Plain data from one YAML document, and where each part of it was written."""

    def __init__(self, path: str, data: Any, lines: dict[Loc, int]) -> None:
        self.path = path
        self.data = data
        self._lines = lines

    def line(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest parent that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            loc = loc[:-1]
        return self._lines.get((), None)

    def problem(self, loc: Loc, message: str) -> Problem:
        field = ".".join(str(p) for p in loc) or "-"
        return Problem(self.path, self.line(loc), field, message)


def load_yaml(path: Path) -> YamlDoc:
    """Read and parse `path`. Raises ValueError carrying a Problem on unreadable or bad YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(Problem(str(path), None, "-", f"cannot read file: {exc}")) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, path: str = "<string>") -> YamlDoc:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"YAML syntax error: {exc.problem or exc.context}"
        raise ValueError(Problem(path, line, "-", msg)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - other YAML failures
        raise ValueError(Problem(path, None, "-", f"YAML error: {exc}")) from None
    lines: dict[Loc, int] = {}
    if node is None:
        return YamlDoc(path, None, lines)
    lines[()] = node.start_mark.line + 1
    return YamlDoc(path, _build(node, (), lines, path), lines)


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if not isinstance(key, (str, int)):
                line = key_node.start_mark.line + 1
                raise ValueError(Problem(path, line, "-", "keys must be plain names"))
            sub = (*loc, key)
            if key in out:
                line = key_node.start_mark.line + 1
                raise ValueError(Problem(path, line, str(key), "duplicate key"))
            lines[sub] = key_node.start_mark.line + 1
            out[key] = _build(value_node, sub, lines, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            items.append(_build(item, (*loc, i), lines, path))
        return items
    return _scalar(node)


_STR = "tag:yaml.org,2002:str"


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return node  # a mapping used as a key: rejected by the caller
    if node.tag == _STR:  # most values: what SafeConstructor.construct_yaml_str returns, without its dispatch
        return node.value
    return _CONSTRUCTOR.construct_object(node, deep=True)
