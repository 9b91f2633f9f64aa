"""``/subscribe``: the signup page of ``digest run``, when ``signup`` is not ``closed``.

- ``GET /subscribe`` shows the form: email, keywords (one per line), time zone (UTC, editable),
  send time, frequency; a CSRF token (digest.subscribe: a MAC'd nonce, no server state) and a
  honeypot field hidden from people. No JavaScript.
- ``POST /subscribe`` checks the CSRF token (400 without), the honeypot (filled: the usual answer,
  nothing sent), the per-client and per-address rate limits (429), the fields (400, the form
  again with the messages of ``digest check``) and the ``signup`` setting (403 for an address
  outside ``signup.domains``). Then it answers "check your inbox" and, in the background, emails
  either a confirmation link (expires in 48 h) or, for an address that is already subscribed, a
  note saying so with their "Edit your interests" link: the page is the same either way, so it
  tells nobody who is subscribed.
- ``GET /subscribe/confirm/<token>`` changes nothing (link scanners open links): a page with one
  button. ``POST`` to it writes the subscription file (digest/subscribe_files.py) through the
  ``create`` callback, and the page says when the first digest is due. A forged, altered or
  expired token gets 400 and nothing is written.

Nothing here logs an address, only :func:`digest.subscribe.address_hash`; the access log writes
``/subscribe/confirm/<redacted>``. The client is ``request.remote``: behind a reverse proxy all
clients share one address, and the per-client limit then applies to them together.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from aiohttp import web

from .models import FREQUENCIES, OutgoingMessage, Subscription
from .schedule import next_fire
from .subscribe import (
    Draft, RateLimiter, address_hash, allowed, already_message, confirmation_message,
    make_confirm_token, make_form_token, parse_form, verify_confirm_token, verify_form_token,
)
from .web import ERROR_PAGE, _html, _ignore_body, _maybe_await, _page

__all__ = ["add_subscribe_routes", "PER_CLIENT", "PER_ADDRESS"]

log = logging.getLogger("digest.web")

PER_CLIENT = (10, 3600.0)  # signup requests per client address per hour (a lab may share one NAT)
PER_ADDRESS = (3, 3600.0)  # confirmation emails per address per hour
CONFIRM_PER_CLIENT = (30, 3600.0)

_CONF = web.AppKey("subscribe", dict)

_STYLE = (
    "label{display:block;font-weight:600;margin:1rem 0 .25rem}"
    "input,textarea,select{display:block;width:100%;padding:.5rem;font:inherit;color:inherit;"
    "background:transparent;border:1px solid #8c959f;border-radius:6px}"
    "textarea{min-height:6.5rem}.row{display:flex;gap:.75rem}.row>div{flex:1;min-width:0}"
    ".hint{font-size:.875rem;color:#59636e;margin:.25rem 0 0}.err{color:#cf222e;font-size:.875rem;margin:.25rem 0 0}"
    ".hp{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}"
    "button.go{margin-top:1.25rem;background:#1f883d}dl{margin:0 0 1rem}dt{font-weight:600}dd{margin:0 0 .5rem}"
    "select option{color:#1f2328;background:#fff}"
    "@media (prefers-color-scheme:dark){.hint{color:#9198a1}.err{color:#ff7b72}}"
)

INVALID_PAGE = _page(
    "Invalid link",
    "<h1>This link is not valid</h1><p>It may be incomplete or older than 48 hours. Nothing was changed. "
    'You can <a href="../../subscribe">ask for a new one</a>.</p>',
)
BAD_FORM_PAGE = _page(
    "Please try again",
    "<h1>This form has expired</h1><p>Nothing was sent. Please "
    '<a href="subscribe">load the form again</a> and send it from there.</p>',
)
TOO_MANY_PAGE = _page(
    "Too many requests",
    "<h1>Too many requests</h1><p>Nothing was sent. Please try again in an hour.</p>",
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _field(name: str, label: str, control: str, errors: Mapping[str, str], hint: str = "") -> str:
    out = f'<div><label for="{name}">{label}</label>{control}'
    if hint:
        out += f'<p class="hint" id="{name}-hint">{hint}</p>'
    if name in errors:
        out += f'<p class="err" id="{name}-err">{_e(errors[name])}</p>'
    return out + "</div>"


def form_page(csrf: str, values: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None,
              notice: str = "") -> str:
    """The signup form, with the reader's values and a message per field when sent back."""
    v = {"timezone": "UTC", "send_at": "07:00", "frequency": "daily", **(values or {})}
    errors = errors or {}
    options = "".join(
        f'<option value="{f}"{" selected" if v.get("frequency") == f else ""}>'
        f'{ {"daily": "Every day", "weekdays": "Monday to Friday"}.get(f, "Weekly, on " + f[7:].capitalize()) }</option>'
        for f in FREQUENCIES
    )
    body = (
        "<h1>Subscribe to the paper digest</h1>"
        "<p>Every morning, the newest papers that match your keywords. We email you a link to "
        "confirm; nothing happens until you do.</p>"
        + (f'<p class="err">{_e(notice)}</p>' if notice else "")
        + '<form method="post" action="subscribe" novalidate>'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        + _field("email", "Email address",
                 f'<input id="email" name="email" type="email" autocomplete="email" required value="{_e(v.get("email", ""))}">',
                 errors)
        + _field("keywords", "Keywords",
                 f'<textarea id="keywords" name="keywords" rows="4" aria-describedby="keywords-hint" '
                 f'placeholder="mixture of experts&#10;LoRA">{_e(v.get("keywords", ""))}</textarea>',
                 errors, "One per line, e.g. <i>mixture of experts</i>. None: the day's trending papers.")
        + _field("timezone", "Time zone",
                 f'<input id="timezone" name="timezone" autocomplete="off" value="{_e(v["timezone"])}">',
                 errors, "An IANA name, e.g. Europe/Berlin or America/New_York.")
        + '<div class="row">'
        + _field("send_at", "Send at",
                 f'<input id="send_at" name="send_at" type="time" value="{_e(v["send_at"])}">', errors)
        + _field("frequency", "How often", f'<select id="frequency" name="frequency">{options}</select>', errors)
        + "</div>"
        '<div class="hp" aria-hidden="true"><label for="website">Leave this empty</label>'
        '<input id="website" name="website" tabindex="-1" autocomplete="off"></div>'
        '<button type="submit" class="go">Subscribe</button></form>'
    )
    return _page("Subscribe", body, extra_style=_STYLE)


