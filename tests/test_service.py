"""`digest run` end to end: the real console script as a subprocess, the saved payloads as
sources, a real SMTP server (aiosmtpd) on loopback, real SQLite, real HTTP.

Tests that must wait for a minute boundary (send_at is HH:MM) are marked slow; the others use
catch-up (send_at in the current minute is already due when the service starts) and take seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import pty
import re
import secrets
import select
import signal
import subprocess
import sys
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.config import load_settings
from digest.models import Subscription
from digest.schedule import due_edition
from digest.tokens import make_token
from tests.conftest import ROOT
from tests.service_helpers import (
    DIGEST,
    Service,
    clean_env,
    digest_cli,
    free_port,
    http,
    image_spec,
    local_send_at,
    make_project,
    next_minute_send_at,
    reader,
    record_arrivals,
    wait_for,
    write_reader,
)
from tests.smtpd import SmtpServer

UTC = dt.timezone.utc


def edition_day(tz: str, send_at: str, catch_up: dt.timedelta = dt.timedelta(hours=12)) -> dt.date:
    """The local date of the edition a reader with this tz/send_at has due now."""
    sub = Subscription(id="x", email="x@example.org", timezone=tz, send_at=dt.time.fromisoformat(send_at))
    due = due_edition(sub, dt.datetime.now(UTC), catch_up=catch_up)
    assert due is not None, "the edition should be due now"
    return due[0]


def sent_lines(service: Service) -> list[dict[str, Any]]:
    return [r for r in service.logs() if r.get("message") == "edition sent"]


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


# -- settings ------------------------------------------------------------------------------


def test_catch_up_accepts_seconds_and_iso_8601(tmp_path: Path) -> None:
    path = tmp_path / "digest.yaml"
    for value, expected in (("60", 60), ("PT2M", 120), ('"00:05:00"', 300)):
        path.write_text(f"catch_up: {value}\nrescan_interval: 0.5\n")
        settings = load_settings(path)
        assert settings.catch_up == dt.timedelta(seconds=expected)
        assert settings.rescan_interval == 0.5


# -- 1. on time ------------------------------------------------------------------------------


@pytest.mark.slow
def test_edition_arrives_at_send_time_and_lateness_is_measured(
    tmp_path: Path, smtpd: SmtpServer, request: pytest.FixtureRequest, record_property: Any
) -> None:
    tz = "Asia/Kolkata"  # UTC+05:30: a zone whose offset is not whole hours
    send_at, when = next_minute_send_at(tz, margin=12)
    arrivals = record_arrivals(smtpd)
    config = make_project(tmp_path, smtpd, {"kiran": reader("kiran@example.org", timezone=tz, send_at=send_at)})
    service = Service(config).start()
    try:
        health = service.wait_healthy()
        assert dt.datetime.fromisoformat(health["next_run"]) == when
        assert health["subscribers"] == 1 and health["last_run"] is None
        assert not arrivals, "nothing may go out before send_at"

        wait_for(lambda: arrivals, (when - dt.datetime.now(UTC)).total_seconds() + 30, "the digest to arrive")
        arrived, rcpt = arrivals[0]
        assert rcpt == "kiran@example.org"
        due = service.wait_log(lambda r: r.get("message") == "edition due", 5, "the 'edition due' log line")
        sent = service.wait_log(lambda r: r.get("message") == "edition sent", 5, "the 'edition sent' log line")
        lateness = arrived - when.timestamp()
        sent_at = dt.datetime.fromisoformat(sent["time"])
        figures = {
            "scheduled": when.isoformat(),
            "timer_late_ms": due["late_ms"],  # the APScheduler job ran this late
            "logged_sent_late_s": round((sent_at - when).total_seconds(), 3),  # 'edition sent' log line
            "smtp_arrival_late_s": round(lateness, 3),  # the SMTP server accepted the message
        }
        print(f"\nscheduler lateness: {json.dumps(figures)}")
        request.config.cache.set("digest/scheduler_lateness", figures)
        record_property("scheduler_lateness", json.dumps(figures))

        assert lateness >= 0, "sent before its time"
        assert lateness < 10, f"sent {lateness:.2f} s late"
        assert due["subscriber"] == "kiran" and due["scheduled"] == when.isoformat()
        message = smtpd.handler.messages[0]
        assert sent["message_id"] == message["Message-ID"] and sent["papers"] > 0
        assert sent["date"] == when.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).date().isoformat()

        health = service.health()
        assert health is not None and health["last_run"] is not None
        assert dt.datetime.fromisoformat(health["next_run"]) == when + dt.timedelta(days=1)  # re-armed
        assert service.stop() == 0
    finally:
        service.kill()
    assert len(smtpd.handler.received) == 1


# -- 2. catch-up -----------------------------------------------------------------------------


def test_catch_up_sends_once_even_after_restart_and_skips_older_editions(tmp_path: Path, smtpd: SmtpServer) -> None:
    catch_up = dt.timedelta(minutes=3)
    due_at, _ = local_send_at("America/Sao_Paulo", minutes=0)  # due at the start of this minute
    old_at, _ = local_send_at("Asia/Tokyo", minutes=-6)  # 6-7 minutes ago: older than catch_up
    arrivals = record_arrivals(smtpd)
    config = make_project(
        tmp_path, smtpd,
        {
            "dana": reader("dana@example.org", timezone="America/Sao_Paulo", send_at=due_at),
            "olaf": reader("olaf@example.org", timezone="Asia/Tokyo", send_at=old_at),
        },
        catch_up="PT3M",
    )
    for run in (1, 2):
        service = Service(config).start()
        try:
            service.wait_healthy()
            if run == 1:
                wait_for(lambda: (service.health() or {}).get("last_run"), 15, "the catch-up batch to finish")
            else:
                service.wait_log(lambda r: "missed" in r.get("message", ""), 10, "a 'missed' warning")
            catch_ups = [r for r in service.logs() if "catch-up" in r.get("message", "")]
            missed = [r for r in service.logs() if "missed" in r.get("message", "")]
            if run == 1:  # a first start: the service was never down, so nothing was "missed"
                assert missed == []
                assert [r["subscriber"] for r in catch_ups] == ["dana"]
            else:  # a restart: olaf's edition fell while it was down; dana's was sent, nothing to catch up
                assert [(r["level"], r["subscriber"]) for r in missed] == [("warning", "olaf")]
                assert catch_ups == []
            assert [rcpt for _, rcpt in arrivals] == ["dana@example.org"], f"run {run}"
            assert len(sent_lines(service)) == (1 if run == 1 else 0)
            assert service.stop() == 0
        finally:
            service.kill()
    assert len(smtpd.handler.received) == 1
    # olaf's edition was never sent nor recorded: only the operator's manual send could still send it.
    day = edition_day("America/Sao_Paulo", due_at, catch_up)
    again = digest_cli(config, "send", "--json", "--user", "dana", "--date", day.isoformat())
    assert json.loads(again.stdout)[0]["status"] == "already-sent"


# -- 3. unsubscribe ----------------------------------------------------------------------------


def test_one_click_unsubscribe_through_the_real_endpoint(tmp_path: Path, smtpd: SmtpServer) -> None:
    tz = "Europe/Berlin"
    send_at, _ = local_send_at(tz, minutes=0)
    arrivals = record_arrivals(smtpd)
    config = make_project(tmp_path, smtpd, {"dora": reader("dora@example.org", timezone=tz, send_at=send_at)})
    service = Service(config).start()
    try:
        service.wait_healthy()
        wait_for(lambda: arrivals, 15, "the catch-up digest")
        message = smtpd.handler.messages[0]
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = message["List-Unsubscribe"].strip("<>")
        assert link.startswith(service.url + "/unsubscribe/")  # public_url is the listen URL here
        token = link.rsplit("/", 1)[1]

        # A GET (a link scanner, a prefetch) never unsubscribes: it shows a confirmation page.
        status, body, headers = http("GET", link)
        assert status == 200 and 'method="post"' in body and "Unsubscribe" in body
        assert headers["Cache-Control"] == "no-store"
        # Forged and altered tokens: 400, no state change.
        forged = make_token("dora", secrets.token_bytes(32))
        altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        for bad in (forged, altered, "nonsense"):
            status, body, _ = http("POST", f"{service.url}/unsubscribe/{bad}", data=b"List-Unsubscribe=One-Click",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert status in (400, 404), bad
        check = digest_cli(config, "check")
        assert check.returncode == 0 and "unsubscribed" not in check.stdout

        # The mail provider's one-click POST: RFC 8058 body, no cookies, no login.
        status, body, _ = http("POST", link, data=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and "You are unsubscribed" in body
        status, _, _ = http("POST", link, data=b"List-Unsubscribe=One-Click")  # repeating is harmless
        assert status == 200
        _, metrics, _ = http("GET", service.url + "/metrics")
        assert metric(metrics, "digest_unsubscribes_total") == 2.0  # one per request, not two
        assert metric(metrics, "digest_digests_sent_total") == 1.0

        check = digest_cli(config, "check")  # while the service runs (SQLite WAL, read-only)
        assert re.search(r"dora\.yaml: unsubscribed on \d{4}-\d\d-\d\d \(digest resubscribe dora\)", check.stdout)
        assert token not in service.text()  # the access log redacts tokens
        assert "/unsubscribe/<redacted>" in service.text()
        assert service.stop() == 0
    finally:
        service.kill()
    next_day = edition_day(tz, send_at) + dt.timedelta(days=1)
    result = digest_cli(config, "send", "--json", "--date", next_day.isoformat())
    assert [(r["user"], r["status"]) for r in json.loads(result.stdout)] == [("dora", "skipped-unsubscribed")]
    assert len(smtpd.handler.received) == 1


# -- 4. SIGTERM mid-run ------------------------------------------------------------------------


def test_sigterm_mid_run_finishes_messages_in_flight_and_loses_nothing(tmp_path: Path, smtpd: SmtpServer) -> None:
    tz = "Europe/Paris"
    send_at, _ = local_send_at(tz, minutes=0)
    names = [f"r{i}" for i in range(6)]
    smtpd.handler.data_delay = 1.5  # a slow relay: 2 connections, 1.5 s a message
    arrivals = record_arrivals(smtpd)
    config = make_project(
        tmp_path, smtpd, {n: reader(f"{n}@example.org", timezone=tz, send_at=send_at) for n in names},
        smtp={"connections": 2, "deadline": 10},
    )
    service = Service(config).start()
    try:
        service.wait_healthy()
        wait_for(lambda: smtpd.handler.data_started, 20, "the first message to be in flight")  # type: ignore[attr-defined]
        in_flight = {rcpt for _, rcpt in smtpd.handler.data_started}  # type: ignore[attr-defined]
        stopped = time.monotonic()
        assert service.stop(timeout=20) == 0
        took = time.monotonic() - stopped
    finally:
        service.kill()
    arrived = [rcpt for _, rcpt in arrivals]
    print(f"\nSIGTERM: {len(arrived)} of {len(names)} sent before exit, exit took {took:.2f} s")
    assert took < 10
    assert in_flight <= set(arrived), "a message in flight at SIGTERM was not finished"
    assert 1 <= len(arrived) < len(names), "SIGTERM should have come mid-run"
    assert len(set(arrived)) == len(arrived)
    # Everything accepted was recorded as sent: the log says so, and the store (below).
    assert sorted(r["subscriber"] for r in sent_lines(service)) == sorted(a.split("@")[0] for a in arrived)
    assert any("stopping" in r.get("message", "") for r in service.logs())

    smtpd.handler.data_delay = 0
    day = edition_day(tz, send_at)
    result = digest_cli(config, "send", "--json", "--date", day.isoformat())
    assert result.returncode == 0, result.stderr
    statuses = {r["user"]: r["status"] for r in json.loads(result.stdout)}
    done = {a.split("@")[0] for a in arrived}
    assert statuses == {n: "already-sent" if n in done else "sent" for n in names}
    received = sorted(r.rcpt_tos[0] for r in smtpd.handler.received)
    assert received == sorted(f"{n}@example.org" for n in names)  # each exactly once


def test_a_large_batch_due_at_once_is_built_by_the_helper_process_and_sent_once_each(
    tmp_path: Path, smtpd: SmtpServer
) -> None:
    """300 readers due in the same minute: the service builds them in a forked helper (from
    pipeline.PROCESS_MIN readers) while its event loop, web server and timers go on."""
    from digest.editions import BuildProcess
    from digest.pipeline import PROCESS_MIN

    if not BuildProcess.available():
        pytest.skip("one CPU (or no fork): the helper process is never used here")
    tz = "Asia/Kolkata"
    send_at, _ = local_send_at(tz, minutes=0)
    names = [f"m{i:03d}" for i in range(max(300, PROCESS_MIN))]
    config = make_project(tmp_path, smtpd, {n: reader(f"{n}@example.org", timezone=tz, send_at=send_at) for n in names})
    service = Service(config).start()
    try:
        service.wait_healthy()
        wait_for(lambda: len(sent_lines(service)) == len(names), 60, "every edition to be sent")
        assert (service.health() or {}).get("scheduler_running") is True  # the HTTP server kept answering
        assert service.stop() == 0
    finally:
        service.kill()
    received = sorted(r.rcpt_tos[0] for r in smtpd.handler.received)
    assert received == sorted(f"{n}@example.org" for n in names)  # each exactly once


# -- 5. subscription files that change while the service runs -----------------------------------


@pytest.mark.slow
def test_invalid_file_keeps_last_valid_version_and_new_file_is_picked_up(tmp_path: Path, smtpd: SmtpServer) -> None:
    send_at, when = next_minute_send_at("Europe/Lisbon", margin=20)
    arrivals = record_arrivals(smtpd)
    config = make_project(
        tmp_path, smtpd, {"erin": reader("erin@example.org", timezone="Europe/Lisbon", send_at=send_at)},
        rescan_interval=0.5,
    )
    folder = config.parent / "subscriptions"
    service = Service(config).start()
    try:
        service.wait_healthy()
        # erin's file becomes invalid (an editor mid-save, a typo): line 2 is the bad one.
        (folder / "erin.yaml").write_text(f'email: erin.new@example.org\ntimezone: Mars/Olympus\nsend_at: "{send_at}"\n')
        error = service.wait_log(lambda r: r.get("level") == "error" and "erin.yaml" in r.get("problem", ""),
                                 10, "the invalid-file error")
        assert error["problem"].endswith("erin.yaml:2: timezone: unknown time zone 'Mars/Olympus' (use an IANA name like Europe/Berlin)")
        assert error["line"] == 2 and "keeping the last valid version" in error["message"]
        # A new reader dropped into the folder, due at the same minute in another zone.
        kolkata_at = when.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).strftime("%H:%M")
        write_reader(folder, "fay", reader("fay@example.org", timezone="Asia/Kolkata", send_at=kolkata_at))
        health = wait_for(lambda: (h := service.health()) and h["subscribers"] == 2 and h, 10, "fay to be picked up")
        assert dt.datetime.fromisoformat(health["next_run"]) == when
        # Several rescans later the broken file has been reported once, not at every rescan.
        assert len([r for r in service.logs() if "erin.yaml" in r.get("problem", "")]) == 1

        wait_for(lambda: len(arrivals) >= 2, (when - dt.datetime.now(UTC)).total_seconds() + 30, "both digests")
        assert sorted(rcpt for _, rcpt in arrivals) == ["erin@example.org", "fay@example.org"]  # erin's last valid address
        assert all(t >= when.timestamp() for t, _ in arrivals)
        assert service.health() is not None  # still healthy
        assert service.stop() == 0
    finally:
        service.kill()


def test_sighup_rereads_the_folder(tmp_path: Path) -> None:
    config = make_project(tmp_path, None, {"gus": reader("gus@example.org", send_at="03:00")}, rescan_interval=3600)
    service = Service(config).start()
    try:
        assert service.wait_healthy()["subscribers"] == 1
        write_reader(config.parent / "subscriptions", "hal", reader("hal@example.org", send_at="04:00"))
        service.signal(signal.SIGHUP)
        wait_for(lambda: (service.health() or {}).get("subscribers") == 2, 10, "SIGHUP to pick up hal")
        (config.parent / "subscriptions" / "hal.yaml").unlink()
        service.signal(signal.SIGHUP)
        wait_for(lambda: (service.health() or {}).get("subscribers") == 1, 10, "SIGHUP to drop hal")
        assert service.stop() == 0
    finally:
        service.kill()


def test_a_second_instance_on_the_same_port_exits_2(tmp_path: Path) -> None:
    config = make_project(tmp_path, None, {"gus": reader("gus@example.org", send_at="03:00")})
    service = Service(config).start()
    try:
        service.wait_healthy()
        second = subprocess.run([str(DIGEST), "--config", str(config), "run"], env=clean_env(),
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "listen: cannot serve HTTP on 127.0.0.1:" in second.stderr
        assert service.stop() == 0
    finally:
        service.kill()


# -- in-process: the scheduler's own jobs ----------------------------------------------------------


def in_process(tmp_path: Path, readers: dict[str, dict[str, Any]], clock: Any = None, **settings: Any) -> Any:
    """A Service in this process (Maildir delivery), for paths a subprocess cannot reach."""
    from digest.deliver.files import MaildirMailer
    from digest.service import Service as DigestService
    from digest.store import open_store

    config = make_project(tmp_path, None, readers, listen="127.0.0.1:0", **settings)
    loaded = load_settings(config)
    store = open_store(loaded.database_url)
    kwargs = {"clock": clock} if clock else {}
    service = DigestService(loaded, store=store, mailer_factory=lambda: MaildirMailer(loaded.outbox),
                            secret=b"in-process", batch_delay=0.05, retry_interval=0.2, **kwargs)
    return service, store, loaded


async def _run_until(service: Any, predicate: Any, timeout: float) -> None:
    task = asyncio.create_task(service.run())
    try:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)
    finally:
        service.request_stop()
        await asyncio.wait_for(task, 15)


def test_pending_editions_are_retried_by_the_scheduler_on_the_event_loop(tmp_path: Path) -> None:
    now = dt.datetime.now(UTC)
    send_at, when = local_send_at("UTC", minutes=-60, now=now)  # an hour ago: past catch_up, within edition_max_age
    service, store, settings = in_process(tmp_path, {"lea": reader("lea@example.org", send_at=send_at)}, catch_up=1)
    try:
        day = when.date()
        assert store.claim("lea", day, worker="w", now=now, lease=dt.timedelta(minutes=10))
        store.mark_failed("lea", day, error="451 try later", permanent=False, now=now)  # left pending
        assert store.edition("lea", day).status == "pending"
        # wait for a final status: "claimed" on the way is not one (a stop would give the claim back)
        asyncio.run(_run_until(service, lambda: store.edition("lea", day).status not in ("pending", "claimed"), 15))
        assert store.edition("lea", day).status == "sent"
        assert len(list((settings.outbox / "new").iterdir())) == 1
    finally:
        store.close()


def test_a_timer_that_fires_later_than_catch_up_is_logged_and_rearmed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    now = dt.datetime.now(UTC)
    send_at, missed_at = local_send_at("UTC", minutes=-120, now=now)
    calls = iter([now - dt.timedelta(hours=3)])  # the first reading: the host "slept" since then
    service, store, settings = in_process(tmp_path, {"max": reader("max@example.org", send_at=send_at)},
                                          clock=lambda: next(calls, dt.datetime.now(UTC)), catch_up=1)
    try:
        def rearmed() -> bool:
            job = service.scheduler.get_job("max")
            return "timer fired later than catch_up" in caplog.text and job is not None and job.next_run_time > now

        with caplog.at_level(logging.INFO, logger="digest"):
            asyncio.run(_run_until(service, rearmed, 15))
        assert not (settings.outbox / "new").exists() or not list((settings.outbox / "new").iterdir())
        missed = [r for r in caplog.records if "timer fired later" in r.getMessage()]
        assert missed[0].subscriber == "max" and missed[0].scheduled == missed_at.isoformat()
    finally:
        store.close()


# -- 7. operations: structured logs, secrets, the terminal ---------------------------------------


def test_json_logs_carry_each_edition_and_no_secret_appears_anywhere(tmp_path: Path) -> None:
    password = "pw-" + secrets.token_hex(12)
    secret_key = "sk-" + secrets.token_hex(16)
    logins: list[LoginPassword] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        logins.append(auth_data)
        return AuthResult(success=auth_data.password == password.encode())

    server = SmtpServer(authenticator=authenticator, auth_require_tls=False).start()
    try:
        arrivals = record_arrivals(server)
        send_at, _ = local_send_at("UTC", minutes=0)
        config = make_project(tmp_path, server, {
            "ivy": reader("ivy@example.org", send_at=send_at, keywords=["reinforcement learning"]),
            "jon": reader("jon@example.org", send_at=send_at),
        }, smtp={"username": "digest"})
        env = clean_env(DIGEST_SMTP__PASSWORD=password, DIGEST_SECRET_KEY=secret_key, DIGEST_LOG_LEVEL="debug")
        service = Service(config, env=env).start()
        try:
            service.wait_healthy()
            wait_for(lambda: len(arrivals) == 2, 15, "two digests")
            http("GET", service.url + "/metrics")
            assert service.stop() == 0
        finally:
            service.kill()
        assert logins and all(x.password == password.encode() for x in logins)  # AUTH really used it

        lines = service.logs()  # every line is JSON (stderr is not a terminal)
        sent = {r["subscriber"]: r for r in sent_lines(service)}
        assert set(sent) == {"ivy", "jon"}
        by_rcpt = {str(m["To"]).split("<")[-1].rstrip(">"): m for m in server.handler.messages}
        for sub_id, line in sent.items():
            assert line["level"] == "info" and line["logger"] == "digest.pipeline"
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", line["date"])
            assert isinstance(line["papers"], int) and line["papers"] > 0
            assert line["message_id"] == by_rcpt[f"{sub_id}@example.org"]["Message-ID"]

        outputs = {"digest run (debug)": "\n".join(json.dumps(r) for r in lines)}
        for args in (("check",), ("send", "--json", "--date", "2025-10-09"), ("send", "--dry-run", "--out", str(tmp_path / "p")),
                     ("--log-level", "debug", "send", "--date", "2025-10-10")):
            result = digest_cli(config, *args, env=env)
            outputs[" ".join(args)] = result.stdout + result.stderr
        bad = digest_cli(config, "check", env={**env, "DIGEST_SMTP__PORT": "not-a-port"})
        assert bad.returncode == 2
        outputs["check with a bad setting"] = bad.stdout + bad.stderr
        outputs["messages"] = "\n".join(r.data.decode(errors="replace") for r in server.handler.received)
        outputs["previews"] = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "p").iterdir())
        for name, text in outputs.items():
            assert password not in text, f"the SMTP password appears in {name}"
            assert secret_key not in text, f"the unsubscribe secret appears in {name}"
    finally:
        server.stop()


def run_in_pty(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run argv with stdout and stderr on a pseudo-terminal (as in an operator's terminal)."""
    master, slave = pty.openpty()
    os.set_inheritable(slave, True)
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, "TERM": "xterm-256color", "COLUMNS": "100"},
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_send_in_a_terminal_shows_a_progress_bar_and_a_summary(tmp_path: Path, smtpd: SmtpServer) -> None:
    smtpd.handler.data_delay = 0.3  # long enough for the bar to be drawn
    smtpd.handler.rcpt_reply, smtpd.handler.rcpt_times = "550 5.1.1 no such mailbox", 1
    readers = {f"t{i}": reader(f"t{i}@example.org") for i in range(4)}
    readers["quiet"] = reader("quiet@example.org", paused=True)
    config = make_project(tmp_path, smtpd, readers, smtp={"connections": 1}, log_format="auto")
    code, out = run_in_pty([str(DIGEST), "--config", str(config), "send", "--date", "2025-10-09"],
                           tmp_path, clean_env())
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert code == 1, out  # one reader failed (550)
    assert "sending" in plain and "━" in plain, "no progress bar drawn"
    assert re.search(r"\d/5\s+\d+%", plain), plain
    summary = re.search(r"5 subscribers: 3 sent, 1 skipped \(1 paused\), 1 failed in \d+\.\d s \(\d+\.\d messages/s\)", plain)
    assert summary, plain
    assert not any(line.lstrip().startswith("{") for line in plain.splitlines()), "JSON logs in a terminal"


