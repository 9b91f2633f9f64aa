"""Hostile input: markup and scripts in any field, header injection, arbitrary text."""

from __future__ import annotations

import email
import email.policy
import os
import sys
from email.header import decode_header, make_header
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from test_render_data import DAY, KEYWORD_READER, NOW, SENDER, UNSUB  # noqa: E402

from digest.errors import RenderError  # noqa: E402
from digest.models import Author, Edition, Match, Paper, ScoredPaper  # noqa: E402
from digest.render import Renderer, build_message, message_id_for  # noqa: E402
from digest.render.textutil import clean  # noqa: E402

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body",
    "div", "p", "h1", "h2", "h3", "a", "mark", "ul", "li", "span",
}  # fmt: skip
HEADER_NAMES = {
    "from", "to", "subject", "date", "message-id", "mime-version", "list-unsubscribe",
    "list-unsubscribe-post", "list-id", "feedback-id", "auto-submitted", "x-auto-response-suppress",
    "content-type",
}  # fmt: skip


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Collect()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert(html: str) -> None:
    """No script, no event handler, no non-http(s) link, only the template's own tags."""
    for tag, attrs in _tags(html):
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src", "action", "formaction", "background"):
                assert value and value.startswith(("https://", "http://")), (tag, name, value)
        assert "src" not in attrs


def display_name(data: bytes) -> str:
    """The To display name, decoded exactly.

    The modern parser puts a space between adjacent encoded words in a phrase (RFC 2047 6.2
    says that whitespace is not text); the legacy decode_header joins them correctly.
    """
    raw = email.message_from_bytes(data, policy=email.policy.compat32)["To"]
    if "=?" not in raw:
        return email.message_from_bytes(data, policy=email.policy.default)["To"].addresses[0].display_name
    name, _, _ = str(make_header(decode_header(raw))).rpartition(" <")
    return name


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _edition(paper: Paper, *, why: str = "trending", forms=(), name="Reader", **sub) -> Edition:
    matches = (Match("x", "title", 1, tuple(forms)),) if forms else ()
    subscription = KEYWORD_READER.__class__(
        **{**{f: getattr(KEYWORD_READER, f) for f in KEYWORD_READER.__slots__}, "name": name, **sub}
    )
    sp = ScoredPaper(paper, 1.0, matches, why)
    return Edition(subscription, DAY, (sp,), more=1, more_papers=(sp,))


def _message(renderer: Renderer, edition: Edition):
    rendered = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    mid = message_id_for(edition.subscription.id, edition.date, SENDER)
    out = build_message(
        edition, rendered, sender=SENDER, message_id=mid, unsubscribe_url=UNSUB, date=NOW
    )
    return rendered, out, email.message_from_bytes(out.data, policy=email.policy.default)


XSS = Paper(
    key="arxiv:6666.66666",
    title='<script>alert("t")</script> Attention <img src=x onerror=alert(1)> Is All',
    abstract="<img src=x onerror=alert(2)><svg onload=alert(3)> & <a href='javascript:x'>y</a>",
    authors=(Author('<b onmouseover="alert(4)">Eve</b>'), Author("</p><script>x</script>")),
    url="javascript:alert(5)",
    github_repo="javascript:alert(6)",
    project_page="data:text/html,<script>alert(7)</script>",
    organization='<iframe src="https://evil.example/">',
    upvotes=3,
)


def test_markup_in_every_field_is_text(renderer: Renderer) -> None:
    edition = _edition(
        XSS,
        why='<a href="javascript:alert(8)">why</a>',
        forms=("script", "img", "onerror", "Attention", "<img", "&", "amp"),
        name="<script>n</script>",
    )
    rendered, _, msg = _message(renderer, edition)
    html = rendered.html
    assert_inert(html)
    assert "<script" not in html and "<img" not in html and "<iframe" not in html
    assert "=javascript" not in html and '="javascript' not in html and "data:text" not in html
    assert "&lt;script&gt;" in html  # shown as text
    assert "&lt;b onmouseover=" in html
    # highlighting escapes first: marks only ever wrap escaped text, never entities
    assert "&<mark" not in html and "&amp;<mark" not in html
    assert '<mark style="background-color:#fff0a0;color:inherit;padding:0 1px">Attention</mark>' in html
    # the javascript: URL is dropped: the title is not a link; no repo / project links
    assert 'href="https://' + "github" not in html
    assert "javascript:alert(5)" not in rendered.text and "data:text" not in rendered.text
    body = msg.get_body(("html",)).get_content()
    assert_inert(body)


def test_autoescape_is_on(renderer: Renderer) -> None:
    assert renderer.env.autoescape("digest.html") is True
    assert renderer.env.autoescape("digest.txt") is False
    assert renderer.html_template.environment is renderer.env
    # the compiled (inlined) HTML template escapes too
    rendered = renderer.render(_edition(XSS), unsubscribe_url=UNSUB, now=NOW)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<script>" in rendered.text  # plain text: shown as it is


