"""SMTP fault matrix: a REAL server (tests/faulty_smtpd.py) injects each fault; the real pipeline
(claim → render → send → mark_sent) runs against a real SQLite store in a copy of the example project.

Each test asserts what a reader and an operator rely on: the outcome, what the store recorded, what
the server received (and how often it was asked: the retry count), and how long it took. Backoffs
and deadlines are tiny (SmtpMailer arguments) so the whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings, load_subscriptions
from digest.deliver.smtp import SmtpMailer
from digest.pipeline import Delivery, Outcome, gather, send_editions
from digest.render import Renderer, message_id_for
from digest.store import Store, open_store
from digest.store.sqlite import worker_id
from tests.faulty_smtpd import FaultySmtpServer, accept_any_login

DAY = dt.date(2025, 10, 9)
NOON = dt.datetime(2025, 10, 9, 12, 0, tzinfo=dt.timezone.utc)  # after every example reader's send_at
ALICE = "alice@example.org"


@pytest.fixture
def server() -> Iterator[FaultySmtpServer]:
    srv = FaultySmtpServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def auth_server() -> Iterator[FaultySmtpServer]:
    srv = FaultySmtpServer(offer_auth=True).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def run_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def add_readers(project: Path, n: int, prefix: str = "r") -> list[str]:
    """n more readers with no keywords (the plain trending digest: never empty)."""
    ids = [f"{prefix}{i:03d}" for i in range(n)]
    for sub_id in ids:
        (project / "config" / "subscriptions" / f"{sub_id}.yaml").write_text(f"email: {sub_id}@example.org\n")
    return ids


def mailer(srv: FaultySmtpServer, **kwargs: object) -> SmtpMailer:
    options: dict[str, object] = {
        "tls": "none", "timeout": 5, "deadline": 5, "retries": 3, "backoff_initial": 0.01, "backoff_max": 0.05,
        "connections": 2,
    }
    options.update(kwargs)
    return SmtpMailer(host=srv.host, port=srv.port, **options)  # type: ignore[arg-type]


class Run:
    """One `digest send`-equivalent run, in process, with a mailer the test configured."""

    def __init__(self, outcomes: list[Outcome], seconds: float, finished: dict[str, float]) -> None:
        self.outcomes = outcomes
        self.seconds = seconds
        self.finished = finished  # subscriber -> seconds after the start when its outcome was known
        self.by_user = {o.user: o for o in outcomes}

    def __getitem__(self, user: str) -> Outcome:
        return self.by_user[user]

    def statuses(self) -> dict[str, str]:
        return {o.user: o.status for o in self.outcomes}


def send(
    m: SmtpMailer,
    *,
    day: dt.date = DAY,
    now: dt.datetime = NOON,
    users: set[str] | None = None,
    edition_max_age: dt.timedelta | None = None,
) -> Run:
    settings = load_settings(Path("config/digest.yaml"))
    subs = [s for s in load_subscriptions(settings.subscriptions_dir, settings.source_names).subscriptions
            if users is None or s.id in users]
    finished: dict[str, float] = {}

    async def go() -> tuple[list[Outcome], float]:
        papers, _ = await gather(settings.source_specs, day=day)
        store = open_store(settings.database_url)
        start = time.monotonic()
        try:
            delivery = Delivery(
                store=store, mailer=m, renderer=Renderer(), sender=settings.sender, public_url=settings.public_url,
                secret=store.secret(), worker=worker_id(), lease=settings.claim_lease,
                suspend_after=settings.suspend_after, edition_max_age=edition_max_age,
                on_outcome=lambda o: finished.__setitem__(o.user, time.monotonic() - start),
            )
            async with m:
                outcomes = await send_editions(subs, papers, delivery, now=now, edition_date=day)
        finally:
            store.close()
        return outcomes, time.monotonic() - start

    outcomes, seconds = asyncio.run(go())
    return Run(outcomes, seconds, finished)


def store() -> Store:
    return open_store(load_settings(Path("config/digest.yaml")).database_url)


def record(user: str, day: dt.date = DAY):  # type: ignore[no-untyped-def]
    s = store()
    try:
        return s.edition(user, day)
    finally:
        s.close()


def mid(user: str, day: dt.date = DAY) -> str:
    return message_id_for(user, day, load_settings(Path("config/digest.yaml")).sender)


# -- 421 on connect ---------------------------------------------------------------------------


def test_421_on_connect_reconnects_at_once_without_a_retry(run_dir: Path, server: FaultySmtpServer) -> None:
    server.handler.greet_421 = 1
    # A big backoff: if the 421 were handled as a retry, the run would take 5 s.
    run = send(mailer(server, backoff_initial=5, backoff_max=5), users={"alice"})
    assert run["alice"].status == "sent"
    assert run.seconds < 3
    assert server.handler.sessions == 2  # the refused connection, then the one that delivered
    assert [r.rcpt_tos for r in server.handler.received] == [[ALICE]]
    assert record("alice").status == "sent" and record("alice").attempts == 1


def test_421_on_connect_again_and_again_is_retried_with_backoff_then_left_pending(
    run_dir: Path, server: FaultySmtpServer
) -> None:
    server.handler.greet_421 = 10**6
    run = send(mailer(server, retries=2), users={"alice"})
    assert run["alice"].status == "skipped-deferred" and not run["alice"].permanent  # the relay's, not alice's
    assert "421" in (run["alice"].error or "")
    assert server.handler.sessions == 6  # (1 try + 2 retries) × (connect + one immediate reconnect)
    assert server.handler.received == []
    assert record("alice").status == "pending" and "421" in (record("alice").error or "")


# -- 4xx on RCPT --------------------------------------------------------------------------------


def test_451_on_rcpt_is_retried_then_accepted(run_dir: Path, server: FaultySmtpServer) -> None:
    server.handler.rcpt_temp = {ALICE: 2}
    run = send(mailer(server, retries=3), users={"alice", "bob"})
    assert run.statuses() == {"alice": "sent", "bob": "sent"}
    assert server.handler.rcpt_attempts[ALICE] == 3  # two 451s, then accepted: two retries
    assert server.handler.rcpt_attempts["bob@example.org"] == 1
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == [ALICE, "bob@example.org"]
    assert record("alice").status == "sent" and record("alice").error is None
    assert run.seconds < 5


def test_452_that_persists_is_temporary_left_pending_and_sent_by_the_next_run(
    run_dir: Path, server: FaultySmtpServer
) -> None:
    server.handler.rcpt_temp, server.handler.rcpt_temp_reply = {ALICE: 10**6}, "452 4.2.2 mailbox full"
    first = send(mailer(server, retries=2))
    assert first["alice"].status == "failed" and not first["alice"].permanent
    assert "452 4.2.2 mailbox full" in (first["alice"].error or "")
    assert server.handler.rcpt_attempts[ALICE] == 3  # retries=2: three tries in the run, no more
    assert {first["bob"].status, first["chen"].status} == {"sent"}  # the others are not held up
    pending = record("alice")
    assert pending.status == "pending" and "452" in (pending.error or "") and pending.message_id is None
    s = store()
    try:
        assert s.seen("alice") == set()  # nothing marked seen for a message the server did not take
        assert s.subscriber("alice").suspended_at is None  # temporary failures never suspend
    finally:
        s.close()

    server.handler.rcpt_temp = {}
    second = send(mailer(server), now=NOON + dt.timedelta(hours=2))
    assert second.statuses() == {"alice": "sent", "bob": "already-sent", "chen": "already-sent"}
    assert [m["Message-ID"] for m in server.handler.messages if m["To"].addresses[0].addr_spec == ALICE] == [
        mid("alice")]
    assert record("alice").attempts == 2  # claimed once per run


# -- 5xx ------------------------------------------------------------------------------------------


def test_550_is_permanent_recorded_never_retried_and_suspends_after_suspend_after(
    run_dir: Path, server: FaultySmtpServer
) -> None:
    reply = "550 5.1.1 <alice@example.org>: mailbox unavailable"
    server.handler.rcpt_replies = {ALICE: reply}
    days = [DAY + dt.timedelta(days=i) for i in range(3)]  # suspend_after defaults to 3
    for n, day in enumerate(days, start=1):
        run = send(mailer(server, retries=3), day=day, now=NOON + dt.timedelta(days=n - 1), users={"alice"})
        assert run["alice"].status == "failed" and run["alice"].permanent
        assert reply in (run["alice"].error or "")
        assert server.handler.rcpt_attempts[ALICE] == n  # one try per edition: a 5xx is never retried
        rec = record("alice", day)
        assert rec.status == "failed" and reply in (rec.error or "")
        again = send(mailer(server), day=day, now=NOON + dt.timedelta(days=n - 1), users={"alice"})
        if n < 3:
            assert again["alice"].status == "skipped-failed"  # this edition is never retried
    s = store()
    try:
        state = s.subscriber("alice")
        assert state.suspended_at is not None and reply in (state.suspended_reason or "")
    finally:
        s.close()
    assert server.handler.received == []

    later = send(mailer(server), day=DAY + dt.timedelta(days=3), now=NOON + dt.timedelta(days=3))
    assert later["alice"].status == "skipped-suspended"
    assert server.handler.rcpt_attempts[ALICE] == 3  # a suspended reader is not even tried
    assert later["bob"].status == later["chen"].status == "sent"

    check = CliRunner().invoke(cli, ["--config", "config/digest.yaml", "check"], catch_exceptions=False)
    assert check.exit_code == 0
    line = next(line for line in check.stdout.splitlines() if "alice.yaml" in line)
    assert "suspended on" in line and reply in line


# -- dropped and silent connections ---------------------------------------------------------------


def test_disconnect_during_data_is_retried_on_a_new_connection(run_dir: Path, server: FaultySmtpServer) -> None:
    server.handler.drop_in_data = 1
    run = send(mailer(server, retries=2, connections=1), users={"alice"})
    assert run["alice"].status == "sent"
    assert server.handler.data_attempts[ALICE] == 2
    assert len(server.handler.received) == 1  # the dropped attempt was not stored
    assert server.handler.sessions == 2
    assert record("alice").status == "sent"


def test_no_reply_after_data_hits_the_deadline_stays_pending_and_the_resend_has_the_same_message_id(
    run_dir: Path, server: FaultySmtpServer
) -> None:
    """RFC 1047: the server stored the message and never said so. The client cannot know: the
    edition is never marked sent, stays pending, and the next run sends it again, with the same
    Message-ID, so the reader's mail client can fold the duplicate."""
    server.handler.silent_after_data = 1
    first = send(mailer(server, deadline=0.5, retries=0), users={"alice"})
    assert first["alice"].status == "skipped-deferred" and not first["alice"].permanent
    assert "no answer" in (first["alice"].error or "") and "0.5 s" in (first["alice"].error or "")
    assert first.seconds < 3
    assert record("alice").status == "pending"  # never marked sent without a 250
    assert len(server.handler.received) == 1  # …though the server has it

    second = send(mailer(server), users={"alice"})
    assert second["alice"].status == "sent" and second["alice"].message_id == mid("alice")
    assert [m["Message-ID"] for m in server.handler.messages] == [mid("alice"), mid("alice")]
    assert record("alice").status == "sent"


