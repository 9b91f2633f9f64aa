"""The HTTP side of `digest run` (digest/service.py): the callbacks `Service` gives to
`digest.web.make_app` — unsubscribe, rating, `/subscribe` signups (digest/web_subscribe.py), the
preferences page (digest/service_manage.py) and `/healthz` with its store probe. A mixin of
`Service`, whose state it reads."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from digest.config import Settings
from digest.deliver import Mailer
from digest.metrics import Metrics
from digest.models import OutgoingMessage, Paper, Subscription
from digest.service_manage import ServiceManage
from digest.store import Store
from digest.store.sqlite import SqliteStore
from digest.subscribe import Draft
from digest.subscribe_files import write_subscription
from digest.tokens import ManageLinks
from digest.web import make_app
from digest.web_rate import Rated

__all__ = ["ServiceHttp", "PROBE_TIMEOUT", "PROBE_EVERY"]

PROBE_TIMEOUT = 2.0  # seconds /healthz waits for the store
PROBE_EVERY = 5.0  # seconds a store probe's answer is reused


class ServiceHttp:
    # provided by Service
    settings: Settings
    store: Store
    mailer_factory: Callable[[], Mailer]
    secret: bytes
    old_secrets: tuple[bytes, ...]
    clock: Callable[[], dt.datetime]
    metrics: Metrics
    subs: dict[str, Subscription]
    invalid: dict[str, tuple[str, ...]]
    queue: dict[str, dt.date]
    scheduler: Any
    stopping: asyncio.Event
    last_run: dt.datetime | None
    last_error: str | None
    _probe: tuple[float, str | None] | None
    _probing: asyncio.Future[object] | None
    _papers: tuple[float, list[Paper]] | None  # (monotonic time, papers) of the last fetch

    def reload(self) -> None: ...  # provided by Service

    async def _fetch(self, now: dt.datetime) -> list[Paper]: ...  # provided by Service

    def _app(self):  # noqa: ANN202 - aiohttp Application
        return make_app(
            secret=self.secret,
            old_secrets=self.old_secrets,
            unsubscribe=self._unsubscribe,
            is_known=lambda sub_id: sub_id in self.subs or sub_id in self.invalid,
            health=self.health,
            metrics=self.metrics,
            rate=self._rate,
            subscribe=None if self.settings.signup == "closed" else self._signup_routes(),
            manage=ServiceManage(self),
        )

    # -- /subscribe (digest/web_subscribe.py) ----------------------------------------------

    def _signup_routes(self) -> dict[str, object]:
        return {"signup": self.settings.signup, "public_url": self.settings.public_url,
                "sender": self.settings.sender, "send": self._send_one, "subscribed": self._subscribed,
                "create": self._create_subscription, "clock": self.clock}

    async def _send_one(self, message: OutgoingMessage) -> None:
        """One message (a signup confirmation) through the mailer the digests use."""
        async with self.mailer_factory() as mailer:
            await mailer.send(message)

    def _subscribed(self, email: str) -> str | None:
        """The "Edit your interests" link of the reader with this address, None if there is none."""
        email = email.lower()
        for sub in self.subs.values():
            if sub.email.lower() == email:
                return ManageLinks(self.settings.public_url, self.secret, now=self.clock())(sub.id)
        return None

    def _create_subscription(self, draft: Draft) -> Subscription | None:
        """Write a confirmed signup's file and arm it at once; None: the address has one already."""
        self.reload()  # a file the operator just added counts
        if self._subscribed(draft.email):
            return None
        sub = write_subscription(self.settings.subscriptions_dir, draft, now=self.clock(),
                                 known_ids=set(self.subs) | set(self.invalid), source_names=self.settings.source_names)
        self.reload()
        return self.subs.get(sub.id, sub)

    def _rate(self, sub_id: str, paper_key: str, vote: int) -> Rated:
        # Nothing logged: a reader's ratings are theirs.
        previous = self.store.rate(sub_id, paper_key, vote, now=self.clock())
        return Rated(previous, self.store.titles([paper_key]).get(paper_key))

    def _unsubscribe(self, sub_id: str) -> bool:
        # web.py counts digest_unsubscribes_total and logs the unsubscribe: not again here.
        self.store.unsubscribe(sub_id, now=self.clock())
        return True

    async def health(self) -> dict[str, object]:
        """/healthz: ready (200) only while the scheduler runs, the last run was not halted by the
        relay or the store, and the store answers a read within PROBE_TIMEOUT."""
        running = self.scheduler.running and not self.stopping.is_set()
        times = [j.next_run_time for j in self.scheduler.get_jobs() if not j.id.startswith("_") and j.next_run_time]
        store_error = await self._probe_store()
        return {
            "scheduler_running": running,
            "last_run": self.last_run.isoformat() if self.last_run else None,
            "next_run": min(times).isoformat() if times else None,
            "subscribers": len(self.subs),
            "queued": len(self.queue),
            "ready": running and self.last_error is None and store_error is None,
            "last_error": self.last_error or store_error,
        }

    async def _probe_store(self) -> str | None:
        """None if the store answered a cheap read (cached PROBE_EVERY seconds), else why not.
        SQLite is read on the loop (a WAL read never waits); a network store in a thread, at most
        PROBE_TIMEOUT seconds, one probe at a time."""
        now = time.monotonic()
        if self._probe is not None and now - self._probe[0] < PROBE_EVERY:
            return self._probe[1]
        read = lambda: self.store.editions("\x00healthz", limit=1)  # noqa: E731 - no such reader
        try:
            if isinstance(self.store, SqliteStore):
                read()
            else:
                if self._probing is None or self._probing.done():
                    self._probing = asyncio.ensure_future(asyncio.to_thread(read))
                await asyncio.wait_for(asyncio.shield(self._probing), PROBE_TIMEOUT)
            error = None
        except TimeoutError:
            error = f"store: no answer within {PROBE_TIMEOUT:g} s"
        except Exception as exc:  # StoreError, or a driver error that escaped the store
            error = f"store: {exc}"
        self._probe = (time.monotonic(), error)
        return error
