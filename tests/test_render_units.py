"""Units of the render stage: text helpers, header folding, ids, CSS inlined once, MIME details."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import html as html_lib
import re
import sys
from email.header import decode_header, make_header
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from test_render_data import CASES, DAY, NOW, SENDER, UNSUB, keyword_edition  # noqa: E402

import digest  # noqa: E402
from digest.errors import RenderError  # noqa: E402
from digest.models import Edition, Match, Paper, ScoredPaper  # noqa: E402
from digest.render import Renderer, build_message, default_templates_dir, message_id_for  # noqa: E402
from digest.render.headers import fold_mailbox, fold_subject  # noqa: E402
from digest.render.textutil import (  # noqa: E402
    clean,
    github_url,
    highlight_forms,
    safe_url,
    short_date,
    shorten,
    wrap,
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


# ---- text helpers ------------------------------------------------------------------------


def test_clean_collapses_whitespace_and_controls() -> None:
    assert clean(" a\r\nb\t\x00c\u2028d\x85e  f ") == "a b c d e f"
    assert clean(None) == "" and clean("") == ""
    assert clean("Adapt-$\\infty$") == "Adapt-∞"  # TeX typeset (test_render_tex.py)


def test_shorten_cuts_at_a_word_boundary() -> None:
    assert shorten("short", 10) == "short"
    out = shorten("the quick brown fox jumps over the lazy dog", 20)
    assert out == "the quick brown fox…" and len(out) <= 20
    assert shorten("x" * 50, 10) == "x" * 9 + "…"


def test_safe_url_only_allows_http_and_https() -> None:
    assert safe_url("https://arxiv.org/abs/2510.03222") == "https://arxiv.org/abs/2510.03222"
    assert safe_url(" http://e.org/a ") == "http://e.org/a"
    for bad in ("javascript:alert(1)", "JaVaScRiPt:x", "data:text/html,x", "//e.org", "e.org",
                "https://e.org/a b", "https://e.org/\r\nx", "ftp://e.org", "https://", None, 3):  # fmt: skip
        assert safe_url(bad) is None, bad


def test_github_url() -> None:
    assert github_url("https://github.com/a/b") == ("https://github.com/a/b", "a/b")
    assert github_url("a/b") == ("https://github.com/a/b", "a/b")
    assert github_url("javascript:alert(1)") is None


def test_highlight_exact_forms_at_word_boundaries_case_sensitive() -> None:
    out = str(highlight_forms("RL, RLHF, URL, rl, reinforcement learning & Mixture-of-Experts!",
                              ["RL", "reinforcement learning", "Mixture-of-Experts"]))
    assert out.count("<mark") == 3
    assert ">RL</mark>, RLHF, URL, rl, " in out
    assert ">reinforcement learning</mark> &amp; " in out
    assert ">Mixture-of-Experts</mark>!" in out
    # longest form first: the long phrase wins over its prefix
    assert str(highlight_forms("a mixture of experts", ["mixture", "mixture of experts"])).count("<mark") == 1
    # escape first: a form with markup characters; text that spells an entity stays text
    mark = '<mark style="background-color:#fff0a0;color:inherit;padding:0 1px">'
    assert str(highlight_forms("x <b> &amp; amp", ["<b>", "amp"])) == (
        f"x {mark}&lt;b&gt;</mark> &amp;{mark}amp</mark>; {mark}amp</mark>"
    )
    assert str(highlight_forms("<i>", ["", "  "])) == "&lt;i&gt;"  # no usable form: escaped only


def test_wrap() -> None:
    text = "word " * 30 + "https://example.org/" + "x" * 90
    out = wrap(text.strip(), "   ", "1. ", width=40)
    lines = out.split("\n")
    assert lines[0].startswith("1. word") and all(x.startswith("   ") for x in lines[1:])
    assert all(len(x) <= 40 for x in lines[:-1]) and lines[-1].endswith("x" * 90)
    assert wrap("", "   ") == ""


def test_short_date_is_english_whatever_the_locale() -> None:
    assert short_date(dt.date(2026, 11, 21)) == "Sat 21 Nov"


# ---- headers -----------------------------------------------------------------------------

_line = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=200).map(clean)


@settings(max_examples=300, deadline=None)
@given(_line)
def test_fold_subject_round_trips(subject: str) -> None:
    value = fold_subject(subject)
    raw = f"Subject: {value}\r\n\r\n".encode("ascii")
    assert email.message_from_bytes(raw, policy=email.policy.default)["Subject"] == subject
    for line in f"Subject: {value}".split("\r\n"):
        assert len(line) <= 78 or " " not in line.strip()  # only one over-long ASCII word


@settings(max_examples=300, deadline=None)
@given(_line)
def test_fold_mailbox_round_trips(name: str) -> None:
    value = fold_mailbox("To", name, "a@example.org")
    raw = f"To: {value}\r\n\r\n".encode("ascii")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    (addr,) = msg["To"].addresses
    assert addr.addr_spec == "a@example.org"
    if "=?" in value:  # the modern parser spaces adjacent encoded words: decode the old way
        decoded, _, _ = str(make_header(decode_header(value))).rpartition(" <")
        assert decoded == name
    else:
        assert addr.display_name == name
    assert all(len(line) <= 78 for line in f"To: {value}".split("\r\n"))


# ---- message ids -------------------------------------------------------------------------


def test_message_id_is_deterministic() -> None:
    mid = message_id_for("alice", DAY, SENDER)
    # a fixed value: the same in every process and on every machine
    assert mid == "<digest.2026-11-21.04a9595d4d4bcd21@example.org>"
    assert message_id_for("alice", DAY, "digest@EXAMPLE.org") == mid
    assert message_id_for("bob", DAY, SENDER) != mid
    assert message_id_for("alice", DAY + dt.timedelta(days=1), SENDER) != mid
    with pytest.raises(RenderError):
        message_id_for("alice", DAY, "no address here")


# ---- the renderer ------------------------------------------------------------------------


class _Canon(HTMLParser):
    """A serialisation-independent view of an HTML document (entities decoded, spaces collapsed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple] = []

    def handle_starttag(self, tag, attrs):
        self.events.append(("start", tag, tuple(sorted(attrs))))

    def handle_endtag(self, tag):
        self.events.append(("end", tag))

    def handle_data(self, data):
        data = " ".join(data.split())
        if data:
            self.events.append(("data", data))


