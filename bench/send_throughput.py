"""10,000 digests against a real SMTP server: `digest send` end to end, and smtp-source as reference.

    .venv/bin/python bench/send_throughput.py            # 10,000 readers, 1,000 papers
    .venv/bin/python bench/send_throughput.py -n 2000 -m 500 --connections 8

Generates into bench/data/ (git-ignored, rebuilt on every run):
  papers.json          an edition of M papers in the Hugging Face Daily Papers JSON format, titles and
                       abstracts from bench/corpus/papers.jsonl (repeated with variations past 502),
                       invented arXiv ids, authors, upvotes, comments, repos, AI summaries and keywords
  subscriptions/       N reader files, keywords drawn from the corpus vocabulary (phrases that occur
                       in several titles, so every reader gets papers), a few trending readers (no
                       keywords), varied weights, exclusions, max_papers, time zones and names
  digest.yaml          sources -> papers.json, smtp -> the sink (tls: none), a fresh SQLite file

then starts Postfix's `smtp-sink` on loopback and runs the real `digest send --date D --json` as a
subprocess (fetch from the file, merge, rank, render, MIME, SMTP, store), checks that the sink
received exactly as many messages as there are `sent` rows (and that every reader got one), and
prints digests/s, wall time, peak resident memory (the process tree, polled) and mean message size.
Then it drives `smtp-source` (same package) with the same number of messages of the same mean size
over as many sessions as we use connections, into the same sink, and prints our ratio to it.

Needs Debian's postfix package for smtp-sink and smtp-source:
    DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "bench" / "corpus" / "papers.jsonl"
DATA = ROOT / "bench" / "data"
DAY = dt.date(2025, 10, 9)
SENDER = "Paper Digest <digest@example.org>"
INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y postfix"

# -- the edition --------------------------------------------------------------------------

_STOP = set(
    """a an and are as at be by for from has have in into is it its of on or our over that the their
    this to under via we what when where which while with without can do does how not new using use
    towards toward beyond through than more less all any via your you they them these those one two
    based large small model models approach method methods study paper show shows results task tasks
    data learning""".split()
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z]")
FIRST = ["Ana", "Wei", "Olga", "Kwame", "José", "Mei", "Lars", "Priya", "Jonas", "Aiko", "Zoë", "Omar",
         "Łukasz", "Nguyễn", "Sara", "Ivan", "Fatima", "Chen", "Marta", "Hiro", "Amara", "Diego", "Lena"]
LAST = ["Silva", "Zhang", "Ivanova", "Mensah", "García", "Li", "Berg", "Sharma", "Müller", "Tanaka",
        "Petit", "Haddad", "Wiśniewski", "Thị Hương", "Rossi", "Petrov", "Khan", "Wang", "López", "Sato"]
ORGS = ["Google DeepMind", "Meta AI", "Tsinghua University", "ETH Zürich", "Allen Institute for AI",
        "Mistral AI", "Université de Montréal", "NVIDIA", "Alibaba Qwen", "MIT CSAIL"]
VARIANTS = ["Revisiting", "Scaling", "Towards Efficient", "On the Robustness of", "Rethinking",
            "A Closer Look at", "Beyond", "Understanding", "Simple and Effective", "Lessons from"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata",
         "America/Los_Angeles", "Europe/London", "Australia/Sydney", "America/Sao_Paulo", "Africa/Lagos"]


def load_corpus() -> list[dict]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def vocabulary(corpus: list[dict]) -> list[tuple[str, int]]:
    """Phrases (1-3 words, no stop word at either end) found in at least 3 titles and at most 8% of
    them, with their title frequency: every such keyword matches several papers of the edition."""
    df: Counter[str] = Counter()
    for paper in corpus:
        words = _words(paper["title"])
        grams = set()
        for n in (1, 2, 3):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if gram[0].lower() in _STOP or gram[-1].lower() in _STOP:
                    continue
                if n == 1 and (len(gram[0]) < 4 or gram[0].isupper() and len(gram[0]) < 3):
                    continue
                grams.add(" ".join(gram).lower() if not any(w.isupper() for w in gram) else " ".join(gram))
        df.update(grams)
    top = len(corpus) * 0.08
    return sorted(((g, n) for g, n in df.items() if 3 <= n <= top), key=lambda x: (-x[1], x[0]))


def make_papers(corpus: list[dict], m: int, vocab: list[str], rng: random.Random) -> list[dict]:
    """M items in the HF Daily Papers JSON format (what /api/daily_papers returns)."""
    items = []
    listed = dt.datetime.combine(DAY, dt.time(6), dt.timezone.utc)
    for i in range(m):
        base = corpus[i % len(corpus)]
        rep = i // len(corpus)
        title, abstract = base["title"], base["abstract"]
        if rep:  # a variation: another title head, the abstract's sentences in another order
            title = f"{VARIANTS[(i + rep) % len(VARIANTS)]} {title[0].lower()}{title[1:]}"
            sentences = re.split(r"(?<=\.) ", abstract)
            rng.shuffle(sentences)
            abstract = " ".join(sentences)
        arxiv_id = f"2510.{1000 + i:05d}"  # invented, syntactically valid new-style ids
        authors = [
            {"_id": f"{rng.getrandbits(96):024x}", "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
             "hidden": False}
            for _ in range(base.get("n_authors") or rng.randint(1, 12))
        ][:20]
        published = listed - dt.timedelta(days=rng.randint(0, 40), minutes=rng.randint(0, 1440))
        summary_words = abstract.split(". ")[0][:300]
        paper = {
            "id": arxiv_id,
            "authors": authors,
            "publishedAt": published.isoformat().replace("+00:00", "Z"),
            "submittedOnDailyAt": listed.isoformat().replace("+00:00", "Z"),
            "title": title,
            "summary": abstract,
            "upvotes": int(base.get("upvotes") or min(int(rng.lognormvariate(2.0, 1.2)), 900)),
            "discussionId": f"{rng.getrandbits(96):024x}",
        }
        if rng.random() < 0.6:
            paper["ai_summary"] = summary_words.rstrip(".") + "."
            paper["ai_keywords"] = rng.sample(vocab, 4)
        if rng.random() < 0.35:
            paper["githubRepo"] = f"https://github.com/lab{i % 97}/{re.sub(r'[^a-z0-9]+', '-', title.lower())[:30].strip('-')}"
            paper["githubStars"] = int(rng.lognormvariate(3, 1.5))
        if rng.random() < 0.2:
            paper["projectPage"] = f"https://lab{i % 97}.github.io/{arxiv_id}/"
        if base.get("organization") or rng.random() < 0.3:
            paper["organization"] = {"name": "org", "fullname": base.get("organization") or rng.choice(ORGS)}
        items.append({
            "paper": paper,
            "publishedAt": listed.isoformat().replace("+00:00", "Z"),
            "title": title,
            "summary": abstract,
            "numComments": rng.randint(0, 12),
            "isAuthorParticipating": rng.random() < 0.5,
        })
    return items


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def make_subscription(i: int, vocab: list[tuple[str, int]], rng: random.Random) -> str:
    lines = [f"email: reader{i:05d}@example.org"]
    if i % 3:
        lines.append(f"name: {_yaml_str(rng.choice(FIRST) + ' ' + rng.choice(LAST))}")
    lines.append(f"timezone: {ZONES[i % len(ZONES)]}")
    lines.append(f"send_at: \"{6 + i % 4:02d}:{(i * 7) % 60:02d}\"")
    if i % 50 == 7:  # 2 %: the plain trending digest
        lines.append("max_papers: 10")
        return "\n".join(lines) + "\n"
    phrases = [g for g, _ in vocab]
    weights = [n for _, n in vocab]
    k = rng.choice((1, 2, 2, 3, 3, 3, 4, 5))
    terms = list(dict.fromkeys(rng.choices(phrases, weights=weights, k=k)))
    lines.append("keywords:")
    for term in terms:
        if rng.random() < 0.2:
            lines.append(f"  - {{term: {_yaml_str(term)}, weight: {rng.choice((0.5, 2, 3))}}}")
        else:
            lines.append(f"  - {_yaml_str(term)}")
    if rng.random() < 0.15:
        lines.append(f"exclude: [{_yaml_str(rng.choice(phrases))}]")
    lines.append(f"max_papers: {rng.choice((5, 8, 10, 10, 10, 15, 20))}")
    lines.append("send_empty: true")  # a day with nothing left for a narrow reader still gets a note
    return "\n".join(lines) + "\n"


def generate(n: int, m: int, port: int, connections: int, seed: int) -> Path:
    rng = random.Random(seed)
    if DATA.exists():
        shutil.rmtree(DATA)
    subs_dir = DATA / "subscriptions"
    subs_dir.mkdir(parents=True)
    corpus = load_corpus()
    vocab = vocabulary(corpus)
    items = make_papers(corpus, m, [g for g, _ in vocab], rng)
    (DATA / "papers.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    for i in range(n):
        (subs_dir / f"reader{i:05d}.yaml").write_text(make_subscription(i, vocab, rng), encoding="utf-8")
    settings = {
        "sender": SENDER,
        "database_url": f"sqlite:///{DATA / 'digest.db'}",
        "subscriptions_dir": str(subs_dir),
        "outbox": str(DATA / "outbox"),
        "public_url": "https://digest.example.org",
        "sources": [{"name": "hf_daily", "kind": "hf_daily", "url": str(DATA / "papers.json")}],
        "smtp": {"host": "127.0.0.1", "port": port, "tls": "none", "connections": connections},
        "edition_max_age": "P3650D",  # the fixed date must not expire
    }
    config = DATA / "digest.yaml"
    config.write_text(json.dumps(settings, indent=2), encoding="utf-8")  # JSON is YAML
    return config


# -- the sink -----------------------------------------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        sys.exit(f"{name} not found: it comes with Debian's postfix package; install it with\n    {INSTALL}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """smtp-sink on 127.0.0.1 with running counters (`-c`) read from its stdout."""

    def __init__(self, port: int) -> None:
        cmd = [tool("smtp-sink"), *(["-u", "nobody"] if os.geteuid() == 0 else []), "-c", f"127.0.0.1:{port}", "256"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.messages = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise RuntimeError("smtp-sink did not start") from None
                time.sleep(0.05)

    def _read(self) -> None:
        buf = b""
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
            buf = (buf + chunk)[-256:]
            found = re.findall(rb"mesg=(\d+)", buf)
            if found:
                self.messages = int(found[-1])

    def settle(self, expected: int, timeout: float = 5.0) -> int:
        end = time.monotonic() + timeout
        while self.messages < expected and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.2)  # anything late shows too
        return self.messages

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- measuring a process tree -------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return out


def _field(path: str, name: str) -> int:
    """A `Name:   123 kB` field of a /proc file, in bytes (0 if the process is gone)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[str, float], str, str, int]:
    """(wall seconds, peaks, stdout, stderr, exit code). `peaks["cpu"]`: CPU seconds. Memory: `pss` the largest sum of the
    proportional set size of the process tree (pages a forked helper shares with its parent count
    once), `rss` the same with resident sizes (shared pages counted in each process), `main` the
    peak resident size of the command's own process (its VmHWM: no polling gap)."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"pss": 0, "rss": 0, "main": 0, "cpu": 0}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            pids = _tree(proc.pid)
            peaks["pss"] = max(peaks["pss"], sum(_field(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids))
            peaks["rss"] = max(peaks["rss"], sum(_field(f"/proc/{p}/status", "VmRSS:") for p in pids))
            peaks["main"] = max(peaks["main"], _field(f"/proc/{proc.pid}/status", "VmHWM:"))
            stop.wait(0.25)  # reading smaps_rollup costs ~4 ms a process: poll lightly

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    poller.join()
    # CPU seconds (user + system) of the command and every process it started and reaped (the
    # helper that builds messages): steadier than the wall time on a shared machine.
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peaks["cpu"] = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return wall, peaks, out, err, proc.returncode


def smtp_source(port: int, sessions: int, count: int, size: int) -> float:
    """Seconds for smtp-source to push `count` messages of `size` body bytes over `sessions`."""
    cmd = [tool("smtp-source"), "-s", str(sessions), "-m", str(count), "-l", str(size), "-d",
           "-M", "localhost", "-f", "digest@example.org", "-t", "reader@example.org", f"127.0.0.1:{port}"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--subscribers", type=int, default=10_000)
    ap.add_argument("-m", "--papers", type=int, default=1_000)
    ap.add_argument("--connections", type=int, default=4, help="smtp.connections (and smtp-source sessions)")
    ap.add_argument("--seed", type=int, default=20251009)
    ap.add_argument("--runs", type=int, default=1, help="repeat the send (fresh database each time); report the median")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=COMMAND",
                    help="another digest command (e.g. an older checkout's) run on the same data, interleaved")
    ap.add_argument("--digest", default=str(ROOT / ".venv" / "bin" / "digest"), help="the digest command")
    ap.add_argument("--wrap", default="", help="prefix for the digest command, e.g. 'py-spy record -o p.svg --'")
    args = ap.parse_args()

    tool("smtp-sink"), tool("smtp-source")
    port = free_port()
    t0 = time.perf_counter()
    config = generate(args.subscribers, args.papers, port, args.connections, args.seed)
    gen_s = time.perf_counter() - t0
    sink = Sink(port)
    try:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DIGEST_")}
        commands = [("this checkout", args.digest)] + [_labelled(c) for c in args.compare]
        # Every command runs `runs` times, interleaved (A B A B ...), each on a fresh database: a
        # slower spell of a shared machine falls on all of them alike.
        results: dict[str, list[Run]] = {label: [] for label, _ in commands}
        for _ in range(max(1, args.runs)):
            for label, digest in commands:
                cmd = [*args.wrap.split(), digest, "--config", str(config), "send", "--date", DAY.isoformat(), "--json"]
                run = _one_run(cmd, sink, env)
                if run.code not in (0, 1):
                    print(run.err[-3000:], file=sys.stderr)
                    print(f"{label}: digest send exited {run.code}", file=sys.stderr)
                    return 1
                results[label].append(run)
        runs = sorted(results["this checkout"], key=lambda r: r.wall)
        median = runs[(len(runs) - 1) // 2]  # the median run (by wall time)
        wall, peaks, statuses, sent, received, err, code = (
            median.wall, median.peaks, median.statuses, median.sent, median.received, median.err, median.code
        )
        mean = _mean_size(err) or _sampled_mean_size(args.digest, config, env)
        (DATA / "send.stderr").write_text(err)

        print(f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, {_mem_gb():.0f} GB; Python {sys.version.split()[0]}; "
              f"{_postfix_version()}")
        print(f"input: {args.subscribers:,} subscribers, {args.papers:,} papers (HF JSON, "
              f"{(DATA / 'papers.json').stat().st_size / 1e6:.1f} MB), smtp.connections={args.connections}; "
              f"generated in {gen_s:.1f} s")
        print(f"digest send: {dict(sorted(statuses.items()))}, exit {code}")
        print(f"  smtp-sink received {received:,} messages (sent rows: {sent:,})"
              + ("" if received == sent else "  <-- MISMATCH"))
        missing = args.subscribers - sent
        if missing:
            print(f"  {missing} reader(s) got no digest", file=sys.stderr)
        if len(runs) > 1:
            print(f"  runs        {len(runs)}: wall " + " / ".join(f"{r.wall:.2f}" for r in runs) + " s; CPU "
                  + " / ".join(f"{r.peaks['cpu']:.1f}" for r in runs) + " s; the median run below")
        print(f"  wall        {wall:8.2f} s")
        print(f"  rate        {sent / wall:8.1f} digests/s")
        print(f"  CPU         {peaks['cpu']:8.2f} s  user+system of digest and its helper "
              f"({peaks['cpu'] / max(sent, 1) * 1e3:.2f} ms a digest; {peaks['cpu'] / wall:.2f} cores busy on average)")
        print(f"  peak memory {peaks['pss'] / 2**20:8.1f} MiB  (PSS of the process tree; RSS sum "
              f"{peaks['rss'] / 2**20:.0f} MiB, main process peak RSS {peaks['main'] / 2**20:.0f} MiB)")
        print(f"  mean size   {mean / 1024:8.1f} KiB" if mean else "  mean size   unknown (no summary line)")
        if mean and sent:
            # smtp-source -l is the body length; it adds ~150 bytes of headers of its own
            ref_s = smtp_source(port, args.connections, sent, max(int(mean) - 150, 1))
            ref_rate = sent / ref_s
            print(f"smtp-source: {sent:,} messages of {mean / 1024:.1f} KiB over {args.connections} sessions "
                  f"in {ref_s:.2f} s = {ref_rate:,.0f} msg/s")
            print(f"ratio: {sent / wall / ref_rate:.3f} (ours / smtp-source)")
        if len(commands) > 1:
            print(f"compared, {max(1, args.runs)} interleaved run(s) each, medians:")
            print(f"  {'command':<28} {'wall s':>7} {'digests/s':>9} {'CPU s':>6} {'PSS MiB':>8}  sent/received")
            for label, _ in commands:
                rs = sorted(results[label], key=lambda r: r.wall)
                m = rs[(len(rs) - 1) // 2]
                cpu = sorted(r.peaks["cpu"] for r in rs)[(len(rs) - 1) // 2]
                pss = sorted(r.peaks["pss"] for r in rs)[(len(rs) - 1) // 2]
                print(f"  {label:<28} {m.wall:7.2f} {m.sent / m.wall:9.1f} {cpu:6.1f} {pss / 2**20:8.0f}  "
                      f"{m.sent:,}/{m.received:,}")
        ok = all(r.received == r.sent == args.subscribers for rs in results.values() for r in rs)
        return 0 if ok else 1
    finally:
        sink.stop()


@dataclass
class Run:
    wall: float
    peaks: dict[str, float]
    statuses: Counter[str]
    sent: int
    received: int
    err: str
    code: int


def _one_run(cmd: list[str], sink: Sink, env: dict[str, str]) -> Run:
    """`digest send` once, on a fresh database; what the sink received of it."""
    for db in DATA.glob("digest.db*"):
        db.unlink()
    before = sink.messages
    wall, peaks, out, err, code = run_measured(cmd, DATA, env)
    if code not in (0, 1):
        return Run(wall, peaks, Counter(), 0, 0, err, code)
    rows, _ = json.JSONDecoder().raw_decode(out[out.find("[") :])  # a --wrap (profiler) may print lines too
    statuses = Counter(r["status"] for r in rows)
    sent = statuses.get("sent", 0)
    received = sink.settle(before + sent) - before
    return Run(wall, peaks, statuses, sent, received, err, code)


def _labelled(spec: str) -> tuple[str, str]:
    label, sep, command = spec.partition("=")
    if not sep or not command:
        sys.exit(f"--compare wants LABEL=COMMAND, got {spec!r}")
    return label, command


def _mean_size(stderr: str) -> float | None:
    m = re.search(r"mean message ([\d,]+) bytes", stderr)
    return float(m.group(1).replace(",", "")) if m else None


def _sampled_mean_size(digest: str, config: Path, env: dict[str, str], sample: int = 200) -> float | None:
    """Without a summary line that says it (older digest): the mean .eml size of a dry run for
    `sample` readers spread over the list (the same editions, byte for byte, as the real send)."""
    subs = sorted((DATA / "subscriptions").glob("*.yaml"))
    step = max(1, len(subs) // sample)
    users = [a for p in subs[::step][:sample] for a in ("--user", p.stem)]
    out = DATA / "preview"
    env = {**env, "DIGEST_DATABASE_URL": f"sqlite:///{DATA / 'fresh-for-preview.db'}"}  # dry-run creates none
    subprocess.run([digest, "--config", str(config), "send", "--dry-run", "--date", DAY.isoformat(), "--out", str(out),
                    "--json", *users], cwd=DATA, env=env, capture_output=True, check=False)
    sizes = [p.stat().st_size for p in out.glob("*.eml")]
    return sum(sizes) / len(sizes) if sizes else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _mem_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


def _postfix_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "postfix"], capture_output=True, text=True)
        return f"postfix {out.stdout.strip()}" if out.returncode == 0 else "postfix ?"
    except OSError:
        return "postfix ?"


if __name__ == "__main__":
    sys.exit(main())
