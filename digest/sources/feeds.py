"""RSS and Atom feeds through feedparser, arXiv-aware (rss.arxiv.org and the export API). Pure.

Safety: a document whose DOCTYPE declares entities (``<!ENTITY``) is refused before any parser
sees it (billion laughs, quadratic blowup, external entities), quoted SYSTEM/PUBLIC literals
(which may hold ``>``) included; feedparser always gets a ``BytesIO`` (a str or bytes argument
can be opened as a path or URL).

Encoding: a body that is UTF-8 (declared or by default) but for a few invalid bytes has those
bytes replaced (with a warning), so they cost their own characters; feedparser would otherwise
re-decode the whole feed as windows-1252 and every non-ASCII name would come out as ``ClÃ¡udio``.

Legacy arXiv RSS 1.0 (RDF, before 2024): ``Title. (arXiv:1805.06430v2 [nucl-th] UPDATED)`` gives
the id, version, primary category and announce type (``new``, ``cross``, ``replace`` and
``replace-cross``), and the title loses the suffix; ``dc:creator`` holds HTML links.

Bozo policy: a feed that is not well-formed and yields no entries is an error; one that still
yields entries (a wrong charset declaration, an unescaped ``&``, a truncated tail) is used, with
a warning that names the problem. A well-formed feed with no entries is an empty day, not an error.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import feedparser

from digest.errors import SourceError
from digest.models import Author, Paper

from .identity import (
    arxiv_abs_url,
    arxiv_key,
    normalise_doi,
    normalise_url,
    parse_arxiv_id,
    title_key,
)
from .text import clean_abstract, clean_plain, collapse, decode_utf8_replacing, html_to_text

__all__ = ["parse_feed", "parse_feed_doc", "FeedDoc", "split_creators", "refuse_entity_declarations"]

_ATOM = "{http://www.w3.org/2005/Atom}"
_ARXIV = "{http://arxiv.org/schemas/atom}"
_ARXIV_NS = b"arxiv.org/schemas/atom"
_DESC_RE = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s?(?P<abstract>.*))?$",
    re.DOTALL | re.IGNORECASE,
)
# A DOCTYPE up to the "[" of its internal subset; quoted literals may hold ">" or "[".
_DOCTYPE_SUBSET_RE = re.compile(r"""<!DOCTYPE(?:[^\[>"']|"[^"]*"|'[^']*')*\[""", re.IGNORECASE)
_XML_ENCODING_RE = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_LEGACY_TITLE_RE = re.compile(
    r"^(?P<title>.*?)\s*\(arXiv:(?P<id>[^\s()\[\]]+)\s+\[(?P<cat>[^\]]+)\]"
    r"(?:\s+(?P<flag>UPDATED|CROSS LISTED))?\)\s*$",
    re.DOTALL,
)
_ENTITY_DECL_RE = re.compile(r"<!ENTITY", re.IGNORECASE)
_AFFIL_RE = re.compile(r"^(?P<name>[^()]*?)\s*\((?P<affil>.*)\)\s*$", re.DOTALL)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class FeedDoc:
    papers: list[Paper]
    warnings: list[str] = field(default_factory=list)


def _as_text(data: bytes) -> str:
    """Enough of a decoding to look for markup (ASCII-compatible or UTF-16/32)."""
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                     (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
                     (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
                     (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be")):  # fmt: skip
        if data.startswith(bom):
            return data.decode(enc, errors="replace")
    return data.decode("latin-1")


def refuse_entity_declarations(data: bytes) -> None:
    """Raise SourceError if a DOCTYPE internal subset declares entities."""
    text = _as_text(data)
    m = _DOCTYPE_SUBSET_RE.search(text)
    if m and _ENTITY_DECL_RE.search(text, m.end()):
        raise SourceError("feed declares XML entities in its DOCTYPE; refused (entity expansion risk)")


def repair_utf8(data: bytes) -> tuple[bytes, str | None]:
    """``data`` with invalid UTF-8 bytes replaced by U+FFFD, and a warning, when the body is
    UTF-8 (declared, or XML's default) and mostly valid; otherwise ``data`` untouched."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"<\x00")):
        return data, None
    declared = _XML_ENCODING_RE.match(data)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return data, None
    try:
        data.decode("utf-8")
        return data, None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
    text, bad = decode_utf8_replacing(data)
    good = len(text) - len(text.encode("ascii", "ignore")) - bad - data.count("\ufffd".encode())
    if good < bad:  # not UTF-8 at all (an undeclared windows-1252 feed): feedparser's own guess
        return data, None
    return text.encode("utf-8"), f"{bad} invalid UTF-8 byte(s) replaced (the first on line {line})"


def split_creators(text: str) -> tuple[Author, ...]:
    """arXiv ``dc:creator``: ``A (Affil, Affil), B, C`` split on commas outside parentheses
    (HTML links around names, as in the legacy RDF feeds, are dropped first)."""
    text = clean_plain(text) if "<" in text or "&" in text else text
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    authors = []
    for part in parts:
        part = collapse(part)
        if not part:
            continue
        m = _AFFIL_RE.match(part)
        if m and collapse(m.group("name")):
            authors.append(Author(collapse(m.group("name")), collapse(m.group("affil")) or None))
        else:
            authors.append(Author(part))
    return tuple(authors)


def _raw_atom_authors(data: bytes) -> dict[str, tuple[Author, ...]]:
    """Entry id -> authors with every ``arxiv:affiliation`` (feedparser keeps only the last one)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return {}
    out: dict[str, tuple[Author, ...]] = {}
    for entry in root.iter(f"{_ATOM}entry"):
        eid = collapse(entry.findtext(f"{_ATOM}id"))
        authors = []
        for a in entry.findall(f"{_ATOM}author"):
            name = collapse(a.findtext(f"{_ATOM}name"))
            affils = [collapse(x.text) for x in a.findall(f"{_ARXIV}affiliation") if collapse(x.text)]
            if name:
                authors.append(Author(name, "; ".join(affils) or None))
        if eid:
            out[eid] = tuple(authors)
    return out


def _when(struct: Any) -> dt.datetime | None:
    if not struct:
        return None
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(struct), tz=dt.UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _text_of(entry: Any, name: str) -> str:
    value = entry.get(name) or ""
    detail = entry.get(f"{name}_detail") or {}
    if detail.get("type") in _HTML_TYPES:
        return html_to_text(value)
    return clean_abstract(value)


def _doi_of(entry: Any) -> str | None:
    candidates = [entry.get(k) for k in ("arxiv_doi", "prism_doi", "dc_identifier", "id", "link")]
    candidates += [ln.get("href") for ln in entry.get("links", []) if ln.get("title") == "doi"]
    for c in candidates:
        d = normalise_doi(c) if isinstance(c, str) else None
        if d:
            return d
    return None


def _legacy_title(title: str, feed_cat: str | None) -> tuple[str, tuple[str, int | None] | None, str, str]:
    """Legacy arXiv RSS: (title, parsed id, primary category, announce type), or the title as is."""
    m = _LEGACY_TITLE_RE.match(title)
    parsed = parse_arxiv_id(m.group("id")) if m else None
    if not m or not parsed:
        return title, None, "", ""
    cat, flag = collapse(m.group("cat")), m.group("flag")
    if flag == "CROSS LISTED":
        announce = "cross"
    elif flag == "UPDATED":
        announce = "replace-cross" if feed_cat and cat.split(".")[0] != feed_cat.split(".")[0] else "replace"
    else:
        announce = "new"
    return collapse(m.group("title")), parsed, cat, announce


def _author_name(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return collapse(clean_plain(value) if "<" in value or "&" in value else value)


def _entry_to_paper(e: Any, source: str, atom_authors: dict[str, tuple[Author, ...]],
                    feed_date: dt.datetime | None, feed_cat: str | None = None) -> Paper | None:  # fmt: skip
    guid = collapse(e.get("id"))
    link = collapse(e.get("link"))
    raw_summary = e.get("summary") or ""
    desc = _DESC_RE.match(raw_summary)
    announce = collapse(e.get("arxiv_announce_type") or (desc and desc.group("type"))).lower() or None
    title = collapse(_text_of(e, "title"))
    legacy: tuple[str, int | None] | None = None
    if announce is None:
        title, legacy, legacy_cat, legacy_announce = _legacy_title(title, feed_cat)
        announce = legacy_announce or None
    guid_id = parse_arxiv_id(guid)
    parsed = legacy or guid_id or parse_arxiv_id(desc and desc.group("id")) or parse_arxiv_id(link)
    # the export API: an arxiv.org URL with a version as <id>
    is_api = announce is None and guid_id is not None and guid_id[1] is not None and "://" in guid
    if desc:  # arXiv RSS: plain-text abstract (TeX may hold "<" and ">")
        abstract = clean_plain(desc.group("abstract") or "")
    elif is_api and (e.get("summary_detail") or {}).get("type") not in _HTML_TYPES:
        abstract = clean_abstract(raw_summary)
    else:
        abstract = _text_of(e, "summary")
        if not abstract and e.get("content"):
            c = e["content"][0]
            abstract = html_to_text(c.get("value")) if c.get("type") in _HTML_TYPES else clean_abstract(c.get("value"))
    if guid in atom_authors:
        authors = atom_authors[guid]
    elif announce is not None and isinstance(e.get("author"), str):
        authors = split_creators(e["author"])
    else:
        names = [_author_name(a.get("name")) for a in e.get("authors", []) if isinstance(a, dict)]
        authors = tuple(Author(n) for n in names if n)
    tags = [collapse(t.get("term")) for t in e.get("tags", []) if isinstance(t, dict)]
    primary = e.get("arxiv_primary_category")
    if isinstance(primary, dict) and primary.get("term"):
        tags.insert(0, collapse(primary["term"]))
    elif legacy:
        tags.insert(0, legacy_cat)
    doi = _doi_of(e)
    if doi and parse_arxiv_id(doi):  # an arXiv DOI is identity, not a journal DOI
        doi = None
    published, updated = _when(e.get("published_parsed")), _when(e.get("updated_parsed"))
    version = parsed[1] if parsed else None
    if parsed and announce is not None:  # arXiv RSS: the date is the announcement
        listed = published or updated or feed_date
        published = listed if version == 1 and announce in ("new", "cross") else None
    elif is_api:  # arXiv API: published = v1, updated = this version
        listed = updated or published or feed_date
    elif parsed:  # another feed listing an arXiv paper: its date is not arXiv's v1
        listed, published = published or updated or feed_date, None
    else:
        published = published or updated
        listed = published or feed_date
    if parsed:
        key, url = arxiv_key(parsed[0]), arxiv_abs_url(parsed[0])
    else:
        url = link if normalise_url(link) else (guid if normalise_url(guid) else "")  # http(s) only
        key = (f"doi:{doi}" if doi else None) or (f"url:{normalise_url(url)}" if normalise_url(url) else None)
        key = key or title_key(title)
    if key is None or not (title or abstract):
        return None
    return Paper(
        key=key,
        title=title or "(untitled)",
        abstract=abstract,
        authors=authors,
        url=url,
        arxiv_id=parsed[0] if parsed else None,
        version=version,
        doi=doi,
        published=published,
        listed=listed,
        categories=tuple(dict.fromkeys(t for t in tags if t)),
        announce_type=announce,
        journal_ref=collapse(e.get("arxiv_journal_reference") or e.get("arxiv_journal_ref")) or None,
        sources=(source,),
    )


def _rekey_shared_links(papers: list[Paper]) -> list[Paper]:
    """Items that share one link but are different papers (a feed that puts its home page in every
    ``<link>``) are keyed by title instead, so none is dropped."""
    titles: dict[str, set[str]] = {}
    for p in papers:
        if p.key.startswith("url:"):
            titles.setdefault(p.key, set()).add(p.title.casefold())
    shared = {k for k, t in titles.items() if len(t) > 1}
    if not shared:
        return papers
    return [p.with_(key=title_key(p.title) or p.key) if p.key in shared else p for p in papers]


def _legacy_feed_category(title: object) -> str | None:
    """``hep-ex`` from a legacy arXiv channel title ``hep-ex updates on arXiv.org``."""
    if isinstance(title, str) and title.endswith(" updates on arXiv.org"):
        return title.split()[0]
    return None


def _bozo_reason(exc: object) -> str:
    if hasattr(exc, "getMessage") and hasattr(exc, "getLineNumber"):
        return f"{exc.getMessage()} at line {exc.getLineNumber()}"  # type: ignore[attr-defined]
    return collapse(str(exc)) or type(exc).__name__


def parse_feed_doc(data: bytes, *, source: str, content_type: str | None = None) -> FeedDoc:
    """Papers and warnings of one RSS/Atom body."""
    stripped = data.strip()
    if not stripped:
        raise SourceError("empty body, expected a feed")
    if stripped[:1] in (b"{", b"["):
        raise SourceError("not a feed: got JSON")
    refuse_entity_declarations(data)
    data, repaired = repair_utf8(data)
    d = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    ctype = (content_type or "").split(";")[0].strip().lower()
    got = f" (got {ctype})" if ctype and "xml" not in ctype and "rss" not in ctype else ""
    warnings: list[str] = [repaired] if repaired else []
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        harmless = isinstance(exc, feedparser.CharacterEncodingOverride)
        if not d.entries and not (harmless and d.get("version")):
            raise SourceError(f"feed is not well-formed XML: {_bozo_reason(exc)}{got}")
        if harmless:
            warnings.append(f"charset: {_bozo_reason(exc)}")
        else:
            warnings.append(f"feed is not well-formed ({_bozo_reason(exc)}); "
                            f"used {len(d.entries)} entries from the lenient parser")  # fmt: skip
    if not d.entries and not d.get("version"):
        raise SourceError(f"not an RSS or Atom feed{got}")
    atom_authors = _raw_atom_authors(data) if _ARXIV_NS in data[:4096] and not d.get("bozo") else {}
    feed_date = _when(d.feed.get("published_parsed")) or _when(d.feed.get("updated_parsed"))
    feed_cat = _legacy_feed_category(d.feed.get("title"))
    papers = []
    for i, e in enumerate(d.entries):
        try:
            p = _entry_to_paper(e, source, atom_authors, feed_date, feed_cat)
        except Exception as exc:  # an input nobody foresaw costs its entry, not the feed
            warnings.append(f"entry {i} skipped: unexpected {type(exc).__name__}: {str(exc)[:100]}")
            continue
        if p is None:
            warnings.append(f"entry {i} skipped: no title, abstract or identifier")
        elif p.title == "Error" and "api/errors" in collapse(e.get("id")):
            raise SourceError(f"arXiv API error: {p.abstract[:200]}")
        else:
            papers.append(p)
    return FeedDoc(_rekey_shared_links(papers), warnings)


def parse_feed(data: bytes, *, source: str) -> list[Paper]:
    """Papers of one RSS/Atom body. Raises SourceError with a one-line reason on bad input."""
    return parse_feed_doc(data, source=source).papers
