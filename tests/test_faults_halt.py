"""Faults around a delivery that are nobody's reader's: the run halts, in bounded time, with one reason.

Each test reproduces a report of the reliability review (issue 12, items 1-3) against real parts:
a real SMTP server scripted to refuse our login, refuse our sender, go silent; a real SQLite file
on a full or read-only tmpfs; a real SQLite trigger that fails the group commit. Before the fix
these hung forever, or marked every reader's edition failed and then suspended everyone.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.store import open_store
from tests.faulty_smtpd import FaultySmtpServer, accept_any_login, reject_login
from tests.test_smtp_faults import DAY, NOON, add_readers, mailer, record, send, store

EXAMPLE_READERS = ("alice", "bob", "chen")


@pytest.fixture
def run_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def digest(project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(project / "config" / "digest.yaml"), *args], catch_exceptions=False)


def configure(project: Path, **extra: object) -> None:
    path = project / "config" / "digest.yaml"
    settings = yaml.safe_load(path.read_text())
    settings.update(extra)
    path.write_text(yaml.safe_dump(settings))


def statuses(result: Result) -> dict[str, str]:
    return {row["user"]: row["status"] for row in json.loads(result.stdout)}


def suspended(user: str) -> bool:
    s = store()
    try:
        return s.subscriber(user).suspended_at is not None
    finally:
        s.close()


# -- 3. the operator's fault is not the reader's ---------------------------------------------------


def test_a_wrong_password_halts_every_run_suspends_nobody_and_the_fixed_password_sends(run_dir: Path) -> None:
    srv = FaultySmtpServer(authenticator=reject_login, auth_require_tls=False).start()
    try:
        for n in range(4):  # suspend_after is 3: one more run than it takes to suspend a failing reader
            day = DAY + dt.timedelta(days=n)
            run = send(mailer(srv, username="digest", password="wrong-pw"), day=day, now=NOON + dt.timedelta(days=n))
            assert run.statuses() == dict.fromkeys(EXAMPLE_READERS, "skipped-deferred")
            assert all("refused our login" in (o.error or "") and "535" in (o.error or "") for o in run.outcomes)
            assert all("wrong-pw" not in (o.error or "") for o in run.outcomes)
            assert {record(u, day).status for u in EXAMPLE_READERS} <= {"pending"}  # never "failed"
        assert srv.handler.sessions <= 2 * 4  # one login per open connection and run: no retries of a refused login
        assert not any(suspended(u) for u in EXAMPLE_READERS)
        assert srv.handler.received == []
    finally:
        srv.stop()

    fixed = FaultySmtpServer(authenticator=accept_any_login, auth_require_tls=False).start()
    try:
        last = DAY + dt.timedelta(days=3)
        run = send(mailer(fixed, username="digest", password="right-pw"), day=last, now=NOON + dt.timedelta(days=3))
        assert run.statuses() == dict.fromkeys(EXAMPLE_READERS, "sent")
        assert len(fixed.handler.received) == 3
    finally:
        fixed.stop()


def test_a_550_to_mail_from_halts_the_run_and_fails_no_reader(run_dir: Path) -> None:
    srv = FaultySmtpServer().start()
    srv.handler.mail_reply = "550 5.7.1 sender digest@example.org not allowed"
    try:
        add_readers(run_dir, 20)
        run = send(mailer(srv, retries=3))
        assert {o.status for o in run.outcomes} == {"skipped-deferred"}
        assert all("refused the sender (MAIL FROM)" in (o.error or "") for o in run.outcomes)
        assert srv.handler.commands.count("MAIL") <= 2  # the first refusal stops the run (2 connections)
        assert not any(o.permanent for o in run.outcomes)
        assert record("alice").status == "pending" and not suspended("alice")
    finally:
        srv.stop()


def test_a_550_to_one_recipient_still_counts_against_that_reader_only(run_dir: Path) -> None:
    srv = FaultySmtpServer().start()
    srv.handler.rcpt_replies = {"alice@example.org": "550 5.1.1 no such user"}
    try:
        run = send(mailer(srv))
        assert run["alice"].status == "failed" and run["alice"].permanent
        assert run["bob"].status == run["chen"].status == "sent"
        assert record("alice").status == "failed"
    finally:
        srv.stop()


# -- 2. a silent mail server -------------------------------------------------------------------------


def test_a_server_that_never_answers_ends_a_200_reader_run_within_one_timeout(run_dir: Path) -> None:
    srv = FaultySmtpServer().start()
    srv.handler.silent_greeting = True
    try:
        add_readers(run_dir, 200)
        run = send(mailer(srv, timeout=0.5, deadline=30, retries=3, connections=4))
        assert {o.status for o in run.outcomes} == {"skipped-deferred"}
        assert "within 0.5 s" in (run["alice"].error or "")
        # Before: each message waited out its own timeouts, one after another (200 x 4 x 0.5 s).
        assert run.seconds < 5
        assert srv.handler.sessions <= 8
        assert {record(u).status for u in ("r000", "r199", "alice") if record(u)} <= {"pending"}
    finally:
        srv.stop()


def test_a_server_that_goes_silent_mid_run_keeps_what_it_took_and_leaves_the_rest_pending(run_dir: Path) -> None:
    srv = FaultySmtpServer().start()
    srv.handler.silent_after = 20
    try:
        add_readers(run_dir, 100)
        run = send(mailer(srv, timeout=0.5, deadline=30, retries=3, connections=2))
        sent = [o.user for o in run.outcomes if o.status == "sent"]
        assert len(sent) == len(srv.handler.received) == 20
        assert {o.status for o in run.outcomes} == {"sent", "skipped-deferred"}
        assert run.seconds < 6
        assert all(record(u).status == "sent" for u in sent)
    finally:
        srv.stop()
    later = FaultySmtpServer().start()
    try:
        again = send(mailer(later), now=NOON + dt.timedelta(hours=1))
        assert sorted(o.user for o in again.outcomes if o.status == "sent") == sorted(
            o.user for o in run.outcomes if o.status == "skipped-deferred")
    finally:
        later.stop()


def test_digest_send_against_a_silent_server_exits_1_with_one_line_reason(run_dir: Path) -> None:
    srv = FaultySmtpServer().start()
    srv.handler.silent_greeting = True
    try:
        configure(run_dir, smtp={"host": srv.host, "port": srv.port, "tls": "none", "timeout": 0.5, "retries": 1})
        started = time.monotonic()
        result = digest(run_dir, "send", "--date", DAY.isoformat(), "--json")
        assert time.monotonic() - started < 10
        assert result.exit_code == 1
        assert statuses(result) == dict.fromkeys(EXAMPLE_READERS, "skipped-deferred")
        reason = [line for line in result.stderr.splitlines() if line.startswith("error: stopped sending:")]
        assert len(reason) == 1 and "within 0.5 s" in reason[0]
        assert "Traceback" not in result.stderr
    finally:
        srv.stop()


# -- 1. store faults never hang the run ------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for this test (needs root, as in CI and the container's /data)."""
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def data_on(project: Path, mount: Path, readers: int) -> None:
    """The database and the outbox on `mount` (the container's /data), and `readers` more readers."""
    configure(project, database_url=f"sqlite:///{mount}/digest.db", outbox=f"{mount}/outbox")
    add_readers(project, readers)
    open_store(f"sqlite:///{mount}/digest.db").close()  # the schema exists, as after a first run


