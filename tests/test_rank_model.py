"""The per-reader model (issue 10): ratings rerank and admit papers; keywords stay in charge."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.models import Keyword, Paper, RatedPaper, Subscription
from digest.rank import Ranker
from digest.rank.vectors import VECTOR_MODEL, decode, embed, matrix

from test_rank_properties import NOW, keywords, papers

CORPUS = Path(__file__).resolve().parent.parent / "bench/corpus/papers.jsonl"
TASK_VECTOR_PAPERS = (48, 71, 429)  # task vectors / model merging: the reader rates these up
TASK_ARITHMETIC = 188  # "Editing Models with Task Arithmetic": no word of the reader's keywords
PEFT = Subscription(
    id="peft",
    email="peft@example.org",
    keywords=tuple(Keyword(t) for t in ("LoRA", "adapters", "parameter-efficient fine-tuning", "prompt tuning", "low-rank")),
)


def corpus() -> list[Paper]:
    out = []
    for i, line in enumerate(CORPUS.read_text().splitlines()):
        d = json.loads(line)
        out.append(Paper(key=f"arxiv:2501.{i:05d}", title=d["title"], abstract=d.get("abstract", ""), published=NOW))
    return out


def rate(paper: Paper, vote: int) -> RatedPaper:
    return RatedPaper(paper.key, vote, paper.title, embed([paper])[0], NOW)


def day_with(ps: list[Paper], *extra: int) -> list[Paper]:
    """A day of ~50 corpus papers (positions 300-349) plus the given ones."""
    return ps[300:350] + [ps[i] for i in extra]


# ---------------------------------------------------------------- vectors


def test_vectors_are_stable_unit_rows_and_name_their_model():
    ps = corpus()[:20]
    blobs = embed(ps)
    assert VECTOR_MODEL == "hash-v1"
    assert blobs == embed(ps)  # a pure function of the text
    m = matrix(blobs + [None])
    norms = m.multiply(m).sum(1).A.ravel()
    assert abs(norms[:20] - 1).max() < 1e-2 and norms[20] == 0
    idx, val = decode(blobs[3])
    assert list(idx) == sorted(idx) and len(val) == len(idx) > 20


# ---------------------------------------------------------------- no ratings: today's ranking


@settings(max_examples=40, deadline=None)
@given(papers(max_size=10), keywords, st.data())
def test_no_ratings_is_exactly_the_keyword_ranking(ps, kws, data):
    reader = Subscription(id="r", email="r@example.org", keywords=tuple(kws))
    other = Subscription(id="o", email="o@example.org", keywords=tuple(kws))
    plain = Ranker(ps, now=NOW).rank(reader)
    ranker = Ranker(ps, now=NOW, vectors=embed(ps))
    assert ranker.rank(reader, rated=()) == plain
    # a rating without a vector is ignored
    assert ranker.rank(reader, rated=[RatedPaper(ps[0].key, 1, ps[0].title, None)]) == plain
    # another reader of the batch having ratings changes nothing for this one
    votes = [rate(p, data.draw(st.sampled_from([1, -1]))) for p in ps]
    both = ranker.rank_many([reader, other], rated_by_sub={"o": votes})
    assert both["r"] == plain
    assert all(sp.via == "keywords" for sp in plain)


# ---------------------------------------------------------------- ratings at work


def test_three_up_votes_bring_a_task_arithmetic_paper_that_shares_no_keyword():
    ps = corpus()
    today = day_with(ps, TASK_ARITHMETIC)
    target = ps[TASK_ARITHMETIC].key
    before = Ranker(today, now=NOW).rank(PEFT)
    assert target not in [sp.paper.key for sp in before]  # no keyword matches it
    rated = [rate(ps[i], 1) for i in TASK_VECTOR_PAPERS]
    after = Ranker(today, now=NOW).rank(PEFT, rated=rated)
    shown = after[: PEFT.max_papers]
    hit = [sp for sp in shown if sp.paper.key == target]
    assert hit, [sp.paper.title for sp in shown]
    assert hit[0].via == "model"
    liked = {ps[i].title for i in TASK_VECTOR_PAPERS}
    assert hit[0].why.startswith("like «") and hit[0].why.endswith("» that you rated up")
    assert hit[0].why[len("like «") : -len("» that you rated up")] in liked
    # the papers the keywords found are still there, with their matched terms
    assert {sp.paper.key for sp in before} <= {sp.paper.key for sp in after}
    for sp in after:
        if sp.via == "keywords":  # the reader's terms and where they are: "LoRA, in the title"
            assert ", in the " in sp.why and sp.why.split(",")[0] in sp.matched_terms
        else:
            assert sp.why.startswith({"model": "like «", "explore": "exploring"}[sp.via])


def test_a_down_vote_pushes_its_near_duplicates_out():
    ps = corpus()
    before = Ranker(ps, now=NOW).rank(PEFT)
    assert before, "the day needs a keyword paper"
    victim = before[0].paper
    # a near-duplicate of the victim (a new version under another key) was rated down
    twin = victim.with_(key="arxiv:2412.99999", title=victim.title + " (v2)")
    after = Ranker(ps, now=NOW).rank(PEFT, rated=[rate(twin, -1)])
    assert victim.key not in [sp.paper.key for sp in after]
    assert len(after) == len(before) - 1  # the others stay


def test_an_excluded_term_still_removes_a_paper_the_ratings_want():
    ps = corpus()
    today = day_with(ps, TASK_ARITHMETIC)
    rated = [rate(ps[i], 1) for i in TASK_VECTOR_PAPERS]
    wants = Ranker(today, now=NOW).rank(PEFT, rated=rated)
    assert ps[TASK_ARITHMETIC].key in [sp.paper.key for sp in wants]
    strict = Subscription(id="peft", email="p@example.org", keywords=PEFT.keywords, exclude=("task arithmetic",))
    got = Ranker(today, now=NOW).rank(strict, rated=rated)
    assert ps[TASK_ARITHMETIC].key not in [sp.paper.key for sp in got]


def test_an_unsure_day_gets_one_exploration_slot_marked_as_such():
    ps = corpus()
    rated = [rate(ps[i], 1) for i in TASK_VECTOR_PAPERS] + [rate(ps[i], -1) for i in (10, 11, 12)]
    explored = []
    for lo in range(0, 500, 50):  # the corpus cut into days
        ranked = Ranker(ps[lo : lo + 50], now=NOW).rank(PEFT, rated=rated)
        marked = [sp for sp in ranked if sp.via == "explore"]
        assert len(marked) <= 1
        if marked:
            assert ranked[-1] is marked[0] and len(ranked) <= PEFT.max_papers
            assert marked[0].why.startswith("exploring: close to «")
            explored.append(marked[0])
    assert explored, "no day was unsure"


# ---------------------------------------------------------------- the edition, built here or in the helper


def test_the_liked_reason_reaches_the_email_whether_built_here_or_in_the_forked_helper():
    """Large runs build messages in a forked helper that never ran the ratings model: the model's
    marks travel with each planned item, so both paths write the same "like «…»" entry."""
    import asyncio

    import pytest

    from digest.editions import Builder, BuildProcess, build_in_process
    from digest.render import Renderer

    ps = corpus()
    today = day_with(ps, TASK_ARITHMETIC)
    rated = {PEFT.id: [rate(ps[i], 1) for i in TASK_VECTOR_PAPERS]}
    ranker = Ranker(today, now=NOW)
    builder = Builder(ranker, [PEFT], {PEFT.id: set()}, Renderer(), sender="d@example.org",
                      public_url="https://digest.example.org", secret=b"k" * 32, now=NOW, rated_by_sub=rated)
    process = BuildProcess(builder) if BuildProcess.available() else None
    if process is not None:  # forked now, before any ranking: the helper knows nothing of the model
        asyncio.run(process.build([]))
    (planned,) = builder.plan([0])
    item = builder.item(0, NOW.date(), planned)
    title = ps[TASK_ARITHMETIC].title

    def text_of(built) -> str:  # noqa: ANN001
        message = builder.finish(built)
        return message.data.decode("utf-8", "replace")

    here = asyncio.run(build_in_process(builder, [item]))
    assert here[0].status == "ok"
    edition = builder.editions([item])[0]
    entry = next(sp for sp in edition.papers if sp.paper.title == title)
    assert entry.via == "model" and entry.why.startswith("like «")
    if process is None:
        pytest.skip("one CPU (or no fork): the helper process is never used here")
    try:
        helper = asyncio.run(process.build([item], mime=True))
    finally:
        process.close()
    assert helper[0].status == "ok", helper[0].error
    assert "that you rated up" in text_of(helper[0])
    assert text_of(helper[0]).split("Date: ")[0] == text_of(here[0]).split("Date: ")[0]
