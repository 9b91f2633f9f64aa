"""The data every stage shares. Frozen dataclasses, no I/O, no imports from the rest of digest.

The pipeline reads left to right through these types:

    Paper (sources) -> ScoredPaper (rank) -> Edition (pipeline) -> RenderedDigest (render)
    -> OutgoingMessage (render) -> DeliveryResult (deliver) -> store
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "Author",
    "Paper",
    "Keyword",
    "Subscription",
    "Match",
    "ScoredPaper",
    "RatedPaper",
    "Edition",
    "RenderedDigest",
    "OutgoingMessage",
    "SourceResult",
    "SourceSpec",
    "FREQUENCIES",
]

FREQUENCIES = (
    "daily",
    "weekdays",
    "weekly:mon",
    "weekly:tue",
    "weekly:wed",
    "weekly:thu",
    "weekly:fri",
    "weekly:sat",
    "weekly:sun",
)


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    affiliation: str | None = None


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper, normalised from any source.

    ``key`` is the canonical identity (``arxiv:<id without version>``, else ``doi:<doi>``,
    else ``url:<normalised link>``); the same paper from several sources has the same key.
    """

    key: str
    title: str
    abstract: str = ""
    authors: tuple[Author, ...] = ()
    url: str = ""
    arxiv_id: str | None = None  # without version
    version: int | None = None  # highest version seen
    doi: str | None = None
    published: dt.datetime | None = None  # first publication (arXiv v1), UTC
    listed: dt.datetime | None = None  # when the source listed it (HF Daily day, feed date), UTC
    categories: tuple[str, ...] = ()
    upvotes: int | None = None
    comments: int | None = None
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    organization: str | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()
    announce_type: str | None = None  # arXiv feeds: new | cross | replace | replace-cross
    journal_ref: str | None = None
    withdrawn: bool = False
    sources: tuple[str, ...] = ()  # names of the configured sources that listed it

    @property
    def is_replacement(self) -> bool:
        """A feed announced it as a new version of an older paper (arXiv "replace")."""
        return (self.announce_type or "").startswith("replace")

    def with_(self, **changes: object) -> Paper:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Keyword:
    term: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Subscription:
    """One reader, from one YAML file (its stem is ``id``)."""

    id: str
    email: str
    name: str | None = None
    timezone: str = "UTC"
    send_at: dt.time = dt.time(7, 0)
    frequency: str = "daily"
    keywords: tuple[Keyword, ...] = ()
    exclude: tuple[str, ...] = ()
    sources: tuple[str, ...] | None = None  # None: every configured source
    max_papers: int = 5
    send_empty: bool = False
    paused: bool = False
    min_score: float | None = None  # None: the ranker's default inclusion rule
    # arXiv feeds announce new versions of older papers ("replace"): off unless the reader asks
    replacements: bool = False
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """One keyword found in one field of a paper."""

    term: str  # the keyword as the reader wrote it
    field: str  # "title" | "abstract" | "summary" | "keywords" | "authors"
    count: int = 1
    forms: tuple[str, ...] = ()  # the exact text found (e.g. "Mixtures-of-Experts"), for highlighting


@dataclass(frozen=True, slots=True)
class ScoredPaper:
    paper: Paper
    score: float
    matches: tuple[Match, ...] = ()
    why: str = "trending"  # one line: why this paper was chosen
    via: str = "keywords"  # what put it there: "keywords" | "model" | "explore" | "semantic" | "trending" | "mention"

    @property
    def matched_terms(self) -> tuple[str, ...]:
        """The reader's terms that matched, each once, in order of first appearance."""
        return tuple(dict.fromkeys(m.term for m in self.matches))


@dataclass(frozen=True, slots=True)
class RatedPaper:
    """One of a reader's ratings, as the ranker receives it (joined with the stored paper)."""

    key: str  # Paper.key
    vote: int  # +1 "more like this", -1 "not for me"
    title: str  # for the "like «title» that you rated up" reason
    vector: bytes | None  # the stored embed() blob (None if unknown: ignored by the model)
    rated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Edition:
    """One digest for one subscriber on one local date: the unit of work and of idempotence."""

    subscription: Subscription
    date: dt.date
    papers: tuple[ScoredPaper, ...]  # what the message shows, best first
    more: int = 0  # papers that also qualified but did not fit under max_papers
    more_papers: tuple[ScoredPaper, ...] = ()  # those papers (titles listed briefly)

    @property
    def key(self) -> tuple[str, dt.date]:
        return (self.subscription.id, self.date)

    @property
    def paper_keys(self) -> tuple[str, ...]:
        """Every paper this edition delivers: shown and summarised under "and N more"."""
        return tuple(p.paper.key for p in self.papers) + tuple(
            p.paper.key for p in self.more_papers
        )


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A fully built message, ready for any Mailer."""

    subscriber_id: str
    edition_date: dt.date
    sender: str  # envelope sender (bare address)
    recipient: str  # envelope recipient (bare address)
    message_id: str  # with angle brackets
    data: bytes  # the RFC 5322 message, CRLF line endings


@dataclass(frozen=True, slots=True)
class SourceResult:
    """What one configured source gave in one run: papers, or the reason it gave none."""

    name: str
    papers: tuple[Paper, ...] = ()
    error: str | None = None
    elapsed: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One configured source, as the sources stage needs it (built from settings at the edge)."""

    name: str
    kind: str  # "hf_daily" | "feed"
    url: str  # http(s)://, file:// or a local path
    timeout: float = 20.0  # seconds for the whole fetch of one URL, retries included
    max_bytes: int = 20_000_000  # body-size cap, after decompression
    retries: int = 3  # attempts after the first, on connection errors, 5xx and 429
    lookback_days: int = 3  # hf_daily: fetch date=D, D-1, ... so a missed day loses nothing
    page_size: int = 100  # hf_daily: `limit` per page
    max_pages: int = 10  # hf_daily: pages per day at most
    allow_private: bool = False  # allow loopback / private / link-local addresses (tests, LAN mirrors)
