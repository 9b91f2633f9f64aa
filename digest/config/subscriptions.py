"""Subscription files: one YAML file per reader in `subscriptions_dir`; the file's stem is the id.

Each file is validated on its own, so one broken file never stops the others: `load_subscriptions`
returns the valid subscriptions and, separately, every problem as `path:line: field: message`.
A file that looks meant as a subscription but is not read (`Upper.YAML`, `x.yaml.txt`, a dangling
symlink, a directory named `x.yaml`) is a problem too: `path: -: skipped: <why>`. Hidden files and
editor backups (`~`, `.bak`, `.swp`, `.orig`, `.tmp`) are ignored.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import multiprocessing
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from digest.config.yamlfile import load_yaml, parse_yaml_bytes
from digest.errors import Problem
from digest.models import FREQUENCIES, Keyword, Subscription
from digest.sources.text import scrub

__all__ = ["SubscriptionFile", "LoadResult", "FileCache", "load_subscriptions", "load_subscription", "parse_subscription"]

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SEND_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


# A plain ASCII dot-atom local part: what email_validator accepts and leaves as it is.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _valid_email(value: str) -> str:
    """The normalised address, or ValueError. A lab's readers share a few domains: the domain
    is checked (IDNA, special-use names, ...) by email_validator once per domain; a plain ASCII
    local part needs no more than its syntax, and anything else goes to email_validator whole."""
    local, at, domain = value.rpartition("@")
    if at and len(local) <= 64 and len(value) <= 254 and _PLAIN_LOCAL.fullmatch(local):
        normalized_domain = _valid_domain(domain)
        if normalized_domain is not None:
            return f"{local}@{normalized_domain}"
    try:
        return validate_email(value, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


@functools.lru_cache(maxsize=1024)
def _valid_domain(domain: str) -> str | None:
    """`domain` as email_validator normalises it, or None when it rejects it (the whole address
    then goes to email_validator, for its own message)."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False, allow_smtputf8=False).domain
    except EmailNotValidError:
        return None