SENT_PAGE = _page(
    "Check your inbox",
    "<h1>Check your inbox</h1><p>If this address can subscribe, an email with a confirmation link is on "
    "its way. The link expires in 48 hours. Nothing happens until you confirm.</p>",
    extra_style=_STYLE,
)


def _summary(draft: Draft) -> str:
    keywords = ", ".join(draft.keywords) or "none (the day's trending papers)"
    return (f"<dl><dt>Email</dt><dd>{_e(draft.email)}</dd><dt>Keywords</dt><dd>{_e(keywords)}</dd>"
            f"<dt>When</dt><dd>{_e(draft.send_at)} ({_e(draft.timezone)}), {_e(draft.frequency)}</dd></dl>")


def confirm_page(draft: Draft) -> str:
    return _page("Confirm your subscription",
                 "<h1>Confirm your subscription</h1>" + _summary(draft)
                 + '<form method="post"><button type="submit" class="go">Confirm</button></form>',
                 extra_style=_STYLE)


def done_page(sub: Subscription, now: dt.datetime) -> str:
    _, when = next_fire(sub, now)
    local = when.astimezone(ZoneInfo(sub.timezone))
    day = f"{local:%A} {local.day} {local:%B %Y}, at {local:%H:%M} ({sub.timezone})"
    return _page("Subscribed",
                 f"<h1>You are subscribed</h1><p>Your first digest is due on <b>{_e(day)}</b>, "
                 f"at {_e(sub.email)}.</p><p>Every digest has links at the bottom to edit your interests and to "
                 "unsubscribe.</p>",
                 extra_style=_STYLE)


ALREADY_PAGE = _page(
    "Already subscribed",
    "<h1>Already subscribed</h1><p>This address already receives the digest; nothing was changed.</p>",
)


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


async def _form_get(request: web.Request) -> web.Response:
    return _html(form_page(make_form_token(request.app[_CONF]["secret"])))


async def _form_post(request: web.Request) -> web.Response:
    conf = request.app[_CONF]
    secret: bytes = conf["secret"]
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise
    except Exception:
        return _html(BAD_FORM_PAGE, 400)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not verify_form_token(fields.get("csrf"), secret):
        return _html(BAD_FORM_PAGE, 400)
    if fields.get("website"):  # the honeypot: a bot; answer as usual, send nothing
        log.info("signup ignored: honeypot filled")
        return _html(SENT_PAGE)
    if not conf["per_client"].hit(_client(request)):
        return _too_many(conf["per_client"].retry_after(_client(request)))
    draft, errors = parse_form(fields)
    if draft is None:
        return _html(form_page(make_form_token(secret), fields, errors), 400)
    if not allowed(conf["signup"], draft.email):
        domains = ", ".join(getattr(conf["signup"], "domains", ()))
        notice = f"Only addresses at {domains} can subscribe here." if domains else "Signup is closed."
        return _html(form_page(make_form_token(secret), fields, {}, notice), 403)
    who = address_hash(draft.email, secret)
    if not conf["per_address"].hit(who):
        return _too_many(conf["per_address"].retry_after(who))
    task = asyncio.get_running_loop().create_task(_mail(conf, draft, who))
    conf["tasks"].add(task)
    task.add_done_callback(conf["tasks"].discard)
    return _html(SENT_PAGE)


