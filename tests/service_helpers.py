"""Helpers for the end-to-end tests of `digest run`: a temp project, the real console script as
a subprocess, JSON log lines, polling (never blind sleeps) and send_at times due soon."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml

from tests.conftest import ROOT
from tests.smtpd import SmtpServer

UTC = dt.timezone.utc
DIGEST = Path(sys.executable).parent / "digest"  # the real console script of this venv
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# -- time ------------------------------------------------------------------------------------


def local_send_at(tz: str, *, minutes: int, now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """`send_at` ("HH:MM" in `tz`) `minutes` whole minutes from the current minute (negative: in
    the past; 0: the current minute, already due), and its UTC instant."""
    now = now or dt.datetime.now(UTC)
    local = now.astimezone(ZoneInfo(tz)).replace(second=0, microsecond=0) + dt.timedelta(minutes=minutes)
    return local.strftime("%H:%M"), local.astimezone(UTC)


def next_minute_send_at(tz: str, *, margin: float = 6.0) -> tuple[str, dt.datetime]:
    """The next minute boundary in `tz` that is at least `margin` seconds away."""
    now = dt.datetime.now(UTC)
    send_at, when = local_send_at(tz, minutes=1, now=now)
    if (when - now).total_seconds() < margin:
        send_at, when = local_send_at(tz, minutes=2, now=now)
    return send_at, when


# -- project -----------------------------------------------------------------------------------


def reader(email: str, **fields: Any) -> dict[str, Any]:
    return {"email": email, **fields}


def make_project(
    base: Path,
    smtpd: SmtpServer | None,
    readers: dict[str, dict[str, Any]],
    **settings: Any,
) -> Path:
    """A project like the `project` fixture (config/ with the saved payloads as sources), with
    only `readers` as subscription files, every path absolute (no dependence on the cwd), SMTP
    at the test server (tls none), `listen` on a free loopback port and public_url = that URL.
    Returns the settings file."""
    config = base / "config"
    shutil.copytree(ROOT / "config", config)
    subs = config / "subscriptions"
    shutil.rmtree(subs)
    subs.mkdir()
    for sub_id, body in readers.items():
        write_reader(subs, sub_id, body)
    data = yaml.safe_load((config / "digest.yaml").read_text())
    for source in data["sources"]:
        source["url"] = str(base / source["url"])
    port = free_port()
    data.update(
        database_url=f"sqlite:///{base / 'data' / 'digest.db'}",
        subscriptions_dir=str(subs),
        outbox=str(base / "data" / "outbox"),
        listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}",
        log_format="json",
    )
    if smtpd is not None:
        data["smtp"] = {"host": smtpd.host, "port": smtpd.port, "tls": "none", "timeout": 5, "deadline": 10}
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = config / "digest.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def write_reader(folder: Path, sub_id: str, body: dict[str, Any]) -> Path:
    path = folder / f"{sub_id}.yaml"
    tmp = path.with_name(f".{sub_id}.tmp")
    tmp.write_text(yaml.safe_dump(body, allow_unicode=True))
    tmp.replace(path)  # atomic: a rescan never sees half a file
    return path


def listen_url(config: Path) -> str:
    host, _, port = yaml.safe_load(config.read_text())["listen"].rpartition(":")
    return f"http://{host}:{port}"


# -- the real console script ---------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_") and "proxy" not in k.lower()}
    env.update(extra)
    return env


def digest_cli(config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `digest --config CONFIG ARGS...` to completion (the real console script)."""
    return subprocess.run(
        [str(DIGEST), "--config", str(config), *args],
        cwd=config.parent.parent, env=env or clean_env(), capture_output=True, text=True, timeout=timeout,
    )


def http(method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5) -> tuple[int, str, dict[str, str]]:
    """One request without proxies or cookies; (status, body, headers) also for 4xx/5xx."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@dataclass
class Service:
    """`digest run` as a subprocess. Always `kill()` it in a finally."""

    config: Path
    env: dict[str, str] = field(default_factory=clean_env)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    started: float = 0.0

    def start(self) -> Service:
        runs = len(list(self.config.parent.parent.glob("run-*.log")))
        self.log_path = self.config.parent.parent / f"run-{runs}.log"
        self.started = time.monotonic()
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [str(DIGEST), "--config", str(self.config), "run"],
                cwd=self.config.parent.parent, env=self.env, stdin=subprocess.DEVNULL,
                stdout=err, stderr=subprocess.STDOUT,
            )
        return self

    @property
    def url(self) -> str:
        return listen_url(self.config)

    def health(self) -> dict[str, Any] | None:
        try:
            status, body, _ = http("GET", self.url + "/healthz", timeout=2)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"digest run exited with {self.proc.returncode}:\n{self.text()}")
            return self.health()

        return wait_for(ready, timeout, "GET /healthz to answer 200")

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (a line that is not JSON fails the test: logs are JSON)."""
        out = []
        for line in self.text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    raise AssertionError(f"not a JSON log line: {line!r}") from None
        return out

    def wait_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            complete = self.text().rsplit("\n", 1)[0]  # ignore a line still being written
            for line in complete.splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if predicate(record):
                    return record
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"digest run exited ({self.proc.returncode}) before {what}:\n{self.text()}")
            return None

        return wait_for(found, timeout, what)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then wait for the exit code (fails if it takes longer than `timeout`)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"digest run did not stop within {timeout} s after SIGTERM") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# -- SMTP arrival times ------------------------------------------------------------------------


def record_arrivals(smtpd: SmtpServer) -> list[tuple[float, str]]:
    """Wrap the server's DATA handler: returns a list that gets (time.time() at acceptance,
    recipient) for every accepted message, and `started` events via `data_started`."""
    arrivals: list[tuple[float, str]] = []
    original = smtpd.handler.handle_DATA

    async def handle_data(server, session, envelope):  # type: ignore[no-untyped-def]
        smtpd.handler.data_started.append((time.time(), envelope.rcpt_tos[0]))  # type: ignore[attr-defined]
        reply = await original(server, session, envelope)
        if reply.startswith("250") and not smtpd.handler.drop_on_data:
            arrivals.append((time.time(), envelope.rcpt_tos[0]))
        return reply

    smtpd.handler.data_started = []  # type: ignore[attr-defined]
    smtpd.handler.handle_DATA = handle_data  # type: ignore[method-assign]
    return arrivals




# -- the container image, without an engine ------------------------------------------------------


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def image_spec(path: Path) -> dict[str, Any]:
    """What `docker run` would do: ENV, the final WORKDIR, CMD and the HEALTHCHECK command."""
    spec: dict[str, Any] = {"env": {}, "workdir": "/", "copy": []}
    for keyword, args in dockerfile(path):
        if keyword == "ENV":
            for pair in args.split():
                key, _, value = pair.partition("=")
                spec["env"][key] = value
        elif keyword == "WORKDIR":
            spec["workdir"] = args
        elif keyword == "CMD":
            spec["cmd"] = json.loads(args)
        elif keyword == "HEALTHCHECK":
            spec["healthcheck"] = json.loads(args[args.index("CMD ") + 4 :])
        elif keyword == "COPY":
            spec["copy"].append(args.split())
    return spec
