"""Ranking quality on the judged set: MAP and edition F1 per reader profile.

    .venv/bin/python bench/rank_quality.py [--editions 200] [--seed 7] [--no-semantic]
    .venv/bin/python bench/rank_quality.py --days [--seeds 5] [--half a|b] [--no-semantic]

--days: the day-by-day simulation of a reader who rates (bench/rank_days.py).

Relevant = grade >= 1 (grade 2 only: the "grade 2" lines). Methods:
  substring   plain substring counting: score = sum of weight * (case-insensitive occurrences of the
              keyword in title + abstract); a paper is in if its score > 0 and no exclusion occurs
  rule only   digest.rank.Ranker, the inclusion rule alone (before single mentions were listed)
  digest      digest.rank.Ranker as an edition ranks: the papers passing the rule, then the single
              mentions (listed under "and N more", never in the digest's full entries)
  +semantic   digest.rank.Ranker(semantic=True), if the extra is installed
MAP: average precision of the list each method returns for the whole corpus (what `digest rank
--limit 0` would list), relevant papers it does not return count as misses.
Edition F1: random editions of 60 papers (the same editions for every profile and method), the
digest = the first 10 papers the method includes; precision = relevant among those / their number,
recall = relevant among those / min(10, relevant in the edition) (the best a 10-paper digest can
do; "F1 raw" divides by all relevant instead). An edition with nothing relevant scores 1 if the
digest is empty, else 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from digest.errors import ConfigError  # noqa: E402
from digest.models import Keyword, Paper, Subscription  # noqa: E402
from digest.rank import Ranker  # noqa: E402

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
EDITION_SIZE = 60
DIGEST_CAP = 10


def load_corpus() -> list[Paper]:
    papers = []
    for i, line in enumerate((ROOT / "bench/corpus/papers.jsonl").read_text().splitlines()):
        d = json.loads(line)
        arxiv = f"{2301 + i // 100}.{10000 + i:05d}"  # invented, syntactically valid
        published = None
        if d.get("published"):  # "Apr 27, 2023", or "Jan 6" (the listing's year: take 2024)
            text = d["published"] if "," in d["published"] else d["published"] + ", 2024"
            published = dt.datetime.strptime(text, "%b %d, %Y").replace(tzinfo=dt.timezone.utc)
        papers.append(
            Paper(
                key=f"arxiv:{arxiv}",
                title=d["title"],
                abstract=d.get("abstract", ""),
                arxiv_id=arxiv,
                url=f"https://arxiv.org/abs/{arxiv}",
                published=published,
                upvotes=d.get("upvotes"),
                organization=d.get("organization"),
            )
        )
    return papers


def load_profiles() -> list[Subscription]:
    subs = []
    for prof in yaml.safe_load((ROOT / "bench/judged/profiles.yaml").read_text()):
        kws = []
        for k in prof["keywords"]:
            kws.append(Keyword(k["term"], float(k.get("weight", 1.0))) if isinstance(k, dict) else Keyword(k))
        subs.append(
            Subscription(
                id=prof["id"], email=f"{prof['id']}@example.org", keywords=tuple(kws),
                exclude=tuple(prof.get("exclude") or ()),
            )
        )
    return subs


def load_grades() -> dict[str, dict[int, int]]:
    grades: dict[str, dict[int, int]] = {}
    for path in sorted((ROOT / "bench/judged").glob("judgments-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                j = json.loads(line)
                grades.setdefault(j["profile"], {})[int(j["paper"])] = int(j["grade"])
    return grades


# ---------------------------------------------------------------- methods: papers -> {profile: ranked indices}

# {profile: (ranked indices, how many of them may be shown in full: the digest is the first
# min(DIGEST_CAP, that) papers; the rest, mentions, are only listed)}
Method = Callable[[Sequence[int], list[Paper], list[Subscription]], dict[str, tuple[list[int], int]]]


def substring_method(ids: Sequence[int], papers: list[Paper], subs: list[Subscription]) -> dict[str, list[int]]:
    out = {}
    texts = {i: (papers[i].title + " " + papers[i].abstract).lower() for i in ids}
    for sub in subs:
        scored = []
        for i in ids:
            text = texts[i]
            if any(x.lower() in text for x in sub.exclude):
                continue
            score = sum(k.weight * text.count(k.term.lower()) for k in sub.keywords)
            if score > 0:
                scored.append((-score, i))
        ranked = [i for _, i in sorted(scored)]
        out[sub.id] = (ranked, len(ranked))
    return out


def ranker_method(semantic: bool, mentions: bool = True) -> Method:
    """digest.rank.Ranker as an edition uses it (with mentions listed after the others)."""

    def run(ids: Sequence[int], papers: list[Paper], subs: list[Subscription]) -> dict[str, tuple[list[int], int]]:
        chosen = [papers[i] for i in ids]
        pos = {p.key: i for p, i in zip(chosen, ids)}
        ranked = Ranker(chosen, now=NOW, semantic=semantic).rank_many(subs, mentions=mentions)
        return {
            sid: ([pos[sp.paper.key] for sp in lst], sum(1 for sp in lst if sp.via != "mention"))
            for sid, lst in ranked.items()
        }

    return run


# ---------------------------------------------------------------- measures

def average_precision(ranked: Sequence[int], relevant: set[int]) -> float:
    if not relevant:
        return 1.0 if not ranked else 0.0
    hits, total = 0, 0.0
    for k, i in enumerate(ranked, start=1):
        if i in relevant:
            hits += 1
            total += hits / k
    return total / len(relevant)


def edition_f1(digest: Sequence[int], relevant: set[int], raw: bool = False) -> float:
    if not relevant:
        return 1.0 if not digest else 0.0
    tp = sum(1 for i in digest if i in relevant)
    if tp == 0:
        return 0.0
    precision = tp / len(digest)
    recall = tp / (len(relevant) if raw else min(len(relevant), DIGEST_CAP))
    return 2 * precision * recall / (precision + recall)


def evaluate(method: Method, papers, subs, grades, editions, min_grade: int) -> dict[str, tuple[float, float, float]]:
    """{profile: (MAP, edition F1, edition F1 raw)}."""
    rel = {s.id: {i for i, g in grades.get(s.id, {}).items() if g >= min_grade} for s in subs}
    judged = sorted(set().union(*(grades.get(s.id, {}).keys() for s in subs)))
    full = method(judged, papers, subs)
    f1 = {s.id: [] for s in subs}
    f1raw = {s.id: [] for s in subs}
    for ed in editions:
        out = method(ed, papers, subs)
        ed_set = set(ed)
        for s in subs:
            r = rel[s.id] & ed_set
            ranked, shown = out[s.id]
            d = ranked[: min(DIGEST_CAP, shown)]
            f1[s.id].append(edition_f1(d, r))
            f1raw[s.id].append(edition_f1(d, r, raw=True))
    return {
        s.id: (average_precision(full[s.id][0], rel[s.id]), sum(f1[s.id]) / len(editions), sum(f1raw[s.id]) / len(editions))
        for s in subs
    }


def main() -> None:
    if "--days" in sys.argv[1:]:
        from rank_days import main as days_main

        sys.argv.remove("--days")
        days_main()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--editions", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-semantic", action="store_true")
    args = ap.parse_args()
    papers, subs, grades = load_corpus(), load_profiles(), load_grades()
    judged = sorted(set().union(*(g.keys() for g in grades.values())))
    n_rel = {s.id: sum(1 for g in grades.get(s.id, {}).values() if g >= 1) for s in subs}
    print(f"judged set: {len(judged)} papers x {len(subs)} profiles; relevant = grade >= 1")
    rng = random.Random(args.seed)
    editions = [sorted(rng.sample(judged, min(EDITION_SIZE, len(judged)))) for _ in range(args.editions)]
    methods: list[tuple[str, Method]] = [
        ("substring", substring_method), ("rule only", ranker_method(False, mentions=False)),
        ("digest", ranker_method(False)),
    ]
    if not args.no_semantic:
        try:
            Ranker(papers[:1], now=NOW, semantic=True)
            methods.append(("+semantic", ranker_method(True)))
        except ConfigError:
            print("semantic: not installed")
    results = {}
    for name, method in methods:
        t = time.perf_counter()
        results[name] = (evaluate(method, papers, subs, grades, editions, 1), evaluate(method, papers, subs, grades, editions, 2))
        print(f"  ({name}: {time.perf_counter() - t:.1f} s)", file=sys.stderr)
    print(f"{args.editions} editions of {EDITION_SIZE} papers, digest capped at {DIGEST_CAP}, seed {args.seed}\n")
    head = f"{'profile':<18} {'rel':>4} " + " ".join(f"{n + ' MAP':>15} {n + ' F1':>14}" for n, _ in methods)
    print(head)
    for s in subs:
        row = f"{s.id:<18} {n_rel[s.id]:>4} "
        row += " ".join(f"{results[n][0][s.id][0]:>15.3f} {results[n][0][s.id][1]:>14.3f}" for n, _ in methods)
        print(row)
    for label, g in (("mean", 0), ("mean grade 2", 1)):
        row = f"{label:<18} {'':>4} "
        row += " ".join(
            f"{sum(v[0] for v in results[n][g].values()) / len(subs):>15.3f} "
            f"{sum(v[1] for v in results[n][g].values()) / len(subs):>14.3f}"
            for n, _ in methods
        )
        print(row)
    print("\nF1 raw (recall over every relevant paper of the edition, even past the cap of 10): " + ", ".join(
        f"{n} {sum(v[2] for v in results[n][0].values()) / len(subs):.3f}" for n, _ in methods))


if __name__ == "__main__":
    main()
