"""The reader's side of signing up (``/subscribe``, served by digest/web_subscribe.py). Pure: no
HTTP, no files, no clock of its own (every ``now`` is a parameter).

- :class:`Draft` is what the form asked for; :func:`parse_form` validates it with the same schema
  as ``digest check`` (``SubscriptionFile``) and returns the problems by form field.
- The confirmation link carries the whole draft, signed, with an expiry (48 h): nothing is kept
  on the server until the reader confirms. Token: unpadded URL-safe base64 of ``version | zlib(JSON
  draft and expiry) | tag``, ``tag`` the first 16 bytes of HMAC-SHA256 under
  ``derive_key(secret, "subscribe")``, so it is never valid as an unsubscribe or rating token.
- The form's CSRF token is ``<time>.<nonce>.<tag>`` under ``derive_key(secret, "subscribe-form")``:
  no server state; valid for FORM_MAX_AGE.
- :class:`RateLimiter` counts attempts per key (an address hash, a client IP) in memory.
- :func:`address_hash` is what logs may say about an address: a keyed hash, not reversible by
  hashing a list of likely addresses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from pydantic import ValidationError

from digest.config.settings import SignupDomains
from digest.config.subscriptions import SubscriptionFile
from digest.config.subscriptions import _message as schema_message
from digest.render.message import parse_sender
from digest.tokens import _b64decode, _b64encode, _signed_by_any, derive_key

__all__ = [
    "Draft", "parse_form", "allowed", "make_confirm_token", "verify_confirm_token", "make_form_token",
    "verify_form_token", "RateLimiter", "address_hash", "confirmation_message", "already_message",
    "CONFIRM_TTL", "FORM_MAX_AGE", "MAX_KEYWORDS",
]

CONFIRM_TTL = dt.timedelta(hours=48)
FORM_MAX_AGE = 2 * 3600  # seconds a rendered form stays valid
MAX_KEYWORDS = 30
MAX_KEYWORD_CHARS = 120
_VERSION = 1
_CONTEXT = b"digest/subscribe\x00"
_FORM_CONTEXT = b"digest/subscribe-form\x00"
_TAG = 16
_MAX_TOKEN_CHARS = 8192
_FORM_RE = re.compile(r"([0-9a-f]{1,12})\.([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{16,64})")
FIELDS = ("email", "keywords", "timezone", "send_at", "frequency")


@dataclass(frozen=True, slots=True)
class Draft:
    """A subscription as the form asked for it (not yet confirmed, nothing written)."""

    email: str
    keywords: tuple[str, ...] = ()
    timezone: str = "UTC"
    send_at: str = "07:00"
    frequency: str = "daily"

    def as_file(self) -> dict[str, object]:
        """The subscription file's content (keys in the README's order)."""
        data: dict[str, object] = {"email": self.email, "timezone": self.timezone, "send_at": self.send_at,
                                   "frequency": self.frequency}
        if self.keywords:
            data["keywords"] = list(self.keywords)
        return data


def parse_form(form: Mapping[str, str]) -> tuple[Draft | None, dict[str, str]]:
    """The validated draft of a submitted form, or None and a message per field (the messages
    of ``digest check`` for what the schema checks)."""
    raw = {name: str(form.get(name, "")) for name in FIELDS}
    errors: dict[str, str] = {}
    lines = [line.strip() for line in raw["keywords"].replace("\r", "\n").split("\n")]
    keywords = tuple(dict.fromkeys(k for k in lines if k))  # in order, without repeats
    if len(keywords) > MAX_KEYWORDS:
        errors["keywords"] = f"at most {MAX_KEYWORDS} keywords, one per line"
    elif any(len(k) > MAX_KEYWORD_CHARS for k in keywords):
        errors["keywords"] = f"a keyword is at most {MAX_KEYWORD_CHARS} characters"
    if not raw["email"].strip():
        errors["email"] = "required"
    draft = Draft(email=raw["email"].strip(), keywords=keywords, timezone=raw["timezone"].strip() or "UTC",
                  send_at=raw["send_at"].strip() or "07:00", frequency=raw["frequency"].strip() or "daily")
    try:
        parsed = SubscriptionFile.model_validate(draft.as_file())
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "email"
            errors.setdefault(field if field in FIELDS else "keywords", schema_message(err))
    else:
        hours, _, minutes = parsed.send_at.partition(":")
        draft = Draft(parsed.email, keywords, parsed.timezone, f"{int(hours):02d}:{minutes}", parsed.frequency)
    return (None, errors) if errors else (draft, {})


def allowed(signup: object, email: str) -> bool:
    """Whether `signup` (the setting) lets `email` (validated) subscribe."""
    if signup == "open":
        return True
    if isinstance(signup, SignupDomains):
        return email.rpartition("@")[2].lower() in signup.domains
    return False


# -- tokens ---------------------------------------------------------------------------------------


def _confirm_tag(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(derive_key(secret, "subscribe"), _CONTEXT + payload, hashlib.sha256).digest()[:_TAG]


def make_confirm_token(draft: Draft, secret: bytes, *, now: dt.datetime) -> str:
    """The signed confirmation token of `draft`, valid until ``now + CONFIRM_TTL``."""
    body = {"e": draft.email, "k": list(draft.keywords), "z": draft.timezone, "t": draft.send_at,
            "f": draft.frequency, "x": int((now + CONFIRM_TTL).timestamp())}
    payload = bytes([_VERSION]) + zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 9)
    return _b64encode(payload + _confirm_tag(secret, payload))


def verify_confirm_token(
    token: str, secret: bytes, *, now: dt.datetime, old_secrets: Iterable[bytes] = ()
) -> Draft | None:
    """The draft inside a valid, unexpired token signed with `secret` (or an old one), else None.
    Never raises on a bad token."""
    raw = _b64decode(token, _MAX_TOKEN_CHARS)
    if raw is None or len(raw) < 2 + _TAG or raw[0] != _VERSION:
        return None
    payload, tag = raw[:-_TAG], raw[-_TAG:]
    if not _signed_by_any(tag, (secret, *old_secrets), lambda key: _confirm_tag(key, payload)):
        return None
    try:
        inflate = zlib.decompressobj()
        body = json.loads(inflate.decompress(payload[1:], 64 * 1024))
        if body["x"] < now.timestamp() or inflate.unconsumed_tail:
            return None
        return Draft(str(body["e"]), tuple(str(k) for k in body["k"]), str(body["z"]), str(body["t"]), str(body["f"]))
    except (zlib.error, ValueError, KeyError, TypeError):  # pragma: no cover - only with a valid tag
        return None


def _form_tag(secret: bytes, stamp: str, nonce: str) -> str:
    mac = hmac.new(derive_key(secret, "subscribe-form"), _FORM_CONTEXT + f"{stamp}.{nonce}".encode(), hashlib.sha256)
    return _b64encode(mac.digest()[:_TAG])


def make_form_token(secret: bytes, *, now: float | None = None) -> str:
    """A CSRF token for one rendered form: a fresh nonce, the time, and their MAC."""
    stamp = format(int(time.time() if now is None else now), "x")
    nonce = secrets.token_urlsafe(16)
    return f"{stamp}.{nonce}.{_form_tag(secret, stamp, nonce)}"


def verify_form_token(token: object, secret: bytes, *, now: float | None = None) -> bool:
    """Whether `token` is one of ours, issued less than FORM_MAX_AGE ago."""
    match = _FORM_RE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        return False
    stamp, nonce, tag = match.groups()
    age = (time.time() if now is None else now) - int(stamp, 16)
    return -60 <= age <= FORM_MAX_AGE and hmac.compare_digest(_form_tag(secret, stamp, nonce), tag)


def address_hash(email: str, secret: bytes) -> str:
    """What a log line may say about an address: 12 hex digits of a keyed hash."""
    mac = hmac.new(derive_key(secret, "log-address"), email.strip().lower().encode(), hashlib.sha256)
    return mac.hexdigest()[:12]


# -- rate limits ----------------------------------------------------------------------------------


class RateLimiter:
    """At most `limit` hits per `window` seconds per key, in memory; at most `max_keys` keys
    (the least recently used are forgotten), so a flood of distinct keys cannot exhaust memory."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, key: str, now: float | None = None) -> bool:
        """Count one attempt for `key`; False (and not counted) when over the limit."""
        now = time.monotonic() if now is None else now
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        self._hits[key] = hits
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def retry_after(self, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        return max(1, int(hits[0] + self.window - now) + 1) if hits else 1


# -- the two emails -------------------------------------------------------------------------------


def _message(sender: str, to: str, subject: str, text: str, *, now: dt.datetime) -> tuple[str, str, bytes]:
    """(bare sender, message id, RFC 5322 bytes) of a plain-text message."""
    address = parse_sender(sender)
    msg = EmailMessage()
    msg["From"] = str(address)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone(dt.timezone.utc))
    message_id = f"<subscribe.{secrets.token_hex(12)}@{address.domain}>"
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    return address.addr_spec, message_id, msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _describe(draft: Draft) -> str:
    freq = {"daily": "every day", "weekdays": "Monday to Friday"}.get(
        draft.frequency, "on " + draft.frequency.removeprefix("weekly:").capitalize() + "days")
    kw = ", ".join(draft.keywords) if draft.keywords else "none (the day's trending papers)"
    return f"  Keywords: {kw}\n  When: {draft.send_at} ({draft.timezone}), {freq}\n"


