"""Limits of the HTTP listener of ``digest run`` (used by :func:`digest.web.start_server`).

- **Header and idle timeout** (``idle_timeout``, 15 s): aiohttp's ``keepalive_timeout`` runs from
  the moment a connection opens and again after each response, and bytes that do not complete a
  request header do not reset it. So a connection that has not sent a whole request header within
  that time (a slow or silent client), or that sits idle after a response, is closed.
- **Connection cap** (``max_connections``, 512, and never more than half the process's
  open-file limit; the listen backlog is at most an eighth of it, since asyncio accepts a whole
  backlog before it hands any connection over): at the cap, a new connection closes the oldest connection that is
  not in the middle of a request, so a flood of idle or slow connections cannot lock out
  ``/healthz`` or an unsubscribe click, nor use up the file descriptors the store and the SMTP
  connections need. Only when every connection is busy is the new one answered 503 and closed.
- **Accept errors** ("socket.accept() out of system resource", when the process runs out of file
  descriptors anyway) are logged at most once a minute, with the count since the last line,
  instead of one ERROR line with a traceback per attempt.
- **Malformed requests** (a request line or header over 8,190 bytes, bad syntax) are logged as one
  info line with the client and the error type, never with the bytes received: the first bytes
  of ``/unsubscribe/…`` and ``/rate/…`` are a credential.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["IDLE_TIMEOUT", "MAX_CONNECTIONS", "TOKEN_PREFIXES", "Limiter", "CappedSite", "connection_cap", "install_log_guards"]

log = logging.getLogger("digest.web")

IDLE_TIMEOUT = 15.0  # seconds to send a whole request header, and to stay idle between requests
MAX_CONNECTIONS = 512
ACCEPT_LOG_INTERVAL = 60.0  # seconds between two "cannot accept" lines
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
# Paths whose last part is a credential: /unsubscribe/<token>, /rate/<token> (and the reader's
# rating), /subscribe/confirm/<token> (and the address), /manage/<token>. Logs write <redacted>.
TOKEN_PREFIXES = ("/unsubscribe/", "/rate/", "/subscribe/confirm/", "/manage/")
_TOKEN_PATH = re.compile("(" + "|".join(map(re.escape, TOKEN_PREFIXES)) + r")[^\s'\"?]*")


def connection_cap(max_connections: int) -> int:
    """``max_connections``, but at most half the soft open-file limit: the rest is for
    connections accepted but not yet handed over, those being closed, the store, SMTP
    connections, the helper process and logs."""
    soft = _nofile()
    return max_connections if soft is None else max(8, min(max_connections, soft // 2))


def listen_backlog() -> int:
    """asyncio accepts up to `backlog` connections in one go: keep that within the fd budget."""
    soft = _nofile()
    return 128 if soft is None else max(8, min(128, soft // 8))


def _nofile() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


class _Refusal(asyncio.Protocol):
    """Answers 503 and closes: every connection is busy with a request."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(_REFUSAL)  # type: ignore[attr-defined]
        transport.close()


class Limiter:
    """The protocol factory of the listening socket: aiohttp's, plus the connection cap.
    ``middleware`` marks the connections that are handling a request (never evicted)."""

    def __init__(self, runner: web.AppRunner, cap: int) -> None:
        self.runner = runner
        self.cap = cap
        self.busy: set[object] = set()
        self.evicted = 0
        self.refused = 0
        self._warned = 0.0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        protocol = request.protocol
        self.busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self.busy.discard(protocol)

    def __call__(self) -> asyncio.BaseProtocol:
        server = self.runner.server
        assert server is not None
        live = [h for h in server.connections if h.transport is not None and not h.transport.is_closing()]
        excess = len(live) - self.cap + 1
        if excess > 0:
            idle = [h for h in live if h not in self.busy][:excess]
            for handler in idle:  # the oldest first: connections are kept in accept order
                handler.force_close()
            self.evicted += len(idle)
            if len(idle) < excess:
                self.refused += 1
                self._warn()
                return _Refusal()
            self._warn()
        return server()

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned >= ACCEPT_LOG_INTERVAL:
            self._warned = now
            log.warning("HTTP connection cap reached: closing idle connections",
                        extra={"cap": self.cap, "evicted": self.evicted, "refused": self.refused})


class CappedSite(web.TCPSite):
    """A TCP site whose connections go through a :class:`Limiter`."""

    __slots__ = ("_limiter",)

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, limiter: Limiter, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._limiter = limiter

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._limiter, self._host, self._port, backlog=min(self._backlog, listen_backlog()),
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


class _AcceptErrors:
    """A loop exception handler that turns the accept-error flood into one line a minute."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.count = 0
        self.last = -ACCEPT_LOG_INTERVAL

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.count += 1
        now = time.monotonic()
        if now - self.last >= ACCEPT_LOG_INTERVAL:
            self.last = now
            exc = context.get("exception")
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.error("cannot accept HTTP connections: %s (open-file limit %s); %d time(s) since the last line",
                      getattr(exc, "strerror", None) or exc, soft, self.count)
            self.count = 0


class _ServerLogFilter(logging.Filter):
    """aiohttp.server records: a client's malformed request becomes one info line without its
    bytes; a token in any path is redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "bad HTTP request from %s: %s (%s)", (remote, type(exc).__name__, exc.code)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        message = record.getMessage()
        redacted = _TOKEN_PATH.sub(r"\1<redacted>", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = _ServerLogFilter()


def install_log_guards(loop: asyncio.AbstractEventLoop) -> Any:
    """Install the accept-error handler on ``loop`` and the aiohttp.server filter; returns what
    to give back to ``loop.set_exception_handler`` when the server stops."""
    logger = logging.getLogger("aiohttp.server")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    previous = loop.get_exception_handler()
    loop.set_exception_handler(_AcceptErrors(previous))
    return previous
