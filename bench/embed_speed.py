"""Paper vectors: papers embedded per second, and a second run that embeds none (issue 10, item 4).

    .venv/bin/python bench/embed_speed.py [--papers 2000] [--runs 3]

Papers: bench/corpus/papers.jsonl repeated with new ids up to --papers (as bench/rank_speed.py).
1. `digest.rank.vectors.embed` on all of them, --runs times: papers/s (median).
2. The real SQLite store (a new file in a temporary directory) through
   `digest.ratings.paper_vectors(store, papers, now=...)`, what every run and `digest rank` call:
   the first run embeds every paper and saves the vectors; a second run, with a new store
   connection (as the next process would have), embeds 0 and gets the same vectors back.
3. With the semantic extra installed, the same for its dense embeddings (`paper_dense`).
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
    ap.add_argument("--no-semantic", action="store_true", help="skip the semantic extra's embeddings")
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
    if not args.no_semantic:
        ok = dense_runs(papers) and ok
    return 0 if ok else 1


def dense_runs(papers) -> bool:
    """The semantic extra's embeddings through the store, as every run with `semantic: true`
    computes them: run 1 computes and keeps them, run 2 (a new connection) computes none."""
    from digest.rank.semantic import available

    if not available():
        print("semantic extra: not installed, skipped (pip install '.[semantic]')")
        return True
    from digest.ratings import paper_dense

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/digest.db"
        runs = []
        for _ in (1, 2):
            store = open_store(url, init=True)
            try:
                paper_vectors(store, papers, now=NOW)  # the papers' rows, which the embeddings join
                t = time.perf_counter()
                got, made = paper_dense(store, papers)
                runs.append((made, time.perf_counter() - t, got))
            finally:
                store.close()
    (n1, t1, d1), (n2, t2, d2) = runs
    distinct = len({p.title + p.abstract for p in papers})  # the model caches a text it has seen
    print(f"semantic extra, run 1: {n1} computed ({distinct} distinct texts) in {t1:.2f} s: "
          f"{distinct / t1:,.0f} texts/s through all-MiniLM-L6-v2 on this machine's CPUs, model load included")
    print(f"semantic extra, run 2: {n2} computed, {t2:.2f} s (read back); same embeddings: {'yes' if d1 == d2 else 'NO'}")
    ok = n1 == len(papers) and n2 == 0 and d1 == d2
    print(f"a second run computes 0 embeddings: {'yes' if ok else 'NO'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
