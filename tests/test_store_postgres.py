"""The PostgreSQL seen-store: the SQLite store's behaviour, plus several processes sharing one database.

Every test gets a fresh database (tests/pg.py: DIGEST_TEST_POSTGRES_URL, or a throwaway cluster, or skip).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from digest.errors import StoreError
from digest.store import open_store
from digest.store.sqlite import worker_id
from digest.store.sql import SCHEMA_VERSION
from tests.pg import ROOT, drop_database, go, pg_server, pg_url, spawn, wait_ready, with_database  # noqa: F401  (fixtures)
from tests.pg import results as collect

psycopg = pytest.importorskip("psycopg")

from digest.store.postgres import PostgresStore, redact, safe_url  # noqa: E402  (needs psycopg)

pytestmark = pytest.mark.postgres

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
DAY = dt.date(2026, 11, 21)
LEASE = dt.timedelta(minutes=10)


@pytest.fixture
def url(pg_url: str) -> str:  # noqa: F811
    return pg_url


@pytest.fixture
def admin(url: str) -> Iterator[psycopg.Connection]:
    """A plain connection to the test database, to look behind the store's back."""
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def fingerprint(conn: psycopg.Connection) -> dict[str, list]:
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        )
    ]
    return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}


# -- the behaviour of tests/test_store_sqlite.py ------------------------------------------------


