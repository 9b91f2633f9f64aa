"""Read a YAML file into plain data plus the line of every key and item, for `path:line` errors.

Hostile or surprising input costs only its own file, as a `path:line` problem:
- YAML 1.2 core scalars instead of YAML 1.1's: `Yes`, `on`, `off`, `y` and `n` are strings (only
  `true`/`false` are booleans), `0730` and `2024-01-01` are strings (not octal 472, not a date),
  `7:30` is a string (not the base-60 number 450); duplicate keys are an error instead of the last
  one silently winning.
- aliases (`*name`, merge keys `<<: *name`) are refused: nine nested ones in 400 bytes expand to
  a billion items. Explicit tags other than `!!str` (`!!binary`, `!!python/...`, `!!set`) are
  refused, and so are numbers of more than 20 digits and nesting deeper than MAX_DEPTH.
- a file larger than `max_bytes` (MAX_BYTES by default) is refused unread.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from digest.errors import Problem

__all__ = ["YamlDoc", "load_yaml", "parse_yaml", "parse_yaml_bytes", "MAX_BYTES"]

Loc = tuple[str | int, ...]

MAX_BYTES = 256 * 1024  # a subscription file with a thousand keywords is ~30 KiB
MAX_DEPTH = 32
MAX_DIGITS = 20

# libyaml's parser (C) when PyYAML was built with it: ~20x faster than the pure-Python one, which
# matters for a folder of 10,000 subscription files; same nodes, same marks (lines), same errors.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """SafeLoader with the YAML 1.2 core schema's implicit types."""


_BOOL, _INT, _FLOAT, _NULL, _STR = (f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "null", "str"))
_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_INT, r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (_FLOAT, r"^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)\.[0-9]*|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?[eE][-+]?[0-9]+)"
             r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+.0123456789"),
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))
_ALIAS_HINT = re.compile(r"[*<]")  # no "*" and no "<<": no alias, no need to look for one


def _problem(path: str, node_or_mark: Any, message: str) -> ValueError:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return ValueError(Problem(path, mark.line + 1 if mark is not None else None, "-", message))


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


def load_yaml(path: Path, max_bytes: int = MAX_BYTES) -> YamlDoc:
    """Read and parse `path`. Raises ValueError carrying a Problem on unreadable or bad YAML."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ValueError(Problem(str(path), None, "-", f"cannot read file: {exc}")) from None
    return parse_yaml_bytes(data, str(path), max_bytes)


def parse_yaml_bytes(data: bytes, path: str, max_bytes: int = MAX_BYTES) -> YamlDoc:
    """As `load_yaml`, from a file's bytes already read (the same size limit and UTF-8 check)."""
    if len(data) > max_bytes:
        raise ValueError(Problem(path, None, "-", f"file larger than {max_bytes // 1024} KiB; not read"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(Problem(path, None, "-", f"cannot read file: {exc}")) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: str = "<string>") -> YamlDoc:
    try:
        if _ALIAS_HINT.search(text):
            _refuse_aliases(text, path)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = f"YAML syntax error: {exc.problem or exc.context}"
        raise ValueError(Problem(path, line, "-", msg)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - other YAML failures
        raise ValueError(Problem(path, None, "-", f"YAML error: {exc}")) from None
    except RecursionError:
        raise ValueError(Problem(path, None, "-", "YAML nested too deeply")) from None
    lines: dict[Loc, int] = {}
    if node is None:
        return YamlDoc(path, None, lines)
    lines[()] = node.start_mark.line + 1
    return YamlDoc(path, _build(node, (), lines, path), lines)


def _refuse_aliases(text: str, path: str) -> None:
    """Raise a `path:line` problem at the first alias, before anything is composed or expanded."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise _problem(path, event, f"aliases (*{event.anchor}) are not allowed; write the value out")


def _build(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> Any:
    if len(loc) > MAX_DEPTH:
        raise _problem(path, node, f"YAML nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            raise _problem(path, node, f"YAML tags are not allowed ({node.tag})")
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path)
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
        if node.tag != "tag:yaml.org,2002:seq":
            raise _problem(path, node, f"YAML tags are not allowed ({node.tag})")
        items = []
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            items.append(_build(item, (*loc, i), lines, path))
        return items
    return _scalar(node, path)


_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def _scalar(node: yaml.Node, path: str) -> Any:
    """The value of a scalar under the YAML 1.2 core schema (no other tag is constructed)."""
    if not isinstance(node, yaml.ScalarNode):
        return node  # a mapping used as a key: rejected by the caller
    tag, value = node.tag, node.value
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value.lower() == "true"
    if tag in (_INT, _FLOAT):
        if len(value) > MAX_DIGITS:
            raise _problem(path, node, f"number too large ({len(value)} characters)")
        try:
            if tag == _FLOAT:
                return _SPECIAL_FLOATS.get(value.lower()) or float(value)
            base = {"0o": 8, "0x": 16}.get(value[:2].lower(), 10)
            return int(value[2:] if base != 10 else value, base)
        except ValueError:
            raise _problem(path, node, f"not a number: {value[:40]!r}") from None
    raise _problem(path, node, f"YAML tags are not allowed ({tag.replace('tag:yaml.org,2002:', '!!')})")
