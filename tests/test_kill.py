"""Hard kills: `digest send` as a subprocess, SIGKILLed at random moments, then run to completion.

The count comes from what the SMTP SERVER received, not from our records. The server stores each
message before it answers, and answers 50 ms later: the RFC 1047 window in which a kill leaves a
delivered message unrecorded, so the duplicates the design allows actually happen here and are
counted. What must hold: every reader has exactly one edition, or one more per kill at most, and
every copy carries the SAME Message-ID; the SQLite file passes `PRAGMA integrity_check` after each
kill; every edition ends `sent`. Run with `-s` to see the figures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from digest.render import message_id_for
from digest.store import open_store
from tests.conftest import ROOT
from tests.faulty_smtpd import FaultySmtpServer
from tests.pg import pg_server, pg_url  # noqa: F401 - fixtures

DAY = "2025-10-09"
SENDER = "Paper Digest <digest@example.org>"


def make_project(root: Path, n: int, smtp: dict[str, object], **settings: object) -> tuple[Path, list[str]]:
    """A project copied from config/ with n readers u0000… (keywords that match the saved payloads,
    or none: every one gets an edition) and `settings` on top."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "config", root / "config")
    subs_dir = root / "config" / "subscriptions"
    for path in subs_dir.iterdir():
        path.unlink()
    ids = [f"u{i:04d}" for i in range(n)]
    for i, sub_id in enumerate(ids):
        body = f"email: {sub_id}@example.org\ntimezone: UTC\nsend_at: '06:00'\n"
        if i % 2:
            body += "keywords: [language model, reinforcement learning, {term: LLM, weight: 2}]\nsend_empty: true\n"
        (subs_dir / f"{sub_id}.yaml").write_text(body)
    path = root / "config" / "digest.yaml"
    data = yaml.safe_load(path.read_text())
    data["sender"] = SENDER
    data["smtp"] = smtp
    # These tests are about crashes, not age: the fixed 2025 date must not expire on retry.
    data["edition_max_age"] = "P3650D"
    data.update(settings)
    path.write_text(yaml.safe_dump(data))
    return root, ids


def spawn_send(project: Path, *extra: str, preexec: list[str] | None = None) -> subprocess.Popen[str]:
    """`digest send --date DAY --json` in `project`, in a new process group, env free of DIGEST_*."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DIGEST_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [*(preexec or []), sys.executable, "-m", "digest", "--config", "config/digest.yaml",
           "send", "--date", DAY, "--json", *extra]
    return subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.communicate(timeout=10)
        except (subprocess.TimeoutExpired, ValueError):
            pass


def wait_for(predicate, timeout: float, step: float = 0.01) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def copies_by_reader(server: FaultySmtpServer) -> dict[str, list[str]]:
    """reader id -> the Message-ID of every copy the server stored for them."""
    out: dict[str, list[str]] = {}
    for received in server.handler.received:
        (rcpt,) = received.rcpt_tos
        out.setdefault(rcpt.split("@")[0], []).append(received.message["Message-ID"])
    return out


@pytest.fixture
def server() -> Iterator[FaultySmtpServer]:
    srv = FaultySmtpServer().start()
    srv.handler.reply_delay = 0.05  # stored first, 250 later: a kill in between leaves it unrecorded
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'proj' / 'data' / 'digest.db'}"


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_duplicates_only_with_the_same_message_id(
    tmp_path: Path, server: FaultySmtpServer, database_url: str
) -> None:
    n, kills_wanted, connections = 500, 5, 4
    smtp = {"host": server.host, "port": server.port, "tls": "none", "timeout": 10, "deadline": 20,
            "connections": connections, "retries": 1}
    project, ids = make_project(tmp_path / "proj", n, smtp, database_url=database_url)
    db = project / "data" / "digest.db"
    seed = int(os.environ.get("KILL_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    kills, attempts, procs, runs = 0, 0, [], []
    try:
        while kills < kills_wanted and attempts < kills_wanted * 3:
            attempts += 1
            before = len(server.handler.received)
            proc = spawn_send(project)
            procs.append(proc)
            moment = ("start-up", "sending", "sending", "window", "window")[(attempts - 1) % 5]
            if moment == "start-up":  # imports, subscription files, fetch, migration, first claims
                time.sleep(rng.uniform(0.1, 2.0))
            else:
                wait_for(lambda: len(server.handler.received) > before or proc.poll() is not None, 60)
                time.sleep(rng.uniform(0.0, 1.5))
                if moment == "window":  # the server has stored a message and not yet said 250
                    wait_for(lambda: server.handler.unanswered > 0 or proc.poll() is not None, 10, step=0.001)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=30)
                assert proc.returncode == -signal.SIGKILL
                kills += 1
            else:
                proc.communicate(timeout=30)
            runs.append(f"{'killed' if proc.returncode == -signal.SIGKILL else 'exit ' + str(proc.returncode)}"
                        f" ({moment}) after {len(server.handler.received) - before} accepted")
            if database_url.startswith("sqlite"):
                assert not db.exists() or integrity(db) == "ok"
            if len(server.handler.received) >= n and proc.returncode == 0:
                break  # a run finished before it could be killed: everything is out already
        final = spawn_send(project)
        procs.append(final)
        out, err = final.communicate(timeout=240)
    finally:
        kill_all(procs)

    assert final.returncode == 0, err[-3000:]
    statuses = {row["user"]: row["status"] for row in json.loads(out)}
    assert set(statuses) == set(ids)
    assert set(statuses.values()) <= {"sent", "already-sent"}

    got = copies_by_reader(server)
    assert sorted(got) == ids, f"missing: {sorted(set(ids) - set(got))[:10]}"
    extra_total = 0
    for sub_id, message_ids in got.items():
        expected = message_id_for(sub_id, dt.date.fromisoformat(DAY), SENDER)
        assert set(message_ids) == {expected}, (sub_id, message_ids)  # a resend is the SAME message
        assert len(message_ids) <= 1 + kills, (sub_id, len(message_ids))
        extra_total += len(message_ids) - 1
    assert extra_total <= kills * connections  # at most what was in flight at each kill

    store = open_store(database_url)
    try:
        for sub_id in ids:
            record = store.edition(sub_id, dt.date.fromisoformat(DAY))
            assert record is not None and record.status == "sent" and record.message_id == got[sub_id][0]
    finally:
        store.close()
    if database_url.startswith("sqlite"):
        assert integrity(db) == "ok"
    print(f"\nkill test ({database_url.split(':')[0]}, seed {seed}): {kills} kills survived in {attempts} runs, "
          f"{n} readers, {len(server.handler.received)} messages at the server, {extra_total} duplicates "
          f"(same Message-ID), readers with a duplicate: {sum(len(v) > 1 for v in got.values())}; runs: "
          + "; ".join(runs))
    assert kills >= 3  # the test really killed runs mid-way
