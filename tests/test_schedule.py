from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.models import FREQUENCIES, Subscription
from digest.schedule import (
    due_edition,
    edition_date,
    fire_time,
    fires_on,
    missed_editions,
    next_fire,
)

UTC = dt.timezone.utc
D = dt.date.fromisoformat


def sub(tz: str = "UTC", at: str = "07:00", freq: str = "daily") -> Subscription:
    return Subscription(
        id="alice", email="alice@example.org", timezone=tz,
        send_at=dt.time.fromisoformat(at), frequency=freq,
    )


def utc(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=UTC)


# (zone, local date, send_at) -> expected UTC instant
DST_CASES = [
    # Europe/Berlin spring forward 2026-03-29: 02:00 CET -> 03:00 CEST
    ("Europe/Berlin", "2026-03-28", "02:30", "2026-03-28T01:30"),
    ("Europe/Berlin", "2026-03-29", "02:30", "2026-03-29T01:00"),  # gap: fires at 03:00 CEST
    ("Europe/Berlin", "2026-03-29", "07:00", "2026-03-29T05:00"),
    ("Europe/Berlin", "2026-03-29", "01:30", "2026-03-29T00:30"),
    ("Europe/Berlin", "2026-03-30", "02:30", "2026-03-30T00:30"),
    # Europe/Berlin fall back 2026-10-25: 03:00 CEST -> 02:00 CET
    ("Europe/Berlin", "2026-10-25", "02:30", "2026-10-25T00:30"),  # first occurrence (CEST)
    ("Europe/Berlin", "2026-10-25", "07:00", "2026-10-25T06:00"),
    ("Europe/Berlin", "2026-10-25", "01:30", "2026-10-24T23:30"),
    ("Europe/Berlin", "2026-10-26", "02:30", "2026-10-26T01:30"),
    # America/New_York spring forward 2026-03-08: 02:00 EST -> 03:00 EDT
    ("America/New_York", "2026-03-08", "02:30", "2026-03-08T07:00"),  # gap: 03:00 EDT
    ("America/New_York", "2026-03-08", "07:00", "2026-03-08T11:00"),
    ("America/New_York", "2026-03-08", "01:30", "2026-03-08T06:30"),
    ("America/New_York", "2026-03-07", "07:00", "2026-03-07T12:00"),
    # America/New_York fall back 2026-11-01: 02:00 EDT -> 01:00 EST
    ("America/New_York", "2026-11-01", "01:30", "2026-11-01T05:30"),  # first occurrence (EDT)
    ("America/New_York", "2026-11-01", "02:30", "2026-11-01T07:30"),
    ("America/New_York", "2026-11-01", "07:00", "2026-11-01T12:00"),
]


@pytest.mark.parametrize("tz,day,at,expected", DST_CASES)
def test_fire_time_across_dst(tz: str, day: str, at: str, expected: str) -> None:
    when = fire_time(sub(tz, at), D(day))
    assert when == utc(expected)
    assert when is not None and when.tzinfo is not None and when.utcoffset() == dt.timedelta(0)


def test_gap_fires_at_the_jump_and_keeps_its_date() -> None:
    s = sub("Europe/Berlin", "02:30")
    when = fire_time(s, D("2026-03-29"))
    assert when is not None
    local = when.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (3, 0)
    assert edition_date(s, when) == D("2026-03-29")
    assert next_fire(s, utc("2026-03-28T12:00")) == (D("2026-03-29"), utc("2026-03-29T01:00"))


@pytest.mark.parametrize(
    "tz,day,at",
    [
        ("Europe/Berlin", "2026-10-25", "02:30"),
        ("America/New_York", "2026-11-01", "01:30"),
    ],
)
def test_repeated_hour_fires_once(tz: str, day: str, at: str) -> None:
    s = sub(tz, at)
    first = fire_time(s, D(day))
    assert first is not None
    # Right after the first occurrence the next edition is the next day, not the second 02:30.
    nxt_day, nxt = next_fire(s, first)
    assert nxt_day == D(day) + dt.timedelta(days=1)
    assert nxt - first > dt.timedelta(hours=24)