def test_send_without_a_terminal_prints_no_progress_bar(tmp_path: Path) -> None:
    config = make_project(tmp_path, None, {"t1": reader("t1@example.org"), "t2": reader("t2@example.org")})
    result = digest_cli(config, "send", "--date", "2025-10-09")
    assert result.returncode == 0
    assert "━" not in result.stderr and "\x1b[" not in result.stderr
    assert re.search(r"2 subscribers: 2 sent, 0 skipped, 0 failed in \d+\.\d s", result.stderr), result.stderr
    assert re.search(r"messages/s\); mean message [\d,]+ bytes$", result.stderr.strip()), result.stderr


# -- 8. the container image, tested without an engine ---------------------------------------------


def test_dockerfile_copies_what_exists_and_dockerignore_keeps_it() -> None:
    spec = image_spec(ROOT / "Dockerfile")
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for *sources, _dest in spec["copy"]:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the build context"
            assert source.rstrip("/").split("/")[0] not in ignored, f"COPY {source} is excluded by .dockerignore"
    assert spec["cmd"] == ["digest", "run"] and spec["workdir"] == "/app"
    assert spec["env"]["DIGEST_DATABASE_URL"] == "sqlite:////data/digest.db"
    assert spec["env"]["DIGEST_OUTBOX"].startswith("/data/") and spec["env"]["DIGEST_LISTEN"].endswith(":8080")


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_image_cmd_and_passes_its_healthcheck(tmp_path: Path) -> None:
    """What the image does, minus the engine: build the wheel, install it (with the postgres
    extra) into a fresh venv, lay out /app and /data like the image, run exactly its CMD with its
    ENV, and probe it with exactly its HEALTHCHECK command."""
    spec = image_spec(ROOT / "Dockerfile")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(dist)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("paper_digest_mailer-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"digest/templates/digest.html", "digest/templates/digest.txt"} <= names
    assert not any(n.startswith(("tests/", "config/")) for n in names)

    venv = tmp_path / "venv"
    subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # Exactly what the Dockerfile installs: the package with the postgres extra, and tzdata.
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[postgres]", "tzdata"],
                   check=True, capture_output=True, timeout=600)
    imports = subprocess.run([str(venv / "bin" / "python"), "-c", "import digest.cli, digest.service"],
                             capture_output=True, text=True, timeout=60)
    assert imports.returncode == 0, "the wheel's declared dependencies are incomplete:\n" + imports.stderr[-600:]

    app, data = tmp_path / "app", tmp_path / "data"  # the image's WORKDIR and /data volume
    shutil.copytree(ROOT / "config", app / "config")
    (data / "outbox").mkdir(parents=True)
    port = free_port()
    env = clean_env(PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    env.update({k: v.replace("/data", str(data)) for k, v in spec["env"].items()})
    env["DIGEST_LISTEN"] = spec["env"]["DIGEST_LISTEN"].rpartition(":")[0] + f":{port}"

    def healthcheck() -> int:
        return subprocess.run(spec["healthcheck"], env=env, cwd=app, capture_output=True, timeout=10).returncode

    assert healthcheck() != 0  # nothing listening yet: unhealthy
    proc = subprocess.Popen(spec["cmd"], cwd=app, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or healthcheck() == 0, 60, "the HEALTHCHECK to pass")
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert (data / "digest.db").exists()  # the database lives on the /data volume
        assert not (app / "data").exists()  # nothing written into the image's WORKDIR
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    logs = proc.stdout.read().decode() if proc.stdout else ""
    started = [json.loads(line) for line in logs.splitlines() if '"service started"' in line]
    assert started and started[0]["listen"] == env["DIGEST_LISTEN"] and started[0]["subscribers"] == 3
    assert healthcheck() != 0  # stopped: unhealthy


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="signals and pty as on Linux")
