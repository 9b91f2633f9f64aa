"""Property tests for the rank stage (hypothesis)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.models import Keyword, Paper, Subscription
from digest.rank import Ranker, clean_text, compile_term, find_runs, tokenize

NOW = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
WORDS = [
    "mixture", "mixtures", "of", "experts", "expert", "MoE", "MoEs", "moe", "fine", "tuning", "tuned",
    "finetuning", "fine-tuning", "LoRA", "low", "rank", "low-rank", "continual", "learning", "learned",
    "a", "the", "model", "models", "agent", "agents", "RL", "grokking", "in", "context", "in-context",
]
SEPS = [" ", " ", " ", "-", ", ", ". ", " - ", " (", ") "]
TERMS = [
    "mixture of experts", "MoE", "fine-tuning", "finetuning", "fine tuning", "LoRA", "low-rank",
    "continual learning", "agent", "RL", "grokking", "in-context learning", "model", "expert",
    "learning", "a model", "tuning",
]

texts = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPS)), min_size=0, max_size=25).map(
    lambda parts: "".join(w + s for w, s in parts).strip()
)
terms = st.sampled_from(TERMS)
weights = st.sampled_from([0.5, 1.0, 2.0])


@st.composite
def papers(draw, min_size=1, max_size=8):
    n = draw(st.integers(min_size, max_size))
    out = []
    for i in range(n):
        out.append(
            Paper(
                key=f"arxiv:2501.{i:05d}",
                title=draw(texts),
                abstract=draw(texts),
                ai_summary=draw(st.one_of(st.none(), texts)),
                upvotes=draw(st.one_of(st.none(), st.integers(0, 200))),
                comments=draw(st.one_of(st.none(), st.integers(0, 20))),
                published=NOW - dt.timedelta(hours=draw(st.integers(0, 400))),
            )
        )
    return out


def sub(kws, exclude=()):
    return Subscription(id="r", email="r@example.org", keywords=tuple(kws), exclude=tuple(exclude))


keywords = st.lists(st.builds(Keyword, terms, weights), min_size=1, max_size=4)
PROPS = settings(max_examples=40, deadline=None)


@PROPS
@given(papers(), keywords, st.builds(Keyword, terms, weights))
def test_adding_a_keyword_never_lowers_a_score(ps, kws, extra):
    r = Ranker(ps, now=NOW)
    before = {s.paper.key: s.score for s in r.rank(sub(kws))}
    after = {s.paper.key: s.score for s in r.rank(sub(kws + [extra]))}
    for key, score in before.items():
        assert key in after  # still included
        assert after[key] >= score - 1e-9
    assert all(a >= b - 1e-9 for a, b in zip(r.relevance(sub(kws + [extra])), r.relevance(sub(kws))))


@PROPS
@given(papers(), keywords, terms)
def test_an_excluded_term_always_removes_the_paper(ps, kws, excluded):
    r = Ranker(ps, now=NOW)
    term = compile_term(excluded)
    for s in (sub(kws, [excluded]), sub([], [excluded])):
        for scored in r.rank(s):
            p = scored.paper
            for text in (p.title, p.abstract, p.ai_summary or ""):
                assert not find_runs(tokenize(clean_text(text)[0]), term)


@PROPS
@given(papers(), st.one_of(keywords, st.just([])))
def test_result_is_a_stable_sorted_order(ps, kws):
    r = Ranker(ps, now=NOW)
    a, b = r.rank(sub(kws)), Ranker(ps, now=NOW).rank(sub(kws))
    assert a == b
    keys = [s.paper.key for s in a]
    assert len(keys) == len(set(keys))
    if kws:
        assert all(x.score >= y.score - 1e-12 for x, y in zip(a, a[1:]))


@PROPS
@given(papers(min_size=2), st.one_of(keywords, st.just([])), st.randoms(use_true_random=False))
def test_scores_do_not_depend_on_paper_order(ps, kws, rnd):
    shuffled = list(ps)
    rnd.shuffle(shuffled)
    a = Ranker(ps, now=NOW).rank(sub(kws))
    b = Ranker(shuffled, now=NOW).rank(sub(kws))
    assert [(s.paper.key, s.score, s.matches, s.why) for s in a] == [(s.paper.key, s.score, s.matches, s.why) for s in b]


@settings(max_examples=100, deadline=None)
@given(texts, terms)
def test_index_finds_exactly_what_the_scanner_finds(text, term):
    r = Ranker([Paper(key="arxiv:2501.00001", title=text)], now=NOW)
    t = compile_term(term)
    expected = find_runs(tokenize(clean_text(text)[0]), t)
    starts, lengths = r.index.runs(t)
    assert sorted(zip(starts.tolist(), lengths.tolist())) == sorted(expected)
    got = r.paper_matches(term, 0)
    assert sum(m.count for m in got) == len(expected)
    for m in got:
        assert all(f in text for f in m.forms)
