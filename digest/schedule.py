"""When each reader's edition is due: pure next-fire arithmetic on local wall-clock time.

No I/O and no clock: every function takes the instant it reasons about. Instants are aware
``datetime`` objects (any zone in, UTC out); a naive instant is a ``ValueError``. Time zones come
from :mod:`zoneinfo` (IANA names). ``paused`` is not looked at here: the caller decides what a
paused reader's due edition means (the pipeline records it as ``skipped-paused``).

An *edition* is one reader on one local date. ``frequency`` says which local dates have one:
``daily`` every date, ``weekdays`` Monday to Friday, ``weekly:mon`` ... ``weekly:sun`` that one
weekday. It is due at ``send_at`` on that date in the reader's ``timezone``.

Daylight-saving rules (also in the README):

- **Spring forward (a skipped hour).** A ``send_at`` that does not exist on that day, because the
  clocks jump over it, fires at the first valid instant after the gap, i.e. the moment the clocks
  jump. Example: 02:30 Europe/Berlin on 2026-03-29 fires at 03:00 CEST (01:00 UTC); 02:30
  America/New_York on 2026-03-08 fires at 03:00 EDT (07:00 UTC). The edition still belongs to
  that date, and it is not skipped.
- **Fall back (a repeated hour).** A ``send_at`` that occurs twice on that day fires once, at the
  first occurrence (PEP 495 ``fold=0``, still on summer time). Example: 02:30 Europe/Berlin on
  2026-10-25 fires at 02:30 CEST (00:30 UTC), not again at 02:30 CET; 01:30 America/New_York on
  2026-11-01 fires at 01:30 EDT (05:30 UTC).
- Every other ``send_at`` fires at that local wall-clock time, whatever the UTC offset that day.
- One local date gives at most one edition, and successive editions fire at strictly increasing
  instants.

Downtime: :func:`due_edition` returns the newest edition whose fire time lies in
``[now - catch_up, now]``, so a service that was down across a send time sends that edition once
when it comes back, if it is not older than ``catch_up``; older editions, and editions superseded
by a newer one in the same window (coalesced), are never sent: :func:`missed_editions` lists them
for the log.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from .models import FREQUENCIES, Subscription

__all__ = [
    "WEEKDAYS",
    "edition_date",
    "fires_on",
    "fire_time",
    "next_fire",
    "due_edition",
    "missed_editions",
]

UTC = dt.timezone.utc
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ONE_DAY = dt.timedelta(days=1)
# The longest local-date run without an edition is 6 days (weekly); a zone change can move a
# fire instant by at most about a day. These margins bound every search loop below.
_SEARCH_DAYS = 16


def _zone(sub: Subscription) -> ZoneInfo:
    return ZoneInfo(sub.timezone)  # ZoneInfo caches instances by key


def _aware(instant: dt.datetime, name: str) -> dt.datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {instant!r}")
    return instant


def edition_date(sub: Subscription, at: dt.datetime) -> dt.date:
    """The reader's local date at the aware instant ``at``."""
    return _aware(at, "at").astimezone(_zone(sub)).date()


def fires_on(sub: Subscription, day: dt.date) -> bool:
    """Whether ``sub.frequency`` has an edition on the local date ``day``."""
    freq = sub.frequency
    if freq == "daily":
        return True
    if freq == "weekdays":
        return day.weekday() < 5
    if freq in FREQUENCIES and freq.startswith("weekly:"):
        return day.weekday() == WEEKDAYS.index(freq.split(":", 1)[1])
    raise ValueError(f"unknown frequency {freq!r}; expected one of {', '.join(FREQUENCIES)}")


def _offset_at(ts: int, zone: ZoneInfo) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(ts, UTC).astimezone(zone).utcoffset()