def test_open_store_gives_a_postgres_store(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    store.close()


def test_an_edition_is_claimed_once_and_sent_once(url: str) -> None:
    store, replica = open_store(url), open_store(url)  # two replicas
    me, other = worker_id(), "elsewhere:1:abcd"
    assert store.claim("alice", DAY, worker=me, now=NOW, lease=LEASE)
    assert not replica.claim("alice", DAY, worker=other, now=NOW, lease=LEASE)  # held by a live worker
    store.mark_sent("alice", DAY, message_id="<m@x>", paper_keys=("arxiv:1", "arxiv:2"), now=NOW)
    assert not replica.claim("alice", DAY, worker=other, now=NOW + dt.timedelta(days=1), lease=LEASE)
    record = replica.edition("alice", DAY)
    assert (record.status, record.message_id, record.paper_count) == ("sent", "<m@x>", 2)
    assert (record.claimed_by, record.lease_until, record.attempts) == (None, None, 1)
    assert replica.seen("alice") == {"arxiv:1", "arxiv:2"}
    assert replica.seen("bob") == set()
    assert replica.seen_many(["alice", "bob"]) == {"alice": {"arxiv:1", "arxiv:2"}, "bob": set()}
    assert replica.seen_many([]) == {}
    assert replica.seen_many(["alice", "bob"], among={"arxiv:2", "arxiv:9"}) == {"alice": {"arxiv:2"}, "bob": set()}
    assert replica.seen_many(["alice"], among=set()) == {"alice": set()}


def test_an_expired_lease_is_taken_over(url: str) -> None:
    store = open_store(url)
    assert store.claim("alice", DAY, worker="gone:1:x", now=NOW, lease=LEASE)
    assert store.edition("alice", DAY).lease_until == NOW + LEASE
    assert not store.claim("alice", DAY, worker="b:2:y", now=NOW + LEASE / 2, lease=LEASE)
    assert store.claim("alice", DAY, worker="b:2:y", now=NOW + LEASE, lease=LEASE)
    record = store.edition("alice", DAY)
    assert (record.attempts, record.claimed_by) == (2, "b:2:y")


def test_a_claim_of_a_dead_local_process_is_taken_over_at_once(url: str) -> None:
    store = open_store(url)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    owner = f"{socket.gethostname()}:{dead.stdout.strip()}:x"
    assert store.claim("alice", DAY, worker=owner, now=NOW, lease=LEASE)
    me = worker_id()
    assert store.claim("alice", DAY, worker=me, now=NOW, lease=LEASE)
    assert store.edition("alice", DAY).claimed_by == me
    assert not store.claim("alice", DAY, worker="elsewhere:1:z", now=NOW, lease=LEASE)  # I am alive


def test_temporary_failure_leaves_the_edition_pending_and_permanent_does_not(url: str) -> None:
    store = open_store(url)
    me = worker_id()
    store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    store.mark_failed("a", DAY, error="451 try later", permanent=False, now=NOW)
    assert (store.edition("a", DAY).status, store.edition("a", DAY).error) == ("pending", "451 try later")
    assert store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    store.mark_failed("a", DAY, error="550 no such user", permanent=True, now=NOW)
    assert store.edition("a", DAY).status == "failed"
    assert not store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    assert store.seen("a") == set()  # nothing is seen until a message is accepted
    assert store.permanent_failures_in_a_row("a") == 1
    store.mark_failed("a", DAY + dt.timedelta(days=1), error="550", permanent=True, now=NOW)
    assert store.permanent_failures_in_a_row("a") == 2
    assert [e.edition_date for e in store.editions("a")] == [DAY + dt.timedelta(days=1), DAY]


def test_an_old_edition_is_expired_and_never_claimed(url: str) -> None:
    store = open_store(url)
    store.mark_expired("a", DAY, reason="older than edition_max_age", now=NOW)
    assert store.edition("a", DAY).status == "expired"
    assert not store.claim("a", DAY, worker=worker_id(), now=NOW, lease=LEASE)


def test_release_gives_an_unsent_claim_back(url: str) -> None:
    store = open_store(url)
    me = worker_id()
    store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    store.release("a", DAY, worker="not-me:1:x")  # only the holder can release
    assert store.edition("a", DAY).status == "claimed"
    store.renew("a", DAY, worker=me, until=NOW + 2 * LEASE)
    assert store.edition("a", DAY).lease_until == NOW + 2 * LEASE
    store.release("a", DAY, worker=me)
    assert store.edition("a", DAY).status == "pending"
    assert store.claim("a", DAY, worker="other:1:x", now=NOW, lease=LEASE)


def test_unsubscribe_and_resubscribe(url: str) -> None:
    store = open_store(url)
    assert store.unsubscribe("a", now=NOW)
    assert not store.unsubscribe("a", now=NOW)  # already
    assert store.subscriber("a").unsubscribed_at == NOW
    assert set(store.subscribers()) == {"a"}
    assert store.resubscribe("a")
    assert not store.resubscribe("a")
    assert store.subscriber("a").unsubscribed_at is None
    store.suspend("b", reason="bounces", now=NOW)
    assert (store.subscriber("b").suspended_at, store.subscriber("b").suspended_reason) == (NOW, "bounces")
    assert store.subscriber("nobody").unsubscribed_at is None


def test_the_unsubscribe_secret_is_created_once_and_kept(url: str) -> None:
    stores = [open_store(url) for _ in range(4)]
    secrets = set()
    threads = [threading.Thread(target=lambda s=s: secrets.add(s.secret())) for s in stores]  # replicas at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(secrets) == 1 and len(next(iter(secrets))) == 32
    assert open_store(url).secret() in secrets


def test_read_only_mode_never_writes(url: str, admin: psycopg.Connection) -> None:
    store = open_store(url)
    store.mark_sent("a", DAY, message_id="<m>", paper_keys=("arxiv:1",), now=NOW)
    store.close()
    before = fingerprint(admin)
    ro = open_store(url, read_only=True)
    assert ro.seen("a") == {"arxiv:1"}
    assert ro.claim("b", DAY, worker=worker_id(), now=NOW, lease=LEASE)
    assert not ro.claim("a", DAY, worker=worker_id(), now=NOW, lease=LEASE)  # sent
    ro.mark_sent("b", DAY, message_id="<n>", paper_keys=("arxiv:2",), now=NOW)
    ro.mark_failed("a", DAY, error="x", permanent=True, now=NOW)
    ro.release("a", DAY, worker="x")
    ro.unsubscribe("a", now=NOW)
    ro.suspend("a", reason="x", now=NOW)
    assert ro.secret() == ro.secret()  # ephemeral: no secret was created
    assert ro.seen("b") == set() and ro.edition("b", DAY) is None
    ro.close()
    assert fingerprint(admin) == before


def test_read_only_mode_creates_no_schema(url: str, admin: psycopg.Connection) -> None:
    ro = open_store(url, read_only=True)
    assert ro.seen("a") == set() and ro.seen_many(["a"]) == {"a": set()}
    assert ro.edition("a", DAY) is None and ro.editions("a") == []
    assert ro.subscribers() == {} and ro.subscriber("a").unsubscribed_at is None
    assert len(ro.secret()) == 32
    assert ro.claim("a", DAY, worker=worker_id(), now=NOW, lease=LEASE)
    ro.close()
    assert fingerprint(admin) == {}


def test_schema_is_versioned_and_a_newer_schema_is_refused(url: str, admin: psycopg.Connection) -> None:
    open_store(url).close()
    assert admin.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert set(fingerprint(admin)) == {"meta", "editions", "seen", "subscribers", "papers", "ratings"}
    admin.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer"):
        open_store(url)


def test_unsupported_database_url() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        open_store("mysql://x")


# -- PostgreSQL only --------------------------------------------------------------------------


def test_mark_sent_is_one_transaction(url: str) -> None:
    """If the seen rows cannot be written, the edition is not marked sent either."""
    store = open_store(url)
    me = worker_id()
    assert store.claim("a", DAY, worker=me, now=NOW, lease=LEASE)
    with pytest.raises(StoreError):
        store.mark_sent("a", DAY, message_id="<m>", paper_keys=("arxiv:1", "bad\x00key"), now=NOW)  # NUL: refused
    record = store.edition("a", DAY)
    assert (record.status, record.claimed_by) == ("claimed", me)
    assert store.seen("a") == set()
    store.mark_sent("a", DAY, message_id="<m>", paper_keys=("arxiv:1",), now=NOW)  # the store still works
    assert store.seen("a") == {"arxiv:1"}


def test_a_dropped_connection_is_reopened_once(url: str, admin: psycopg.Connection, pg_server: str) -> None:  # noqa: F811
    store = open_store(url)
    store.claim("a", DAY, worker="w:1:x", now=NOW, lease=LEASE)

    def kill_store_backends() -> None:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'digest'"
        )

    kill_store_backends()
    assert store.edition("a", DAY).status == "claimed"  # reconnected
    kill_store_backends()
    assert store.claim("b", DAY, worker="w:1:x", now=NOW, lease=LEASE)  # a write, retried after reconnecting
    assert store.edition("b", DAY).attempts == 1

    # the database now refuses connections: the second failure is a StoreError, without the password
    with psycopg.connect(pg_server, autocommit=True) as server:
        server.execute(f'ALTER DATABASE "{admin.info.dbname}" ALLOW_CONNECTIONS false')
    kill_store_backends()
    with pytest.raises(StoreError, match="lost the connection") as caught:
        store.seen("a")
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    if password:
        assert password not in str(caught.value)