def fill(mount: Path, leave: int = 0) -> None:
    """Fill the file system, then free `leave` bytes: enough to open the database and start."""
    with open(mount / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    size = (mount / "filler").stat().st_size
    with open(mount / "filler", "r+b") as f:
        f.truncate(max(0, size - leave))


def stop_reason(result: Result) -> str:
    """The one line that says why the run stopped (no traceback)."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("room", [0, 200_000], ids=["full-at-start", "full-mid-run"])
def test_a_full_disk_under_the_database_and_outbox_ends_the_run_exit_1(run_dir: Path, tiny_fs: Path, room: int) -> None:
    data_on(run_dir, tiny_fs, 300)
    fill(tiny_fs, leave=room)  # with room: a few messages go into the outbox before the disk is full
    started = time.monotonic()
    result = digest(run_dir, "send", "--date", DAY.isoformat(), "--json")
    assert time.monotonic() - started < 30  # before: never ended
    assert result.exit_code == 1
    reason = stop_reason(result)
    # the database or the outbox, whichever hit the full disk first, named with what happened
    assert str(tiny_fs) in reason and ("full" in reason or "No space" in reason or "I/O" in reason)
    if result.stdout.strip():
        rows = statuses(result)
        assert len(rows) == 303
        s = open_store(f"sqlite:///{tiny_fs}/digest.db", read_only=True)
        try:  # a row says "sent" only for an edition the store really recorded as sent
            assert all(s.edition(user, DAY).status == "sent" for user, status in rows.items() if status == "sent")
        finally:
            s.close()


def test_a_read_only_database_ends_the_run_exit_1_naming_the_file(run_dir: Path, tiny_fs: Path) -> None:
    data_on(run_dir, tiny_fs, 50)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    result = digest(run_dir, "send", "--date", DAY.isoformat(), "--json")
    assert result.exit_code == 1
    assert "digest.db" in stop_reason(result)


def test_a_failed_group_commit_halts_the_run_and_every_reader_has_an_outcome(run_dir: Path) -> None:
    srv = FaultySmtpServer().start()
    try:
        add_readers(run_dir, 40)
        s = store()  # a real SQLite fault on the commit only: recording seen papers fails
        s._db.execute("CREATE TRIGGER fail_seen BEFORE INSERT ON seen BEGIN SELECT RAISE(FAIL, 'disk I/O error'); END")
        s.close()
        configure(run_dir, smtp={"host": srv.host, "port": srv.port, "tls": "none", "timeout": 5})
        result = digest(run_dir, "send", "--date", DAY.isoformat(), "--json")
        assert result.exit_code == 1
        rows = json.loads(result.stdout)
        assert len(rows) == 43 and all(row["status"] for row in rows)  # before: AttributeError on a None row
        assert "sent" not in {row["status"] for row in rows}  # nothing recorded as sent that was not recorded
        assert "cannot record" in result.stderr and "disk I/O error" in result.stderr
        assert len(srv.handler.received) < 43  # the run stopped sending at the first failed commit
    finally:
        srv.stop()


def test_a_background_task_that_dies_halts_the_run_instead_of_hanging_it(run_dir: Path) -> None:
    srv = FaultySmtpServer().start()
    try:
        add_readers(run_dir, 60)
        seen: list[str] = []

        def boom(outcome: object) -> None:  # the committer reports through this: it dies, once
            status = getattr(outcome, "status", "")
            seen.append(status)
            if status == "sent" and seen.count("sent") == 1:
                raise RuntimeError("reporting broke")

        import tests.test_smtp_faults as faults

        started = time.monotonic()
        with pytest.MonkeyPatch.context() as mp:
            real = faults.Delivery

            def delivery(**kwargs: object) -> object:
                kwargs["on_outcome"] = boom
                return real(**kwargs)

            mp.setattr(faults, "Delivery", delivery)
            run = send(mailer(srv))
        assert time.monotonic() - started < 10
        assert all(o is not None for o in run.outcomes) and len(run.outcomes) == 63
        assert any(o.status == "skipped-deferred" and "reporting broke" in (o.error or "") for o in run.outcomes)
    finally:
        srv.stop()
