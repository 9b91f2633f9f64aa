"""The HTTP listener's limits (issue 12, item 6), with real connections on loopback: slow headers
and idle connections are closed, a flood of idle connections under a low open-file limit does not
lock out /healthz, accept errors are logged once a minute, and an over-long request line never
puts a token in the log."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.metrics import Metrics
from digest.tokens import make_token
from digest.web import make_app, start_server

CHILD = Path(__file__).with_name("http_child.py")
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def _app():
    return make_app(secret=b"k" * 32, unsubscribe=lambda s: True, is_known=lambda s: True,
                    health=lambda: {"scheduler_running": True}, metrics=Metrics())


def test_slow_header_and_idle_connections_are_closed() -> None:
    async def main() -> tuple[list[float], float]:
        server = await start_server(_app(), "127.0.0.1", 0, idle_timeout=1.0)
        t0 = time.monotonic()

        async def slow() -> float:  # a header that never ends, one line every 0.2 s
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            try:
                while not reader.at_eof():
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                    try:
                        await asyncio.wait_for(reader.read(100), 0.2)
                    except TimeoutError:
                        pass
            except ConnectionError:
                pass
            writer.close()
            return time.monotonic() - t0

        async def idle() -> float:  # one request, then nothing
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            t1 = time.monotonic()
            while await reader.read(1000):
                pass
            writer.close()
            return time.monotonic() - t1

        try:
            closed = await asyncio.wait_for(asyncio.gather(*[slow() for _ in range(30)]), 6)
            idle_for = await asyncio.wait_for(idle(), 6)
        finally:
            await server.stop()
        return closed, idle_for

    closed, idle_for = asyncio.run(main())
    assert max(closed) < 3.0  # 1 s timeout, rounded up by aiohttp's timer granularity
    assert 0.5 < idle_for < 3.0


@pytest.fixture
def child(request: pytest.FixtureRequest) -> Iterator[callable]:
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[subprocess.Popen, int]:
        proc = subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        port = int(proc.stdout.readline())
        return proc, port

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def _open(port: int, count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        out.append(s)
    return out


def _healthz(port: int, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(HEALTHZ)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data


def test_idle_flood_under_a_low_file_limit_leaves_healthz_answering(child) -> None:
    proc, port = child("256")  # cap: half of 256 = 128 connections
    sockets = _open(port, 300)  # more than the child's open-file limit, all idle
    try:
        time.sleep(0.5)
        started = time.monotonic()
        answer = _healthz(port)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert time.monotonic() - started < 2.0
    finally:
        for s in sockets:
            s.close()
    proc.kill()
    err = proc.communicate(timeout=10)[1]
    assert "out of system resource" not in err
    assert len(err.splitlines()) < 10, err[:2000]  # one "cap reached" line, not one per connection


def test_accept_errors_are_logged_once_a_minute(child) -> None:
    # Something else holds nearly every descriptor: accept() fails whatever the cap says.
    proc, port = child("64", "--burn", "56")
    sockets = []
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(sockets) < 200:
            try:
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except OSError:
                time.sleep(0.05)
        time.sleep(max(0.0, deadline - time.monotonic()))
    finally:
        for s in sockets:
            s.close()
    proc.kill()
    err = proc.communicate(timeout=10)[1]
    lines = [line for line in err.splitlines() if line.strip()]
    accept = [line for line in lines if "cannot accept HTTP connections" in line]
    assert len(accept) == 1, err[:3000]
    assert "Too many open files" in accept[0]
    assert len(lines) < 10, err[:3000]  # before: hundreds of ERROR lines with tracebacks


def test_an_overlong_request_line_never_logs_the_token(caplog: pytest.LogCaptureFixture) -> None:
    token = make_token("alice", b"k" * 32)

    async def main() -> list[bytes]:
        server = await start_server(_app(), "127.0.0.1", 0)
        answers = []
        try:
            for path in (f"/unsubscribe/{token}{'A' * 9000}", f"/rate/{token}{'B' * 9000}"):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                answers.append(await asyncio.wait_for(reader.read(), 5))
                writer.close()
        finally:
            await server.stop()
        return answers

    with caplog.at_level(logging.DEBUG):
        answers = asyncio.run(main())
    assert all(a.startswith(b"HTTP/1.0 400") or a.startswith(b"HTTP/1.1 400") for a in answers)
    text = caplog.text
    assert token[:20] not in text and "AAAA" not in text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "bad HTTP request from 127.0.0.1: LineTooLong (400)" in text
