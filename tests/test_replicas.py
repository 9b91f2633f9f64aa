"""Several `digest send` processes against one real database: every edition is sent once.

Counted at the SMTP server. PostgreSQL comes from tests/pg.py (DIGEST_TEST_POSTGRES_URL, or a
throwaway cluster); without it these tests are skipped with the reason. To stand for a replica on
ANOTHER host (whose death this host cannot see, so only the lease frees its claims), a worker is
started in its own UTS namespace with another host name (`unshare --uts`, root only).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.render import message_id_for
from digest.store import open_store
from tests.faulty_smtpd import FaultySmtpServer
from tests.pg import pg_server, pg_url  # noqa: F401 - fixtures
from tests.test_kill import DAY, SENDER, copies_by_reader, kill_all, make_project, spawn_send, wait_for

pytestmark = [pytest.mark.slow]
EDITION = dt.date.fromisoformat(DAY)


@pytest.fixture
def server() -> Iterator[FaultySmtpServer]:
    srv = FaultySmtpServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def smtp(server: FaultySmtpServer, connections: int = 4) -> dict[str, object]:
    return {"host": server.host, "port": server.port, "tls": "none", "timeout": 10, "deadline": 30,
            "connections": connections, "retries": 1}


def statuses(out: str) -> dict[str, str]:
    return {row["user"]: row["status"] for row in json.loads(out)}


def other_host() -> list[str]:
    """A command prefix that runs the rest as if on host `replica-b`, or skip."""
    prefix = ["unshare", "--uts", "sh", "-c", 'hostname replica-b && exec "$@"', "sh"]
    try:
        ok = subprocess.run([*prefix, "hostname"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        ok = None
    if ok is None or ok.returncode != 0 or ok.stdout.strip() != "replica-b":
        pytest.skip("cannot fake another host (unshare --uts needs root): the lease path is not exercised")
    return prefix


@pytest.mark.postgres
def test_three_concurrent_senders_send_every_edition_exactly_once(
    tmp_path: Path, server: FaultySmtpServer, pg_url: str  # noqa: F811
) -> None:
    n = 1000
    project, ids = make_project(tmp_path / "proj", n, smtp(server), database_url=pg_url, claim_lease="PT2S")
    server.handler.reply_delay = 0.005
    procs = [spawn_send(project) for _ in range(3)]
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        kill_all(procs)
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    rows = [statuses(out) for out, _ in outs]
    sent_by = Counter(user for r in rows for user, status in r.items() if status == "sent")
    assert sorted(sent_by) == ids and set(sent_by.values()) == {1}  # each edition won by one process
    for r in rows:  # a run that meets an edition another run is sending right now says so
        assert set(r.values()) <= {"sent", "already-sent", "skipped-claimed"}
    got = copies_by_reader(server)
    assert sorted(got) == ids
    assert {len(v) for v in got.values()} == {1}  # exactly once, counted at the server
    share = [sum(s == "sent" for s in r.values()) for r in rows]
    print(f"\nreplicas: {n} editions, 3 processes sent {share}, {len(server.handler.received)} at the server")


@pytest.mark.postgres
def test_a_replica_killed_mid_run_has_its_claims_taken_over_after_the_lease(
    tmp_path: Path, server: FaultySmtpServer, pg_url: str  # noqa: F811
) -> None:
    elsewhere = other_host()
    n, lease, connections = 300, 6.0, 4
    project, ids = make_project(tmp_path / "proj", n, smtp(server, connections), database_url=pg_url,
                               claim_lease=f"PT{lease:g}S")
    server.handler.reply_delay = 0.05  # stored, then 250 50 ms later: the kill lands in that window
    procs = []
    try:
        victim = spawn_send(project, preexec=elsewhere)
        procs.append(victim)
        others = [spawn_send(project) for _ in range(2)]
        procs += others
        def victim_claims() -> list[str]:
            store = open_store(pg_url, read_only=True)
            try:
                return [u for u in ids if (r := store.edition(u, EDITION)) and r.status == "claimed"
                        and (r.claimed_by or "").startswith("replica-b:")]
            finally:
                store.close()

        # Kill it while it is sending (holding claims), not while it is still starting up.
        assert wait_for(lambda: len(server.handler.received) >= 30 and victim_claims(), 120, step=0.05)
        wait_for(lambda: server.handler.unanswered > 0, 10, step=0.001)
        os.killpg(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        victim.communicate(timeout=30)
        assert victim.returncode == -signal.SIGKILL

        store = open_store(pg_url)
        try:
            held = [u for u in ids if (r := store.edition(u, EDITION)) and r.status == "claimed"
                    and (r.claimed_by or "").startswith("replica-b:")]
        finally:
            store.close()
        assert held, "the killed replica held no claim at the kill"

        # Within the lease nobody may take them: a run for one of them right now is refused.
        probe = spawn_send(project, "--user", held[0])
        procs.append(probe)
        out, err = probe.communicate(timeout=120)
        if time.monotonic() - killed_at < lease - 0.5:
            assert statuses(out)[held[0]] == "skipped-claimed", err[-2000:]  # held by a live lease
        for proc in others:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]

        # After the lease, a later run takes over whatever the dead replica still held.
        time.sleep(max(0.0, killed_at + lease + 0.5 - time.monotonic()))
        later = spawn_send(project)
        procs.append(later)
        out, err = later.communicate(timeout=600)
        assert later.returncode == 0, err[-3000:]
    finally:
        kill_all(procs)

    got = copies_by_reader(server)
    assert sorted(got) == ids  # nothing lost
    for sub_id, message_ids in got.items():
        assert set(message_ids) == {message_id_for(sub_id, EDITION, SENDER)}
        assert len(message_ids) <= 2  # one kill: one extra copy at most, the same message
    extra = sum(len(v) - 1 for v in got.values())
    assert extra <= connections
    store = open_store(pg_url)
    try:
        assert {store.edition(u, EDITION).status for u in ids} == {"sent"}  # type: ignore[union-attr]
    finally:
        store.close()
    print(f"\nreplica killed: {len(held)} claims held at the kill, all delivered after the lease; "
          f"{extra} duplicates (same Message-ID)")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_live_senders_claim_outlasts_its_lease_while_a_slow_send_is_in_flight(
    tmp_path: Path, server: FaultySmtpServer, backend: str, request: pytest.FixtureRequest
) -> None:
    """Claims last `claim_lease` from the moment they are taken (not from the start of the run) and
    are renewed while the message is in flight, so a second sender never takes over a live send."""
    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'proj/data/d.db'}"
    project, ids = make_project(tmp_path / "proj", 40, smtp(server, connections=2), database_url=url,
                                claim_lease="PT1S")
    slow = ids[-4:]  # reached ~1 s into A's sending, each taking 4 s: well past the 1 s lease
    server.handler.reply_delay = 0.05
    server.handler.slow_rcpt = {f"{u}@example.org": 4.0 for u in slow}
    procs = []
    try:
        a = spawn_send(project)
        procs.append(a)
        assert wait_for(lambda: any(server.handler.data_attempts[f"{u}@example.org"] for u in slow), 120)
        b = spawn_send(project)  # a second sender while A's slow sends are in flight
        procs.append(b)
        out_b, err_b = b.communicate(timeout=120)
        out_a, err_a = a.communicate(timeout=120)
    finally:
        kill_all(procs)
    assert a.returncode == 0, err_a[-2000:]
    assert b.returncode == 0, err_b[-2000:]
    assert set(statuses(out_a).values()) == {"sent"}
    assert set(statuses(out_b).values()) <= {"already-sent", "skipped-claimed"}
    assert "skipped-claimed" in statuses(out_b).values()  # A's slow sends were still in flight
    got = copies_by_reader(server)
    assert sorted(got) == ids and {len(v) for v in got.values()} == {1}
