"""``/manage/<token>``: "Edit your interests", the preferences page every digest links to.

- The token (digest.tokens.ManageLinks: the reader and an expiry, signed with a key derived for
  "manage") is the credential. Forged, altered, or for a reader no longer known: 400, the same
  page for each; expired (MANAGE_TTL after the digest was made): 400, saying to use a newer digest.
- ``GET`` never changes anything (mail scanners open links): the form, filled in from the
  reader's file as it is now, their ratings, and an unsubscribe button.
- ``POST`` carries a CSRF token bound to the reader and to the version of their file when the
  page was loaded (digest/manage.py), and an ``action``:
  ``preview`` ranks the papers the service has with the form's settings and shows the edition
  they would make, changing nothing; ``save`` validates the form with the messages of ``digest
  check`` (400 and the form again, inline), then rewrites the file (digest/manage_files.py) only
  if it is still at that version: else 409 and the file as it is now ("changed since you opened
  the page"). A form saves once: its replay is 409 as well. ``unrate`` / ``rate`` remove a rating
  and put it back (undo); ``resubscribe`` undoes an unsubscribe.
- Rate limits per client address and per reader (429 with ``Retry-After``), a honeypot field (a
  filled one changes nothing), the strict Content-Security-Policy of every page (digest/web.py).

Logs name the reader by id and their address only by its keyed hash; the access log writes
``/manage/<redacted>``.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiohttp import web

from .manage import (
    BLANK_ROWS, MAX_ROWS, Prefs, RatingRow, SpentForms, form_fields, make_form_token, parse_form, prefs_of,
    read_form_token,
)
from .manage_files import Changed, Loaded, Refused, Saved
from .subscribe import RateLimiter, address_hash
from .tokens import make_token, verify_manage_token
from .web import ERROR_PAGE, _html, _maybe_await
from .web_manage_pages import View, manage_page, message_page

__all__ = ["ManageBackend", "add_manage_routes", "PER_CLIENT", "PER_READER", "MAX_BODY"]

log = logging.getLogger("digest.web")

PER_CLIENT = (120, 3600.0)  # POSTs per client address per hour (previews, saves, undo)
PER_READER = (60, 3600.0)  # POSTs per reader per hour
MAX_BODY = 128 * 1024  # a form with MAX_ROWS keywords of 200 characters fits

_CONF = web.AppKey("manage", dict)

INVALID = message_page("Invalid link", "This link is not valid. It may be incomplete: open <b>Edit your "
                       "interests</b> from a recent digest email. Nothing was changed.")
EXPIRED = message_page("This link has expired", "Links to your settings work for 60 days. Open <b>Edit your "
                       "interests</b> from your latest digest email. Nothing was changed.")
BAD_FORM = message_page("Please try again", 'This form has expired or is incomplete. Nothing was changed. '
                        '<a href="">Open your settings again</a>.')
TOO_MANY = message_page("Too many requests", "Nothing was changed. Please try again in an hour.")
NOT_EDITABLE = message_page("Your settings cannot be changed here right now",
                            "Your subscription file needs the operator's attention first, or is more than "
                            "this page can show (it is managed by them directly). Your digests go on as "
                            "before. Reply to a digest to reach the operator.")


class ManageBackend(Protocol):
    """What the page needs of the service (digest/service_manage.py)."""

    def known(self, sub_id: str) -> bool: ...
    def load(self, sub_id: str) -> Loaded | None: ...  # None: not editable here
    def save(self, sub_id: str, prefs: Prefs, version: str) -> Saved | Changed | Refused: ...
    def preview(self, sub_id: str, prefs: Prefs) -> Any: ...  # Preview, or an awaitable of one
    def ratings(self, sub_id: str) -> list[RatingRow]: ...
    def rate(self, sub_id: str, paper_key: str, vote: int) -> int | None: ...  # the vote it replaced
    def unsubscribed(self, sub_id: str) -> dt.datetime | None: ...
    def resubscribe(self, sub_id: str) -> None: ...
    def next_digest(self, sub_id: str) -> str: ...  # "Your next digest: …", "" when unknown


def _editable(loaded: Loaded | None) -> bool:
    """Whether the page can show (and so save) all of the file: it parses, and its lists fit the
    form (a save never drops what the form could not show)."""
    sub = loaded.sub if loaded is not None else None
    return sub is not None and len(sub.keywords) <= MAX_ROWS - BLANK_ROWS and len(sub.exclude) <= MAX_ROWS


def _reader(request: web.Request) -> tuple[str | None, web.Response | None]:
    conf = request.app[_CONF]
    found = verify_manage_token(request.match_info["token"], conf["secret"], old_secrets=conf["old_secrets"])
    if found is None or not conf["backend"].known(found.subscriber_id):
        return None, _html(INVALID, 400)
    if found.expired(conf["clock"]()):
        return None, _html(EXPIRED, 400)
    return found.subscriber_id, None


def _view(request: web.Request, sub_id: str, loaded: Loaded, fields: dict[str, str] | None = None,
          version: str | None = None, **extra: Any) -> View:
    conf = request.app[_CONF]
    backend = conf["backend"]
    assert loaded.sub is not None
    unsubscribed = backend.unsubscribed(sub_id)
    return View(
        email=loaded.sub.email,
        fields=fields if fields is not None else form_fields(prefs_of(loaded.sub)),
        csrf=make_form_token(conf["secret"], sub_id, version or loaded.version),
        unsubscribe=f"../unsubscribe/{make_token(sub_id, conf['secret'])}",
        next_digest="" if unsubscribed else backend.next_digest(sub_id),
        ratings=backend.ratings(sub_id),
        unsubscribed=unsubscribed,
        **extra,
    )


def _page(view: View, status: int = 200) -> web.Response:
    if view.unsubscribed is not None and not view.notice:
        view.notice = (f"You unsubscribed on {view.unsubscribed:%d %B %Y}: nothing is sent to you. "
                       f'<form method="post"><input type="hidden" name="csrf" value="{html.escape(view.csrf)}">'
                       '<button type="submit" name="action" value="resubscribe" class="small">Subscribe again'
                       "</button></form>")
        view.notice_kind = "warn"
    return _html(manage_page(view), status)


async def _get(request: web.Request) -> web.Response:
    sub_id, refused = _reader(request)
    if refused is not None:
        return refused
    assert sub_id is not None
    try:
        loaded = request.app[_CONF]["backend"].load(sub_id)
        if not _editable(loaded):
            return _html(NOT_EDITABLE)
        return _page(_view(request, sub_id, loaded))
    except Exception as exc:
        log.error("preferences page failed: %s", type(exc).__name__, extra={"subscriber": sub_id})
        return _html(ERROR_PAGE, 503)


def _too_many(limiter: RateLimiter, key: str) -> web.Response:
    response = _html(TOO_MANY, 429)
    response.headers["Retry-After"] = str(limiter.retry_after(key))
    return response


async def _post(request: web.Request) -> web.Response:
    conf = request.app[_CONF]
    sub_id, refused = _reader(request)
    if refused is not None:
        await _drain(request)
        return refused
    assert sub_id is not None
    client = request.remote or "unknown"
    if not conf["per_client"].hit(client):
        return _too_many(conf["per_client"], client)
    if not conf["per_reader"].hit(sub_id):
        return _too_many(conf["per_reader"], sub_id)
    try:
        form = await request.clone(client_max_size=MAX_BODY).post()
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception:
        return _html(BAD_FORM, 400)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    token = read_form_token(fields.get("csrf"), conf["secret"], sub_id)
    if token is None or fields.get("website"):  # no token, forged, expired; or the honeypot
        return _html(BAD_FORM, 400)
    try:
        return await _act(request, sub_id, fields, token)
    except Exception as exc:  # the type only: a message could carry the address or a term
        log.error("preferences action failed: %s", type(exc).__name__, extra={"subscriber": sub_id})
        return _html(ERROR_PAGE, 503)


async def _drain(request: web.Request) -> None:
    try:
        await request.clone(client_max_size=MAX_BODY).read()
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception:
        pass


async def _act(request: web.Request, sub_id: str, fields: dict[str, str], token: Any) -> web.Response:
    conf = request.app[_CONF]
    backend = conf["backend"]
    action = fields.get("action", "")
    loaded = backend.load(sub_id)
    if not _editable(loaded):
        return _html(NOT_EDITABLE)
    who = address_hash(loaded.sub.email, conf["secret"])
    if action in ("preview", "save"):
        if action == "save" and conf["spent"].spent(token.nonce):
            return _page(_view(request, sub_id, loaded, notice=_REPLAYED, notice_kind="warn"), 409)
        prefs, errors = parse_form(fields)
        if prefs is None:
            view = _view(request, sub_id, loaded, fields, token.version, errors=errors, notice_kind="bad",
                         notice="Nothing was saved: please correct what is marked below.")
            return _page(view, 400)
        if action == "preview":
            preview = await _maybe_await(backend.preview(sub_id, prefs))
            return _page(_view(request, sub_id, loaded, fields, token.version, preview=preview))
        return _save(request, sub_id, loaded, fields, token, prefs, who)
    if action in ("unrate", "rate"):
        key = fields.get("paper", "")
        vote = 0 if action == "unrate" else _vote(fields.get("vote"))
        previous = backend.rate(sub_id, key, vote) if key and vote is not None else None
        if previous is None:
            return _html(BAD_FORM, 400)
        return _page(_view(request, sub_id, loaded, **_rated_notice(request, sub_id, key, vote, previous, loaded)))
    if action == "resubscribe":
        backend.resubscribe(sub_id)
        log.info("resubscribed via the preferences page", extra={"subscriber": sub_id, "address": who})
        return _page(_view(request, sub_id, loaded, notice="Welcome back: your digests start again."))
    return _html(BAD_FORM, 400)


_REPLAYED = ("This form was sent already: nothing more was changed. Here are your settings as they are now.")
_CHANGED = ("Your settings were changed since you opened this page, so nothing was saved. Here they are as "
            "they are now: make your changes again and save.")


def _save(request: web.Request, sub_id: str, loaded: Loaded, fields: dict[str, str], token: Any, prefs: Prefs,
          who: str) -> web.Response:
    conf = request.app[_CONF]
    result = conf["backend"].save(sub_id, prefs, token.version)
    if isinstance(result, Changed):
        if not _editable(result.now):
            return _html(NOT_EDITABLE, 409)
        return _page(_view(request, sub_id, result.now, notice=_CHANGED, notice_kind="warn"), 409)
    if isinstance(result, Refused):
        notice = "Nothing was saved: " + "; ".join(html.escape(p) for p in result.problems)
        return _page(_view(request, sub_id, loaded, fields, token.version, notice=notice, notice_kind="bad"), 400)
    conf["spent"].spend(token.nonce, token.issued)
    if result.changed:
        log.info("preferences saved", extra={"subscriber": sub_id, "address": who})
    saved = Loaded(result.sub.path, b"", result.version, result.sub)  # type: ignore[arg-type]
    text = ("Saved: your next digest follows these settings." if result.changed
            else "Nothing to change: your settings already said this.")
    return _page(_view(request, sub_id, saved, notice=text))


def _vote(value: object) -> int | None:
    return {"1": 1, "-1": -1}.get(str(value))


def _rated_notice(request: web.Request, sub_id: str, key: str, vote: int, previous: int, loaded: Loaded) -> dict[str, str]:
    conf = request.app[_CONF]
    if vote != 0:
        return {"notice": "Your rating is back."}
    if previous == 0:
        return {"notice": "There was no such rating to remove."}
    csrf = make_form_token(conf["secret"], sub_id, loaded.version)
    undo = (f'<form method="post"><input type="hidden" name="csrf" value="{html.escape(csrf)}">'
            f'<input type="hidden" name="paper" value="{html.escape(key)}">'
            f'<input type="hidden" name="vote" value="{previous}">'
            '<button type="submit" name="action" value="rate" class="small">Undo</button></form>')
    return {"notice": "Your rating is removed: your next digests no longer take it into account." + undo}


def add_manage_routes(
    app: web.Application, *, secret: bytes, backend: ManageBackend, old_secrets: Iterable[bytes] = (),
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    per_client: tuple[int, float] = PER_CLIENT, per_reader: tuple[int, float] = PER_READER,
) -> None:
    """``/manage/<token>`` on `app`, served from `backend`."""
    app[_CONF] = {
        "secret": bytes(secret), "old_secrets": tuple(bytes(k) for k in old_secrets if k), "backend": backend,
        "clock": clock, "spent": SpentForms(),
        "per_client": RateLimiter(*per_client), "per_reader": RateLimiter(*per_reader),
    }
    app.router.add_get("/manage/{token}", _get)
    app.router.add_post("/manage/{token}", _post)

