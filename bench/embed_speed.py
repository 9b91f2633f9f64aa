"""Paper vectors: papers embedded per second, and a second run that embeds none (issue 10, item 4).

    .venv/bin/python bench/embed_speed.py [--papers 2000] [--runs 3]

Papers: bench/corpus/papers.jsonl repeated with new ids up to --papers (as bench/rank_speed.py).
1. `digest.rank.vectors.embed` on all of them, --runs times: papers/s (median).
2. The real SQLite store (a new file in a temporary directory) through
   `digest.ratings.paper_vectors(store, papers, now=...)`, what every run and `digest rank` call:
   the first run embeds every paper and saves the vectors; a second run, with a new store
   connection (as the next process would have), embeds 0 and gets the same vectors back.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rank_quality import NOW  # noqa: E402
from rank_speed import make_papers  # noqa: E402

from digest.ratings import EMBEDDED, paper_vectors  # noqa: E402
from digest.rank.vectors import embed  # noqa: E402
from digest.store import open_store  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--papers", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    papers = make_papers(args.papers)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        vectors = embed(papers)
        times.append(time.perf_counter() - t)
    rate = len(papers) / statistics.median(times)
    size = sum(len(v) for v in vectors) / len(vectors)
    print(f"embed: {len(papers)} papers in {statistics.median(times):.2f} s (median of {args.runs}): "
          f"{rate:,.0f} papers/s on one core; {size / 1024:.2f} KB a vector")

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/digest.db"
        runs = []
        for attempt in (1, 2):
            store = open_store(url, init=True)  # a new connection each time, as a new process
            try:
                t = time.perf_counter()
                got, embedded = paper_vectors(store, papers, now=NOW)
                runs.append((embedded, time.perf_counter() - t, got))
            finally:
                store.close()
        (n1, t1, v1), (n2, t2, v2) = runs
        print(f"SQLite store, run 1: {n1} embedded, {t1:.2f} s (embed + save)")
        print(f"SQLite store, run 2: {n2} embedded, {t2:.2f} s (read back); "
              f"same vectors: {'yes' if v1 == v2 == vectors else 'NO'}; EMBEDDED.last = {EMBEDDED.last}")
    ok = n1 == len(papers) and n2 == 0 and v1 == v2 == vectors
    print(f"a second run embeds 0 papers: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
