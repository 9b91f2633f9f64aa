"""What the preferences page (digest/web_manage.py) needs of `digest run`: the reader's file (read
and rewritten by digest/manage_files.py, inside `subscriptions_dir` only), a preview from the real
ranker over the papers the service fetched last, the reader's ratings, and re-arming the reader at
once after a save.

The preview never waits for the network: it ranks the papers of the service's last fetch (kept
`fetch_ttl` for the sends, and for previews until the next fetch). When the service has fetched
nothing yet (just started, no edition sent), the page says so and a fetch starts in the
background (one at a time; it is the service's own, cached like a send's), so a second Preview
a little later has papers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from digest.manage import Prefs, Preview, PreviewPaper, RatingRow, with_prefs
from digest.manage_files import Changed, Loaded, Refused, Saved, read_subscription, rewrite_subscription, subscription_file
from digest.models import Paper, ScoredPaper
from digest.render.context import MORE_SHOWN
from digest.render.textutil import clean, safe_url
from digest.schedule import next_fire
from digest.store import FINISHED

if TYPE_CHECKING:
    from digest.rank import Ranker
    from digest.service_http import ServiceHttp

__all__ = ["ServiceManage", "STALE_AFTER"]

log = logging.getLogger("digest.service")

STALE_AFTER = dt.timedelta(hours=20)  # papers older than this: a preview starts a fresh fetch


class ServiceManage:
    """The `ManageBackend` of `digest run` (one per service)."""

    def __init__(self, service: ServiceHttp) -> None:
        self.service = service
        self._ranker: tuple[list[Paper], Ranker] | None = None
        self._fetching: asyncio.Task[object] | None = None

    # -- the file ---------------------------------------------------------------------------

    def known(self, sub_id: str) -> bool:
        return sub_id in self.service.subs or sub_id in self.service.invalid

    def _path(self, sub_id: str):  # noqa: ANN202 - Path | None
        sub = self.service.subs.get(sub_id)
        return subscription_file(self.service.settings.subscriptions_dir, sub_id, sub.path if sub else None)

    def load(self, sub_id: str) -> Loaded | None:
        path = self._path(sub_id)
        if path is None:
            return None
        try:
            return read_subscription(path, self.service.settings.source_names)
        except OSError:
            return None

    def save(self, sub_id: str, prefs: Prefs, version: str) -> Saved | Changed | Refused:
        path = self._path(sub_id)
        if path is None:
            return Refused(("this subscription cannot be edited here",))
        result = rewrite_subscription(path, prefs, version, self.service.settings.source_names)
        if isinstance(result, Saved) and result.changed:
            self.service.reload()  # re-armed at once for the new time, and the next edition ranks with it
        return result

    def next_digest(self, sub_id: str) -> str:
        sub = self.service.subs.get(sub_id)
        if sub is None:
            return ""
        if sub.paused:
            return "Your digest is paused: nothing is sent until you resume it."
        now = self.service.clock()
        day, when = next_fire(sub, now)
        record = self.service.store.edition(sub.id, day)
        if record is not None and record.status in FINISHED:  # today's went out already
            day, when = next_fire(sub, when)
        local = when.astimezone(ZoneInfo(sub.timezone))
        return f"Your next digest: {local:%A} {local.day} {local:%B}, at {local:%H:%M} ({sub.timezone})."

    # -- the store --------------------------------------------------------------------------

    def ratings(self, sub_id: str) -> list[RatingRow]:
        from digest.rank.vectors import VECTOR_MODEL

        rated = self.service.store.ratings_many([sub_id], VECTOR_MODEL).get(sub_id, [])
        rows = [RatingRow(r.key, clean(r.title), r.vote, r.rated_at) for r in rated if r.vote]
        return sorted(rows, key=lambda r: (r.rated_at is None, -(r.rated_at.timestamp() if r.rated_at else 0), r.key))

    def rate(self, sub_id: str, paper_key: str, vote: int) -> int | None:
        """Remove (0) or put back a rating; None for a paper the reader never rated and that the
        store does not know (nothing recorded)."""
        store = self.service.store
        if vote != 0 and not store.titles([paper_key]):
            return None
        return store.rate(sub_id, paper_key, vote, now=self.service.clock())

    def unsubscribed(self, sub_id: str) -> dt.datetime | None:
        return self.service.store.subscriber(sub_id).unsubscribed_at

    def resubscribe(self, sub_id: str) -> None:
        self.service.store.resubscribe(sub_id)

    # -- the preview ------------------------------------------------------------------------

    def preview(self, sub_id: str, prefs: Prefs) -> Preview:
        service = self.service
        sub = service.subs.get(sub_id)
        cached = service._papers
        now = service.clock()
        fetched_at = None if cached is None else now - dt.timedelta(seconds=time.monotonic() - cached[0])
        if fetched_at is None or now - fetched_at > STALE_AFTER:
            self._refresh()
        if sub is None or cached is None:
            return Preview()
        papers = cached[1]
        ranker = self._ranker_for(papers, now)
        from digest.pipeline import local_date, plan
        from digest.ratings import load_ratings

        wanted = with_prefs(sub, prefs)
        rated = load_ratings(service.store, [sub_id]).get(sub_id, [])
        edition = plan(wanted, ranker, seen=set(), papers=papers, edition_date=local_date(wanted, now), rated=rated)
        seen = service.store.seen(sub_id)

        def view(sp: ScoredPaper) -> PreviewPaper:
            return PreviewPaper(clean(sp.paper.title) or "(untitled)", safe_url(sp.paper.url), clean(sp.why),
                                sp.paper.key in seen)

        return Preview(
            papers=tuple(view(sp) for sp in edition.papers),
            more=tuple(view(sp) for sp in edition.more_papers[:MORE_SHOWN]),
            more_total=max(edition.more, len(edition.more_papers)),
            fetched_at=fetched_at,
            considered=len(papers),
        )

    def _ranker_for(self, papers: list[Paper], now: dt.datetime) -> Ranker:
        """One Ranker per fetch (its indexes are the costly part), reused by every preview."""
        if self._ranker is not None and self._ranker[0] is papers:
            return self._ranker[1]
        from digest.ratings import ranker_for

        ranker = ranker_for(self.service.store, papers, now=now, semantic=self.service.settings.semantic)
        self._ranker = (papers, ranker)
        return ranker

    def _refresh(self) -> None:
        """Start the service's fetch in the background, unless one is running."""
        if self._fetching is not None and not self._fetching.done():
            return
        fetch = getattr(self.service, "_fetch", None)
        if fetch is None:  # pragma: no cover - a ServiceHttp without the scheduler side
            return
        self._fetching = asyncio.get_running_loop().create_task(fetch(self.service.clock()))
        self._fetching.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("fetch for a preview failed: %s", type(task.exception()).__name__)

