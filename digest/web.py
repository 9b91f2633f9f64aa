"""The HTTP side of ``digest run``: ``/healthz``, ``/metrics``, one-click unsubscribe, the
rating links (``/rate/<token>``, digest/web_rate.py), the signup page (digest/web_subscribe.py)
and the preferences page (``/manage/<token>``, digest/web_manage.py).

Built on :mod:`aiohttp.web`; knows nothing of the pipeline or the store, only the callbacks given
to :func:`make_app`.

Unsubscribe (RFC 8058):

- ``POST /unsubscribe/<token>`` unsubscribes at once when the token's signature is valid and the
  subscriber is known; it answers 200 with a short "You are unsubscribed" page. This serves both the
  mail provider's one-click POST (body ``List-Unsubscribe=One-Click``, no cookies, no login) and the
  button of the confirmation page. The signed token is the only credential: the body, cookies
  and any Authorization header are ignored. Repeating it is harmless (the callback should treat
  an already-unsubscribed reader as success).
- ``GET`` (and ``HEAD``) ``/unsubscribe/<token>`` never changes anything, so link scanners and
  prefetchers cannot unsubscribe anyone; it shows a self-contained page with an "Unsubscribe"
  button that POSTs ``List-Unsubscribe=One-Click`` to the same URL.
- A forged, altered, truncated or unknown token gets 400 and one generic page, the same for
  every case, and nothing is called.

Every response carries ``Cache-Control: no-store``, ``Referrer-Policy: no-referrer``,
``X-Content-Type-Options: nosniff`` and a restrictive Content-Security-Policy. Tokens are never
logged: the access log writes ``/unsubscribe/<redacted>``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .metrics import CONTENT_TYPE, Metrics, render_latest
from .tokens import verify_token
from .web_listen import IDLE_TIMEOUT, MAX_CONNECTIONS, TOKEN_PREFIXES, CappedSite, Limiter, connection_cap, install_log_guards

__all__ = ["make_app", "start_server", "stop_server", "RunningServer", "RedactingAccessLogger"]

log = logging.getLogger("digest.web")

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_MAX_BODY = 16 * 1024  # a one-click POST body is 26 bytes

_SECRET_KEY = web.AppKey("secret", bytes)
_OLD_KEY = web.AppKey("old_secrets", tuple)
_UNSUB_KEY = web.AppKey("unsubscribe", object)
_KNOWN_KEY = web.AppKey("is_known", object)
_HEALTH_KEY = web.AppKey("health", object)
_METRICS_KEY = web.AppKey("metrics", Metrics)

# The digest's typography and colours (templates/digest.html): the same card on the same grey,
# the same dark palette, edge to edge on a phone.
_STYLE = (
    "*{box-sizing:border-box}:root{color-scheme:light dark}"
    "body{margin:0;padding:1.5rem 1rem;font:16px/1.5 -apple-system,BlinkMacSystemFont,'Segoe UI',"
    "Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#f3f4f6}"
    "main{max-width:28rem;margin:0 auto;padding:1.5rem;background:#fff;border:1px solid #e1e4e8;"
    "border-radius:8px;overflow-wrap:anywhere}"
    "h1{font-size:1.375rem;line-height:1.3;margin:0 0 .75rem}p{margin:0 0 1rem}a{color:#0b57d0}"
    "button{display:block;width:100%;padding:.75rem 1rem;font:inherit;font-weight:600;"
    "color:#fff;background:#cf222e;border:0;border-radius:6px;cursor:pointer}"
    "button:focus{outline:3px solid #0969da;outline-offset:2px}"
    "@media (prefers-color-scheme:dark){body{color:#e6edf3;background:#0d1117}"
    "main{background:#161b22;border-color:#30363d}a{color:#79b8ff}}"
    "@media (max-width:480px){body{padding:0}main{border-radius:0;border-left:0;border-right:0;padding:1rem .875rem}}"
)


def _page(title: str, body: str, *, extra_style: str = "") -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"robots\" content=\"noindex, nofollow\">"
        f"<title>{title}</title><style>{_STYLE}{extra_style}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


# Static pages: no user data is ever interpolated, so nothing here can be injected.
CONFIRM_PAGE = _page(
    "Unsubscribe",
    "<h1>Unsubscribe from the paper digest?</h1>"
    "<p>You will stop receiving these emails. Nothing else is needed.</p>"
    '<form method="post">'
    '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">Unsubscribe</button></form>',
)
DONE_PAGE = _page(
    "Unsubscribed",
    "<h1>You are unsubscribed</h1><p>You will not receive any more digests.</p>",
)
INVALID_PAGE = _page(
    "Invalid link",
    "<h1>This link is not valid</h1>"
    "<p>It may be incomplete. Open the unsubscribe link from a recent digest email, or use your "
    "mail program's unsubscribe button.</p>",
)
ERROR_PAGE = _page(
    "Try again later",
    "<h1>Something went wrong</h1><p>Nothing was changed. Please try again in a few minutes.</p>",
)


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _ignore_body(request: web.Request) -> None:
    """Read and drop a POST body whose content does not matter (a signed token in the URL is the
    only credential); too large still answers 413."""
    try:
        await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception:  # a broken body changes nothing
        pass


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _healthz(request: web.Request) -> web.Response:
    health = request.app[_HEALTH_KEY]
    try:
        data = dict(await _maybe_await(health()))  # type: ignore[operator]
    except Exception:
        log.exception("health callback failed")
        data = {"scheduler_running": False, "error": "health check failed"}
    # 503 when the scheduler is down or the last run could not send (relay or store failing)
    status = 200 if data.get("scheduler_running") and data.get("ready", True) else 503
    return web.Response(
        text=json.dumps(data, default=str), status=status, content_type="application/json"
    )


async def _metrics(request: web.Request) -> web.Response:
    body = render_latest(request.app[_METRICS_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _known_id(request: web.Request) -> str | None:
    """The subscriber id of a valid token for a known subscriber, else None."""
    app = request.app
    subscriber_id = verify_token(request.match_info["token"], app[_SECRET_KEY], old_secrets=app[_OLD_KEY])
    if subscriber_id is None:
        return None
    if not await _maybe_await(request.app[_KNOWN_KEY](subscriber_id)):  # type: ignore[operator]
        return None
    return subscriber_id


async def _unsubscribe_get(request: web.Request) -> web.Response:
    try:
        subscriber_id = await _known_id(request)
    except Exception:
        log.exception("unsubscribe lookup failed")
        return _html(ERROR_PAGE, 503)
    if subscriber_id is None:
        return _html(INVALID_PAGE, 400)
    return _html(CONFIRM_PAGE)


async def _unsubscribe_post(request: web.Request) -> web.Response:
    # The body (List-Unsubscribe=One-Click) is read and ignored: the signed token is the only
    # credential, and a provider that sends another content type must still work.
    await _ignore_body(request)
    try:
        subscriber_id = await _known_id(request)
        if subscriber_id is None:
            return _html(INVALID_PAGE, 400)
        done = await _maybe_await(request.app[_UNSUB_KEY](subscriber_id))  # type: ignore[operator]
    except Exception:
        log.exception("unsubscribe failed")
        return _html(ERROR_PAGE, 503)
    if done is False:  # the store says no such subscriber: same answer as a forged token
        return _html(INVALID_PAGE, 400)
    request.app[_METRICS_KEY].unsubscribes.inc()
    log.info("unsubscribed via web", extra={"subscriber": subscriber_id})
    return _html(DONE_PAGE)


def make_app(
    *,
    secret: bytes,
    old_secrets: Iterable[bytes] = (),
    unsubscribe: Callable[[str], Awaitable[bool] | bool],
    is_known: Callable[[str], bool],
    health: Callable[[], dict],
    metrics: Metrics,
    rate: Callable[[str, str, int], Any] | None = None,
    subscribe: dict[str, Any] | None = None,
    manage: Any = None,
) -> web.Application:
    """The aiohttp application. ``unsubscribe(id)`` is called only on a POST with a valid token
    for a known subscriber and returns True once the reader is unsubscribed (False: unknown).
    ``is_known(id)`` says whether a subscriber exists (also True for one already unsubscribed).
    ``health()`` returns at least ``scheduler_running``, ``last_run`` and ``next_run``. Callbacks
    may be plain functions (keep them quick: they run on the event loop) or coroutines.
    With ``rate(id, paper_key, vote)`` (returning a ``web_rate.Rated``), the rating links of the
    digests are served too (digest/web_rate.py). With ``subscribe`` (the keyword arguments of
    ``web_subscribe.add_subscribe_routes`` but the secrets), ``/subscribe`` is served too; with
    ``manage`` (a ``web_manage.ManageBackend``), the "Edit your interests" page ``/manage/<token>``. Links
    signed with one of ``old_secrets`` are accepted too (key rotation); new ones are always signed with ``secret``."""
    if not secret:
        raise ValueError("the unsubscribe secret must not be empty")
    app = web.Application(client_max_size=_MAX_BODY)
    app[_SECRET_KEY] = bytes(secret)
    app[_OLD_KEY] = old = tuple(bytes(k) for k in old_secrets if k)
    app[_UNSUB_KEY] = unsubscribe
    app[_KNOWN_KEY] = is_known
    app[_HEALTH_KEY] = health
    app[_METRICS_KEY] = metrics
    app.on_response_prepare.append(_add_security_headers)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/unsubscribe/{token}", _unsubscribe_get)
    app.router.add_post("/unsubscribe/{token}", _unsubscribe_post)
    if rate is not None:
        from .web_rate import add_rate_routes

        add_rate_routes(app, secret=secret, old_secrets=old, rate=rate, is_known=is_known)
    if subscribe is not None:
        from .web_subscribe import add_subscribe_routes

        add_subscribe_routes(app, secret=secret, old_secrets=old, **subscribe)
    if manage is not None:
        from .web_manage import add_manage_routes

        add_manage_routes(app, secret=secret, old_secrets=old, backend=manage)
    return app


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines without the unsubscribe token (it is a credential). Probes of
    ``/healthz`` and ``/metrics`` (every few seconds) are logged at debug level only."""

    _PROBES = ("/healthz", "/metrics")

    def log(self, request: Any, response: Any, time: float) -> None:
        path = request.path
        prefix = next((p for p in TOKEN_PREFIXES if path.startswith(p)), None)
        if prefix is not None:  # a credential (and a rating, or an address)
            path = prefix + "<redacted>"
        level = logging.DEBUG if path in self._PROBES and response.status < 500 else logging.INFO
        self.logger.log(
            level,
            '%s "%s %s" %s %.1fms', request.remote, request.method, path, response.status,
            time * 1000,
        )