def test_a_server_that_never_answers_is_bounded_by_the_deadline(run_dir: Path, server: FaultySmtpServer) -> None:
    server.handler.silent_greeting = True
    run = send(mailer(server, timeout=30, deadline=0.4, retries=1, connections=2))
    assert {o.status for o in run.outcomes} == {"skipped-deferred"}
    assert all("within 0.4 s" in (o.error or "") and not o.permanent for o in run.outcomes)
    # Two connections time out at once (2 failures), one retry is the third: the relay is taken
    # for dead and nothing more is tried. 0.8 s of timeouts, plus backoff and rendering.
    assert run.seconds < 3
    assert server.handler.sessions <= 4
    assert {record(u).status for u in ("alice", "bob", "chen")} == {"pending"}


# -- TLS ------------------------------------------------------------------------------------------


def test_starttls_required_but_not_offered_sends_nothing_and_never_authenticates(
    run_dir: Path, auth_server: FaultySmtpServer
) -> None:
    m = mailer(auth_server, tls="starttls", username="digest", password="s3cret-pw", retries=3)
    run = send(m)
    assert {o.status for o in run.outcomes} == {"skipped-deferred"}
    for o in run.outcomes:
        assert "does not offer STARTTLS; refusing to send in plaintext" in (o.error or "")
        assert "s3cret" not in (o.error or "")
    assert "AUTH" not in auth_server.handler.commands and "MAIL" not in auth_server.handler.commands
    assert auth_server.handler.received == []
    assert auth_server.handler.sessions <= 2  # the run halts at the first refusal (2 connections open at once)
    assert {record(u).status for u in ("alice", "bob", "chen")} == {"pending"}