def test_str_outputs_are_escaped_exactly_as_markupsafe_does(renderer: Renderer) -> None:
    """The compiled HTML template escapes a str output with markupsafe's C escaper and makes no
    Markup object for it (renderer._escaped): the same text, hostile input included."""
    import markupsafe

    from digest.render import renderer as renderer_module

    namespace = renderer.html_template.root_render_func.__globals__
    assert namespace["escape"] is renderer_module._escaped  # the path under test is the one used
    for value in ('<script>"x" & \'y\'</script>', "plain", "", "é ü", markupsafe.Markup("<b>kept</b>"), 3, None):
        assert str(renderer_module._escaped(value)) == str(markupsafe.escape(value))
    edition = _edition(XSS, forms=("Attention",), why='<a href="javascript:alert(8)">why</a>', name="<b>n</b>")
    namespace["escape"] = markupsafe.escape
    try:
        with_markup = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    finally:
        namespace["escape"] = renderer_module._escaped
    assert renderer.render(edition, unsubscribe_url=UNSUB, now=NOW) == with_markup


def test_header_injection_in_title_and_name(renderer: Renderer) -> None:
    paper = Paper(key="k:1", title="x\r\nBcc: evil@example.com\r\n\r\nbody", url="https://e.org/")
    edition = _edition(paper, name="Eve\r\nBcc: evil@example.com\nCc: x@example.com")
    rendered, out, msg = _message(renderer, edition)
    assert msg["Bcc"] is None and msg["Cc"] is None
    assert {k.lower() for k in msg.keys()} == HEADER_NAMES
    assert b"\r\nBcc:" not in out.data and b"\r\nCc:" not in out.data
    (to,) = msg["To"].addresses
    assert to.addr_spec == "alice@example.org" == out.recipient
    assert to.display_name == "Eve Bcc: evil@example.com Cc: x@example.com"
    assert msg["Subject"].endswith("— x Bcc: evil@example.com body")
    assert not msg.defects


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.org\r\nBcc: evil@example.com",
        "alice@example.org\nBcc: evil@example.com",
        "alice@example.org, evil@example.com",
        "Alice <alice@example.org>",
        "alice@exa\x00mple.org",
        "not-an-address",
        "",
    ],
)
def test_bad_recipient_address_is_rejected(renderer: Renderer, address: str) -> None:
    edition = _edition(XSS, email=address)
    rendered = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    with pytest.raises(RenderError):
        build_message(
            edition, rendered, sender=SENDER, message_id="<a@b>", unsubscribe_url=UNSUB, date=NOW
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sender": "Digest <digest@example.org>\r\nBcc: evil@example.com"},
        {"sender": "a@example.org, b@example.org"},
        {"message_id": "<a@b>\r\nBcc: evil@example.com"},
        {"message_id": "no-brackets@example.org"},
        {"unsubscribe_url": "https://e.org/u\r\nBcc: evil@example.com"},
        {"unsubscribe_url": "javascript:alert(1)"},
        {"unsubscribe_url": "https://e.org/a>, <mailto:x@y"},
    ],
)
def test_bad_message_arguments_are_rejected(renderer: Renderer, kwargs: dict) -> None:
    edition = _edition(XSS)
    rendered = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    args = {"sender": SENDER, "message_id": "<a@b>", "unsubscribe_url": UNSUB, "date": NOW}
    with pytest.raises(RenderError):
        build_message(edition, rendered, **{**args, **kwargs})


def test_bad_unsubscribe_url_is_rejected_by_render(renderer: Renderer) -> None:
    with pytest.raises(RenderError):
        renderer.render(_edition(XSS), unsubscribe_url="javascript:alert(1)", now=NOW)


# Arbitrary text (control characters, line separators, RTL marks, astral planes...).
_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), include_characters="\r\n\x0b\x0c\x85\u2028<>&\"'=?"),
    max_size=120,
)


@settings(
    max_examples=int(os.environ.get("DIGEST_RENDER_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(title=_text, name=_text, abstract=_text, author=_text, why=_text)
def test_arbitrary_text_never_adds_a_header(
    renderer: Renderer, title: str, name: str, abstract: str, author: str, why: str
) -> None:
    paper = Paper(
        key="k:h",
        title=title,
        abstract=abstract,
        authors=(Author(author),),
        url="https://example.org/p",
        organization=author,
    )
    words = tuple(w for w in title.split() if w.strip())[:3]
    edition = _edition(paper, why=why, forms=words, name=name)
    rendered, out, msg = _message(renderer, edition)
    assert {k.lower() for k in msg.keys()} == HEADER_NAMES
    assert all(len(msg.get_all(k)) == 1 for k in HEADER_NAMES)
    assert b"\n" not in out.data.replace(b"\r\n", b"")
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    (to,) = msg["To"].addresses
    assert to.addr_spec == "alice@example.org"
    assert display_name(out.data) == clean(name)
    assert msg["Subject"] == rendered.subject
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    assert_inert(rendered.html)