def test_errors_never_show_the_password(pg_server: str) -> None:  # noqa: F811
    password = "s3cr3t-p%40ss"  # percent-encoded @
    parts = psycopg.conninfo.conninfo_to_dict(pg_server)
    bad = f"postgresql://{parts.get('user', 'x')}:{password}@127.0.0.1:{parts.get('port', 5432)}/no_such_db"
    with pytest.raises(StoreError) as caught:
        open_store(bad)
    text = str(caught.value)
    assert "s3cr3t" not in text and "p@ss" not in text
    assert "127.0.0.1" in text  # still says where it tried
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert safe_url(bad) == f"postgresql://{parts.get('user', 'x')}:***@127.0.0.1:{parts.get('port', 5432)}/no_such_db"
    assert redact(f"failed: {bad} (s3cr3t-p@ss)", bad).count("***") == 2


def test_replicas_migrating_an_empty_database_at_once_do_not_fail(url: str, admin: psycopg.Connection) -> None:
    n = 8
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            open_store(url).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert admin.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)

    # and as separate processes, each its own interpreter and connection
    fresh = f"mig_{admin.info.dbname}"
    admin.execute(f'CREATE DATABASE "{fresh}"')
    try:
        code = "import sys; from digest.store import open_store; open_store(sys.argv[1]).close()"
        argv = [sys.executable, "-c", code, with_database(url, fresh)]
        procs = [subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE) for _ in range(6)]
        failures = [p.stderr.read().decode() for p in procs if p.wait(timeout=60) != 0]
        assert failures == []
    finally:
        drop_database(url, fresh)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["send", "claim"])
