"""merge() across the three saved payloads, using the fixture README's overlap table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from digest.models import Author, Paper, SourceResult
from digest.sources import merge, parse_feed, parse_hf_daily

DATA = Path(__file__).parent / "data"
UTC = dt.UTC


def results() -> list[SourceResult]:
    return [
        SourceResult("hf", tuple(parse_hf_daily((DATA / "hf_daily_papers.json").read_bytes(), source="hf")),
                     extra={"kind": "hf_daily"}),
        SourceResult("rss", tuple(parse_feed((DATA / "arxiv_rss_cs_CL.xml").read_bytes(), source="rss")),
                     extra={"kind": "feed"}),
        SourceResult("api", tuple(parse_feed((DATA / "arxiv_api_atom.xml").read_bytes(), source="api")),
                     extra={"kind": "feed"}),
    ]  # fmt: skip


def test_overlap_table() -> None:
    merged = {p.key: p for p in merge(results())}
    expected_sources = {
        "arxiv:2510.06084": ("hf", "rss", "api"),
        "arxiv:2510.07312": ("hf", "rss"),
        "arxiv:2510.01135": ("hf", "rss"),
        "arxiv:2508.19281": ("hf", "rss"),
        "arxiv:2410.10972": ("hf", "api"),
        "arxiv:2411.15893": ("hf", "api"),
        "arxiv:2302.06600": ("rss", "api"),
        "arxiv:2510.03222": ("hf",),
        "arxiv:2509.25810": ("hf",),
        "arxiv:2510.07055": ("rss",),
        "arxiv:2410.05983": ("rss",),
        "arxiv:2407.13887": ("rss",),
        "arxiv:cs/0703117": ("api",),
    }
    assert {k: p.sources for k, p in merged.items()} == expected_sources
    assert list(merged) == sorted(merged)  # deterministic order


def test_hf_rss_api_become_one_paper() -> None:
    p = {p.key: p for p in merge(results())}["arxiv:2510.06084"]
    assert (p.upvotes, p.comments, p.github_stars) == (41, 2, 58)  # HF
    assert p.github_repo == "https://github.com/example-lab/spectrum-tuning"
    assert p.ai_keywords[0] == "in-context steerability"
    assert p.categories == ("cs.CL", "cs.AI", "cs.LG")  # arXiv
    assert p.announce_type == "new" and p.version == 1
    assert p.published == dt.datetime(2025, 10, 7, 16, 12, 5, tzinfo=UTC)  # earliest
    assert p.listed == dt.datetime(2025, 10, 9, 4, 5, 58, 771000, tzinfo=UTC)  # latest listing
    assert p.url == "https://arxiv.org/abs/2510.06084"
    assert "\n" not in p.abstract and p.abstract.startswith("Language model post-training")


def test_replace_v3_with_api() -> None:
    p = {p.key: p for p in merge(results())}["arxiv:2302.06600"]
    assert p.version == 3 and p.announce_type == "replace"
    assert p.doi == "10.5555/tel.2025.0042"
    assert p.journal_ref == "Transactions on Example Linguistics 3 (2025) 101-135"
    assert p.published == dt.datetime(2023, 2, 13, 18, 21, 7, tzinfo=UTC)  # API's v1 date
    assert p.upvotes is None


def test_arxiv_abstract_preferred_over_hf_stripped_tex() -> None:
    p = {p.key: p for p in merge(results())}["arxiv:2510.01135"]
    assert r"$12.1\times$" in p.abstract and "12.1times" not in p.abstract
    assert p.upvotes == 12  # still HF's votes


def test_affiliations_and_versions_kept() -> None:
    merged = {p.key: p for p in merge(results())}
    wayuu = merged["arxiv:2508.19281"]
    assert wayuu.authors[0] == Author("José Ángel Muñoz", "Universidad de La Guajira")
    assert wayuu.version == 2 and wayuu.upvotes == 5 and wayuu.ai_summary
    tulu = merged["arxiv:2411.15893"]
    assert tulu.version == 4 and len(tulu.authors) == 23 and tulu.github_stars == 3412
    assert tulu.title == "TÜLU 3: Pushing Frontiers in Open Language Model Post-Training"
    assert merged["arxiv:2410.10972"].version == 2
    assert merged["arxiv:2410.10972"].project_page == "https://example.org/adapt-infinity"


def test_failed_results_ignored_and_merge_is_order_independent_except_sources() -> None:
    rs = results()
    failed = SourceResult("broken", error="HTTP 500 from https://x")
    a = merge([*rs, failed])
    b = merge([failed, rs[2], rs[0], rs[1]])
    assert [p.key for p in a] == [p.key for p in b]
    strip = [p.with_(sources=()) for p in a]
    assert strip == [p.with_(sources=()) for p in b]
    assert {p.key: p.sources for p in b}["arxiv:2510.06084"] == ("api", "hf", "rss")


def test_doi_key_joins_arxiv_record_and_stats_combine() -> None:
    journal = Paper(key="doi:10.5555/tel.2025.0042", title="Task-Specific Skill Localization", url="https://j.example/1",
                    doi="10.5555/tel.2025.0042", sources=("journal",))  # fmt: skip
    twice = [
        Paper(key="arxiv:2501.00001", title="T", upvotes=3, sources=("hf",), withdrawn=False,
              listed=dt.datetime(2025, 1, 1, tzinfo=UTC)),
        Paper(key="arxiv:2501.00001", title="T", upvotes=7, sources=("hf",), withdrawn=True,
              listed=dt.datetime(2025, 1, 3, tzinfo=UTC)),
    ]  # fmt: skip
    merged = {p.key: p for p in merge([*results(), SourceResult("journal", (journal,)), SourceResult("hf2", tuple(twice))])}
    assert "doi:10.5555/tel.2025.0042" not in merged
    assert merged["arxiv:2302.06600"].sources == ("rss", "api", "journal")
    p = merged["arxiv:2501.00001"]
    assert p.upvotes == 7 and p.withdrawn and p.listed.day == 3


def test_merge_empty() -> None:
    assert merge([]) == []
    assert merge([SourceResult("x")]) == []
