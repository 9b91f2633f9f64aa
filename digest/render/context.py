"""Edition -> the one template context that the subject, the plain text and the HTML share.

Every string in the context is already cleaned (single line, no control characters); every
URL is an absolute http(s) URL or None. HTML-only values (``*_html``) are Markup built by
escaping first and inserting <mark> after.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from digest.models import Edition, Paper, ScoredPaper, Subscription

from .snippet import choose_snippet
from .textutil import (
    clean,
    day_month,
    github_url,
    highlight_forms,
    NBSP,
    long_date,
    month_name,
    safe_url,
    short_date,
    shorten,
)

__all__ = ["PaperView", "MoreView", "MetaPart", "build_context", "subject_for"]

SUBJECT_MAX = 110  # characters, subject included the shortened top title
TITLE_MAX = 300
WHY_MAX = 200
AUTHORS_SHOWN = 3
MORE_SHOWN = 10  # titles listed under "and N more" (issue 13: a two-minute email lists up to 10)
INTERESTS_SHOWN = 20

_WEEKDAYS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


@dataclass(frozen=True, slots=True)
class MetaPart:
    """One item of a paper's metadata line, e.g. ``58 GitHub stars`` linking to the repo."""

    text: str
    url: str | None = None
    sep: str = " · "  # what goes before it on the line ("" for the first)

    @property
    def plain(self) -> str:
        return f"{self.text} <{self.url}>" if self.url else self.text


@dataclass(frozen=True, slots=True)
class PaperView:
    number: int
    title: str
    title_html: Markup
    url: str | None
    authors: str
    why: str
    meta: tuple[MetaPart, ...]
    meta_text: str  # the metadata line for plain text, URLs in <>
    snippet: str
    snippet_html: Markup
    snippet_label: str = ""  # "AI summary" when the snippet is Hugging Face's AI summary
    up_url: str | None = None  # "more like this" (signed rating link), None: no rating links
    down_url: str | None = None  # "not for me"

    @property
    def marker(self) -> str:
        """``1. `` … ``10. ``: the number and its space, for the plain-text list."""
        return f"{self.number}. "


@dataclass(frozen=True, slots=True)
class MoreView:
    title: str
    url: str | None
    why: str
    up_url: str | None = None
    down_url: str | None = None


# (paper key, vote) -> the signed rating URL (digest.tokens.RatingLinks)
RateLinks = Callable[[str, int], str]
# paper key -> its ("more like this", "not for me") URLs
RatePairs = Callable[[str], tuple[str | None, str | None]]


_RATE_URL = re.compile(r"https?://[^\s\"'<>]+/rate/[A-Za-z0-9_-]+")
_RATE_BASE = re.compile(r"https?://[^\s\"'<>]+/rate/")


def _rate_urls(links: RateLinks, key: str) -> tuple[str | None, str | None]:
    """The paper's two signed links. They are `<public_url>/rate/<base64url token>`: one regular
    expression checks them (the general `safe_url` parse cost 1.2 ms a digest for 50 links)."""
    up, down = links(key, 1), links(key, -1)
    if not (_RATE_URL.fullmatch(up) and _RATE_URL.fullmatch(down)):
        return safe_url(up), safe_url(down)
    return up, down


def _rate_pairs(links: RateLinks | None) -> RatePairs | None:
    """paper key -> its two signed links, or None without rating links. A RatingLinks makes both
    from one HMAC (`pair`) under one base URL, checked once here (its tokens are base64url by
    construction); any other callable's URLs are checked link by link."""
    if links is None:
        return None
    pair = getattr(links, "pair", None)
    base = getattr(links, "base", None)
    if pair is not None and isinstance(base, str) and _RATE_BASE.fullmatch(base):
        return pair
    return functools.partial(_rate_urls, links)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _authors(paper: Paper) -> str:
    names: list[str] = []
    for author in paper.authors:
        name = clean(author.name)
        if name:
            if len(names) == AUTHORS_SHOWN:
                return ", ".join(names) + " et al."
            names.append(name)
    return ", ".join(names)


_ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})")


def _links(p: Paper) -> tuple[str | None, str | None]:
    """(PDF URL, Hugging Face paper page URL): arXiv's PDF for an arXiv paper; the HF page (where
    its upvotes and comments are) when Hugging Face listed it."""
    arxiv_id = p.arxiv_id if p.arxiv_id and _ARXIV_ID.fullmatch(p.arxiv_id) else None
    if arxiv_id is None:
        return None, None
    on_hf = p.upvotes is not None or p.comments is not None
    return f"https://arxiv.org/pdf/{arxiv_id}", (f"https://huggingface.co/papers/{arxiv_id}" if on_hf else None)


