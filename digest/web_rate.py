"""The rating links of every digest ("more like this" / "not for me"), served by ``digest run``.

- ``GET`` (and ``HEAD``) ``/rate/<token>`` never changes anything (mail scanners and prefetchers
  open links): it shows a page with one button that POSTs to the same URL.
- ``POST /rate/<token>`` records the token's vote (+1, -1, or 0: remove the rating) for the
  token's reader and paper, and answers with a short page that says what will change and offers
  undo: a form that POSTs the token of the vote it replaced. Votes are idempotent and the last
  one wins.
- A forged, altered or truncated token, or one for a reader who is no longer known, gets 400 and
  one generic page, and nothing is recorded.

The token (digest.tokens, a key derived for rating from the unsubscribe secret) is the only
credential. Ratings are private: nothing here logs a reader, a paper or a vote, and the access
log writes ``/rate/<redacted>``.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from .tokens import make_rating_token, verify_rating_token
from .web import ERROR_PAGE, _html, _ignore_body, _maybe_await, _page

__all__ = ["Rated", "RateCallback", "add_rate_routes"]

log = logging.getLogger("digest.web")


@dataclass(frozen=True, slots=True)
class Rated:
    """What the rate callback did: the vote it replaced (0: none) and the paper's title if known."""

    previous: int
    title: str | None = None


# (subscriber id, paper key, vote) -> Rated, or None when the reader is unknown (nothing recorded)
RateCallback = Callable[[str, str, int], "Awaitable[Rated | None] | Rated | None"]

_SECRET_KEY = web.AppKey("rate_secret", bytes)
_OLD_KEY = web.AppKey("rate_old_secrets", tuple)
_RATE_KEY = web.AppKey("rate", object)
_KNOWN_KEY = web.AppKey("rate_is_known", object)

_PRIMARY = "background:#1f883d"
_SECONDARY = "margin-top:.5rem;color:#1f2328;background:#f6f8fa;border:1px solid #d0d7de"

_ASK = {
    1: ("More like this?", "Show me more papers like this one",
        "Your next digests will rank papers like this one higher, and may include some that share "
        "no word with your keywords.", "More like this"),
    -1: ("Not for me?", "Show me fewer papers like this one",
         "Your next digests will rank papers like this one lower. Your keywords stay as they are.",
         "Not for me"),
    0: ("Remove your rating?", "Forget my rating of this paper",
        "Your next digests will no longer take this paper into account.", "Remove rating"),
}

INVALID_PAGE = _page(
    "Invalid link",
    "<h1>This link is not valid</h1>"
    "<p>It may be incomplete. Open the link again from a recent digest email. Nothing was changed.</p>",
)


def _form(action: str, label: str, style: str) -> str:
    target = f' action="{html.escape(action)}"' if action else ""
    return f'<form method="post"{target}><button type="submit" style="{style}">{label}</button></form>'


def confirm_page(vote: int) -> str:
    title, heading, text, button = _ASK[vote]
    return _page(title, f"<h1>{heading}?</h1><p>{text}</p>" + _form("", button, _PRIMARY))


def done_page(vote: int, rated: Rated, undo_token: str | None) -> str:
    """The answer to a POST: what changed, and an undo button (a POST of the token that puts the
    previous vote back)."""
    paper = f"«{html.escape(rated.title)}»" if rated.title else "this paper"
    if vote == 0:
        title = "Rating removed"
        text = (f"Your rating of {paper} is removed: your next digests no longer take it into account."
                if rated.previous else f"There was no rating of {paper} to remove.")
    elif vote == rated.previous:
        title = "Already rated"
        kind = "more like this" if vote > 0 else "not for me"
        text = f"You had already rated {paper} “{kind}”. Nothing changed."
    elif vote > 0:
        title = "More like this"
        text = (f"Thanks. From your next digest on, papers like {paper} rank higher, and some that share "
                "no word with your keywords may come in, marked with the paper you rated.")
    else:
        title = "Not for me"
        text = f"Noted. From your next digest on, papers like {paper} rank lower. Your keywords stay as they are."
    body = f"<h1>{title}</h1><p>{text}</p>"
    if undo_token is not None:
        label = "Remove this rating" if vote == rated.previous else "Undo"
        body += _form(undo_token, label, _SECONDARY)  # relative: /rate/<undo> under any path prefix
    return _page(title, body)


async def _known(request: web.Request) -> tuple[str, str, int] | None:
    app = request.app
    found = verify_rating_token(request.match_info["token"], app[_SECRET_KEY], old_secrets=app[_OLD_KEY])
    if found is None or not await _maybe_await(request.app[_KNOWN_KEY](found[0])):  # type: ignore[operator]
        return None
    return found


async def _rate_get(request: web.Request) -> web.Response:
    try:
        found = await _known(request)
    except Exception as exc:  # the type only: a message could carry a reader or a paper
        log.error("rating link lookup failed: %s", type(exc).__name__)
        return _html(ERROR_PAGE, 503)
    if found is None:
        return _html(INVALID_PAGE, 400)
    return _html(confirm_page(found[2]))


async def _rate_post(request: web.Request) -> web.Response:
    await _ignore_body(request)  # the signed token is the only credential
    try:
        found = await _known(request)
        if found is None:
            return _html(INVALID_PAGE, 400)
        sub_id, key, vote = found
        rated = await _maybe_await(request.app[_RATE_KEY](sub_id, key, vote))  # type: ignore[operator]
    except Exception as exc:
        log.error("rating failed: %s", type(exc).__name__)
        return _html(ERROR_PAGE, 503)
    if rated is None:  # the reader is not known: same answer as a forged token
        return _html(INVALID_PAGE, 400)
    if vote == rated.previous:
        undo = None if vote == 0 else 0
    else:
        undo = rated.previous
    token = None if undo is None else make_rating_token(sub_id, key, undo, request.app[_SECRET_KEY])
    return _html(done_page(vote, rated, token))


def add_rate_routes(
    app: web.Application, *, secret: bytes, rate: RateCallback, is_known: Callable[[str], object],
    old_secrets: Iterable[bytes] = (),
) -> None:
    """``/rate/<token>`` on `app`: ``rate(id, paper, vote)`` is called only on a POST with a valid
    token for a known reader; ``is_known(id)`` as for unsubscribe. Tokens signed with one of
    ``old_secrets`` are accepted (key rotation); undo links are signed with ``secret``."""
    app[_SECRET_KEY] = bytes(secret)
    app[_OLD_KEY] = tuple(bytes(k) for k in old_secrets if k)
    app[_RATE_KEY] = rate
    app[_KNOWN_KEY] = is_known
    app.router.add_get("/rate/{token}", _rate_get)
    app.router.add_post("/rate/{token}", _rate_post)
