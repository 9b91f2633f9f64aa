"""Time to deliver 1,000 digests to a local SMTP server, with 1 and with 4 connections.

    .venv/bin/python bench/deliver_speed.py

The server is Postfix's `smtp-sink` (it throws messages away and is far faster than any client:
~12k msg/s on one session, so it measures us) when installed (`apt-get install -y postfix`), else
an aiosmtpd sink in its own process (~1–1.5k msg/s ceiling: figures near that are the server's).

Two figures per connection count:
  smtp      SmtpMailer alone: 1,000 prebuilt, realistic messages (real editions rendered by the real
            templates from the saved payloads: ~10 papers each) over the pool, 100 per connection
  pipeline  send_editions end to end: claim in a fresh SQLite store, rank, render, send, mark_sent
            with the papers as seen, for 1,000 readers
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.deliver.smtp import SmtpMailer  # noqa: E402
from digest.models import Keyword, OutgoingMessage, SourceSpec, Subscription  # noqa: E402
from digest.pipeline import Delivery, gather, plan, send_editions  # noqa: E402
from digest.rank import Ranker  # noqa: E402
from digest.render import Renderer, build_message, message_id_for  # noqa: E402
from digest.store import open_store  # noqa: E402
from digest.tokens import unsubscribe_url  # noqa: E402

N = 1000
DAY = dt.date(2025, 10, 9)
NOW = dt.datetime(2025, 10, 9, 12, tzinfo=dt.timezone.utc)
SENDER = "Paper Digest <digest@example.org>"
SECRET = b"bench-secret-bench-secret-bench!"
INTERESTS = [
    (),
    (Keyword("reinforcement learning"), Keyword("fine-tuning", 2.0)),
    (Keyword("language model"), Keyword("LLM", 2.0)),
    (Keyword("diffusion"), Keyword("video")),
    (Keyword("agents"), Keyword("reasoning")),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the sink did not listen on {port}")


AIOSMTPD_SINK = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 ok"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), data_size_limit=None), "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""


def start_sink() -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    sink = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None)
    if sink:
        cmd = [sink, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{port}", "256"]
        name = "Postfix smtp-sink"
    else:
        cmd = [sys.executable, "-c", AIOSMTPD_SINK, str(port)]
        name = "aiosmtpd sink (smtp-sink not installed)"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port, name


def readers(n: int) -> list[Subscription]:
    return [
        Subscription(id=f"reader{i:04d}", email=f"reader{i:04d}@example.org", name=f"Reader {i}",
                     keywords=INTERESTS[i % len(INTERESTS)], max_papers=10, send_empty=True)
        for i in range(n)
    ]


def sources() -> list[SourceSpec]:
    examples = ROOT / "config" / "examples"
    return [SourceSpec(name="hf_daily", kind="hf_daily", url=str(examples / "hf_daily_papers.json")),
            SourceSpec(name="arxiv_cs_cl", kind="feed", url=str(examples / "arxiv_rss_cs_CL.xml"))]


def build_messages(subs: list[Subscription], papers: list) -> tuple[list[OutgoingMessage], float]:
    ranker, renderer = Ranker(papers, now=NOW), Renderer()
    start = time.perf_counter()
    out = []
    for sub in subs:
        edition = plan(sub, ranker, seen=set(), papers=papers, edition_date=DAY)
        link = unsubscribe_url("https://digest.example.org", sub.id, SECRET)
        rendered = renderer.render(edition, unsubscribe_url=link, now=NOW)
        out.append(build_message(edition, rendered, sender=SENDER, message_id=message_id_for(sub.id, DAY, SENDER),
                                 unsubscribe_url=link, date=NOW))
    return out, time.perf_counter() - start


def mailer(port: int, connections: int) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, tls="none", connections=connections,
                      messages_per_connection=100, timeout=30, deadline=60)


async def smtp_only(port: int, connections: int, messages: list[OutgoingMessage]) -> float:
    m = mailer(port, connections)
    async with m:
        start = time.perf_counter()
        await asyncio.gather(*(m.send(msg) for msg in messages))
        return time.perf_counter() - start


async def whole_pipeline(port: int, connections: int, subs: list[Subscription], papers: list, db: Path) -> float:
    store = open_store(f"sqlite:///{db}")
    m = mailer(port, connections)
    try:
        delivery = Delivery(store=store, mailer=m, renderer=Renderer(), sender=SENDER,
                            public_url="https://digest.example.org", secret=SECRET, worker="bench:0:0")
        async with m:
            start = time.perf_counter()
            outcomes = await send_editions(subs, papers, delivery, now=NOW, edition_date=DAY)
            seconds = time.perf_counter() - start
    finally:
        store.close()
    bad = [o for o in outcomes if o.status != "sent"]
    if bad:
        raise RuntimeError(f"{len(bad)} editions not sent, e.g. {bad[0]}")
    return seconds


def main() -> None:
    proc, port, server = start_sink()
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    try:
        papers, _ = asyncio.run(gather(sources(), day=DAY))
        subs = readers(N)
        messages, build_s = build_messages(subs, papers)
        sizes = [len(m.data) for m in messages]
        print(f"server: {server} on 127.0.0.1:{port}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
        print(f"{N} real digests from the saved payloads: {statistics.mean(sizes) / 1024:.1f} KiB on average "
              f"({min(sizes) / 1024:.1f}–{max(sizes) / 1024:.1f}); rank+render+build alone: "
              f"{build_s:.2f} s ({N / build_s:,.0f}/s)")
        print(f"{'what':<10} {'conns':>5} {'seconds':>8} {'msgs/s':>8}   (best of 3 for smtp)")
        for connections in (1, 4):
            best = min(asyncio.run(smtp_only(port, connections, messages)) for _ in range(3))
            print(f"{'smtp':<10} {connections:>5} {best:>8.2f} {N / best:>8,.0f}")
        for connections in (1, 4):
            seconds = asyncio.run(whole_pipeline(port, connections, subs, papers, tmp / f"bench{connections}.db"))
            print(f"{'pipeline':<10} {connections:>5} {seconds:>8.2f} {N / seconds:>8,.0f}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
