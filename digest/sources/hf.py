"""Hugging Face Daily Papers (``/api/daily_papers``): parse one response body. Pure.

Every paper gets ``url = https://arxiv.org/abs/<id>`` (the canonical, version-less arXiv page; the
HF page is derivable from ``arxiv_id``). An item whose ``paper.id`` is not an arXiv id is skipped
with a warning: a link is built only from a valid arXiv id (so an unrelated JSON list with ``id``
and ``title`` keys is "no usable item", not a list of papers linked to ``/papers/<anything>``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from digest.errors import SourceError
from digest.models import Author, Paper

from .identity import arxiv_abs_url, arxiv_key, normalise_url, parse_arxiv_id
from .text import clean_abstract, collapse, decode_utf8_replacing

__all__ = ["parse_hf_daily", "parse_hf_page", "HFPage", "hf_page_url", "json_error_reason"]


@dataclass
class HFPage:
    papers: list[Paper]
    items: int  # items in the JSON list, good or bad (for paging)
    warnings: list[str] = field(default_factory=list)


class _BadItem(ValueError):
    pass


def hf_page_url(base: str, date: dt.date, page: int, limit: int) -> str:
    """``base`` with ``date``, ``p`` and ``limit`` set (other query parameters kept)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("date", "p", "limit")]  # fmt: skip
    query += [("date", date.isoformat()), ("p", str(page)), ("limit", str(limit))]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def json_error_reason(data: bytes, err: ValueError, content_type: str | None = None) -> str:
    """One line saying why ``data`` is not the JSON we wanted."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    head = data.lstrip()[:1]
    if ctype and "json" not in ctype:
        return f"not JSON: got {ctype}"
    if head == b"<":
        return "not JSON: got HTML/XML"
    if isinstance(err, json.JSONDecodeError):
        doc = err.doc.rstrip()
        if err.msg.startswith("Unterminated string") or err.pos >= len(doc):
            return f"truncated JSON at line {err.lineno} column {err.colno}"
        return f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    return f"not JSON: {err}"


class _Fields:
    """The fields one page had to drop, by name, for one counted warning per field."""

    def __init__(self) -> None:
        self.dropped: dict[str, int] = {}
        self._item: set[str] = set()

    def bad(self, name: str) -> None:
        if name not in self._item:
            self._item.add(name)
            self.dropped[name] = self.dropped.get(name, 0) + 1

    def next_item(self) -> None:
        self._item = set()

    def warnings(self) -> list[str]:
        return [f"{name}: unusable value dropped in {n} item{'s' if n > 1 else ''}"
                for name, n in sorted(self.dropped.items())]  # fmt: skip


def _datetime(value: object, name: str, fields: _Fields) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str):
            raise TypeError
        d = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        return d.astimezone(dt.UTC)
    except (ValueError, TypeError, OverflowError):
        fields.bad(name)
        return None


_COUNT_RE = re.compile(r"\s*\d{1,12}(?:\.0*)?\s*")
MAX_COUNT = 10**12  # upvotes, comments, stars: anything larger is not a count


def _int(value: object, name: str, fields: _Fields) -> int | None:
    """A non-negative count, or None (a bad value is dropped and counted, never raised)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    if isinstance(value, float) and math.isfinite(value) and 0 <= value <= MAX_COUNT:
        return int(value)
    if isinstance(value, str) and _COUNT_RE.fullmatch(value):
        return int(float(value))
    fields.bad(name)
    return None


def _parse_int(text: str) -> int | float:
    """JSON integers: one too long for int() (4,300 digits) becomes inf, a bad field, not a bad page."""
    return int(text) if len(text) <= 20 else math.inf