@pytest.mark.parametrize(
    "tz,days",
    [
        ("Europe/Berlin", ("2026-03-27", "2026-04-01")),
        ("Europe/Berlin", ("2026-10-23", "2026-10-28")),
        ("America/New_York", ("2026-03-06", "2026-03-11")),
        ("America/New_York", ("2026-10-30", "2026-11-04")),
    ],
)
@pytest.mark.parametrize("at", ["02:30", "07:00", "01:30"])
def test_one_edition_per_local_day_across_dst(tz: str, days: tuple[str, str], at: str) -> None:
    s = sub(tz, at)
    start, end = D(days[0]), D(days[1])
    cursor = dt.datetime.combine(start, dt.time(0), ZoneInfo(tz)).astimezone(UTC)
    seen = []
    while True:
        day, when = next_fire(s, cursor)
        if day > end:
            break
        assert when > cursor
        seen.append(day)
        cursor = when
    assert seen == [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def test_fires_on_every_frequency() -> None:
    monday = D("2026-03-02")
    week = [monday + dt.timedelta(days=i) for i in range(7)]
    assert all(fires_on(sub(freq="daily"), d) for d in week)
    assert [fires_on(sub(freq="weekdays"), d) for d in week] == [True] * 5 + [False] * 2
    for i, name in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]):
        assert [fires_on(sub(freq=f"weekly:{name}"), d) for d in week] == [j == i for j in range(7)]
    with pytest.raises(ValueError):
        fires_on(sub(freq="hourly"), monday)


@pytest.mark.parametrize("freq", FREQUENCIES)
def test_next_fire_every_frequency(freq: str) -> None:
    s = sub("Europe/Berlin", "07:00", freq)
    day, when = next_fire(s, utc("2026-03-02T12:00"))  # a Monday, after 07:00 local
    assert fires_on(s, day) and fire_time(s, day) == when
    assert D("2026-03-03") <= day <= D("2026-03-09")
    assert fire_time(s, D("2026-03-02")) is None or fire_time(s, D("2026-03-02")) < utc(
        "2026-03-02T12:00"
    )
    for d in (D("2026-03-03") + dt.timedelta(days=i) for i in range((day - D("2026-03-03")).days)):
        assert not fires_on(s, d)  # nothing skipped in between


def test_weekday_and_weekly_fire_time_none_on_off_days() -> None:
    assert fire_time(sub(freq="weekdays"), D("2026-03-07")) is None  # Saturday
    assert fire_time(sub(freq="weekly:sun"), D("2026-03-07")) is None
    assert fire_time(sub(freq="weekly:sat"), D("2026-03-07")) == utc("2026-03-07T07:00")


def test_edition_date_is_local() -> None:
    s = sub("America/New_York")
    assert edition_date(s, utc("2026-03-02T03:00")) == D("2026-03-01")
    assert edition_date(sub("Asia/Tokyo"), utc("2026-03-01T16:00")) == D("2026-03-02")
    with pytest.raises(ValueError):
        edition_date(s, dt.datetime(2026, 3, 2, 3, 0))


def test_next_fire_is_strictly_after() -> None:
    s = sub("UTC", "07:00")
    assert next_fire(s, utc("2026-03-02T06:59:59")) == (D("2026-03-02"), utc("2026-03-02T07:00"))
    assert next_fire(s, utc("2026-03-02T07:00")) == (D("2026-03-03"), utc("2026-03-03T07:00"))


# --- catch-up window -------------------------------------------------------------------------

H = dt.timedelta(hours=1)


def test_due_edition_window_boundaries() -> None:
    s = sub("Europe/Berlin", "07:00")  # 2026-03-02 07:00 CET = 06:00 UTC
    fire = utc("2026-03-02T06:00")
    edition = (D("2026-03-02"), fire)
    assert due_edition(s, fire - dt.timedelta(microseconds=1), catch_up=3 * H) != edition
    assert due_edition(s, fire, catch_up=3 * H) == edition  # at the instant
    assert due_edition(s, fire, catch_up=dt.timedelta(0)) == edition
    assert due_edition(s, fire + 3 * H, catch_up=3 * H) == edition  # last instant of the window
    assert due_edition(s, fire + 3 * H + dt.timedelta(microseconds=1), catch_up=3 * H) is None
    assert due_edition(s, fire + dt.timedelta(seconds=1), catch_up=dt.timedelta(0)) is None
    with pytest.raises(ValueError):
        due_edition(s, fire, catch_up=-H)


