"""Editions in bulk: rank, render and build the messages of many readers at once.

`pipeline.plan` + `Renderer.render` + `build_message` make one reader's message; a Builder does the
same for a batch of readers, cheaper per reader, in two steps with the claim in between:

* `plan`: one vectorised ranking of the batch (`Ranker.score_many`) gives every reader's included
  papers, best first: whether the edition is empty, how many papers it delivers and their keys
  (what the store marks seen once the message is accepted);
* `build`: `ScoredPaper` objects (matches, the why line: plain Python, ~30 µs each) only for what the
  message shows, the reader's `max_papers` and the first MORE_SHOWN of "and N more"
  (`Ranker.materialise` of the head of the planned ranking, carried by the Item); the Edition carries
  those and the total (`more`), so the message is byte for byte the one `plan` would give; then
  render and (optionally) the MIME bytes.

`BuildProcess` runs a Builder in helper processes (fork: they start with the papers, the
subscriptions and the templates already in memory), so ranking and rendering use another core
while the sending process talks SMTP and writes the store. Each batch comes back as rendered parts
and paper keys; the sending process makes the MIME bytes (`Builder.finish`) as it sends. Nothing
here touches the store or the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import gc
import multiprocessing
import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from digest.errors import DigestError
from digest.models import Edition, OutgoingMessage, Paper, RatedPaper, RenderedDigest, Subscription
from digest.rank import Planned, Ranker
from digest.render import Renderer, build_message, message_id_for
from digest.render.context import MORE_SHOWN
from digest.tokens import ManageLinks, RatingLinks, derive_key, unsubscribe_url

__all__ = ["Item", "Built", "Builder", "BuildProcess", "build_in_process", "off_sources", "not_for", "edition_cut"]


@dataclass(frozen=True, slots=True)
class Item:
    """One reader's edition to build: the reader's position in the run's subscriber list, the
    edition date, how many papers it delivers, and the head of its ranking (from `Builder.plan`:
    the positions and scores of what the message shows, so the builder need not rank again)."""

    index: int
    day: dt.date
    total: int
    positions: np.ndarray
    scores: np.ndarray | None  # None: the trending digest
    full: int  # how many lead papers passed the inclusion rule (the rest are mentions: listed only)
    liked: dict[int, tuple[int, str]] | None = None  # papers the reader's ratings put there (Ranker.liked_marks)


@dataclass(frozen=True, slots=True)
class Built:
    """One reader's edition, built: a message to send, or why it failed."""

    index: int
    day: dt.date
    status: str  # "ok" | "failed"
    message: OutgoingMessage | None = None  # built, or None: `Builder.finish` builds it from:
    rendered: RenderedDigest | None = None
    link: str | None = None  # the reader's unsubscribe URL
    error: str | None = None


def off_sources(wanted: Iterable[str], papers: Iterable[Paper]) -> frozenset[str]:
    """Keys of the papers that none of the `wanted` sources gave (a reader's `sources:` skips them)."""
    chosen = frozenset(wanted)
    return frozenset(p.key for p in papers if not chosen.intersection(p.sources))


def not_for(sub: Subscription, papers: Sequence[Paper]) -> frozenset[str]:
    """Keys of the papers this reader never gets, sent or not: new versions of older papers
    (unless `replacements: true`) and papers only from sources they did not choose."""
    out: set[str] = set()
    if not sub.replacements:
        out.update(p.key for p in papers if p.is_replacement)
    if sub.sources is not None:
        out.update(off_sources(sub.sources, papers))
    return frozenset(out)


def edition_cut(max_papers: int, full: int) -> tuple[int, int]:
    """(papers shown in full, papers delivered) of a ranking whose first `full` passed the
    inclusion rule: at most `max_papers` in full; then every other paper that passed, and the
    mentions, counted as delivered as far as the MORE_SHOWN titles listed reach."""
    shown = min(max_papers, full)
    return shown, max(full, shown + MORE_SHOWN)


