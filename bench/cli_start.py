"""How long the `digest` command takes to answer: `digest --help` and `digest check`, cold process.

    .venv/bin/python bench/cli_start.py                        # this checkout, 15 runs each
    .venv/bin/python bench/cli_start.py --runs 21 --tree before=/tmp/cli_head --tree after=.

Each command runs as a new process of this venv's `digest` console script (the same entry point a
user types), with PYTHONPATH set to the tree so another checkout (`git worktree add /tmp/cli_head
HEAD`) is measured with the same interpreter and packages. `check` runs in a temporary copy of the
example `config/` (the README's Quick start layout). The commands of every tree and the baseline
`python -c pass` are interleaved (A B A B ...), so a busy spell of a shared machine falls on all of
them alike; the medians are printed, and "minus python" is the median less the baseline's: what
digest itself costs. The aim (issue 15, item 8): `--help` and `check` at most 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "digest"


def timed(argv: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 2):  # check exits 2 on a problem in the files: still an answer
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tree", action="append", metavar="LABEL=PATH",
                        help="a checkout to measure (repeatable) [default: this one]")  # fmt: skip
    args = parser.parse_args()
    trees = [t.split("=", 1) for t in (args.tree or [f"this={ROOT}"])]
    work = Path(tempfile.mkdtemp(prefix="cli-start-"))
    shutil.copytree(ROOT / "config", work / "config")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "PYTHON"))}
    cases: list[tuple[str, list[str], dict[str, str]]] = [("python -c pass", [sys.executable, "-c", "pass"], base)]
    for label, path in trees:
        env = {**base, "PYTHONPATH": str(Path(path).resolve())}
        cases += [(f"{label}: digest --help", [str(SCRIPT), "--help"], env),
                  (f"{label}: digest check", [str(SCRIPT), "check"], env)]  # fmt: skip
    for _, argv, env in cases:  # warm the page cache and the .pyc files
        timed(argv, cwd=work, env=env)
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(args.runs):
        for name, argv, env in cases:
            times[name].append(timed(argv, cwd=work, env=env))
    shutil.rmtree(work, ignore_errors=True)
    baseline = statistics.median(times["python -c pass"])
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.runs} runs each, interleaved; seconds")
    print(f"{'command':<34}{'median':>8}{'min':>8}{'max':>8}{'minus python':>14}")
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name.startswith("python") else f"{median - baseline:14.3f}"
        print(f"{name:<34}{median:8.3f}{min(values):8.3f}{max(values):8.3f}{extra}")


if __name__ == "__main__":
    main()
