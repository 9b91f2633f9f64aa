"""/healthz readiness (issue 12, item 5): a store that cannot be read, or does not answer, makes
the service not ready, with the reason, within a bounded time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from digest.config import Settings
from digest.service import PROBE_TIMEOUT, Service
from digest.store import open_store


def _service(store) -> Service:
    return Service(Settings(), store=store, mailer_factory=lambda: None, secret=b"k" * 32)  # type: ignore[arg-type]


def test_a_closed_sqlite_store_is_not_ready(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'd.db'}")

    async def main() -> tuple[dict, dict]:
        service = _service(store)
        ok = await service.health()
        store.close()  # the database can no longer be read
        service._probe = None  # skip the cache, as PROBE_EVERY seconds later
        return ok, await service.health()

    ok, down = asyncio.run(main())
    assert ok["last_error"] is None
    assert down["ready"] is False and down["last_error"].startswith("store: ")


class _HangingStore:
    """A network store whose server stopped answering (PostgreSQL behind a dead link)."""

    def editions(self, subscriber_id: str, limit: int = 10) -> list:
        time.sleep(PROBE_TIMEOUT + 1.5)
        return []


def test_a_store_that_does_not_answer_is_not_ready_within_the_probe_timeout() -> None:
    async def main() -> tuple[dict, float]:
        service = _service(_HangingStore())
        started = time.monotonic()
        health = await service.health()
        return health, time.monotonic() - started

    health, took = asyncio.run(main())
    assert health["ready"] is False
    assert health["last_error"] == f"store: no answer within {PROBE_TIMEOUT:g} s"
    assert took < PROBE_TIMEOUT + 1.0