class Builder:
    """Everything one run needs to turn (reader, date) into message bytes. Build once per run."""

    def __init__(
        self,
        ranker: Ranker,
        subs: Sequence[Subscription],
        seen_by_sub: Mapping[str, set[str]],
        renderer: Renderer,
        *,
        sender: str,
        public_url: str,
        secret: bytes,
        now: dt.datetime,
        rated_by_sub: Mapping[str, Sequence[RatedPaper]] | None = None,
    ) -> None:
        self.ranker = ranker
        self.papers: tuple[Paper, ...] = ranker.papers
        self.subs = subs
        self.seen_by_sub = seen_by_sub
        # Each reader's ratings (store.ratings_many): the ranker's per-reader model. Held here, so
        # the helper processes (forked with this Builder) have them too.
        self.rated_by_sub: Mapping[str, Sequence[RatedPaper]] = rated_by_sub or {}
        self.renderer = renderer
        self.sender, self.public_url, self.secret, self.now = sender, public_url, secret, now
        self._rate_key = derive_key(secret, "rate")  # signs every rating link of the run
        self._manage = ManageLinks(public_url, secret, now=now)  # "Edit your interests"
        self._not_for: dict[tuple[bool, frozenset[str] | None], frozenset[str]] = {}  # by (replacements, sources)

    def _skip(self, sub: Subscription) -> frozenset[str]:
        """Papers this reader must not get: already sent, or not for them (`not_for`)."""
        key = (sub.replacements, None if sub.sources is None else frozenset(sub.sources))
        unwanted = self._not_for.get(key)
        if unwanted is None:
            unwanted = self._not_for[key] = not_for(sub, self.papers)
        return unwanted.union(self.seen_by_sub.get(sub.id) or ())

    def plan(self, indexes: Sequence[int]) -> list[Planned]:
        """For each reader: the positions (in `self.papers`) of every paper their edition delivers,
        best first: shown, and listed as "and N more" (mentions last); their scores (None for the
        trending digest); how many may be shown in full. Cheap: no ScoredPaper is built."""
        subs = [self.subs[i] for i in indexes]
        rated = {s.id: self.rated_by_sub[s.id] for s in subs if self.rated_by_sub.get(s.id)}
        return self.ranker.score_many(subs, {s.id: self._skip(s) for s in subs}, rated_by_sub=rated, mentions=True)

    def delivered(self, index: int, planned: Planned) -> np.ndarray:
        """The positions an edition delivers (and marks seen): every paper that passed, and the
        mentions it lists by title (the rest of the mentions are not shown at all)."""
        positions, _, full = planned
        return positions[: edition_cut(self.subs[index].max_papers, full)[1]]

    def item(self, index: int, day: dt.date, planned: Planned) -> Item:
        """What `build` needs of one planned reader: the ranking's head only (what the message shows)."""
        sub = self.subs[index]
        positions, scores, full = planned
        positions = self.delivered(index, planned)
        head = positions[: edition_cut(sub.max_papers, full)[0] + MORE_SHOWN].copy()
        # The model's marks go with the item: a forked helper builds it without the model.
        liked = self.ranker.liked_marks(sub, head) if self.rated_by_sub.get(sub.id) else None
        kept = None if scores is None else scores[: len(head)].copy()
        return Item(index, day, len(positions), head, kept, full, liked)

    def keys(self, positions: np.ndarray) -> tuple[str, ...]:
        return tuple(self.papers[p].key for p in positions.tolist())

    def editions(self, items: Sequence[Item]) -> list[Edition]:
        """The Edition of each item: ScoredPaper objects only for what the message shows (its
        `max_papers`, then MORE_SHOWN listed briefly), the rest counted in `more`."""
        out = []
        for item in items:
            sub = self.subs[item.index]
            ranked = (
                self.ranker.materialise(sub, item.positions, item.scores, liked=item.liked or {}, full=item.full)
                if item.total else []
            )  # fmt: skip
            n = min(sub.max_papers, item.full)
            more = tuple(ranked[n : n + MORE_SHOWN])
            out.append(Edition(sub, item.day, tuple(ranked[:n]), more=item.total - n, more_papers=more))
        return out

    def render(self, edition: Edition) -> tuple[RenderedDigest, str]:
        """Subject, text and HTML of one edition (every paper with its signed "more like this" /
        "not for me" links, the footer with "Edit your interests"), and the unsubscribe URL they carry."""
        sub_id = edition.subscription.id
        link = unsubscribe_url(self.public_url, sub_id, self.secret)
        rate = RatingLinks(self.public_url, sub_id, self.secret, key=self._rate_key)
        manage = self._manage(sub_id)
        return self.renderer.render(edition, unsubscribe_url=link, now=self.now, rating_links=rate, manage_url=manage), link

    def finish(self, built: Built) -> OutgoingMessage:
        """The message of a built edition: as built, or its MIME bytes made now from the rendered
        parts (build_message reads only the edition's subscriber and date)."""
        if built.message is not None:
            return built.message
        assert built.rendered is not None and built.link is not None
        sub = self.subs[built.index]
        return build_message(
            Edition(sub, built.day, ()),
            built.rendered,
            sender=self.sender,
            message_id=message_id_for(sub.id, built.day, self.sender),
            unsubscribe_url=built.link,
            date=self.now,
        )

    def build(self, items: Sequence[Item], *, mime: bool = True) -> list[Built]:
        """Rank, render and (with `mime`) build each item; one reader's failure is their own.
        Without `mime` the message is left to `finish` (where the sending happens)."""
        try:
            editions = self.editions(items)
        except DigestError:  # find the reader it belongs to
            if len(items) == 1:
                raise
            return [b for item in items for b in self._build_alone(item, mime)]
        out = []
        for item, edition in zip(items, editions):
            try:
                rendered, link = self.render(edition)
                built = Built(item.index, item.day, "ok", None, rendered, link)
                if mime:
                    built = Built(item.index, item.day, "ok", self.finish(built))
                out.append(built)
            except DigestError as exc:
                out.append(Built(item.index, item.day, "failed", error=str(exc)))
        return out

    def _build_alone(self, item: Item, mime: bool) -> list[Built]:
        try:
            return self.build([item], mime=mime)
        except DigestError as exc:
            return [Built(item.index, item.day, "failed", error=str(exc))]


