"""Pure parsers on the saved payloads, bad input, the bozo policy and XML attacks."""

from __future__ import annotations

import datetime as dt
import json
import time
import tracemalloc
from pathlib import Path

import pytest

from digest.errors import SourceError
from digest.models import Author
from digest.sources import parse_feed, parse_hf_daily
from digest.sources.feeds import parse_feed_doc, split_creators
from digest.sources.hf import parse_hf_page

DATA = Path(__file__).parent / "data"
HF = (DATA / "hf_daily_papers.json").read_bytes()
RSS = (DATA / "arxiv_rss_cs_CL.xml").read_bytes()
API = (DATA / "arxiv_api_atom.xml").read_bytes()
UTC = dt.UTC


def by_key(papers):  # type: ignore[no-untyped-def]
    return {p.key: p for p in papers}


# --- Hugging Face Daily Papers ---------------------------------------------------------------


def test_hf_all_items_parsed() -> None:
    papers = by_key(parse_hf_daily(HF, source="hf"))
    assert len(papers) == 8
    assert all(p.sources == ("hf",) for p in papers.values())
    assert all(p.url == f"https://arxiv.org/abs/{p.arxiv_id}" for p in papers.values())


def test_hf_non_ascii_authors_and_fields() -> None:
    p = by_key(parse_hf_daily(HF, source="hf"))["arxiv:2508.19281"]
    assert [a.name for a in p.authors] == [
        "José Ángel Muñoz", "Zoë Pérez-Ibáñez", "Łukasz Wiśniewski", "Nguyễn Thị Hương",
    ]  # fmt: skip  (the author name, not the linked user's fullname)
    assert p.arxiv_id == "2508.19281" and p.version is None
    assert p.published == dt.datetime(2025, 8, 26, 21, 14, 9, tzinfo=UTC)
    assert p.listed == dt.datetime(2025, 10, 9, 12, 58, 2, 4000, tzinfo=UTC)
    assert (p.upvotes, p.comments) == (5, 3)
    assert p.ai_summary.startswith("Combining supervised instruction tuning")
    assert p.ai_keywords[:2] == ("low-resource machine translation", "Wayuunaiki")
    assert p.categories == () and p.announce_type is None and not p.withdrawn


def test_hf_tex_title_and_hard_wraps() -> None:
    p = by_key(parse_hf_daily(HF, source="hf"))["arxiv:2410.10972"]
    assert p.title == r"Adapt-$\infty$: Scalable Lifelong Multimodal Instruction Tuning via Dynamic Data Selection"
    assert "\n" not in p.abstract
    assert p.abstract.startswith("Visual instruction datasets from various distributors are released at different times")
    assert p.project_page == "https://example.org/adapt-infinity"
    assert p.published.year == 2024 and p.listed.year == 2025


def test_hf_minimal_item() -> None:
    p = by_key(parse_hf_daily(HF, source="hf"))["arxiv:2510.01135"]
    assert p.title == "Prompt Curriculum Learning for Efficient LLM Post-Training"
    assert len(p.authors) == 7
    assert "12.1times" in p.abstract  # HF's stripped TeX, kept as given
    assert p.ai_summary is None and p.ai_keywords == ()
    assert p.github_repo is None and p.github_stars is None and p.project_page is None
    assert p.organization is None
    assert p.listed == dt.datetime(2025, 10, 9, 9, 12, 0, 418000, tzinfo=UTC)  # top-level publishedAt


def test_hf_organization_github_and_tulu() -> None:
    papers = by_key(parse_hf_daily(HF, source="hf"))
    assert papers["arxiv:2509.25810"].organization == "Apple"
    lp = papers["arxiv:2510.03222"]
    assert (lp.organization, lp.github_repo, lp.github_stars) == ("Tencent", "https://github.com/CarlanLark/Lp-Reg", 0)
    tulu = papers["arxiv:2411.15893"]
    assert tulu.title == "TÜLU 3: Pushing Frontiers in Open Language Model Post-Training"
    assert len(tulu.authors) == 23
    assert r'T\"ULU 3' in tulu.abstract
    assert tulu.listed == dt.datetime(2025, 10, 9, tzinfo=UTC)
    assert (tulu.github_stars, tulu.upvotes, tulu.comments) == (3412, 3, 6)