@functools.lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    """Whether `name` is an IANA zone here (ZoneInfo's own cache keeps only 8: a folder of
    readers in a dozen zones would read the tz files again for nearly every file)."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


class KeywordEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    term: str = Field(min_length=1, max_length=200)
    weight: float = Field(1.0, gt=0, le=100)


class SubscriptionFile(BaseModel):
    """The schema of one subscription file (see README, "Subscription files")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str
    name: str | None = Field(None, max_length=200)
    timezone: str = "UTC"
    send_at: str = "07:00"
    frequency: str = "daily"
    keywords: list[KeywordEntry] = []
    exclude: list[str] = []
    sources: list[str] | None = None
    max_papers: int = Field(5, ge=1, le=100)  # a two-minute email: 5 in full, then up to 10 titles
    send_empty: bool = False
    paused: bool = False
    min_score: float | None = Field(None, ge=0)
    replacements: bool = False  # new versions of older papers, from feeds that mark them

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\t\0"):
            raise ValueError("not a valid email address: control characters")
        return _valid_email(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 32 for ch in value):
            raise ValueError("must be one line without control characters")
        return value or None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if not _known_zone(value):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
        return value

    @field_validator("send_at", mode="before")
    @classmethod
    def _send_at(cls, value: Any) -> str:
        if not isinstance(value, str) or not SEND_AT.match(value.strip()):
            raise ValueError(f'must be a local time "HH:MM" (24 h), got {value!r}')
        return value.strip()

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str) -> str:
        value = value.lower()
        if value not in FREQUENCIES:
            raise ValueError("must be daily, weekdays, or weekly:mon … weekly:sun")
        return value

    @field_validator("keywords", mode="before")
    @classmethod
    def _keyword_entries(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [{"term": item} if isinstance(item, str) else item for item in value]

    @field_validator("exclude")
    @classmethod
    def _no_blank_terms(cls, value: list[str]) -> list[str]:
        if any(not term.strip() for term in value):
            raise ValueError("terms must not be empty")
        return value

    def to_subscription(self, sub_id: str, path: Path | None = None) -> Subscription:
        hours, minutes = SEND_AT.match(self.send_at).groups()  # type: ignore[union-attr]
        keywords = tuple(Keyword(scrub(k.term).strip(), k.weight) for k in self.keywords)
        return Subscription(
            id=sub_id,
            email=self.email,
            name=scrub(self.name).strip() or None if self.name else None,
            timezone=self.timezone,
            send_at=dt.time(int(hours), int(minutes)),
            frequency=self.frequency,
            keywords=keywords,
            exclude=tuple(scrub(e).strip() for e in self.exclude),
            sources=tuple(self.sources) if self.sources is not None else None,
            max_papers=self.max_papers,
            send_empty=self.send_empty,
            paused=self.paused,
            min_score=self.min_score,
            replacements=self.replacements,
            path=path,
        )


@dataclass(frozen=True)
class LoadResult:
    subscriptions: list[Subscription]
    problems: list[Problem]
    invalid: dict[str, list[Problem]]  # subscriber id -> problems of its file

    @property
    def ok(self) -> bool:
        return not self.problems


_BAD_ID = "file name must be the subscriber id: letters, digits, '.', '_' or '-'"
_BACKUP_SUFFIXES = ("~", ".bak", ".swp", ".orig", ".tmp")


def scan_subscription_dir(directory: Path) -> tuple[list[Path], list[Problem]]:
    """The subscription files of `directory`, sorted, and a `skipped: <why>` problem for each
    entry that looks meant as one but is not read."""
    if not directory.is_dir():
        return [], []
    files: list[Path] = []
    skipped: list[Problem] = []
    for p in sorted(directory.iterdir()):
        name = p.name.lower()
        if p.name.startswith(".") or name.endswith(_BACKUP_SUFFIXES):
            continue
        if p.suffix in (".yaml", ".yml"):
            if p.is_file():
                files.append(p)
                continue
            why = ("a dangling symlink" if p.is_symlink() and not p.exists()
                   else "a directory" if p.is_dir() else "not a regular file")  # fmt: skip
        elif p.suffix.lower() in (".yaml", ".yml"):
            why = f"the name must end in lower-case .yaml or .yml, not {p.suffix}"
        elif ".yaml." in name or ".yml." in name:
            why = f"the name must end in .yaml or .yml, not {p.suffix}"
        else:
            continue
        skipped.append(Problem(str(p), None, "-", f"skipped: {why}"))
    return files, skipped


def load_subscription(
    path: Path, source_names: Iterable[str] | None = None
) -> Subscription | list[Problem]:
    """One file: its Subscription, or the list of its problems."""
    sub_id = path.stem
    if not ID_PATTERN.match(sub_id):
        return [Problem(str(path), None, "-", _BAD_ID)]
    try:
        doc = load_yaml(path)
    except ValueError as exc:
        return [exc.args[0]]
    return _from_doc(doc, sub_id, path, source_names)


def parse_subscription(
    data: bytes, path: Path, source_names: Iterable[str] | None = None
) -> Subscription | list[Problem]:
    """As `load_subscription`, from the bytes of the file at `path`, already read (the
    preferences page reads a file once, for its content and its version)."""
    if not ID_PATTERN.match(path.stem):
        return [Problem(str(path), None, "-", _BAD_ID)]
    try:
        doc = parse_yaml_bytes(data, str(path))
    except ValueError as exc:
        return [exc.args[0]]
    return _from_doc(doc, path.stem, path, source_names)


def _from_doc(doc: Any, sub_id: str, path: Path, source_names: Iterable[str] | None) -> Subscription | list[Problem]:
    if not isinstance(doc.data, dict):
        return [doc.problem((), "a subscription file must be a mapping with at least `email:`")]
    # Every problem of the file in one pass: the schema's and the unknown source names together.
    problems = _unknown_sources(doc, source_names)
    try:
        parsed = SubscriptionFile.model_validate(doc.data)
    except ValidationError as exc:
        problems += [doc.problem(tuple(err["loc"]), _message(err)) for err in exc.errors()]
    if problems:
        return sorted(problems, key=lambda p: p.line or 0)
    return parsed.to_subscription(sub_id, path)


def _unknown_sources(doc: Any, source_names: Iterable[str] | None) -> list[Problem]:
    """`sources:` entries that name no configured source (entries that are not names at all are
    the schema's to report)."""
    raw = doc.data.get("sources")
    if source_names is None or not isinstance(raw, list):
        return []
    known = set(source_names)
    return [
        doc.problem(("sources", i), f"unknown source {name.strip()!r} (configured: {', '.join(sorted(known)) or 'none'})")
        for i, name in enumerate(raw)
        if isinstance(name, str) and name.strip() not in known
    ]


class FileCache:
    """What each file gave when it was last read, keyed by its stat signature: a service re-reading
    the folder every 30 s parses only the files that changed (10,000 files: ~2.6 s of CPU each
    time otherwise). A file rewritten in place keeps its inode but gets a new ctime; an editor's
    save-by-rename gets a new inode."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[tuple[int, ...], tuple[str, ...] | None, Subscription | list[Problem]]] = {}

    def get(self, path: Path, names: list[str] | None, signature: tuple[int, ...]) -> Subscription | list[Problem] | None:
        entry = self._entries.get(path)
        if entry is None or entry[0] != signature or entry[1] != _names_key(names):
            return None
        return entry[2]

    def put(self, path: Path, names: list[str] | None, signature: tuple[int, ...], result: Subscription | list[Problem]) -> None:
        self._entries[path] = (signature, _names_key(names), result)

    def keep_only(self, paths: Iterable[Path]) -> None:
        keep = set(paths)
        for path in [p for p in self._entries if p not in keep]:
            del self._entries[path]


def _names_key(names: list[str] | None) -> tuple[str, ...] | None:
    return None if names is None else tuple(names)


def _signature(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load_subscriptions(
    directory: Path,
    source_names: Iterable[str] | None = None,
    *,
    processes: int = 1,
    cache: FileCache | None = None,
) -> LoadResult:
    """Every file of `directory`. With `processes` > 1, a large folder (PARALLEL_MIN files and up)
    is read by that many forked processes (a one-shot command only: not from a threaded service).
    With `cache`, a file whose stat signature has not changed since the last call is not read again."""
    names = list(source_names) if source_names is not None else None
    subs: list[Subscription] = []
    problems: list[Problem] = []
    invalid: dict[str, list[Problem]] = {}
    paths, skipped = scan_subscription_dir(directory)
    problems.extend(skipped)
    if cache is None:
        results = _load_all(paths, names, processes)
    else:
        results = [_load_cached(path, names, cache) for path in paths]
        cache.keep_only(paths)
    for path, result in zip(paths, results):
        if isinstance(result, Subscription):
            subs.append(result)
        else:
            problems.extend(result)
            invalid[path.stem] = result
    seen: dict[str, str] = {}
    for sub in subs:  # the same id from foo.yaml and foo.yml
        if sub.id in seen:
            problem = Problem(str(sub.path), 1, "-", f"subscriber id {sub.id!r} also in {seen[sub.id]}")
            problems.append(problem)
            invalid.setdefault(sub.id, []).append(problem)
        seen[sub.id] = str(sub.path)
    subs = [s for s in subs if s.id not in invalid]
    return LoadResult(subs, problems, invalid)


PARALLEL_MIN = 2000  # files from which several processes read them (10,000 files: ~3 s on one core)


def _load_all(paths: list[Path], names: list[str] | None, processes: int) -> list[Subscription | list[Problem]]:
    if processes < 2 or len(paths) < PARALLEL_MIN or "fork" not in multiprocessing.get_all_start_methods():
        return [load_subscription(path, names) for path in paths]
    step = -(-len(paths) // (processes * 4))  # a few chunks per process: an even finish
    chunks = [paths[i : i + step] for i in range(0, len(paths), step)]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        parts = pool.map(_load_chunk, chunks, [names] * len(chunks))
        return [result for part in parts for result in part]


def _load_cached(path: Path, names: list[str] | None, cache: FileCache) -> Subscription | list[Problem]:
    try:
        signature = _signature(path)  # before reading: a change while we read shows next time
    except OSError:
        return load_subscription(path, names)  # gone meanwhile: say so, cache nothing
    hit = cache.get(path, names, signature)
    if hit is not None:
        return hit
    result = load_subscription(path, names)
    cache.put(path, names, signature, result)
    return result


def _load_chunk(paths: list[Path], names: list[str] | None) -> list[Subscription | list[Problem]]:
    return [load_subscription(path, names) for path in paths]


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "model_type":
        return f"must be a term or {{term: ..., weight: ...}}, got {err['input']!r}"[:120]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and kind.endswith("_type"):
        msg += f", got {type(err['input']).__name__} {err['input']!r}"[:120]
    return msg