def _canon(html: str) -> list[tuple]:
    parser = _Canon()
    parser.feed(html)
    parser.close()
    return parser.events


@pytest.mark.parametrize("case", sorted(CASES))
def test_css_inlined_once_equals_inlining_each_message(renderer: Renderer, case: str) -> None:
    assert not renderer.inline_per_message
    edition = CASES[case]()
    once = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW).html
    per_message = renderer.inline(renderer.render_uninlined(edition, unsubscribe_url=UNSUB, now=NOW))
    assert _canon(once) == _canon(per_message)
    assert 'style="' in once and "class=\"card\"" in once
    assert "{{" not in once and "{%" not in once


def test_style_block_keeps_only_media_queries(renderer: Renderer) -> None:
    html = renderer.render(keyword_edition(), unsubscribe_url=UNSUB, now=NOW).html
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    # only @media blocks are left (their rules cannot be inlined): nothing outside them
    outside, depth = [], 0
    for ch in style:
        depth += ch == "{"
        if depth == 0 and ch != "}":
            outside.append(ch)
        depth -= ch == "}"
    assert re.sub(r"@media[^{]*", "", "".join(outside)).strip() == ""
    assert style.strip().startswith("@media")
    assert "max-width:640px" in html and "overflow-wrap:anywhere" in html
    assert "<img" not in html and "<script" not in html


def test_fallback_inlines_each_message_when_tags_do_not_survive(tmp_path: Path) -> None:
    src = default_templates_dir()
    (tmp_path / "digest.txt").write_text((src / "digest.txt").read_text())
    (tmp_path / "digest.html").write_text(
        "<html><head><style>p { color: red; }</style></head><body>"
        "{% if papers|length > 0 %}<p>{{ papers|length }} &amp; more</p>{% endif %}"
        "<p>{{ reason }}</p></body></html>"
    )
    r = Renderer(templates_dir=tmp_path)
    assert r.inline_per_message  # ">" inside {% if %} was escaped by the HTML serialiser
    html = r.render(keyword_edition(), unsubscribe_url=UNSUB, now=NOW).html
    assert '<p style="color:red">5 &amp; more</p>' in html


def test_templates_dir_default_and_missing(tmp_path: Path) -> None:
    d = default_templates_dir()
    assert (d / "digest.html").is_file() and (d / "digest.txt").is_file()
    assert d in (Path(digest.__file__).parent / "templates", Path(digest.__file__).parent.parent / "templates")
    with pytest.raises(RenderError):
        Renderer(templates_dir=tmp_path)


