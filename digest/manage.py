"""The reader's side of "Edit your interests" (``/manage/<token>``, served by
digest/web_manage.py). Pure: no HTTP, no files, no clock of its own.

- :class:`Prefs` is what the page edits: keywords with weights, exclusions, time zone, send time,
  frequency, ``max_papers`` and ``paused``. :func:`parse_form` validates a submitted form with the
  schema of ``digest check`` (``SubscriptionFile``) and returns its messages by form field;
  :func:`changes` is what a save must write (only the fields that differ from the file).
- The form's CSRF token binds one rendered form to one reader and to the version of their file
  when the page was loaded (:func:`file_version`: a hash of its bytes, inode and mtime):
  ``<time>.<nonce>.<version>.<tag>``, ``tag`` under ``derive_key(secret, "manage-form")``. A save
  whose version is not the file's any more changes nothing (the operator edited the file, or this
  form was saved already); :class:`SpentForms` remembers the nonces of forms that saved, so the
  same form never saves twice (a replayed POST).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import ValidationError

from digest.config.subscriptions import SubscriptionFile
from digest.config.subscriptions import _message as schema_message
from digest.models import Keyword, Subscription
from digest.sources.text import scrub
from digest.tokens import _b64encode, derive_key

__all__ = [
    "Prefs", "prefs_of", "with_prefs", "parse_form", "changes", "file_version", "make_form_token",
    "read_form_token", "FormToken", "SpentForms", "keyword_rows", "weight_text", "FORM_MAX_AGE", "MAX_ROWS",
    "BLANK_ROWS", "Preview", "PreviewPaper", "RatingRow", "form_fields",
]

FORM_MAX_AGE = 6 * 3600  # seconds a rendered preferences form stays valid
MAX_ROWS = 300  # keyword rows (and exclusion lines) the page edits
BLANK_ROWS = 3  # empty keyword rows under the reader's own, to add new ones
_CONTEXT = b"digest/manage-form\x00"
_TAG = 16
_FORM_RE = re.compile(r"([0-9a-f]{1,12})\.([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})")
_ROW_RE = re.compile(r"term-(\d{1,3})")
_PLACEHOLDER = "reader@example.org"  # the form has no address; the schema needs one
_CHECKED = ("1", "on", "true", "yes")


@dataclass(frozen=True, slots=True)
class Prefs:
    """The part of a subscription file the reader edits (the rest stays the operator's)."""

    keywords: tuple[tuple[str, float], ...] = ()  # (term, weight)
    exclude: tuple[str, ...] = ()
    timezone: str = "UTC"
    send_at: str = "07:00"
    frequency: str = "daily"
    max_papers: int = 5
    paused: bool = False


def prefs_of(sub: Subscription) -> Prefs:
    return Prefs(
        keywords=tuple((k.term, float(k.weight)) for k in sub.keywords),
        exclude=tuple(sub.exclude),
        timezone=sub.timezone,
        send_at=sub.send_at.strftime("%H:%M"),
        frequency=sub.frequency,
        max_papers=sub.max_papers,
        paused=sub.paused,
    )


def with_prefs(sub: Subscription, prefs: Prefs) -> Subscription:
    """`sub` as it would be with `prefs` (for a preview: nothing is written)."""
    hours, minutes = prefs.send_at.split(":")
    return dataclasses.replace(
        sub, keywords=tuple(Keyword(t, w) for t, w in prefs.keywords), exclude=prefs.exclude,
        timezone=prefs.timezone, send_at=dt.time(int(hours), int(minutes)), frequency=prefs.frequency,
        max_papers=prefs.max_papers, paused=prefs.paused,
    )  # fmt: skip


def form_fields(prefs: Prefs) -> dict[str, str]:
    """`prefs` as the form's fields (what a GET shows)."""
    fields = {f"term-{i}": term for i, (term, _) in enumerate(prefs.keywords)}
    fields.update({f"weight-{i}": weight_text(w) for i, (_, w) in enumerate(prefs.keywords)})
    fields.update(exclude="\n".join(prefs.exclude), timezone=prefs.timezone, send_at=prefs.send_at,
                  frequency=prefs.frequency, max_papers=str(prefs.max_papers), paused="1" if prefs.paused else "")
    return fields


def _one_line(value: object) -> str:
    return " ".join(scrub(str(value)).split())


def _lines(value: object) -> list[str]:
    lines = (_one_line(line) for line in str(value).replace("\r", "\n").split("\n"))
    return list(dict.fromkeys(line for line in lines if line))  # in order, without repeats


def keyword_rows(form: Mapping[str, str]) -> list[tuple[int, str, str]]:
    """(row number, term, weight as typed) of each keyword row with a term, in row order."""
    rows = []
    for name in form:
        match = _ROW_RE.fullmatch(name)
        if match and int(match.group(1)) < MAX_ROWS:
            i = int(match.group(1))
            term = _one_line(form[name])
            if term:
                rows.append((i, term, str(form.get(f"weight-{i}", "")).strip() or "1"))
    return sorted(rows)


def parse_form(form: Mapping[str, str]) -> tuple[Prefs | None, dict[str, str]]:
    """The validated preferences of a submitted form, or None and a message per form field
    (``term-3``, ``weight-3``, ``exclude``, ``timezone``, ...): ``digest check``'s messages for
    what the schema checks."""
    rows = keyword_rows(form)
    exclude = _lines(form.get("exclude", ""))
    errors: dict[str, str] = {}
    if len(exclude) > MAX_ROWS:
        errors["exclude"] = f"at most {MAX_ROWS} terms, one per line"
    send_at = str(form.get("send_at", "")).strip() or "07:00"
    raw: dict[str, Any] = {
        "email": _PLACEHOLDER,
        "keywords": [{"term": term, "weight": weight} for _, term, weight in rows],
        "exclude": exclude,
        "timezone": str(form.get("timezone", "")).strip() or "UTC",
        "send_at": send_at,
        "frequency": str(form.get("frequency", "")).strip() or "daily",
        "max_papers": str(form.get("max_papers", "")).strip() or "5",
        "paused": str(form.get("paused", "")).strip().lower() in _CHECKED,
    }
    try:
        parsed = SubscriptionFile.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            errors.setdefault(_field_of(tuple(err["loc"]), rows), schema_message(err))
        return None, errors
    if errors:
        return None, errors
    hours, _, minutes = parsed.send_at.partition(":")
    return Prefs(
        keywords=tuple((k.term, float(k.weight)) for k in parsed.keywords),
        exclude=tuple(parsed.exclude),
        timezone=parsed.timezone,
        send_at=f"{int(hours):02d}:{minutes}",
        frequency=parsed.frequency,
        max_papers=parsed.max_papers,
        paused=parsed.paused,
    ), {}


def _field_of(loc: tuple[Any, ...], rows: list[tuple[int, str, str]]) -> str:
    """The form field a schema error belongs to."""
    if not loc:
        return "keywords"
    if loc[0] == "keywords" and len(loc) >= 3 and isinstance(loc[1], int) and loc[1] < len(rows):
        return f"{'weight' if loc[2] == 'weight' else 'term'}-{rows[loc[1]][0]}"
    return str(loc[0])


def changes(current: Prefs, wanted: Prefs) -> dict[str, Any]:
    """The keys a save writes: those whose value differs from the file's (keywords as a list
    of (term, weight), exclude as a list of terms)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(Prefs):
        old, new = getattr(current, field.name), getattr(wanted, field.name)
        if old != new:
            out[field.name] = list(new) if isinstance(new, tuple) else new
    return out


def file_version(data: bytes, st: os.stat_result) -> str:
    """What a form remembers of the file it was loaded from: any write changes it (a new inode
    after an editor's or our own save-by-rename, a new mtime after an in-place write)."""
    digest = hashlib.sha256(data)
    digest.update(f"\x00{st.st_ino}\x00{st.st_mtime_ns}\x00{st.st_size}".encode())
    return _b64encode(digest.digest()[:16])


# -- the form's CSRF token ------------------------------------------------------------------------


class FormToken(NamedTuple):
    nonce: str
    version: str  # file_version when the page was loaded
    issued: int  # Unix seconds


def _tag(secret: bytes, sub_id: str, body: str) -> str:
    mac = hmac.new(derive_key(secret, "manage-form"), _CONTEXT + sub_id.encode() + b"\x00" + body.encode(), hashlib.sha256)
    return _b64encode(mac.digest()[:_TAG])


def make_form_token(secret: bytes, sub_id: str, version: str, *, now: float | None = None, nonce: str | None = None) -> str:
    """The CSRF token of one rendered form for `sub_id`'s file at `version`."""
    stamp = format(int(time.time() if now is None else now), "x")
    body = f"{stamp}.{nonce or secrets.token_urlsafe(16)}.{version}"
    return f"{body}.{_tag(secret, sub_id, body)}"


def read_form_token(token: object, secret: bytes, sub_id: str, *, now: float | None = None) -> FormToken | None:
    """The nonce and version of a token we issued for `sub_id` less than FORM_MAX_AGE ago, else None."""
    match = _FORM_RE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        return None
    stamp, nonce, version, tag = match.groups()
    issued = int(stamp, 16)
    age = (time.time() if now is None else now) - issued
    body = f"{stamp}.{nonce}.{version}"
    if not (-60 <= age <= FORM_MAX_AGE and hmac.compare_digest(_tag(secret, sub_id, body), tag)):
        return None
    return FormToken(nonce, version, issued)


class SpentForms:
    """The nonces of forms that saved, until they would have expired anyway; at most `max_size`
    (the oldest forgotten first: by then their file version has changed as well)."""

    def __init__(self, max_size: int = 50_000) -> None:
        self.max_size = max_size
        self._spent: OrderedDict[str, float] = OrderedDict()

    def spend(self, nonce: str, issued: float) -> bool:
        """Mark `nonce` spent; False if it already was."""
        self._forget(time.time())
        if nonce in self._spent:
            return False
        self._spent[nonce] = issued + FORM_MAX_AGE + 60
        while len(self._spent) > self.max_size:
            self._spent.popitem(last=False)
        return True

    def spent(self, nonce: str) -> bool:
        return nonce in self._spent

    def _forget(self, now: float) -> None:
        while self._spent:
            nonce, until = next(iter(self._spent.items()))
            if until > now:
                break
            del self._spent[nonce]


def weight_text(weight: float) -> str:
    """``2`` for 2.0, ``0.5`` for 0.5: a weight as a reader would type it."""
    return f"{weight:g}"



# -- what the page shows besides the form ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreviewPaper:
    title: str
    url: str | None
    why: str
    sent: bool  # the reader had it already: the next edition leaves it out


@dataclass(frozen=True, slots=True)
class Preview:
    """What an edition would hold with the previewed settings, from the papers the service has."""

    papers: tuple[PreviewPaper, ...] = ()  # shown in full
    more: tuple[PreviewPaper, ...] = ()  # listed under "and N more"
    more_total: int = 0
    fetched_at: dt.datetime | None = None  # None: nothing fetched yet (a fetch has been started)
    considered: int = 0  # papers ranked


@dataclass(frozen=True, slots=True)
class RatingRow:
    key: str
    title: str
    vote: int  # +1 "more like this", -1 "not for me"
    rated_at: dt.datetime | None = None