def _item(pid: str = "2501.00001", **paper: object) -> dict:
    base = {"id": pid, "title": "A  title\n wrapped", "summary": "Line one\nline two.\n\nSecond para.",
            "authors": [{"name": "Ann Lee", "hidden": False}, {"name": "Hidden Person", "hidden": True}],
            "publishedAt": "2025-01-01T10:00:00.000Z", "upvotes": 3.0}  # fmt: skip
    base.update(paper)
    return {"paper": base, "publishedAt": "2025-01-02T00:00:00Z", "numComments": 1}


def test_hf_optional_fields_and_withdrawn() -> None:
    item = _item(withdrawnAt="2025-02-01T00:00:00Z", organization={"name": "acme"})
    (p,) = parse_hf_daily(json.dumps([item]).encode(), source="hf")
    assert p.title == "A title wrapped"
    assert p.abstract == "Line one line two.\n\nSecond para."
    assert [a.name for a in p.authors] == ["Ann Lee", "Hidden Person"]
    assert p.withdrawn and p.organization == "acme" and p.upvotes == 3


def test_hf_top_level_organization_and_non_arxiv_id() -> None:
    item = _item()
    item["organization"] = {"fullname": "Acme Labs", "name": "acme"}
    (p,) = parse_hf_daily(json.dumps([item]).encode(), source="hf")
    assert p.organization == "Acme Labs"
    with pytest.raises(SourceError, match="'acme-2025-001' is not an arXiv id"):  # never a /papers/<anything> link
        parse_hf_daily(json.dumps([_item(pid="acme-2025-001")]).encode(), source="hf")


def test_hf_bad_item_skipped_with_warning() -> None:
    doc = [_item(), {"paper": {"title": "no id"}}, "junk", _item("2501.00002")]
    page = parse_hf_page(json.dumps(doc).encode(), source="hf")
    assert [p.arxiv_id for p in page.papers] == ["2501.00001", "2501.00002"]
    assert page.items == 4
    assert page.warnings == ["item 1 skipped: missing paper.id", "item 2 skipped: not an object (str)"]


def test_hf_empty_list_is_not_an_error() -> None:
    assert parse_hf_daily(b"[]", source="hf") == []
    assert parse_hf_daily(b"\xef\xbb\xbf[]\n", source="hf") == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (HF[:5000], "truncated JSON at line"),
        (b"<!DOCTYPE html><html><body>Rate limited</body></html>", "not JSON: got HTML/XML"),
        (b'{"error": "Invalid date"}', "expected a JSON list of papers, got an object: Invalid date"),
        (b'"hello"', "expected a JSON list of papers, got str"),
        (b"", "empty body"),
        (b"[1, 2", "truncated JSON"),
        (b"[1, }", "invalid JSON: Expecting value at line 1 column 5"),
        (json.dumps([{"paper": {"id": "2501.00001"}}]).encode(), "no usable item in 1 (item 0 skipped: 2501.00001: missing title)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not JSON: 'utf-8' codec can't decode"),
    ],
)
def test_hf_bad_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(SourceError) as exc:
        parse_hf_daily(body, source="hf")
    assert str(exc.value).startswith(reason)
    assert "\n" not in str(exc.value)


def test_hf_content_type_in_reason() -> None:
    with pytest.raises(SourceError, match=r"^not JSON: got text/html$"):
        parse_hf_page(b"<html>oops</html>", source="hf", content_type="text/html; charset=utf-8")


# --- arXiv RSS -------------------------------------------------------------------------------