def _meta(p: Paper, year: int) -> tuple[MetaPart, ...]:
    parts: list[MetaPart] = [MetaPart(t) for t in what_it_is(p, year)]
    pdf, hf = _links(p)
    if pdf:
        parts.append(MetaPart("PDF", pdf))
    votes = [_plural(n, word).replace(" ", NBSP) for n, word in ((p.upvotes, "upvote"), (p.comments, "comment")) if n]
    if votes or hf:
        label = ", ".join(votes) + " on Hugging Face" if votes else "discuss on Hugging Face"
        parts.append(MetaPart(label, hf))
    repo = github_url(p.github_repo)
    if repo is not None:
        label = _plural(p.github_stars, "GitHub star") if p.github_stars else "code on GitHub"
        parts.append(MetaPart(label, repo[0]))
    elif p.github_stars:
        parts.append(MetaPart(_plural(p.github_stars, "GitHub star")))
    page = safe_url(p.project_page)
    if page is not None:
        parts.append(MetaPart("project page", page))
    org = shorten(clean(p.organization), 80)
    if org:
        parts.append(MetaPart(org))
    if parts:
        parts[0] = MetaPart(parts[0].text, parts[0].url, "")
    return tuple(parts)


# arXiv ids carry the month of the first version: 2302.06600 (new style), hep-th/9901001 (old).
_ARXIV_MONTH = re.compile(r"(?:^|/)(\d{2})(\d{2})(?:\.\d{4,5}|\d{3})$")


def _first_posted(p: Paper, year: int) -> str | None:
    """``13 Feb 2023`` from the first version's date, else ``Feb 2023`` from the arXiv id."""
    if p.published is not None:
        return day_month(p.published.date(), year_unless=year)
    m = _ARXIV_MONTH.search(p.arxiv_id or "")
    if m is None or not 1 <= int(m.group(2)) <= 12:
        return None
    yy = int(m.group(1))
    return f"{month_name(int(m.group(2)))}{NBSP}{(1900 if yy >= 91 else 2000) + yy}"


