"""fetch_all against a real local HTTP server (aiohttp on 127.0.0.1, port 0): paging, local files,
and a fault matrix in which every bad source is skipped with its reason, within its time limit,
while a good source in the same fetch_all still returns papers."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import re
import socket
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiohttp import web

from digest import __version__
from digest.models import SourceResult, SourceSpec
from digest.sources import fetch_all, http

DATA = Path(__file__).parent / "data"
HF = (DATA / "hf_daily_papers.json").read_bytes()
RSS = (DATA / "arxiv_rss_cs_CL.xml").read_bytes()
DAY = dt.date(2025, 10, 9)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _gzip_bomb(size: int = 20_000_000) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # ~1000:1
    block = b"\0" * 1_000_000
    return b"".join(c.compress(block) for _ in range(size // len(block))) + c.flush()


@functools.cache
def bomb() -> bytes:
    return _gzip_bomb()


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_INITIAL", 0.05)


class Server:
    """A real aiohttp server on 127.0.0.1:<free port> that records every request it sees."""

    def __init__(self, routes: dict[str, Handler], ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.seen: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.app = web.Application(middlewares=[self._record])
        self.app.router.add_get("/rss", self._static(RSS, "application/rss+xml"))
        for path, handler in routes.items():
            self.app.router.add_get(path, handler)
        self.port = 0

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.seen.append((request.path, dict(request.query), dict(request.headers)))
        return await handler(request)

    @staticmethod
    def _static(body: bytes, ctype: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=ctype)

        return handler

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.seen]

    async def __aenter__(self) -> Server:
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.1, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def spec(name: str, url: str, kind: str = "feed", **kw: Any) -> SourceSpec:
    kw.setdefault("timeout", 2.0)
    kw.setdefault("retries", 2)
    kw.setdefault("allow_private", True)
    return SourceSpec(name=name, kind=kind, url=url, **kw)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def assert_good(good: SourceResult) -> None:
    assert good.ok and len(good.papers) == 8, good.error


# --- happy paths -----------------------------------------------------------------------------


def test_hf_daily_paging_and_dates_seen_by_server() -> None:
    items = json.loads(HF)

    async def daily(request: web.Request) -> web.Response:
        q = request.query
        if q["date"] != "2025-10-09":
            return web.json_response([])
        p, limit = int(q["p"]), int(q["limit"])
        return web.json_response(items[p * limit : (p + 1) * limit])

    async def main() -> tuple[list[SourceResult], Server]:
        async with Server({"/api/daily_papers": daily}) as s:
            hf = spec("hf", s.url("/api/daily_papers?sort=trending"), kind="hf_daily", page_size=3, lookback_days=2)
            capped = spec("capped", s.url("/api/daily_papers"), kind="hf_daily", page_size=3, lookback_days=1,
                          max_pages=2)  # fmt: skip
            return await fetch_all([hf, spec("rss", s.url("/rss")), capped], day=DAY), s

    (hf, rss, capped), server = run(main())
    assert hf.ok and len(hf.papers) == 8 and rss.ok and len(rss.papers) == 8
    assert hf.extra["kind"] == "hf_daily" and hf.extra["requests"] == 4
    assert len(capped.papers) == 6
    hf_seen = [(q["date"], q["p"], q["limit"], q.get("sort")) for path, q, _ in server.seen
               if path == "/api/daily_papers" and "sort" in q]  # fmt: skip
    assert hf_seen == [("2025-10-09", "0", "3", "trending"), ("2025-10-09", "1", "3", "trending"),
                       ("2025-10-09", "2", "3", "trending"), ("2025-10-08", "0", "3", "trending")]  # fmt: skip
    capped_seen = [(q["date"], q["p"]) for path, q, _ in server.seen if path == "/api/daily_papers" and "sort" not in q]
    assert capped_seen == [("2025-10-09", "0"), ("2025-10-09", "1")]
    assert {h["User-Agent"] for _, _, h in server.seen} == {f"digest/{__version__}"}


def test_local_files_and_empty_days(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"[]")

    async def empty(request: web.Request) -> web.Response:
        return web.json_response([])

    async def main() -> list[SourceResult]:
        async with Server({"/empty": empty}) as s:
            return await fetch_all([
                spec("hf-file", str(DATA / "hf_daily_papers.json"), kind="hf_daily"),
                spec("api-file", (DATA / "arxiv_api_atom.xml").as_uri()),
                spec("hf-empty", s.url("/empty"), kind="hf_daily"),
                spec("hf-empty-file", str(tmp_path / "empty.json"), kind="hf_daily"),
                spec("missing", str(tmp_path / "nope.xml")),
                spec("weird", "gopher://x/1"),
                spec("unknown", str(DATA / "arxiv_api_atom.xml"), kind="magic"),
            ], day=DAY)  # fmt: skip

    hf, api, empty_http, empty_file, missing, weird, unknown = run(main())
    assert len(hf.papers) == 8 and len(api.papers) == 5
    assert empty_http.ok and empty_http.papers == () and empty_http.extra["note"] == "empty"
    assert empty_file.ok and empty_file.extra["note"] == "empty"
    assert missing.error == f"no such file: {tmp_path / 'nope.xml'}"
    assert weird.error == "unsupported URL scheme: gopher"
    assert unknown.error.startswith("unknown source kind 'magic'")


def test_500_then_recovery_and_429_retry_after() -> None:
    counts = {"flaky": 0, "limited": 0}

    async def flaky(request: web.Request) -> web.Response:
        counts["flaky"] += 1
        if counts["flaky"] == 1:
            return web.Response(status=500, text="boom")
        return web.Response(body=RSS, content_type="application/rss+xml")

    async def limited(request: web.Request) -> web.Response:
        counts["limited"] += 1
        if counts["limited"] == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(body=RSS, content_type="application/rss+xml")

    async def main() -> tuple[list[SourceResult], float]:
        async with Server({"/flaky": flaky, "/limited": limited}) as s:
            start = time.monotonic()
            res = await fetch_all([spec("flaky", s.url("/flaky")), spec("limited", s.url("/limited"), timeout=3)], day=DAY)
            return res, time.monotonic() - start

    (flaky_r, limited_r), elapsed = run(main())
    assert flaky_r.ok and len(flaky_r.papers) == 8 and flaky_r.extra["requests"] == 2
    assert limited_r.ok and limited_r.extra["requests"] == 2
    assert counts == {"flaky": 2, "limited": 2}
    assert 1.0 <= elapsed < 2.5  # Retry-After honoured


# --- the fault matrix ------------------------------------------------------------------------


async def h_404(request: web.Request) -> web.Response:
    return web.Response(status=404, text="not here")


async def h_503(request: web.Request) -> web.Response:
    return web.Response(status=503, text="down")


async def h_429_long(request: web.Request) -> web.Response:
    return web.Response(status=429, headers={"Retry-After": "3600"})


async def h_truncated(request: web.Request) -> web.Response:
    return web.Response(body=HF[:5000], content_type="application/json")


async def h_html(request: web.Request) -> web.Response:
    return web.Response(text="<!DOCTYPE html><html><body>Sign in</body></html>", content_type="text/html")


async def h_object(request: web.Request) -> web.Response:
    return web.json_response({"error": "Invalid date"})


async def h_bozo(request: web.Request) -> web.Response:
    return web.Response(text="<html><body><p>Maintenance<br></body></html>", content_type="text/html")


async def h_never(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def h_trickle(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
    await resp.prepare(request)
    for _ in range(100):
        await resp.write(b" ")
        await asyncio.sleep(0.2)
    return resp


async def h_big(request: web.Request) -> web.Response:
    return web.Response(body=RSS + b" " * 300_000, content_type="application/rss+xml")


async def h_big_chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
    await resp.prepare(request)
    for _ in range(40):
        await resp.write(b" " * 10_000)
    return resp


async def h_bomb(request: web.Request) -> web.Response:
    return web.Response(body=bomb(), headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"})


def redirect(location: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        loc = location.replace("{n+1}", str(int(request.match_info.get("n", "0")) + 1))
        return web.Response(status=302, headers={"Location": loc})

    return handler


LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "aaaaaaaaaa">\n'
          + b"".join(f'<!ENTITY a{i} "{("&a" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode() for i in range(1, 10))
          + b']>\n<rss version="2.0"><channel><title>&a9;</title></channel></rss>')  # fmt: skip
XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
       b'<rss version="2.0"><channel><title>t</title><item><title>&x;</title><link>http://a.example/</link></item></channel></rss>')  # fmt: skip

ROUTES: dict[str, Handler] = {
    "/404": h_404, "/503": h_503, "/429": h_429_long, "/truncated": h_truncated, "/html": h_html,
    "/object": h_object, "/bozo": h_bozo, "/never": h_never, "/trickle": h_trickle, "/big": h_big,
    "/big-chunked": h_big_chunked, "/bomb": h_bomb,
    "/loop/a": redirect("/loop/b"), "/loop/b": redirect("/loop/a"), "/hop/{n}": redirect("/hop/{n+1}"),
    "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
    "/to-fe80": redirect("http://[fe80::1]/feed"), "/to-mapped": redirect("http://[::ffff:169.254.169.254]/"),
    "/to-file": redirect("file:///etc/passwd"),
    "/laughs": Server._static(LAUGHS, "application/rss+xml"), "/xxe": Server._static(XXE, "application/rss+xml"),
}  # fmt: skip

# (case id, path, kind, spec overrides, error pattern (re.match), max seconds)
FAULTS: list[tuple[str, str, str, dict[str, Any], str, float]] = [
    ("404", "/404", "feed", {}, r"HTTP 404 from http://127\.0\.0\.1:\d+/404$", 1.0),
    ("503-always", "/503", "feed", {}, r"HTTP 503 from http://127\.0\.0\.1:\d+/503 \(3 attempts\)$", 1.5),
    ("429-retry-after-too-long", "/429", "feed", {}, r"HTTP 429 from .*/429; Retry-After 3600 s is past the deadline$", 1.0),
    ("truncated-json", "/truncated", "hf_daily", {"lookback_days": 1}, r"truncated JSON at line \d+ column \d+$", 1.0),
    ("html-not-json", "/html", "hf_daily", {}, r"not JSON: got text/html$", 1.0),
    ("json-object", "/object", "hf_daily", {}, r"expected a JSON list of papers, got an object: Invalid date$", 1.0),
    ("bozo-feed", "/bozo", "feed", {}, r"feed is not well-formed XML: mismatched tag at line \d+ \(got text/html\)$", 1.0),
    ("never-answers", "/never", "feed", {"timeout": 0.5}, r"timed out after 0\.5 s fetching .*/never$", 1.3),
    ("trickle", "/trickle", "feed", {"timeout": 0.5}, r"timed out after 0\.5 s", 1.2),
    ("too-big", "/big", "feed", {"max_bytes": 100_000}, r"body larger than 100000 bytes \(Content-Length \d+\)$", 1.0),
    ("too-big-chunked", "/big-chunked", "feed", {"max_bytes": 100_000}, r"body larger than 100000 bytes$", 1.0),
    ("gzip-bomb", "/bomb", "feed", {"max_bytes": 1_000_000}, r"body larger than 1000000 bytes$", 1.0),
    ("redirect-loop", "/loop/a", "feed", {}, r"redirect loop at http://127\.0\.0\.1:\d+/loop/a$", 1.0),
    ("too-many-redirects", "/hop/0", "feed", {}, r"too many redirects \(more than 5\)", 1.0),
    ("redirect-to-metadata", "/to-metadata", "feed", {}, r"refused: 169\.254\.169\.254 is a link-local address$", 1.0),
    ("redirect-to-fe80", "/to-fe80", "feed", {}, r"refused: fe80::1 is a link-local address$", 1.0),
    ("redirect-to-mapped", "/to-mapped", "feed", {}, r"refused: ::ffff:a9fe:a9fe is a link-local address$", 1.0),
    ("redirect-to-file", "/to-file", "feed", {}, r"refused: redirect to a non-HTTP URL file:///etc/passwd$", 1.0),
    ("billion-laughs", "/laughs", "feed", {}, r"feed declares XML entities", 1.0),
    ("external-entity", "/xxe", "feed", {}, r"feed declares XML entities", 1.0),
]  # fmt: skip


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fault_run() -> tuple[dict[str, SourceResult], list[logging.LogRecord], float]:
    """Every fault at once, next to one good source, in ONE fetch_all (it is also faster)."""
    logger = logging.getLogger("digest.sources")
    records = _Records()
    logger.addHandler(records)

    async def main() -> tuple[list[SourceResult], float]:
        async with Server(ROUTES) as s:
            specs = [spec("good", s.url("/rss"))]
            specs += [spec(case, s.url(path), kind=kind, **over) for case, path, kind, over, _, _ in FAULTS]
            start = time.monotonic()
            results = await fetch_all(specs, day=DAY)
            return results, time.monotonic() - start

    bomb()  # built before the server starts: it must not block the loop mid-run
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(http, "BACKOFF_INITIAL", 0.05)
            results, total = run(main())
    finally:
        logger.removeHandler(records)
    return {r.name: r for r in results}, records.records, total


@pytest.mark.parametrize(("case", "pattern", "limit"), [(f[0], f[4], f[5]) for f in FAULTS],
                         ids=[f[0] for f in FAULTS])  # fmt: skip
def test_fault_matrix(case: str, pattern: str, limit: float,
                      fault_run: tuple[dict[str, SourceResult], list[logging.LogRecord], float]) -> None:  # fmt: skip
    results, records, total = fault_run
    assert_good(results["good"])
    bad = results[case]
    assert not bad.ok and bad.papers == ()
    assert re.match(pattern, bad.error), bad.error
    assert "\n" not in bad.error
    assert bad.elapsed < limit
    lines = [r.getMessage() for r in records if r.getMessage().startswith(f"source {case} ")]
    assert lines == [f"source {case} failed: {bad.error}"]
    assert all(r.exc_info is None for r in records)
    assert total < max(f[5] for f in FAULTS) + 0.5


def test_private_address_refused_without_any_connection() -> None:
    async def main() -> tuple[list[SourceResult], Server]:
        async with Server({}) as s:
            res = await fetch_all([
                spec("good", s.url("/rss")),
                spec("loopback", s.url("/rss?private"), allow_private=False),
                spec("localhost", f"http://localhost:{s.port}/rss?named", allow_private=False),
                spec("metadata", "http://169.254.169.254/latest/meta-data/", allow_private=True),
            ], day=DAY)  # fmt: skip
            return res, s

    (good, loopback, localhost, metadata), server = run(main())
    assert_good(good)
    assert loopback.error == "refused: 127.0.0.1 is a loopback address"
    assert localhost.error in ("refused: 127.0.0.1 is a loopback address (localhost)",
                               "refused: ::1 is a loopback address (localhost)")  # fmt: skip
    assert metadata.error == "refused: 169.254.169.254 is a link-local address"
    assert [q for _, q, _ in server.seen] == [{}]  # only the good source reached the server


def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> list[SourceResult]:
        async with Server({}) as s:
            return await fetch_all([spec("good", s.url("/rss")), spec("down", f"http://127.0.0.1:{port}/x")], day=DAY)

    good, down = run(main())
    assert_good(good)
    assert down.error.startswith(f"connection error from http://127.0.0.1:{port}/x")
    assert down.error.endswith("(3 attempts)")


def test_https_checks_the_certificate_against_the_name_not_the_address() -> None:
    ca = trustme.CA()
    good_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(good_ctx)
    wrong_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(wrong_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> list[SourceResult]:
        async with Server({}, good_ctx) as good, Server({}, wrong_ctx) as wrong:
            async with httpx.AsyncClient(verify=client_ctx) as client:
                return await fetch_all([spec("tls", f"https://localhost:{good.port}/rss"),
                                        spec("mismatch", f"https://localhost:{wrong.port}/rss")],
                                       day=DAY, client=client)  # fmt: skip

    ok, mismatch = run(main())
    assert ok.ok and len(ok.papers) == 8, ok.error
    assert re.match(r"TLS certificate rejected by https://localhost:\d+/rss: .*Hostname mismatch", mismatch.error)
