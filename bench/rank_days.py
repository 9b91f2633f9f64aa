"""Day-by-day simulation of readers who rate their digest (issue 10), on the judged set.

    .venv/bin/python bench/rank_quality.py --days [--seeds 5] [--half a|b] [--no-semantic]

The judged papers are shuffled (per seed) and cut into 10 days of about 50 papers (25 with
--half, which keeps only the papers of judgments-a.jsonl or -b.jsonl: tune on one, check on the
other). Each profile of judged/profiles.yaml is a reader with max_papers = 10. Every day the
reader gets the papers of that day not already sent, ranked by the method. On days 1-5 the reader
rates what its digest shows (the first max_papers), by its judgements: grade >= 1 "more like
this", grade 0 "not for me"; "all" rates every shown paper, "30%" a random 30 % of them. Days 6-10
are scored with the ratings of days 1-5 (no more ratings), per day:

  edition F1  digest = the first max_papers of the list; precision over the digest, recall over
              min(max_papers, relevant papers of the day); 1 for an empty digest on a day with
              nothing relevant, else 0 (as in rank_quality.py)
  MAP         average precision of the day's whole list over the day's relevant papers

Methods: whole-word (the baseline of issue 10: each keyword as a whole word, case-insensitive,
title hits counted three times, times the keyword's weight; in when > 0, out when an exclusion
occurs as a whole word), keywords (digest.rank.Ranker, no ratings: the cold start), keywords +
ratings (all / 30 %), and the same with the semantic extra when it is installed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Sequence

from rank_quality import NOW, ROOT, average_precision, load_corpus, load_grades, load_profiles

from digest.errors import ConfigError
from digest.models import Paper, RatedPaper, Subscription
from digest.rank import Ranker
from digest.rank.model import document_frequencies
from digest.rank.vectors import embed

DAYS, RATED_DAYS, DAY_SIZE = 10, 5, 50
MORE_LINES = 10  # the "and N more" titles an email lists after the full entries, each with rating links


def f1(digest: Sequence[int], relevant: set[int], cap: int) -> float:
    if not relevant:
        return 1.0 if not digest else 0.0
    tp = sum(1 for i in digest if i in relevant)
    if tp == 0:
        return 0.0
    p, r = tp / len(digest), tp / min(len(relevant), cap)
    return 2 * p * r / (p + r)


def whole_word(ids: Sequence[int], papers: list[Paper], sub: Subscription) -> list[int]:
    def pattern(term: str) -> re.Pattern:
        return re.compile(r"(?<!\w)" + re.escape(term) + r"(?!\w)", re.I)

    kws = [(pattern(k.term), k.weight) for k in sub.keywords]
    excl = [pattern(t) for t in sub.exclude]
    scored = []
    for i in ids:
        title, abstract = papers[i].title, papers[i].abstract
        if any(x.search(title) or x.search(abstract) for x in excl):
            continue
        score = sum(w * (3 * len(p.findall(title)) + len(p.findall(abstract))) for p, w in kws)
        if score > 0:
            scored.append((-score, i))
    return [i for _, i in sorted(scored)]


MENTIONS = True  # as an edition ranks (Ranker.rank(mentions=True)); --no-mentions: the inclusion rule alone


def simulate(papers, vectors, sub, grades, days, *, rate_share, semantic, rng) -> list[tuple[float, float]]:
    """(F1, AP) for each scored day. rate_share None: keywords only; else share of shown papers rated.

    Shown = what the email carries: the first max_papers (full entries, the exploration slot
    among them), then up to MORE_LINES "and N more" titles; every one has the two rating links.
    The model's idf background is every paper fetched so far (the days up to today), as the
    store would hand it over."""
    relevant = {i for i, g in grades.items() if g >= 1}
    rated: list[RatedPaper] = []
    sent: set[str] = set()
    fetched: list[int] = []
    out = []
    for d, ids in enumerate(days, start=1):
        fetched += ids
        ranker = Ranker(
            [papers[i] for i in ids], now=NOW, semantic=semantic, vectors=[vectors[i] for i in ids],
            doc_freq=document_frequencies([vectors[i] for i in fetched]),
        )  # fmt: skip
        ranked = ranker.rank(sub, skip=sent, rated=rated if rate_share is not None else (), mentions=MENTIONS)
        pos = {papers[i].key: i for i in ids}
        order = [pos[sp.paper.key] for sp in ranked]
        full = sum(1 for sp in ranked if sp.via != "mention")  # mentions are only listed, never in full
        digest = order[: min(sub.max_papers, full)]
        shown = order[: len(digest) + MORE_LINES]
        sent.update(papers[i].key for i in digest)  # the "more" titles stay candidates, as in plan()
        if d <= RATED_DAYS:
            if rate_share is not None:
                for i in shown:
                    if rate_share >= 1.0 or rng.random() < rate_share:
                        vote = 1 if grades.get(i, 0) >= 1 else -1
                        rated.append(RatedPaper(papers[i].key, vote, papers[i].title, vectors[i]))
            continue
        rel = relevant & set(ids)
        out.append((f1(digest, rel, sub.max_papers), average_precision(order, rel)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--half", choices=("a", "b"), default=None)
    ap.add_argument("--no-semantic", action="store_true")
    ap.add_argument("--no-mentions", action="store_true", help="rank by the inclusion rule alone (before mentions were listed)")
    args = ap.parse_args()
    global MENTIONS
    MENTIONS = not args.no_mentions
    papers, subs, grades = load_corpus(), load_profiles(), load_grades()
    judged = sorted(set().union(*(g.keys() for g in grades.values())))
    if args.half:
        lines = (ROOT / f"bench/judged/judgments-{args.half}.jsonl").read_text().splitlines()
        keep = {json.loads(line)["paper"] for line in lines if line.strip()}
        judged = [i for i in judged if i in keep]
    size = len(judged) // DAYS
    t = time.perf_counter()
    vectors = embed(papers)
    print(f"embedded {len(papers)} papers in {time.perf_counter() - t:.2f} s", file=sys.stderr)
    methods: list[tuple[str, float | None, bool]] = [("keywords", None, False), ("+ratings", 1.0, False), ("+ratings 30%", 0.3, False)]
    if not args.no_semantic:
        try:
            Ranker(papers[:1], now=NOW, semantic=True)
            methods += [("semantic", None, True), ("sem+ratings", 1.0, True), ("sem+ratings 30%", 0.3, True)]
        except ConfigError:
            print("semantic extra: not installed, skipped")
    names = ["whole-word"] + [m[0] for m in methods]
    res: dict[str, dict[str, list[tuple[float, float]]]] = {n: {s.id: [] for s in subs} for n in names}
    for seed in range(args.seeds):
        order = judged[:]
        random.Random(seed).shuffle(order)
        days = [sorted(order[k * size : (k + 1) * size if k < DAYS - 1 else len(order)]) for k in range(DAYS)]
        for sub in subs:
            g = grades.get(sub.id, {})
            rel = {i for i, x in g.items() if x >= 1}
            for ids in days[RATED_DAYS:]:
                lst = whole_word(ids, papers, sub)
                r = rel & set(ids)
                res["whole-word"][sub.id].append((f1(lst[: sub.max_papers], r, sub.max_papers), average_precision(lst, r)))
            for name, share, sem in methods:
                rng = random.Random(f"{seed}/{sub.id}")
                res[name][sub.id] += simulate(papers, vectors, sub, g, days, rate_share=share, semantic=sem, rng=rng)
    half = f", papers of judgments-{args.half}" if args.half else ""
    print(f"{DAYS} days of ~{size} papers{half}; days 1-{RATED_DAYS} rated, days {RATED_DAYS + 1}-{DAYS} scored; "
          f"{args.seeds} seeds; max_papers 10; relevant = grade >= 1\n")
    print(f"{'profile':<18} " + " ".join(f"{n[:15]:>15}" for n in names) + "    (edition F1 / MAP)")
    for s in subs:
        cells = []
        for n in names:
            v = res[n][s.id]
            cells.append(f"{sum(x[0] for x in v) / len(v):.2f}/{sum(x[1] for x in v) / len(v):.2f}")
        print(f"{s.id:<18} " + " ".join(f"{c:>15}" for c in cells))
    cells = []
    for n in names:
        allv = [x for v in res[n].values() for x in v]
        cells.append(f"{sum(x[0] for x in allv) / len(allv):.3f}/{sum(x[1] for x in allv) / len(allv):.3f}")
    print(f"{'mean':<18} " + " ".join(f"{c:>15}" for c in cells))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
