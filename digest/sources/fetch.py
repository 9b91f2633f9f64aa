"""Fetch every configured source concurrently, parse each, merge within a source; the
implementation behind `digest.sources.fetch_all` (see the package docstring)."""


from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Sequence

import httpx

from digest.errors import SourceError
from digest.models import Paper, SourceResult, SourceSpec

from .feeds import parse_feed_doc
from .hf import hf_page_url, parse_hf_page
from .http import fetch_source_url, fetch_url, local_path, new_client
from .merge import merge

__all__ = ["fetch_all", "KINDS"]

log = logging.getLogger("digest.sources")
KINDS = ("hf_daily", "feed")


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


async def _fetch_hf(spec: SourceSpec, day: dt.date, client: httpx.AsyncClient) -> tuple[list[Paper], dict]:
    papers: list[Paper] = []
    warnings: list[str] = []
    requests = 0
    if local_path(spec.url) is not None:
        fetched = await fetch_source_url(spec.url, spec, client)
        page = await asyncio.to_thread(parse_hf_page, fetched.body, source=spec.name)
        return page.papers, {"requests": 0, "warnings": page.warnings}
    seen: dict[bytes, str] = {}  # digest of each non-empty body -> where it was first seen
    for back in range(max(1, spec.lookback_days)):
        date = day - dt.timedelta(days=back)
        for p in range(max(1, spec.max_pages)):
            url = hf_page_url(spec.url, date, p, spec.page_size)
            fetched = await fetch_url(url, spec, client)
            requests += fetched.attempts
            here = f"{date} p={p}"
            digest = hashlib.sha256(fetched.body).digest()
            if digest in seen:  # a static mirror: the same body whatever `p` and `date` say
                warnings.append(f"{here}: page repeats {seen[digest]} (the server ignores paging); stopped")
                break
            page = await asyncio.to_thread(
                parse_hf_page, fetched.body, source=spec.name, content_type=fetched.content_type
            )
            if page.items:
                seen[digest] = here
            papers += page.papers
            warnings += [f"{here}: {w}" for w in page.warnings]
            if page.items > spec.page_size:
                warnings.append(f"{here}: {page.items} items for limit={spec.page_size} "
                                "(the server ignores limit); not paging further")  # fmt: skip
                break
            if page.items < spec.page_size:
                break
    return papers, {"requests": requests, "warnings": warnings}


async def _fetch_feed(spec: SourceSpec, client: httpx.AsyncClient) -> tuple[list[Paper], dict]:
    fetched = await fetch_source_url(spec.url, spec, client)
    doc = await asyncio.to_thread(
        parse_feed_doc, fetched.body, source=spec.name, content_type=fetched.content_type
    )
    return doc.papers, {"requests": fetched.attempts if local_path(spec.url) is None else 0,
                        "warnings": doc.warnings}  # fmt: skip


async def _run(spec: SourceSpec, day: dt.date, client: httpx.AsyncClient) -> SourceResult:
    start = time.monotonic()
    extra: dict[str, object] = {"kind": spec.kind}
    try:
        if spec.kind == "hf_daily":
            papers, more = await _fetch_hf(spec, day, client)
        elif spec.kind == "feed":
            papers, more = await _fetch_feed(spec, client)
        else:
            raise SourceError(f"unknown source kind {spec.kind!r} (expected one of {', '.join(KINDS)})")
    except SourceError as e:
        error = _one_line(str(e)) or "failed"
    except Exception as e:  # a bug or an unforeseen input must not take the other sources down
        error = _one_line(f"unexpected {type(e).__name__}: {e}")
    else:
        extra.update(more)
        # one Paper per key inside a source too (days overlap, feeds repeat items)
        merged = merge([SourceResult(spec.name, tuple(papers), extra={"kind": spec.kind})])
        if not merged:
            extra["note"] = "empty"
        for w in more.get("warnings", [])[:5]:
            log.warning("source %s: %s", spec.name, _one_line(w))
        return SourceResult(spec.name, tuple(merged), None, time.monotonic() - start, extra)
    log.warning("source %s failed: %s", spec.name, error)
    return SourceResult(spec.name, (), error, time.monotonic() - start, extra)


async def fetch_all(
    specs: Sequence[SourceSpec], *, day: dt.date, client: httpx.AsyncClient | None = None
) -> list[SourceResult]:
    """Fetch and parse every source concurrently: one SourceResult per spec, in spec order."""
    own = client is None
    client = client or new_client()
    try:
        return list(await asyncio.gather(*(_run(spec, day, client) for spec in specs)))
    finally:
        if own:
            await client.aclose()