def _local_to_utc(day: dt.date, at: dt.time, zone: ZoneInfo) -> dt.datetime:
    """``at`` on ``day`` in ``zone`` as a UTC instant, with the module's DST rules."""
    wall = dt.datetime.combine(day, at.replace(tzinfo=None, fold=0))
    first = wall.replace(tzinfo=zone)  # fold=0: the first occurrence of a repeated time
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc  # the wall time exists (once, or twice and we took the first)
    # In a gap. PEP 495: fold=0 reads it with the offset before the jump, fold=1 with the offset
    # after, so the jump (the first valid instant after the gap) lies in (low, high]. Transitions
    # fall on whole seconds; bisect in integer seconds.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low_dt, high_dt = sorted((utc, other))
    low = int(low_dt.timestamp()) - 1
    high = int(high_dt.timestamp()) + 1
    after = _offset_at(high, zone)
    while high - low > 1:
        mid = (low + high) // 2
        if _offset_at(mid, zone) == after:
            high = mid
        else:
            low = mid
    return dt.datetime.fromtimestamp(high, UTC)


def fire_time(sub: Subscription, day: dt.date) -> dt.datetime | None:
    """The aware UTC instant at which the edition of local date ``day`` is due, or None if
    ``sub.frequency`` has no edition that day. DST rules: see the module docstring."""
    if not fires_on(sub, day):
        return None
    return _local_to_utc(day, sub.send_at, _zone(sub))


def next_fire(sub: Subscription, after: dt.datetime) -> tuple[dt.date, dt.datetime]:
    """The next edition ``(local date, UTC instant)`` whose instant is strictly after ``after``."""
    day = edition_date(sub, after) - 2 * _ONE_DAY
    for _ in range(_SEARCH_DAYS):
        when = fire_time(sub, day)
        if when is not None and when > after:
            return day, when
        day += _ONE_DAY
    raise RuntimeError(f"no edition within {_SEARCH_DAYS} days of {after}")  # pragma: no cover


def _editions_between(
    sub: Subscription, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.date, dt.datetime]]:
    """Every edition with ``start <= instant <= end``, oldest first."""
    out: list[tuple[dt.date, dt.datetime]] = []
    day = edition_date(sub, start) - 2 * _ONE_DAY
    last = edition_date(sub, end) + 2 * _ONE_DAY
    while day <= last:
        when = fire_time(sub, day)
        if when is not None and start <= when <= end:
            out.append((day, when))
        day += _ONE_DAY
    return out


def _check_window(now: dt.datetime, catch_up: dt.timedelta) -> None:
    _aware(now, "now")
    if catch_up < dt.timedelta(0):
        raise ValueError(f"catch_up must not be negative, got {catch_up}")


def due_edition(
    sub: Subscription, now: dt.datetime, *, catch_up: dt.timedelta
) -> tuple[dt.date, dt.datetime] | None:
    """The newest edition whose fire time is ``<= now`` and ``>= now - catch_up`` (both ends
    included): the one to send now, or to catch up after downtime. None if there is none."""
    _check_window(now, catch_up)
    oldest = now - catch_up
    day = edition_date(sub, now) + _ONE_DAY
    stop = edition_date(sub, oldest) - 2 * _ONE_DAY
    while day >= stop:  # newest first; fire times only grow with the date
        when = fire_time(sub, day)
        if when is not None and when <= now:
            return (day, when) if when >= oldest else None
        day -= _ONE_DAY
    return None


def missed_editions(
    sub: Subscription, since: dt.datetime, now: dt.datetime, *, catch_up: dt.timedelta
) -> list[dt.date]:
    """Local dates of the editions that fell due in ``(since, now]`` and will not be sent: older
    than ``catch_up``, or superseded by a newer due edition (coalesced). Oldest first.

    ``since`` is the last instant already handled (for example the previous tick, or the last
    successful run); an edition due exactly at ``since`` is not listed.
    """
    _check_window(now, catch_up)
    _aware(since, "since")
    if since >= now:
        return []
    due = due_edition(sub, now, catch_up=catch_up)
    return [
        day
        for day, when in _editions_between(sub, since, now)
        if when > since and (due is None or day != due[0])
    ]
