"""Size of the SQLite seen-store over simulated days, without and with retention, in one run.

    .venv/bin/python bench/store_size.py                       # 1,000 readers x 60 papers, 30 days, 7d
    .venv/bin/python bench/store_size.py --days 120 --retention 90d

Two databases get the same days through the real store API, as `digest send` writes them: each
day is one process (the store is opened, used and closed), which stores the day's papers
(`save_vectors`, ~1.5 KB vectors), claims every reader's edition (`claim_many`, 32 to a
transaction), records them sent with their papers seen (`mark_sent_many`, 64 to a group commit)
and has 1% of readers rate a paper (`rate`). The second database then runs the day's prune
(`digest.store.retention.prune`: what `digest send` does after sending) with `--retention`; the
first never prunes. Each reader is sent all of the day's papers (the worst case: max_papers at
least the day's count), keys are real-looking arXiv keys, sources list a paper for --lookback
days. Printed per day: both file sizes (MB, after the day's process closed the store, so the
write-ahead log is checkpointed into the file) and the prune's time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config.settings import Settings  # noqa: E402
from digest.store import SentEdition, open_store  # noqa: E402
from digest.store.retention import prune  # noqa: E402

START = dt.datetime(2026, 11, 1, 7, 0, tzinfo=dt.timezone.utc)
VECTOR_BYTES = 1500  # ~250 hashed features x 6 bytes (digest.rank.vectors)
CLAIMS, COMMITS = 32, 64  # as pipeline.CLAIM_BATCH and a busy group commit


def duration(text: str) -> dt.timedelta:
    return Settings(retention=text).retention  # type: ignore[return-value]


def day_papers(day: int, count: int) -> list[str]:
    """`count` new arXiv keys for simulated day `day` (about 600 new arXiv papers a day; ids by month)."""
    moment = START + dt.timedelta(days=day)
    base = (moment.day - 1) * 700
    return [f"arxiv:{moment:%y%m}.{base + i:05d}" for i in range(count)]


def simulate_day(
    url: str, day: int, readers: list[str], args: argparse.Namespace, retention: dt.timedelta | None
) -> float:
    """One day's `digest send` against `url`; returns the seconds its prune took (0: none)."""
    now = START + dt.timedelta(days=day)
    edition = now.date()
    rng = random.Random(day)
    today = day_papers(day, args.papers)
    listed = [k for back in range(args.lookback) for k in day_papers(day - back, args.papers)] if day >= 0 else today
    store = open_store(url)
    try:
        store.save_vectors("hash-v1", [(k, f"A paper about {k}", rng.randbytes(VECTOR_BYTES)) for k in today], now=now)
        worker = f"bench:{os.getpid()}:x"
        for lo in range(0, len(readers), CLAIMS):
            batch = [(r, edition) for r in readers[lo : lo + CLAIMS]]
            store.claim_many(batch, worker=worker, now=now, lease=dt.timedelta(minutes=10))
        ids = [f"<digest.{edition}.{rng.getrandbits(64):016x}@example.org>" for _ in readers]
        sent = [SentEdition(r, edition, message_id, tuple(today)) for r, message_id in zip(readers, ids)]
        for lo in range(0, len(sent), COMMITS):
            store.mark_sent_many(sent[lo : lo + COMMITS], now=now)
        for reader in rng.sample(readers, max(1, len(readers) // 100)):
            store.rate(reader, rng.choice(today), rng.choice((1, -1)), now=now)
        started = time.perf_counter()
        done = prune(store, retention=retention, listed=listed, complete=True, now=now)
        return time.perf_counter() - started if done else 0.0
    finally:
        store.close()


def breakdown(path: Path) -> list[tuple[str, float]]:
    """MB per table and index (SQLite's dbstat), largest first; free pages last."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.Error:  # an SQLite built without dbstat
        return []
    finally:
        db.close()
    return [(name, size / 1e6) for name, size in rows if size >= 1e5] + [("free pages", free / 1e6)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--papers", type=int, default=60, help="new papers a day, all sent to every reader")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--retention", default="7d", help="of the second database [default: 7d]")
    parser.add_argument("--lookback", type=int, default=3, help="days a source lists a paper [default: 3]")
    args = parser.parse_args()
    retention = duration(args.retention)
    readers = [f"reader-{i:04d}" for i in range(args.readers)]
    with tempfile.TemporaryDirectory(prefix="digest-size-") as tmp:
        paths = {"none": Path(tmp) / "keep-all.db", "kept": Path(tmp) / "retention.db"}
        print(f"{args.readers:,} readers x {args.papers} papers a day, retention {args.retention} (second column)")
        print(f"{'day':>4} {'no retention MB':>16} {'retention MB':>13} {'prune s':>8} {'day s':>6}")
        for day in range(args.days):
            started = time.perf_counter()
            simulate_day(f"sqlite:///{paths['none']}", day, readers, args, None)
            pruned = simulate_day(f"sqlite:///{paths['kept']}", day, readers, args, retention)
            sizes = [p.stat().st_size / 1e6 for p in paths.values()]
            took = time.perf_counter() - started
            print(f"{day + 1:>4} {sizes[0]:>16.1f} {sizes[1]:>13.1f} {pruned:>8.2f} {took:>6.1f}", flush=True)
        for label, path in (("no retention", paths["none"]), (f"retention {args.retention}", paths["kept"])):
            print(f"{label}: " + ", ".join(f"{name} {mb:.1f}" for name, mb in breakdown(path)) + " (MB)")


if __name__ == "__main__":
    main()