@dataclass
class RunningServer:
    runner: web.AppRunner
    host: str
    port: int  # the bound port (useful when started on port 0)
    limiter: Limiter | None = None
    _previous_handler: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        try:
            await self.runner.cleanup()
        finally:
            asyncio.get_running_loop().set_exception_handler(self._previous_handler)


async def start_server(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 5.0,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> RunningServer:
    """Serve ``app`` on ``host:port`` (port 0: any free port) until :func:`stop_server`.
    Signals are left to the caller (``digest run`` handles SIGTERM/SIGINT itself).
    A connection must send a whole request header within ``idle_timeout`` seconds of opening
    (or of its last response); at most ``max_connections`` are open (digest/web_listen.py)."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=RedactingAccessLogger,
        access_log=logging.getLogger("digest.web.access"),
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=idle_timeout,
    )
    limiter = Limiter(runner, connection_cap(max_connections))
    app.middlewares.append(limiter.middleware)
    await runner.setup()
    previous = install_log_guards(asyncio.get_running_loop())
    try:
        site = CappedSite(runner, host, port, limiter=limiter)
        await site.start()
    except BaseException:
        asyncio.get_running_loop().set_exception_handler(previous)
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return RunningServer(runner=runner, host=host, port=int(bound), limiter=limiter, _previous_handler=previous)


async def stop_server(server: RunningServer) -> None:
    """Stop accepting, let in-flight requests finish (up to the shutdown timeout), clean up."""
    await server.stop()