def test_rss_items() -> None:
    papers = by_key(parse_feed(RSS, source="rss"))
    assert len(papers) == 8
    types = sorted(p.announce_type for p in papers.values())
    assert types == ["cross", "cross", "new", "new", "replace", "replace", "replace", "replace-cross"]
    p = papers["arxiv:2510.06084"]
    assert (p.version, p.announce_type, p.categories) == (1, "new", ("cs.CL", "cs.AI", "cs.LG"))
    assert p.url == "https://arxiv.org/abs/2510.06084"
    assert p.listed == p.published == dt.datetime(2025, 10, 9, 4, 0, tzinfo=UTC)  # midnight ET
    assert p.abstract.startswith("Language model post-training has enhanced")
    assert "Abstract:" not in p.abstract and "Announce Type" not in p.abstract
    assert "from >40 data sources and spanning >90 tasks" in p.abstract  # entities decoded
    assert [a.name for a in p.authors][:2] == ["Eleanor Park", "Rafael Souza"] and len(p.authors) == 8


def test_rss_amuro_and_char_and_tex() -> None:
    papers = by_key(parse_feed(RSS, source="rss"))
    amuro = papers["arxiv:2510.07055"]
    assert amuro.title.startswith("Amuro & Char: Analyzing")
    assert amuro.announce_type == "cross" and amuro.categories[0] == "cs.LG"
    assert r"$12.1\times$" in papers["arxiv:2510.01135"].abstract


def test_rss_replace_with_doi_and_journal() -> None:
    p = by_key(parse_feed(RSS, source="rss"))["arxiv:2302.06600"]
    assert (p.version, p.announce_type) == (3, "replace")
    assert p.doi == "10.5555/tel.2025.0042"
    assert p.journal_ref == "Transactions on Example Linguistics 3 (2025) 101-135"
    assert p.published is None  # a replacement's announce date is not its first publication
    assert p.listed == dt.datetime(2025, 10, 9, 4, 0, tzinfo=UTC)


def test_rss_affiliations_in_dc_creator() -> None:
    p = by_key(parse_feed(RSS, source="rss"))["arxiv:2508.19281"]
    assert p.authors == (
        Author("José Ángel Muñoz", "Universidad de La Guajira"),
        Author("Zoë Pérez-Ibáñez"),
        Author("Łukasz Wiśniewski"),
        Author("Nguyễn Thị Hương", "Đại học Bách khoa Hà Nội, Example AI Lab"),
    )
    assert p.version == 2 and p.announce_type == "replace"
    assert by_key(parse_feed(RSS, source="rss"))["arxiv:2407.13887"].announce_type == "replace-cross"


def test_split_creators() -> None:
    assert split_creators("A B (X (Y), Z), C D,  , E") == (
        Author("A B", "X (Y), Z"), Author("C D"), Author("E"),
    )  # fmt: skip


def test_rss_tex_less_than_survives() -> None:
    feed = RSS.replace(b"We introduce Prompt Curriculum", b"If $a&lt;b$ and $c &gt; d$ &amp; x &lt;i&gt;y&lt;/i&gt; we introduce")
    p = by_key(parse_feed(feed, source="rss"))["arxiv:2510.01135"]
    assert p.abstract.startswith("If $a<b$ and $c > d$ & x y we introduce")


def test_rss_empty_day() -> None:
    head = RSS.split(b"<item>")[0] + b"</channel></rss>"
    assert parse_feed(head, source="rss") == []


def test_rss_missing_abstract_and_version_from_description() -> None:
    item = (b"<item><title>T</title><link>https://arxiv.org/abs/2501.00009</link>"
            b"<description>arXiv:2501.00009v4 Announce Type: replace \nAbstract: </description>"
            b"<arxiv:announce_type>replace</arxiv:announce_type></item>")  # fmt: skip
    feed = RSS.split(b"<item>")[0] + item + b"</channel></rss>"
    (p,) = parse_feed(feed, source="rss")
    assert (p.key, p.version, p.abstract, p.title) == ("arxiv:2501.00009", 4, "", "T")


# --- arXiv Atom API --------------------------------------------------------------------------