def test_due_edition_down_across_send_time_coalesces() -> None:
    s = sub("Europe/Berlin", "07:00")
    # Down from 07:00 to 10:00 local: one run when we come back.
    assert due_edition(s, utc("2026-03-02T09:00"), catch_up=6 * H) == (
        D("2026-03-02"), utc("2026-03-02T06:00"),
    )
    # Down for three days with a long catch-up: only the newest edition, the rest are missed.
    now = utc("2026-03-05T09:00")
    assert due_edition(s, now, catch_up=dt.timedelta(days=4)) == (
        D("2026-03-05"), utc("2026-03-05T06:00"),
    )
    assert missed_editions(s, utc("2026-03-01T12:00"), now, catch_up=dt.timedelta(days=4)) == [
        D("2026-03-02"), D("2026-03-03"), D("2026-03-04"),
    ]


def test_missed_editions_older_than_catch_up() -> None:
    s = sub("UTC", "07:00", "weekdays")
    since = utc("2026-03-06T08:00")  # Friday, after that day's edition
    now = utc("2026-03-10T12:00")  # Tuesday noon
    assert due_edition(s, now, catch_up=2 * H) is None
    assert missed_editions(s, since, now, catch_up=2 * H) == [D("2026-03-09"), D("2026-03-10")]
    assert due_edition(s, now, catch_up=6 * H) == (D("2026-03-10"), utc("2026-03-10T07:00"))
    assert missed_editions(s, since, now, catch_up=6 * H) == [D("2026-03-09")]
    # `since` is exclusive; an empty or reversed span gives nothing.
    assert missed_editions(s, utc("2026-03-09T07:00"), now, catch_up=H) == [D("2026-03-10")]
    assert missed_editions(s, now, now, catch_up=H) == []


def test_due_edition_on_spring_gap() -> None:
    s = sub("Europe/Berlin", "02:30")
    assert due_edition(s, utc("2026-03-29T01:00"), catch_up=H) == (
        D("2026-03-29"), utc("2026-03-29T01:00"),
    )
    assert due_edition(s, utc("2026-03-29T00:59:59"), catch_up=H) is None


# --- properties ------------------------------------------------------------------------------

ZONES = [
    "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
    "America/Sao_Paulo", "Pacific/Apia", "Europe/Dublin",
]


@settings(max_examples=100, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    freq=st.sampled_from(FREQUENCIES),
    at=st.times(),
    start=st.datetimes(min_value=dt.datetime(2010, 1, 1), max_value=dt.datetime(2030, 1, 1)),
    span=st.integers(min_value=1, max_value=40),
)
def test_next_fire_property(
    tz: str, freq: str, at: dt.time, start: dt.datetime, span: int
) -> None:
    s = Subscription(id="p", email="p@example.org", timezone=tz, send_at=at, frequency=freq)
    cursor = start.replace(tzinfo=UTC)
    end = cursor + dt.timedelta(days=span)
    fired: list[tuple[dt.date, dt.datetime]] = []
    while True:
        day, when = next_fire(s, cursor)
        if when > end:
            break
        assert when > cursor
        assert fires_on(s, day)
        assert fire_time(s, day) == when
        fired.append((day, when))
        cursor = when
    days = [d for d, _ in fired]
    assert days == sorted(set(days))  # at most one per local date, in order
    # Nothing skipped: every firing local date strictly between the first and last was seen.
    if len(days) >= 2:
        expected = [
            days[0] + dt.timedelta(days=i)
            for i in range((days[-1] - days[0]).days + 1)
            if fires_on(s, days[0] + dt.timedelta(days=i))
        ]
        assert days == expected
    # due_edition agrees with next_fire at each instant.
    for day, when in fired:
        assert due_edition(s, when, catch_up=dt.timedelta(0)) == (day, when)
