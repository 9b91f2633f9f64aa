"""PostgreSQL for the tests: a server, a fresh database per test, and a worker process for concurrency tests.

Where the server comes from, in order:
1. DIGEST_TEST_POSTGRES_URL (a server where that role may CREATE DATABASE; .ci/postgres.sh prints one);
2. PostgreSQL server binaries (PATH, /usr/lib/postgresql/*/bin): a throwaway cluster in a temp dir on a
   free port (initdb + pg_ctl), for the test session. initdb refuses to run as root, so as root (CI, a
   container, a developer's root shell) the cluster runs as the `postgres` user (Debian's package
   creates it), through runuser: the same tests run everywhere;
3. otherwise every PostgreSQL test is skipped, with the reason.

Run as a program it is a worker for the multi-process tests (see `worker`).
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV = "DIGEST_TEST_POSTGRES_URL"
SKIP_REASON = "no PostgreSQL: set DIGEST_TEST_POSTGRES_URL or install postgresql"
ROOT = Path(__file__).resolve().parent.parent


def find_server_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    candidates += [Path(p) for p in versions]
    for directory in candidates:
        if all((directory / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A throwaway cluster: initdb in a temp dir, trust auth, 127.0.0.1 only, stopped and removed at the end."""

    def __init__(self, bindir: Path, run_as: str | None = None) -> None:
        self.bindir = bindir
        self.run_as = run_as  # as root: the unprivileged user that owns and runs the cluster
        self.dir = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        if run_as is not None:
            shutil.chown(self.dir, user=run_as)
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://digest@127.0.0.1:{self.port}/postgres"

    def start(self) -> Cluster:
        run = lambda *cmd: subprocess.run(self._as_owner(cmd), check=True, capture_output=True, text=True)
        try:
            run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "digest",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
            run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
        except subprocess.CalledProcessError as exc:
            log = (self.dir / "log").read_text() if (self.dir / "log").exists() else ""
            self.stop()
            raise RuntimeError(f"throwaway PostgreSQL did not start: {exc.stderr}{exc.stdout}\n{log}") from None
        return self

    def _as_owner(self, cmd: tuple[str, ...] | list[str]) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as is not None else []
        return prefix + list(cmd)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
                check=False,
                capture_output=True,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


def root_runs_as() -> str | None:
    """The user a root test session runs its throwaway cluster as: `postgres`, if it exists and
    runuser is there."""
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres" if shutil.which("runuser") else None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A URL to a server where we may CREATE DATABASE; skips the test when there is none."""
    url = os.environ.get(ENV)
    if url:
        yield url
        return
    bindir = find_server_bin()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    run_as = None
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as an unprivileged user
        run_as = root_runs_as()
        if run_as is None:
            pytest.skip(f"{SKIP_REASON} (found {bindir}, but as root it needs a `postgres` user and runuser)")
    cluster = Cluster(bindir, run_as).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import psycopg

    name = f"digest_test_{secrets.token_hex(6)}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_server, name)
    finally:
        drop_database(pg_server, name)


def drop_database(server_url: str, name: str) -> None:
    """DROP … WITH (FORCE); retried, since a role without pg_signal_backend cannot stop an autovacuum
    worker that happens to be in the database. Left behind (with a warning) rather than failing a test."""
    import psycopg

    for attempt in range(20):
        try:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse) as exc:
            if attempt == 19:
                warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=2)
            time.sleep(0.25)


# -- worker processes ------------------------------------------------------------------------


def spawn(url: str, *args: str) -> subprocess.Popen[str]:
    """`python -m tests.pg URL ARGS…`: prints `ready`, waits for a line on stdin, works, prints JSON."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pg", url, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str]) -> None:
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if line.strip() != "ready":
        raise AssertionError(f"worker did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]


def go(proc: subprocess.Popen[str]) -> None:
    proc.stdin.write("go\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]


def results(procs: list[subprocess.Popen[str]], timeout: float = 600) -> list[dict]:
    """Each worker's JSON line; only then are they let go (a worker that exited early would leave
    claims held by a dead local process, which the others rightly take over at once)."""
    deadline = time.monotonic() + timeout
    out = []
    for proc in procs:
        line = _readline(proc, deadline - time.monotonic())
        if not line.strip():
            proc.kill()
            raise AssertionError(f"worker failed ({proc.wait()}): {proc.stderr.read()}")  # type: ignore[union-attr]
        out.append(json.loads(line))
    for proc in procs:
        proc.stdin.close()  # type: ignore[union-attr]
    for proc in procs:
        if proc.wait(timeout=max(1.0, deadline - time.monotonic())) != 0:
            raise AssertionError(f"worker failed ({proc.returncode}): {proc.stderr.read()}")  # type: ignore[union-attr]
    return out


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(max(0.0, timeout))
    if not box:
        proc.kill()
        raise AssertionError("worker timed out")
    return box[0]


def editions(n: int) -> list[tuple[str, dt.date]]:
    day = dt.date(2026, 11, 21)
    return [(f"user{i:05d}", day) for i in range(n)]


def worker(argv: list[str]) -> None:
    """ARGV: URL MODE N LEASE_SECONDS [ORDER [WORKER_ID]]; ORDER is `forward` (default) or `reverse`.

    MODE `send`: claim each of the N editions in turn (real clock), mark what it won as sent; print
    {"worker", "claimed": [subscriber…], "attempts", "seconds"}, then wait for stdin to close.
    MODE `claim`: the same without sending (the claim rate alone).
    MODE `hold`: claim them, print the same, then sleep holding the claims until killed.
    """
    from digest.store import open_store
    from digest.store.sqlite import worker_id

    url, mode, n, lease_s = argv[0], argv[1], int(argv[2]), float(argv[3])
    order = argv[4] if len(argv) > 4 else "forward"
    me = argv[5] if len(argv) > 5 else worker_id()
    lease = dt.timedelta(seconds=lease_s)
    store = open_store(url)
    print("ready", flush=True)
    sys.stdin.readline()
    claimed: list[str] = []
    tries = 0
    start = time.perf_counter()
    todo = editions(n)
    for sub, day in reversed(todo) if order == "reverse" else todo:
        tries += 1
        if store.claim(sub, day, worker=me, now=dt.datetime.now(dt.timezone.utc), lease=lease):
            claimed.append(sub)
            if mode == "send":
                store.mark_sent(
                    sub,
                    day,
                    message_id=f"<{sub}.{me}@test>",
                    paper_keys=(f"arxiv:{sub}", "arxiv:common"),
                    now=dt.datetime.now(dt.timezone.utc),
                )
    seconds = time.perf_counter() - start
    print(json.dumps({"worker": me, "claimed": claimed, "attempts": tries, "seconds": seconds}), flush=True)
    if mode == "hold":
        time.sleep(3600)
    sys.stdin.readline()  # stay alive (and so keep any claims live) until told to go
    store.close()


if __name__ == "__main__":
    worker(sys.argv[1:])