def test_api_entries() -> None:
    papers = by_key(parse_feed(API, source="api"))
    assert sorted(papers) == ["arxiv:2302.06600", "arxiv:2410.10972", "arxiv:2411.15893",
                              "arxiv:2510.06084", "arxiv:cs/0703117"]  # fmt: skip
    p = papers["arxiv:2302.06600"]
    assert p.version == 3
    assert p.published == dt.datetime(2023, 2, 13, 18, 21, 7, tzinfo=UTC)
    assert p.listed == dt.datetime(2023, 6, 20, 3, 11, 42, tzinfo=UTC)
    assert p.doi == "10.5555/tel.2025.0042" and p.journal_ref.startswith("Transactions on Example")
    assert p.categories == ("cs.CL", "cs.LG")
    assert "``skills,''" in p.abstract and r"($\sim0.01$% of model parameters)" in p.abstract
    assert "(>95%)" in p.abstract


def test_api_old_style_id_and_affiliations() -> None:
    p = by_key(parse_feed(API, source="api"))["arxiv:cs/0703117"]
    assert (p.arxiv_id, p.version) == ("cs/0703117", 2)
    assert p.url == "https://arxiv.org/abs/cs/0703117"
    assert p.categories == ("cs.LG", "cs.AI", "I.2.6")
    assert p.authors == (
        Author("Theodore Vance", "Example Institute of Technology"),
        Author("Margarethe Köhler", "Universität Beispielstadt; Example Research Lab"),
    )
    assert p.abstract.startswith("Does the dominant approach")
    assert r'na\"{\i}ve' in p.abstract


def test_api_versions_and_tex() -> None:
    papers = by_key(parse_feed(API, source="api"))
    assert papers["arxiv:2510.06084"].version == 1
    assert papers["arxiv:2510.06084"].published == papers["arxiv:2510.06084"].listed
    tulu = papers["arxiv:2411.15893"]
    assert tulu.version == 4 and len(tulu.authors) == 23 and tulu.title.startswith("TÜLU 3")
    assert papers["arxiv:2410.10972"].title.startswith(r"Adapt-$\infty$")


def test_api_error_entry() -> None:
    body = (b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            b"<entry><id>https://arxiv.org/api/errors#incorrect_id_format_for_abc</id><title>Error</title>"
            b"<summary>incorrect id format for abc</summary></entry></feed>")  # fmt: skip
    with pytest.raises(SourceError, match="arXiv API error: incorrect id format for abc"):
        parse_feed(body, source="api")


# --- generic feeds, bozo policy --------------------------------------------------------------