def _str(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _link(value: object, name: str, fields: _Fields) -> str | None:
    """An http(s) link, or None: anything else (``javascript:``, ``file:``) is dropped."""
    s = _str(value)
    if s is not None and normalise_url(s) is None:
        fields.bad(name)
        return None
    return s


def _organization(value: object) -> str | None:
    if isinstance(value, dict):
        return collapse(_str(value.get("fullname")) or _str(value.get("name"))) or None
    return collapse(_str(value)) or None


def _authors(value: object) -> tuple[Author, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for a in value:  # hidden authors are still authors
        name = collapse(a.get("name")) if isinstance(a, dict) and isinstance(a.get("name"), str) else ""
        if name:
            out.append(Author(name))
    return tuple(out)


# Besides `id` and `title`, a Daily Papers item (or a flat /api/papers/{id} object) has these.
_PAPER_FIELDS = ("summary", "authors", "publishedAt", "upvotes")


def _paper_object(item: object) -> dict:
    if not isinstance(item, dict):
        raise _BadItem(f"not an object ({type(item).__name__})")
    paper = item.get("paper")
    if paper is None and "id" in item:  # the flat /api/papers/{id} form
        if not any(k in item for k in _PAPER_FIELDS):
            raise _BadItem("not a paper (no summary, authors, publishedAt or upvotes)")
        paper = item
    if not isinstance(paper, dict):
        raise _BadItem("missing paper object")
    return paper


def _listed(item: dict, paper: dict, fields: _Fields) -> dt.datetime | None:
    """The day the paper was listed on Daily Papers: ``paper.submittedOnDailyAt``. Older payloads
    may lack it; their top-level ``publishedAt`` is the listing time, unless it is just the arXiv
    date repeated (as in 2026 payloads), which says nothing about the listing."""
    on_daily = _datetime(paper.get("submittedOnDailyAt"), "submittedOnDailyAt", fields)
    if on_daily is not None:
        return on_daily
    if item is paper or item.get("publishedAt") == paper.get("publishedAt"):
        return None
    return _datetime(item.get("publishedAt"), "publishedAt", fields)


def _item_to_paper(item: object, source: str, fields: _Fields) -> Paper:
    paper = _paper_object(item)
    assert isinstance(item, dict)
    raw_id = paper.get("id")
    pid = _str(raw_id)
    if pid is None:
        raise _BadItem("missing paper.id")
    parsed = parse_arxiv_id(pid)
    if parsed is None:  # a link is built only from a valid arXiv id
        raise _BadItem(f"paper.id {pid[:40]!r} is not an arXiv id")
    base, version = parsed
    title = collapse(_str(paper.get("title")) or _str(item.get("title")))
    if not title:
        raise _BadItem(f"{base}: missing title")
    summary = paper.get("summary") if isinstance(paper.get("summary"), str) else item.get("summary")
    keywords = paper.get("ai_keywords")
    keywords = keywords if isinstance(keywords, list) else []
    return Paper(
        key=arxiv_key(base),
        title=title,
        abstract=clean_abstract(summary if isinstance(summary, str) else ""),
        authors=_authors(paper.get("authors")),
        url=arxiv_abs_url(base),
        arxiv_id=base,
        version=version,
        published=_datetime(paper.get("publishedAt"), "paper.publishedAt", fields),
        listed=_listed(item, paper, fields),
        upvotes=_int(paper.get("upvotes"), "upvotes", fields),
        comments=_int(item.get("numComments"), "numComments", fields),
        github_repo=_link(paper.get("githubRepo"), "githubRepo", fields),
        github_stars=_int(paper.get("githubStars"), "githubStars", fields),
        project_page=_link(paper.get("projectPage"), "projectPage", fields),
        organization=_organization(paper.get("organization")) or _organization(item.get("organization")),
        ai_summary=collapse(_str(paper.get("ai_summary"))) or None,
        ai_keywords=tuple(dict.fromkeys(collapse(k) for k in keywords if isinstance(k, str) and k.strip())),
        withdrawn=bool(paper.get("withdrawnAt")),
        sources=(source,),
    )


def _decode(data: bytes, content_type: str | None) -> tuple[str, int]:
    """The text of a JSON body and how many invalid UTF-8 bytes were replaced: one stray byte
    costs its own character, not the page (a binary body is still refused whole)."""
    encoding = json.detect_encoding(data)
    try:
        return data.decode(encoding), 0
    except UnicodeDecodeError as e:
        if encoding != "utf-8" or data.lstrip()[:1] not in (b"[", b"{"):
            raise SourceError(json_error_reason(data, e, content_type)) from None
    return decode_utf8_replacing(data)


def parse_hf_page(data: bytes, *, source: str, content_type: str | None = None) -> HFPage:
    """Papers of one ``/api/daily_papers`` body; bad single items are skipped with a warning, a
    bad field loses that field (one counted warning per field name), never the page."""
    if not data.strip():
        raise SourceError("empty body, expected a JSON list")
    text, replaced = _decode(data, content_type)
    try:
        doc = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise SourceError(json_error_reason(data, e, content_type)) from None
    except RecursionError:
        raise SourceError("invalid JSON: nested too deeply") from None
    if isinstance(doc, dict):
        detail = _str(doc.get("error")) if "error" in doc else None
        raise SourceError(
            "expected a JSON list of papers, got an object" + (f": {collapse(detail)[:200]}" if detail else "")
        )
    if not isinstance(doc, list):
        raise SourceError(f"expected a JSON list of papers, got {type(doc).__name__}")
    papers: list[Paper] = []
    warnings: list[str] = []
    fields = _Fields()
    for i, item in enumerate(doc):
        fields.next_item()
        try:
            papers.append(_item_to_paper(item, source, fields))
        except _BadItem as e:
            warnings.append(f"item {i} skipped: {e}")
        except Exception as e:  # an input nobody foresaw costs its item, not the page
            warnings.append(f"item {i} skipped: unexpected {type(e).__name__}: {str(e)[:100]}")
    if doc and not papers:
        raise SourceError(f"no usable item in {len(doc)} ({warnings[0]})")
    if replaced:
        warnings.append(f"{replaced} invalid UTF-8 byte(s) replaced")
    return HFPage(papers, len(doc), warnings + fields.warnings())


def parse_hf_daily(data: bytes, *, source: str) -> list[Paper]:
    """Papers of one HF Daily Papers JSON body. Raises SourceError if it is not such a list."""
    return parse_hf_page(data, source=source).papers
