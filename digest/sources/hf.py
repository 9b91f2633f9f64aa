"""Hugging Face Daily Papers (``/api/daily_papers``): parse one response body. Pure.

Every paper gets ``url = https://arxiv.org/abs/<id>`` (the canonical, version-less arXiv page; the
HF page is derivable from ``arxiv_id``). A ``paper.id`` that is not an arXiv id gets
``https://huggingface.co/papers/<id>`` as url and ``url:`` key.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from digest.errors import SourceError
from digest.models import Author, Paper

from .identity import arxiv_abs_url, arxiv_key, normalise_url, parse_arxiv_id
from .text import clean_abstract, collapse

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


def _datetime(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        d = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d.astimezone(dt.UTC)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _str(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _organization(value: object) -> str | None:
    if isinstance(value, dict):
        return _str(value.get("fullname")) or _str(value.get("name"))
    return _str(value)


def _authors(value: object) -> tuple[Author, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for a in value:  # hidden authors are still authors
        name = collapse(a.get("name")) if isinstance(a, dict) and isinstance(a.get("name"), str) else ""
        if name:
            out.append(Author(name))
    return tuple(out)


def _item_to_paper(item: object, source: str) -> Paper:
    if not isinstance(item, dict):
        raise _BadItem(f"not an object ({type(item).__name__})")
    paper = item.get("paper")
    if paper is None and "id" in item:  # the flat /api/papers/{id} form
        paper = item
    if not isinstance(paper, dict):
        raise _BadItem("missing paper object")
    pid = _str(paper.get("id"))
    if pid is None:
        raise _BadItem("missing paper.id")
    title = collapse(_str(paper.get("title")) or _str(item.get("title")))
    if not title:
        raise _BadItem(f"{pid}: missing title")
    summary = paper.get("summary") if isinstance(paper.get("summary"), str) else item.get("summary")
    keywords = paper.get("ai_keywords")
    keywords = keywords if isinstance(keywords, list) else []
    parsed = parse_arxiv_id(pid)
    if parsed:
        base, version = parsed
        key, url, arxiv_id = arxiv_key(base), arxiv_abs_url(base), base
    else:
        version, arxiv_id = None, None
        url = f"https://huggingface.co/papers/{pid}"
        key = f"url:{normalise_url(url)}"
    ai_summary = collapse(_str(paper.get("ai_summary")))
    return Paper(
        key=key,
        title=title,
        abstract=clean_abstract(summary if isinstance(summary, str) else ""),
        authors=_authors(paper.get("authors")),
        url=url,
        arxiv_id=arxiv_id,
        version=version,
        published=_datetime(paper.get("publishedAt")),
        listed=_datetime(item.get("publishedAt")) or _datetime(paper.get("submittedOnDailyAt")),
        upvotes=_int(paper.get("upvotes")),
        comments=_int(item.get("numComments")),
        github_repo=_str(paper.get("githubRepo")),
        github_stars=_int(paper.get("githubStars")),
        project_page=_str(paper.get("projectPage")),
        organization=_organization(paper.get("organization")) or _organization(item.get("organization")),
        ai_summary=ai_summary or None,
        ai_keywords=tuple(dict.fromkeys(collapse(k) for k in keywords if isinstance(k, str) and k.strip())),
        withdrawn=bool(paper.get("withdrawnAt")),
        sources=(source,),
    )


def parse_hf_page(data: bytes, *, source: str, content_type: str | None = None) -> HFPage:
    """Papers of one ``/api/daily_papers`` body; bad single items are skipped with a warning."""
    if not data.strip():
        raise SourceError("empty body, expected a JSON list")
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SourceError(json_error_reason(data, e, content_type)) from None
    if isinstance(doc, dict):
        detail = _str(doc.get("error")) if "error" in doc else None
        raise SourceError(
            "expected a JSON list of papers, got an object" + (f": {detail[:200]}" if detail else "")
        )
    if not isinstance(doc, list):
        raise SourceError(f"expected a JSON list of papers, got {type(doc).__name__}")
    papers: list[Paper] = []
    warnings: list[str] = []
    for i, item in enumerate(doc):
        try:
            papers.append(_item_to_paper(item, source))
        except _BadItem as e:
            warnings.append(f"item {i} skipped: {e}")
    if doc and not papers:
        raise SourceError(f"no usable item in {len(doc)} ({warnings[0]})")
    return HFPage(papers, len(doc), warnings)


def parse_hf_daily(data: bytes, *, source: str) -> list[Paper]:
    """Papers of one HF Daily Papers JSON body. Raises SourceError if it is not such a list."""
    return parse_hf_page(data, source=source).papers
