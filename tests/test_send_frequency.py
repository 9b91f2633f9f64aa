"""Issue 13, item 8: a plain `digest send` honours each reader's `frequency` (the rule `digest run`
schedules by, digest/schedule.py); `--user` or `--date` asks for an edition whatever the frequency."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from digest import cli_send
from tests.smtpd import SmtpServer
from tests.test_send import configure, digest, rows

# Thursday 9 October 2025, 12:00 UTC: alice (daily, Berlin) and bob (weekdays, New York) have an
# edition that local date; chen (weekly:mon, Shanghai) does not.
THURSDAY_NOON = dt.datetime(2025, 10, 9, 12, 0, tzinfo=dt.timezone.utc)
SATURDAY_NOON = dt.datetime(2025, 10, 11, 12, 0, tzinfo=dt.timezone.utc)
MONDAY_EARLY = dt.datetime(2025, 10, 13, 0, 30, tzinfo=dt.timezone.utc)  # Monday in Shanghai, Sunday in New York


@pytest.fixture
def run_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def at(monkeypatch: pytest.MonkeyPatch, when: dt.datetime) -> None:
    monkeypatch.setattr(cli_send, "_now", lambda: when)


def test_a_weekly_reader_gets_no_thursday_edition_from_a_plain_send(
    run_dir: Path, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(run_dir, smtpd)
    at(monkeypatch, THURSDAY_NOON)
    result = digest(run_dir, "send", "--json")
    assert result.exit_code == 0, result.output  # not due is not a failure
    statuses = {u: r["status"] for u, r in rows(result).items()}
    assert statuses == {"alice": "sent", "bob": "sent", "chen": "skipped-not-due"}
    assert rows(result)["chen"]["date"] == "2025-10-09" and rows(result)["chen"]["message_id"] is None
    assert sorted(r.rcpt_tos[0] for r in smtpd.handler.received) == ["alice@example.org", "bob@example.org"]

    asked = digest(run_dir, "send", "--user", "chen", "--json")  # asked for by name: sent
    assert {u: r["status"] for u, r in rows(asked).items()} == {"chen": "sent"}
    assert len(smtpd.handler.received) == 3


def test_the_summary_says_why_a_reader_got_nothing(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at(monkeypatch, SATURDAY_NOON)
    result = digest(run_dir, "send", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 skipped (2 not-due)" in result.stderr  # bob (weekdays) and chen (weekly:mon)
    assert sorted(p.name for p in (run_dir / "outbox-preview").iterdir()) == ["alice.eml", "alice.html", "alice.txt"]


def test_the_readers_local_date_decides_and_date_overrides(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at(monkeypatch, MONDAY_EARLY)
    result = digest(run_dir, "send", "--dry-run", "--json")
    statuses = {u: r["status"] for u, r in rows(result).items()}
    assert statuses["chen"] == "dry-run" and statuses["bob"] == "skipped-not-due"  # Sunday evening in New York

    dated = digest(run_dir, "send", "--dry-run", "--date", "2025-10-11", "--json")  # a Saturday, asked for
    assert {r["status"] for r in rows(dated).values()} == {"dry-run"}