def _rss(items: str, decl: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return f'{decl}<rss version="2.0"><channel><title>t</title><link>https://blog.example</link>{items}</channel></rss>'.encode()


def test_generic_feed_keys_and_html_summary() -> None:
    body = _rss(
        "<item><title>With DOI</title><link>https://j.example/a?utm_source=rss</link>"
        "<description>&lt;p&gt;Hello &amp;amp; &lt;b&gt;bold&lt;/b&gt;&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;</description>"
        "<guid>https://doi.org/10.1000/ABC</guid><pubDate>Tue, 07 Oct 2025 10:00:00 +0200</pubDate></item>"
        "<item><title>Plain</title><link>HTTPS://Blog.Example/post/1/#c</link><author>x@y.z (Ann)</author></item>"
        "<item><title>From arXiv</title><link>https://arxiv.org/abs/2510.06084v2</link></item>"
        "<item><title>No link</title><description>text only</description></item>"
    )
    papers = parse_feed(body, source="blog")
    keys = [p.key for p in papers]
    assert keys[0] == "doi:10.1000/abc" and papers[0].abstract == "Hello & bold"
    assert papers[0].published == dt.datetime(2025, 10, 7, 8, 0, tzinfo=UTC) == papers[0].listed
    assert keys[1] == "url:https://blog.example/post/1"
    assert keys[2] == "arxiv:2510.06084" and papers[2].version == 2 and papers[2].published is None
    assert keys[3].startswith("title:")


def test_generic_feed_same_link_everywhere_keeps_every_item() -> None:
    items = "".join(f"<item><title>Paper {i}</title><link>https://blog.example/</link></item>" for i in range(3))
    items += "<item><title>Paper 0</title><link>https://blog.example</link></item>"  # a true repeat
    papers = parse_feed(_rss(items), source="blog")
    assert len({p.key for p in papers}) == 3


def test_bozo_charset_override_is_used_with_warning() -> None:
    body = _rss("<item><title>Zoë Ł</title><link>https://x.example/1</link></item>").replace(b"\xc3\xab", b"\xeb")
    body = body.replace("Ł".encode(), b"L")
    doc = parse_feed_doc(body, source="blog")
    assert [p.title for p in doc.papers] == ["Zoë L"]
    assert doc.warnings and doc.warnings[0].startswith("charset: document declared as utf-8")


def test_bozo_with_entries_is_used_with_warning() -> None:
    body = _rss("<item><title>Fish & Chips</title><link>https://x.example/1</link></item>"
                "<item><title>Two</title><link>https://x.example/2</link></item>")  # fmt: skip
    doc = parse_feed_doc(body, source="blog")
    assert [p.title for p in doc.papers] == ["Fish & Chips", "Two"]
    assert doc.warnings[0].startswith("feed is not well-formed (") and "lenient parser" in doc.warnings[0]


def test_truncated_feed_keeps_complete_items() -> None:
    doc = parse_feed_doc(RSS[: RSS.index(b"<title>Amuro")], source="rss")
    assert len(doc.papers) >= 3 and doc.warnings


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html><body><p>Service unavailable<br></body></html>", "feed is not well-formed XML: mismatched tag at line"),
        (b"", "empty body"),
        (b'{"items": []}', "not a feed: got JSON"),
        (b"<?xml version='1.0'?><note><to>x</to></note>", "not an RSS or Atom feed"),
        (b"just text", "feed is not well-formed XML"),
    ],
)
def test_bad_feeds(body: bytes, reason: str) -> None:
    with pytest.raises(SourceError) as exc:
        parse_feed(body, source="x")
    assert str(exc.value).startswith(reason)


# --- XML attacks -----------------------------------------------------------------------------

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY lol "lol">
""" + b"".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode() for i in range(1, 10)
) + b"""]>
<rss version="2.0"><channel><title>t</title><item><title>&lol9;</title><link>http://x.example/1</link></item></channel></rss>"""
QUADRATIC = (b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "' + b"A" * 100_000 + b'">]>'
             b'<rss version="2.0"><channel><title>t</title><item><title>x</title><description>'
             + b"&a;" * 10_000 + b"</description><link>http://x.example/1</link></item></channel></rss>")  # fmt: skip
XXE_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>a&xxe;b</title><link>http://x.example/1</link></item></channel></rss>"""
XXE_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE feed SYSTEM "file:///etc/passwd">
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
<entry><id>http://arxiv.org/abs/2501.00001v1</id><title>T</title><summary>S</summary>
<author><name>A</name><arxiv:affiliation>U</arxiv:affiliation></author></entry></feed>"""


@pytest.mark.parametrize("body", [LAUGHS, QUADRATIC, XXE_ENTITY, XXE_ENTITY.decode().encode("utf-16")],
                         ids=["billion-laughs", "quadratic", "xxe", "xxe-utf16"])  # fmt: skip
def test_entity_declarations_refused_fast_and_small(body: bytes) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SourceError, match="declares XML entities"):
            parse_feed(body, source="evil")
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20_000_000


def test_external_dtd_is_not_read() -> None:
    doc = parse_feed_doc(XXE_DTD, source="evil")
    (p,) = doc.papers
    assert (p.key, p.title, p.abstract) == ("arxiv:2501.00001", "T", "S")
    assert p.authors == (Author("A", "U"),)
    assert "root:" not in repr(p)
