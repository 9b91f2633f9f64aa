"""Issue 11: one bad input costs only itself. Each test reproduces one report (it failed before the
fix); the stress ones run under a time and memory bound."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from digest.errors import SourceError
from digest.models import SourceSpec
from digest.render.textutil import clean
from digest.sources import fetch_all
from digest.sources.feeds import parse_feed_doc, refuse_entity_declarations
from digest.sources.hf import parse_hf_page

DATA = Path(__file__).parent / "data"
HF = (DATA / "hf_daily_papers.json").read_bytes()
API = (DATA / "arxiv_api_atom.xml").read_bytes()
RSS = (DATA / "arxiv_rss_cs_CL.xml").read_bytes()
LEGACY = (DATA / "arxiv_rss1_legacy.xml").read_bytes()
UTC = dt.UTC
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def hf_items() -> list[dict[str, Any]]:
    return json.loads(HF)


def hf_page(items: list[Any]) -> Any:
    return parse_hf_page(json.dumps(items).encode(), source="hf")


# --- 2. one bad number costs its field, never the source --------------------------------------


@pytest.mark.parametrize("field,where,value", [
    ("numComments", "item", "1e400"), ("upvotes", "paper", "Infinity"), ("upvotes", "paper", "NaN"),
    ("githubStars", "paper", "-Infinity"), ("upvotes", "paper", -5), ("upvotes", "paper", "9" * 5000),
    ("numComments", "item", 1e300),
])  # fmt: skip
def test_a_bad_number_drops_that_field_with_a_counted_warning(field: str, where: str, value: object) -> None:
    items = hf_items()
    target = items[0] if where == "item" else items[0]["paper"]
    target[field] = value
    page = hf_page(items)
    assert len(page.papers) == 8
    p = next(p for p in page.papers if p.arxiv_id == items[0]["paper"]["id"])
    attr = {"numComments": "comments", "upvotes": "upvotes", "githubStars": "github_stars"}[field]
    assert getattr(p, attr) is None
    assert any(field in w and "1 item" in w for w in page.warnings), page.warnings


def test_a_huge_json_integer_literal_costs_its_field_only() -> None:
    text = HF.decode().replace('"numComments": 3', '"numComments": ' + "9" * 5000, 1)
    assert text != HF.decode()
    page = parse_hf_page(text.encode(), source="hf")
    assert len(page.papers) == 8 and any("numComments" in w for w in page.warnings)


def test_a_bad_date_costs_its_field_only() -> None:
    items = hf_items()
    items[0]["paper"]["publishedAt"] = "0001-01-01T00:00:00+01:00"  # astimezone() overflows
    items[1]["paper"]["submittedOnDailyAt"] = 12
    page = hf_page(items)
    assert len(page.papers) == 8
    assert any("publishedAt" in w for w in page.warnings)


def test_deeply_nested_json_is_a_one_line_source_error() -> None:
    with pytest.raises(SourceError, match="nested too deeply"):
        parse_hf_page(b"[" * 100_000 + b"]" * 100_000, source="hf")


# --- 3. one stray byte costs its own characters, not the feed's --------------------------------


def test_one_invalid_utf8_byte_does_not_re_decode_the_whole_feed() -> None:
    bad = API.replace(b"<summary>Pre-trained", b"<summary>Pre\xff-trained", 1)
    assert bad != API
    doc = parse_feed_doc(bad, source="api")
    papers = {p.arxiv_id: p for p in doc.papers}
    assert papers["2411.15893"].title.startswith("TÜLU 3")  # not "TÃœLU 3"
    assert all("Ã" not in a.name for p in doc.papers for a in p.authors)
    assert any("invalid UTF-8" in w for w in doc.warnings), doc.warnings


def test_a_feed_declared_latin1_is_still_read_as_latin1() -> None:
    body = ('<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>t</title>'
            '<item><title>Caf\xe9 and Cl\xe1udio</title><link>https://example.org/a</link></item>'
            '</channel></rss>').encode("latin-1")  # fmt: skip
    doc = parse_feed_doc(body, source="x")
    assert doc.papers[0].title == "Café and Cláudio" and not doc.warnings


def test_one_invalid_utf8_byte_in_json_costs_one_character() -> None:
    bad = HF.replace("Muñoz".encode(), b"Mu\xf1oz")  # latin-1 ñ: one invalid byte each
    page = parse_hf_page(bad, source="hf")
    assert len(page.papers) == 8
    names = [a.name for p in page.papers for a in p.authors]
    assert "Mu\ufffdoz" in " ".join(names) and "Zoë Pérez-Ibáñez" in names
    assert any("invalid UTF-8" in w for w in page.warnings)


# --- 4. only real Daily Papers items, links only from arXiv ids ---------------------------------


@pytest.mark.parametrize("body", [
    [{"id": "../../etc/passwd", "title": "x"}, {"id": "abc", "title": "y"}],
    [{"id": 1, "title": "x", "name": "package-lock"}],
    [{"paper": {"id": "../../etc/passwd", "title": "x"}}],
    [{"id": "2501.00001", "title": "looks like an id, but nothing else of a paper"}],
])  # fmt: skip
def test_an_unrelated_json_list_is_not_a_paper_list(body: list[Any]) -> None:
    with pytest.raises(SourceError, match="no usable item"):
        hf_page(body)


def test_a_non_arxiv_id_never_becomes_a_link() -> None:
    items = hf_items()
    items[0]["paper"]["id"] = "../../etc/passwd"
    page = hf_page(items)
    assert len(page.papers) == 7
    assert all(p.url.startswith("https://arxiv.org/abs/") for p in page.papers)
    assert any("not an arXiv id" in w for w in page.warnings)


def test_unsafe_links_in_optional_fields_are_dropped() -> None:
    items = hf_items()
    items[0]["paper"]["githubRepo"] = "javascript:alert(1)"
    items[0]["paper"]["projectPage"] = "file:///etc/passwd"
    p = hf_page(items).papers[0]
    assert p.github_repo is None and p.project_page is None


# --- 5. the listing date is the day the paper was listed ----------------------------------------


def test_listed_is_submitted_on_daily_when_published_at_is_the_arxiv_date() -> None:
    items = hf_items()
    item = items[0]  # 2026 shape: the top-level publishedAt repeats the arXiv date
    item["publishedAt"] = item["paper"]["publishedAt"] = "2025-10-02T17:59:59.000Z"
    item["paper"]["submittedOnDailyAt"] = "2025-10-09T12:58:02.004Z"
    p = next(p for p in hf_page(items).papers if p.arxiv_id == item["paper"]["id"])
    assert p.listed == dt.datetime(2025, 10, 9, 12, 58, 2, 4000, tzinfo=UTC)
    assert p.published == dt.datetime(2025, 10, 2, 17, 59, 59, tzinfo=UTC)


def test_listed_without_submitted_on_daily_and_only_the_arxiv_date_is_unknown() -> None:
    items = hf_items()
    item = items[2]  # no submittedOnDailyAt
    item["publishedAt"] = item["paper"]["publishedAt"]
    p = next(p for p in hf_page(items).papers if p.arxiv_id == item["paper"]["id"])
    assert p.listed is None and p.published is not None


# --- 6. legacy arXiv RSS 1.0 (RDF) ---------------------------------------------------------------


def test_legacy_rdf_titles_authors_versions_and_announce_types() -> None:
    papers = {p.arxiv_id: p for p in parse_feed_doc(LEGACY, source="rdf").papers}
    new, cross, upd = papers["1805.08875"], papers["1805.09166"], papers["1805.06430"]
    assert new.title == "Measurement of Transverse Single Spin Asymmetries."
    assert (new.version, new.announce_type) == (1, "new")
    assert (cross.version, cross.announce_type) == (1, "cross")
    assert (upd.version, upd.announce_type) == (2, "replace-cross")
    assert upd.title == "New Perspective on Hybrid Mesons."
    assert [a.name for a in upd.authors] == ["Shu-Sheng Xu", "Zhu-Fang Cui", "Lei Chang",
                                             "Joannis Papavassiliou", "Craig D. Roberts", "Hong-Shi Zong"]
    assert [(a.name, a.affiliation) for a in new.authors] == [("Christopher Dilks", "STAR Collaboration")]
    assert cross.categories[:1] == ("hep-ex",) and upd.categories[:1] == ("nucl-th",)
    assert new.abstract.startswith("In 2015") and "<p>" not in new.abstract
    assert r"$2.6<\eta<4$" in new.abstract  # TeX kept


def test_html_in_generic_feed_author_names_is_dropped() -> None:
    body = (b'<rss version="2.0"><channel><title>t</title><item><title>A paper</title>'
            b'<link>https://example.org/a</link><author>&lt;b&gt;Ann Lee&lt;/b&gt;</author></item></channel></rss>')
    assert [a.name for a in parse_feed_doc(body, source="x").papers[0].authors] == ["Ann Lee"]


# --- 7. bidi controls never enter -----------------------------------------------------------------


def test_bidi_controls_are_stripped_from_every_source() -> None:
    items = hf_items()
    items[0]["paper"]["title"] = f"Safe \u202eelttit{BIDI} title"
    items[0]["paper"]["summary"] = f"An \u2066abstract\u2069."
    items[0]["paper"]["authors"][0]["name"] = "Ann \u202bLee"
    p = hf_page(items).papers[0]
    assert not set(BIDI) & set(p.title + p.abstract + p.authors[0].name)
    rss = RSS.replace(b"<title>", "<title>\u202e".encode(), 2)
    assert not any(set(BIDI) & set(q.title) for q in parse_feed_doc(rss, source="rss").papers)


def test_render_clean_strips_bidi_controls_from_stored_text() -> None:
    assert clean(f"a\u202eb{BIDI}c") == "abc"
    assert clean("plain") == "plain"


def test_lone_surrogates_and_nul_never_enter() -> None:
    text = HF.decode().replace("Spectrum Tuning", "Spectrum\\ud800 Tu\\u0000ning", 1)
    page = parse_hf_page(text.encode(), source="hf")
    title = next(p.title for p in page.papers if "Spectrum" in p.title)
    title.encode("utf-8")  # would raise on a lone surrogate (and fail the store or the mail)
    assert "\0" not in title


# --- 10. the DOCTYPE guard holds with ">" inside literals -----------------------------------------


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE rss SYSTEM "a>b" [',
    "<!DOCTYPE rss PUBLIC '-//x>y//EN' 'http://e/x>.dtd' [",
    '<!DOCTYPE rss PUBLIC "-//x//EN" "z>" [',
])  # fmt: skip
def test_doctype_guard_with_gt_inside_literals(doctype: str) -> None:
    body = (f'<?xml version="1.0"?>{doctype}<!ENTITY a "{"x" * 100}"><!ENTITY b "&a;&a;&a;&a;">]>'
            '<rss version="2.0"><channel><title>&b;</title></channel></rss>').encode()
    with pytest.raises(SourceError, match="entities"):
        refuse_entity_declarations(body)
    with pytest.raises(SourceError, match="entities"):
        parse_feed_doc(body, source="x")


def test_doctype_guard_sees_utf16_without_bom() -> None:
    body = '<!DOCTYPE rss [<!ENTITY a "x">]><rss version="2.0"><channel/></rss>'.encode("utf-16-le")
    with pytest.raises(SourceError, match="entities"):
        refuse_entity_declarations(body)


def test_a_doctype_without_entities_is_fine() -> None:
    body = (b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape//DTD RSS 0.91//EN" '
            b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>t</title>'
            b'<item><title>A</title><link>https://example.org/a</link></item></channel></rss>')
    assert len(parse_feed_doc(body, source="x").papers) == 1


# --- 11. a server that ignores paging ----------------------------------------------------------


def _serve(handler: Any, **kw: Any) -> tuple[Any, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    async def recording(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.query))
        return await handler(request)

    async def main() -> Any:
        app = web.Application()
        app.router.add_get("/api/daily_papers", recording)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            spec = SourceSpec(name="hf", kind="hf_daily", url=f"http://127.0.0.1:{port}/api/daily_papers",
                              allow_private=True, timeout=5, **kw)  # fmt: skip
            return await fetch_all([spec], day=dt.date(2025, 10, 9))
        finally:
            await runner.cleanup()

    return asyncio.run(main()), seen


def test_a_server_ignoring_p_and_limit_is_fetched_once_per_day() -> None:
    items = hf_items() * 40  # 320 items: more than limit, the same body for every p and date

    async def static(request: web.Request) -> web.Response:
        return web.json_response(items)

    tracemalloc.start()
    start = time.monotonic()
    (result,), seen = _serve(static, page_size=100, max_pages=30, lookback_days=3)
    elapsed = time.monotonic() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.ok and len(result.papers) == 8
    assert len(seen) <= 3, seen  # one request per day at most, never 30 per day
    assert elapsed < 5 and peak < 50_000_000
    assert any("ignores" in w for w in result.extra["warnings"]), result.extra["warnings"]


def test_a_page_that_repeats_stops_paging() -> None:
    items = hf_items()

    async def repeats(request: web.Request) -> web.Response:  # honours limit, ignores p
        return web.json_response(items[: int(request.query["limit"])])

    (result,), seen = _serve(repeats, page_size=4, max_pages=30, lookback_days=1)
    assert result.ok and len(result.papers) == 4
    assert [q["p"] for q in seen] == ["0", "1"]
    assert any("repeat" in w for w in result.extra["warnings"]), result.extra["warnings"]