async def build_in_process(builder: Builder, items: Sequence[Item], step: int = 16) -> list[Built]:
    """`builder.build(items)` in this process, a few readers at a time, letting other tasks run."""
    out: list[Built] = []
    for lo in range(0, len(items), step):
        out += builder.build(items[lo : lo + step])
        await asyncio.sleep(0)
    return out


_CHILD: Builder | None = None


def _child_init(builder: Builder, parent: int) -> None:
    global _CHILD
    _CHILD = builder
    _die_with_parent(parent)
    # The parent's asyncio loop may have a signal wakeup fd: a signal here must not reach it.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a run stops
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this helper when the sending process dies, however it dies (it holds
    copies of the parent's descriptors, e.g. a listening socket, and would otherwise linger)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl: do not outlive it
        os._exit(1)


def _child_build(items: Sequence[Item], mime: bool) -> list[Built]:
    assert _CHILD is not None
    # Rank and render here; the MIME bytes too when the sending process asks (`mime`), else it
    # makes them itself (Builder.finish) just before each message goes out.
    return _CHILD.build(items, mime=mime)


class BuildProcess:
    """Builders in `workers` helper processes (`fork`): `await build(items)` leaves this event
    loop free. Batches may finish out of order; each `build` call returns its own batch."""

    def __init__(self, builder: Builder, workers: int = 1) -> None:
        ctx = multiprocessing.get_context("fork")
        self.workers = max(1, workers)
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_child_init, initargs=(builder, os.getpid())
        )
        self._started = False
        self._frozen = False

    @staticmethod
    def cpus() -> int:
        try:
            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return os.cpu_count() or 1

    @classmethod
    def available(cls) -> bool:
        return "fork" in multiprocessing.get_all_start_methods() and cls.cpus() > 1

    @classmethod
    def default_workers(cls) -> int:
        """One core is left to the sending process (SMTP, store, MIME); at most 3 helpers (each
        holds its own caches)."""
        return max(1, min(cls.cpus() - 1, 3))

    async def build(self, items: Sequence[Item], *, mime: bool = False) -> list[Built]:
        """Rank and render `items` in a helper; with `mime`, the message bytes too."""
        loop = asyncio.get_running_loop()
        if self._started:
            return await loop.run_in_executor(self._pool, _child_build, list(items), mime)
        # The processes fork on the first batch. Objects alive now are frozen first, so the
        # children's garbage collector never writes to (and un-shares) the pages they inherit;
        # they stay frozen here until `close`, so this process's full collections skip them too
        # (the papers, readers and index of the run: ~0.4 s of CPU at 10,000 readers).
        self._started = True
        gc.freeze()
        self._frozen = True
        return await loop.run_in_executor(self._pool, _child_build, list(items), mime)

    def close(self) -> None:
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            if self._frozen:
                self._frozen = False
                gc.unfreeze()