def what_it_is(p: Paper, year: int) -> tuple[str, ...]:
    """What a paper is, for its metadata line: ``v3``, ``first posted 13 Feb 2023``; a version
    only when it is not the first (or the feed announced a replacement)."""
    out: list[str] = []
    replaced = p.is_replacement
    if p.version and (p.version > 1 or replaced):
        out.append(f"v{p.version}")
    elif replaced:
        out.append("revised")
    posted = _first_posted(p, year)
    if posted:
        out.append(f"first posted {posted}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Parts:
    title: str
    url: str | None
    authors: str
    meta: tuple[MetaPart, ...]
    meta_text: str


# The same papers go to many readers on a day: their reader-independent parts are built once.
# Keyed by object identity (hashing a Paper hashes every field); the entry keeps the Paper
# alive, so its id cannot be reused while the entry exists.
_PARTS_MAX = 4096
_parts_cache: dict[tuple[int, int], tuple[Paper, _Parts]] = {}


def _parts(paper: Paper, year: int) -> _Parts:
    key = (id(paper), year)
    hit = _parts_cache.get(key)
    if hit is not None and hit[0] is paper:
        return hit[1]
    meta = _meta(paper, year)
    parts = _Parts(
        title=shorten(clean(paper.title), TITLE_MAX) or "(untitled)",
        url=safe_url(paper.url),
        authors=_authors(paper),
        meta=meta,
        meta_text=" · ".join(m.plain for m in meta),
    )
    if len(_parts_cache) >= _PARTS_MAX:
        _parts_cache.clear()
    _parts_cache[key] = (paper, parts)
    return parts


@functools.lru_cache(maxsize=16384)
def _highlighted(text: str, forms: tuple[str, ...]) -> Markup:
    return highlight_forms(text, forms) if forms else escape(text)


def _paper_view(number: int, sp: ScoredPaper, year: int, pairs: RatePairs | None = None) -> PaperView:
    parts = _parts(sp.paper, year)
    forms = tuple(sorted({f for m in sp.matches for f in m.forms}))
    up, down = pairs(sp.paper.key) if pairs is not None else (None, None)
    label, snippet = choose_snippet(sp.paper.ai_summary, sp.paper.abstract, forms)
    return PaperView(
        number=number,
        title=parts.title,
        title_html=_highlighted(parts.title, forms),
        url=parts.url,
        authors=parts.authors,
        why=shorten(clean(sp.why), WHY_MAX),
        meta=parts.meta,
        meta_text=parts.meta_text,
        snippet=snippet,
        snippet_html=_highlighted(snippet, forms),
        snippet_label=label,
        up_url=up,
        down_url=down,
    )


def _interests(sub: Subscription) -> str:
    terms = [t for t in (clean(k.term) for k in sub.keywords) if t]
    if len(terms) > INTERESTS_SHOWN:
        rest = len(terms) - INTERESTS_SHOWN
        return ", ".join(terms[:INTERESTS_SHOWN]) + f" and {rest} more"
    return ", ".join(terms)


def _schedule(sub: Subscription) -> str:
    freq = sub.frequency
    if freq == "weekdays":
        when = "on weekdays"
    elif freq.startswith("weekly:"):
        when = "every " + _WEEKDAYS.get(freq[7:], freq[7:])
    else:
        when = "daily"
    return f"{when} at {sub.send_at.strftime('%H:%M')} {clean(sub.timezone)}"


def subject_for(edition: Edition, site_name: str = "Paper Digest") -> str:
    """``7 new papers — <top title, shortened>`` (≲ 110 chars): the count and the best title
    lead; the brand is the From name and the client shows the date."""
    total = len(edition.papers) + max(edition.more, len(edition.more_papers))
    if not edition.papers:
        return "Nothing new today" if edition.subscription.keywords else "No new trending papers today"
    kind = "new" if edition.subscription.keywords else "trending"
    head = _plural(total, f"{kind} paper")
    top = clean(edition.papers[0].paper.title)
    room = SUBJECT_MAX - len(head) - 3
    if top and room >= 12:
        return f"{head} — {shorten(top, room)}"
    return head


def _preheader(papers: list[PaperView], total: int) -> str:
    """The inbox preview line: what the subject does not say (the next titles), never the subject."""
    if not papers:
        return "We will look again for your next digest."
    if len(papers) == 1:
        return papers[0].snippet
    rest = total - 3
    tail = f" and {_plural(rest, 'more paper')}" if rest > 0 else ""
    return "Also: " + " · ".join(p.title for p in papers[1:3]) + tail


def build_context(
    edition: Edition,
    *,
    unsubscribe_url: str,
    now: dt.datetime,
    site_name: str = "Paper Digest",
    rating_links: RateLinks | None = None,
    manage_url: str | None = None,
) -> dict[str, Any]:
    """The single context for subject, text and HTML; with `rating_links`, every paper (shown or
    listed as "and N more") carries its "more like this" / "not for me" URLs; with `manage_url`,
    the footer links to the reader's "Edit your interests" page."""
    sub = edition.subscription
    pairs = _rate_pairs(rating_links)
    papers = [_paper_view(i, sp, now.year, pairs) for i, sp in enumerate(edition.papers, 1)]
    more_total = max(edition.more, len(edition.more_papers))
    more = []
    for sp in edition.more_papers[:MORE_SHOWN]:
        parts = _parts(sp.paper, now.year)
        up, down = pairs(sp.paper.key) if pairs is not None else (None, None)
        more.append(MoreView(shorten(parts.title, 160), parts.url, shorten(clean(sp.why), 120), up, down))
    interests = _interests(sub)
    total = len(papers) + more_total
    if not papers:
        heading = "Nothing new today"
    elif interests:
        heading = _plural(total, "new paper") + " for your interests"
    else:
        heading = _plural(total, "trending paper")
    subject = subject_for(edition, site_name=site_name)
    preheader = _preheader(papers, total)
    if interests:
        order = "Best match first; near ties go to the more upvoted."
    else:
        order = "Most upvoted and discussed first; a paper's votes count half as much for each week since it was listed."
    email = clean(sub.email)
    schedule = _schedule(sub)
    if interests:
        reason = (
            f"You get this because {email} subscribed to {site_name} "
            f"with interests: {interests}, {schedule}."
        )
    else:
        reason = (
            f"You get this because {email} subscribed to {site_name} "
            f"for the trending papers, {schedule}."
        )
    return {
        "site_name": site_name,
        "subject": subject,
        "preheader": shorten(preheader, 150),
        "order": order,
        "heading": heading,
        "date_long": long_date(edition.date),
        "date_short": short_date(edition.date),
        "interests": interests,
        "papers": papers,
        "more": more,
        "more_total": more_total,
        "more_rest": more_total - len(more),
        "more_rest_text": (
            f"and {more_total - len(more)} more."
            if more
            else f"{_plural(more_total, 'more paper')} also matched today."
        ),
        "empty": not papers,
        "reason": reason,
        "unsubscribe_url": unsubscribe_url,
        "manage_url": safe_url(manage_url) if manage_url else None,
        "rating": rating_links is not None,
        "name": clean(sub.name),
        "email": email,
    }