def confirmation_message(sender: str, draft: Draft, link: str, *, now: dt.datetime) -> tuple[str, str, bytes]:
    """The double opt-in email: what was asked for, and the link that confirms it."""
    hours = int(CONFIRM_TTL.total_seconds() // 3600)
    text = (
        "Someone (we hope you) asked to receive the paper digest at this address:\n\n"
        f"{_describe(draft)}\n"
        f"To confirm, open this link and press the button (it expires in {hours} hours):\n\n"
        f"  {link}\n\n"
        "If you did not ask for this, ignore this email: nothing happens without the button.\n"
    )
    return _message(sender, draft.email, "Confirm your paper digest subscription", text, now=now)


def already_message(sender: str, email: str, *, now: dt.datetime, manage_link: str | None = None) -> tuple[str, str, bytes]:
    """The email sent instead when the address already has a subscription: with the reader's
    "Edit your interests" link when there is one."""
    if manage_link:
        change = (
            "To change your keywords, time or frequency, or to pause the digest, open your settings\n"
            "(the link works for 60 days; every digest carries a fresh one):\n\n"
            f"  {manage_link}\n\n"
        )
    else:
        change = (
            "To change your keywords, time or frequency, reply to the operator of this digest (the\n"
            "sender of this email). "
        )
    text = (
        "Someone (we hope you) asked to subscribe this address to the paper digest, but it is\n"
        "already subscribed: nothing was changed.\n\n"
        f"{change}Every digest has an unsubscribe link at the bottom.\n\n"
        "If you did not ask for this, ignore this email.\n"
    )
    return _message(sender, email, "Your paper digest subscription", text, now=now)