def test_starttls_offered_is_used_with_a_verified_certificate_and_auth_only_after_it(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the client trusts our test CA, nothing else
    srv = FaultySmtpServer(tls_context=context, require_starttls=True, authenticator=accept_any_login).start()
    try:
        m = mailer(srv, tls="starttls", username="digest", password="pw", validate_certs=True)
        run = send(m, users={"alice"})
        assert run["alice"].status == "sent", run["alice"].error
        assert srv.handler.commands[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
        assert len(srv.handler.received) == 1
    finally:
        srv.stop()


# -- per-session cap ------------------------------------------------------------------------------


def test_a_per_session_cap_reconnects_and_carries_on_with_no_loss_and_no_duplicate(
    run_dir: Path, server: FaultySmtpServer
) -> None:
    readers = add_readers(run_dir, 30)
    server.handler.session_cap = 5  # "421 4.7.0 Maximum message count per session reached"
    run = send(mailer(server, connections=2, messages_per_connection=100, backoff_initial=5, backoff_max=5))
    assert {o.status for o in run.outcomes} == {"sent"}
    got = [r.rcpt_tos[0] for r in server.handler.received]
    assert sorted(got) == sorted([f"{r}@example.org" for r in readers] + [ALICE, "bob@example.org", "chen@example.org"])
    assert server.handler.capped >= 5  # 33 messages, 5 per session
    assert server.handler.sessions >= 7
    assert run.seconds < 5  # the reconnect is immediate, not a 5 s backoff


# -- one reader never holds up the others ---------------------------------------------------------


def test_a_slow_and_a_failing_reader_never_delay_or_fail_the_others(run_dir: Path, server: FaultySmtpServer) -> None:
    readers = add_readers(run_dir, 36)
    slow, bad = "r000@example.org", "r001@example.org"
    server.handler.slow_rcpt = {slow: 30.0}
    server.handler.rcpt_replies = {bad: "550 5.7.1 rejected"}
    run = send(mailer(server, connections=4, deadline=1.5, retries=0))
    assert run["r000"].status == "skipped-deferred" and "within 1.5 s" in (run["r000"].error or "")
    assert run["r001"].status == "failed" and run["r001"].permanent
    others = [u for u in run.by_user if u not in ("r000", "r001")]
    assert len(others) == 37 and {run[u].status for u in others} == {"sent"}
    assert sorted(r.rcpt_tos[0] for r in server.handler.received) == sorted(f"{u}@example.org" for u in others)
    # Everyone else was done before the slow reader's FIRST attempt even timed out…
    assert max(run.finished[u] for u in others) < 1.5
    # …and the slow one is bounded by its deadline.
    assert 1.5 <= run.finished["r000"] < 3.0
    assert server.handler.rcpt_attempts[bad] == 1
    assert len(readers) == 36


# -- edition_max_age --------------------------------------------------------------------------------


def test_a_pending_edition_is_retried_by_the_next_run_within_edition_max_age(
    run_dir: Path, server: FaultySmtpServer
) -> None:
    # alice: Europe/Berlin 07:30 -> due 2025-10-09 05:30 UTC.
    server.handler.rcpt_temp, server.handler.rcpt_temp_reply = {ALICE: 10**6}, "451 4.3.0 later"
    first = send(mailer(server, retries=0), users={"alice"}, now=NOON, edition_max_age=dt.timedelta(hours=20))
    assert first["alice"].status == "failed" and record("alice").status == "pending"
    server.handler.rcpt_temp = {}
    just_in_time = dt.datetime(2025, 10, 10, 1, 29, tzinfo=dt.timezone.utc)  # due + 19 h 59 min
    second = send(mailer(server), users={"alice"}, now=just_in_time, edition_max_age=dt.timedelta(hours=20))
    assert second["alice"].status == "sent"
    assert [m["Message-ID"] for m in server.handler.messages] == [mid("alice")]


def test_a_pending_edition_older_than_edition_max_age_expires_and_is_never_sent_late(
    run_dir: Path, server: FaultySmtpServer
) -> None:
    server.handler.rcpt_temp, server.handler.rcpt_temp_reply = {ALICE: 10**6}, "451 4.3.0 later"
    send(mailer(server, retries=0), users={"alice", "bob"}, now=NOON, edition_max_age=dt.timedelta(hours=20))
    assert record("alice").status == "pending" and record("bob").status == "sent"
    server.handler.rcpt_temp = {}
    too_late = dt.datetime(2025, 10, 10, 5, 31, tzinfo=dt.timezone.utc)  # due + 20 h 1 min
    run = send(mailer(server), users={"alice", "bob"}, now=too_late, edition_max_age=dt.timedelta(hours=20))
    assert run["alice"].status == "skipped-expired" and "edition_max_age" in (run["alice"].error or "")
    assert run["bob"].status == "already-sent"
    assert record("alice").status == "expired"
    assert server.handler.rcpt_attempts[ALICE] == 1  # the expired edition was not even tried
    again = send(mailer(server), users={"alice"}, now=too_late + dt.timedelta(hours=1),
                 edition_max_age=dt.timedelta(hours=20))
    assert again["alice"].status == "skipped-expired"
    assert [r.rcpt_tos for r in server.handler.received] == [["bob@example.org"]]
    s = store()
    try:
        assert s.seen("alice") == set()
    finally:
        s.close()