def _too_many(retry_after: int) -> web.Response:
    response = _html(TOO_MANY_PAGE, 429)
    response.headers["Retry-After"] = str(retry_after)
    return response


async def _mail(conf: dict, draft: Draft, who: str) -> None:
    """Email the confirmation link, or the "already subscribed" note; off the request."""
    now: dt.datetime = conf["clock"]()
    try:
        found = await _maybe_await(conf["subscribed"](draft.email))
        if found:  # the reader's "Edit your interests" link (or True)
            link = found if isinstance(found, str) else None
            sender, mid, data = already_message(conf["sender"], draft.email, now=now, manage_link=link)
            kind = "already-subscribed note"
        else:
            token = make_confirm_token(draft, conf["secret"], now=now)
            link = f"{conf['public_url']}/subscribe/confirm/{token}"
            sender, mid, data = confirmation_message(conf["sender"], draft, link, now=now)
            kind = "confirmation"
        message = OutgoingMessage("signup", now.date(), sender, draft.email, mid, data)
        await conf["send"](message)
    except Exception as exc:  # the type only: a message could carry the address
        log.error("signup email failed: %s", type(exc).__name__, extra={"address": who})
        return
    log.info("signup email sent: %s", kind, extra={"address": who})


async def _confirm_get(request: web.Request) -> web.Response:
    draft = _verified(request)
    return _html(INVALID_PAGE, 400) if draft is None else _html(confirm_page(draft))


async def _confirm_post(request: web.Request) -> web.Response:
    conf = request.app[_CONF]
    await _ignore_body(request)
    if not conf["confirm_per_client"].hit(_client(request)):
        return _too_many(conf["confirm_per_client"].retry_after(_client(request)))
    draft = _verified(request)
    if draft is None or not allowed(conf["signup"], draft.email):
        return _html(INVALID_PAGE, 400)
    who = address_hash(draft.email, conf["secret"])
    try:
        sub = await _maybe_await(conf["create"](draft))
    except Exception as exc:
        log.error("signup could not be written: %s", type(exc).__name__, extra={"address": who})
        return _html(ERROR_PAGE, 503)
    if sub is None:
        return _html(ALREADY_PAGE)
    log.info("signup confirmed", extra={"address": who, "subscriber": sub.id})
    return _html(done_page(sub, conf["clock"]()))


def _verified(request: web.Request) -> Draft | None:
    conf = request.app[_CONF]
    return verify_confirm_token(request.match_info["token"], conf["secret"], now=conf["clock"](),
                                old_secrets=conf["old_secrets"])


def add_subscribe_routes(
    app: web.Application, *, secret: bytes, signup: object, public_url: str, sender: str,
    send: Callable[[OutgoingMessage], Awaitable[object]],
    subscribed: Callable[[str], str | bool | None | Awaitable[str | bool | None]],
    create: Callable[[Draft], Subscription | None | Awaitable[Subscription | None]],
    old_secrets: Iterable[bytes] = (),
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    per_client: tuple[int, float] = PER_CLIENT, per_address: tuple[int, float] = PER_ADDRESS,
) -> None:
    """``/subscribe`` on `app`. ``send(message)`` delivers one email (the service's mailer);
    ``subscribed(email)`` says whether an address already has a subscription (a string: the
    reader's "Edit your interests" link, which the "already subscribed" mail then carries); ``create(draft)``
    writes the confirmed subscription and returns it (None: the address is already subscribed)."""
    app[_CONF] = {
        "secret": bytes(secret), "old_secrets": tuple(bytes(k) for k in old_secrets if k), "signup": signup,
        "public_url": public_url.rstrip("/"), "sender": sender, "send": send, "subscribed": subscribed,
        "create": create, "clock": clock, "tasks": set(),
        "per_client": RateLimiter(*per_client), "per_address": RateLimiter(*per_address),
        "confirm_per_client": RateLimiter(*CONFIRM_PER_CLIENT),
    }
    app.router.add_get("/subscribe", _form_get)
    app.router.add_post("/subscribe", _form_post)
    app.router.add_get("/subscribe/confirm/{token}", _confirm_get)
    app.router.add_post("/subscribe/confirm/{token}", _confirm_post)