def _with_papers(n: int, title: str = "A Title") -> Edition:
    base = keyword_edition()
    papers = tuple(
        ScoredPaper(Paper(key=f"k:{i}", title=title, url="https://e.org/"), 1.0) for i in range(n)
    )
    return dataclasses.replace(base, papers=papers, more=0, more_papers=())


def test_subject_forms(renderer: Renderer) -> None:
    one = renderer.render(_with_papers(1), unsubscribe_url=UNSUB, now=NOW).subject
    assert one == "1 new paper — A Title"  # the count and the best title lead (issue 13)
    long = renderer.render(_with_papers(2, "Word " * 60), unsubscribe_url=UNSUB, now=NOW).subject
    assert len(long) <= 110 and long.endswith("Word…")
    assert renderer.render(_with_papers(0), unsubscribe_url=UNSUB, now=NOW).subject == "Nothing new today"


def test_highlights_stay_out_of_the_plain_text(renderer: Renderer) -> None:
    rendered = renderer.render(keyword_edition(), unsubscribe_url=UNSUB, now=NOW)
    assert "<mark" in rendered.html and "<mark" not in rendered.text and "*" not in rendered.text


# ---- MIME details ------------------------------------------------------------------------


def _message(renderer: Renderer, edition: Edition, **kw):
    rendered = renderer.render(edition, unsubscribe_url=kw.get("unsubscribe_url", UNSUB), now=NOW)
    args = {"sender": SENDER, "message_id": "<m.1@example.org>", "unsubscribe_url": UNSUB, "date": NOW}
    return rendered, build_message(edition, rendered, **{**args, **kw})


def test_parts_go_7bit_or_quoted_printable(renderer: Renderer) -> None:
    rendered, out = _message(renderer, keyword_edition())
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    text, html = msg.iter_parts()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"  # non-ASCII names
    assert html["Content-Transfer-Encoding"] == "7bit"  # é as &#233;
    assert "&#233;" in html.get_content()
    # a very long line (a summary full of highlights) makes the HTML quoted-printable
    edition = keyword_edition()
    sp = edition.papers[0]
    summary = " ".join(["RLVR keeps tokens"] * 120)
    papers = (dataclasses.replace(sp, paper=sp.paper.with_(ai_summary=summary)),)
    rendered, out = _message(renderer, dataclasses.replace(edition, papers=papers))
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    html = msg.get_body(("html",))
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert html_lib.unescape(html.get_content()).replace("\r\n", "\n") == html_lib.unescape(rendered.html)
    body = out.data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 78  # QP lines: 76 + "="


def test_long_unsubscribe_url_is_not_encoded(renderer: Renderer) -> None:
    url = "https://digest.example.org/unsubscribe/" + "a" * 120 + "?t=" + "b" * 40
    _, out = _message(renderer, keyword_edition(), unsubscribe_url=url)
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    assert msg["List-Unsubscribe"] == f"<{url}>"
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in out.data


def test_same_edition_same_bytes_and_naive_date_is_utc(renderer: Renderer) -> None:
    _, a = _message(renderer, keyword_edition())
    _, b = _message(renderer, keyword_edition())
    assert a.data == b.data
    _, c = _message(renderer, keyword_edition(), date=NOW.replace(tzinfo=None))
    assert b"Date: Sat, 21 Nov 2026 06:30:00 +0000\r\n" in c.data


def test_match_forms_with_no_occurrence_are_harmless(renderer: Renderer) -> None:
    edition = keyword_edition()
    sp = ScoredPaper(Paper(key="k", title="Plain", url="https://e.org/"), 1.0, (Match("zz", "title", 1, ("zz",)),))
    rendered = renderer.render(dataclasses.replace(edition, papers=(sp,)), unsubscribe_url=UNSUB, now=NOW)
    assert "<mark" not in rendered.html.split("And 18 more")[0]


def test_more_count_without_the_papers(renderer: Renderer) -> None:
    edition = dataclasses.replace(keyword_edition(), more=4, more_papers=())
    rendered = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    assert "And 4 more" in rendered.html and "4 more papers also matched today." in rendered.html
    assert "4 more papers also matched today." in rendered.text
    assert rendered.subject.startswith("9 new papers")