def test_three_processes_claim_1000_editions_and_each_is_sent_exactly_once(
    url: str, admin: psycopg.Connection, mode: str
) -> None:
    """Three worker processes race for the same 1,000 editions (two in the same order, head to head, one
    from the other end); `send` marks each won edition sent at once, `claim` only claims (all three stay
    alive until the end, so their claims stay live)."""
    n = 1000
    open_store(url).close()  # schema in place
    procs = [spawn(url, mode, str(n), "600", order) for order in ("forward", "forward", "reverse")]
    for p in procs:
        wait_ready(p)
    for p in procs:
        go(p)
    results = collect(procs)

    claims = Counter(sub for r in results for sub in r["claimed"])
    assert len(claims) == n  # every edition was claimed…
    assert max(claims.values()) == 1  # …by exactly one worker: no overlap
    assert sum(1 for r in results if r["claimed"]) >= 2, "the workers did not actually run concurrently"
    owner_of = {sub: r["worker"] for r in results for sub in r["claimed"]}
    rows = admin.execute("SELECT subscriber_id, status, attempts, message_id, claimed_by FROM editions").fetchall()
    assert len(rows) == n
    for sub, status, attempts, message_id, claimed_by in rows:
        if mode == "send":
            assert (status, attempts) == ("sent", 1), sub
            assert message_id == f"<{sub}.{owner_of[sub]}@test>"  # sent by the worker that claimed it
        else:
            assert (status, attempts, claimed_by) == ("claimed", 1, owner_of[sub]), sub
    assert admin.execute("SELECT count(*) FROM seen").fetchone() == ((2 * n,) if mode == "send" else (0,))
    seconds = max(r["seconds"] for r in results)
    print(
        f"\n3 processes, {mode}: {3 * n} claim attempts in {seconds:.2f} s = {3 * n / seconds:.0f} claims/s; "
        f"won {[len(r['claimed']) for r in results]}; duplicates {sum(v - 1 for v in claims.values())}"
    )


@pytest.mark.slow
def test_a_killed_worker_s_claims_are_taken_over_after_its_lease(url: str, admin: psycopg.Connection) -> None:
    n, lease_s = 200, 2.0
    open_store(url).close()
    # the victim looks like a process on another host: only its lease running out frees its claims
    victim = spawn(url, "hold", "50", str(lease_s), "forward", "otherhost:4242:dead")
    wait_ready(victim)
    go(victim)
    held = json.loads(victim.stdout.readline())["claimed"]  # type: ignore[union-attr]
    assert len(held) == 50
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    claimed_at = time.monotonic()

    store = open_store(url)
    now = dt.datetime.now(dt.timezone.utc)
    assert not store.claim(held[0], DAY, worker=worker_id(), now=now, lease=LEASE)  # lease still running
    time.sleep(max(0.0, lease_s + 0.2 - (time.monotonic() - claimed_at)))

    procs = [spawn(url, "send", str(n), "600", order) for order in ("forward", "reverse")]
    for p in procs:
        wait_ready(p)
    for p in procs:
        go(p)
    results = collect(procs)
    claims = Counter(sub for r in results for sub in r["claimed"])
    assert len(claims) == n and max(claims.values()) == 1
    rows = {r[0]: r[1:] for r in admin.execute("SELECT subscriber_id, status, attempts, claimed_by FROM editions")}
    assert all(status == "sent" for status, _, _ in rows.values())
    assert {sub for sub, (_, attempts, _) in rows.items() if attempts == 2} == set(held)  # taken over once


def test_a_killed_local_worker_s_claims_are_taken_over_at_once(url: str, admin: psycopg.Connection) -> None:
    open_store(url).close()
    victim = spawn(url, "hold", "20", "3600")  # a local worker id (host:pid:token) and a one-hour lease
    wait_ready(victim)
    go(victim)
    held = json.loads(victim.stdout.readline())["claimed"]  # type: ignore[union-attr]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    store = open_store(url)
    me = worker_id()
    now = dt.datetime.now(dt.timezone.utc)
    assert all(store.claim(sub, DAY, worker=me, now=now, lease=LEASE) for sub in held)
    assert {r[0] for r in admin.execute("SELECT DISTINCT claimed_by FROM editions")} == {me}
