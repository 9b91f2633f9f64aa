"""Golden files for three editions, and the structure of the message built from each.

Regenerate after an intended change:  DIGEST_REGEN_GOLDEN=1 pytest tests/test_render_golden.py
(then read the diff of tests/golden/ before committing it).
"""

from __future__ import annotations

import email
import email.policy
import html
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_render_data import CASES, NOW, SENDER, UNSUB  # noqa: E402

from digest.render import Renderer, build_message, message_id_for  # noqa: E402
from digest.tokens import ManageLinks, RatingLinks  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("DIGEST_REGEN_GOLDEN") == "1"
HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Feedback-ID",
    "Auto-Submitted",
    "Content-Type",
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _build(renderer: Renderer, case: str):
    edition = CASES[case]()
    links = RatingLinks("https://digest.example.org", edition.subscription.id, b"golden-secret")
    manage = ManageLinks("https://digest.example.org", b"golden-secret", now=NOW)(edition.subscription.id)
    rendered = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW, rating_links=links, manage_url=manage)
    mid = message_id_for(edition.subscription.id, edition.date, SENDER)
    out = build_message(
        edition, rendered, sender=SENDER, message_id=mid, unsubscribe_url=UNSUB, date=NOW
    )
    return edition, rendered, out


def _scrub(text: str) -> str:
    return re.sub(r"=_digest_[0-9a-f]+", "=_digest_BOUNDARY", text)


def _check(path: Path, actual: str) -> None:
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    if not path.exists():
        pytest.fail(f"{path} is missing: run with DIGEST_REGEN_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path} differs (DIGEST_REGEN_GOLDEN=1 to update)"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(renderer: Renderer, case: str) -> None:
    _, rendered, out = _build(renderer, case)
    head = out.data.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n", "\n")
    _check(GOLDEN / case / "expected.txt", rendered.text)
    _check(GOLDEN / case / "expected.html", rendered.html)
    _check(GOLDEN / case / "expected.eml-headers", _scrub(head) + "\n")
    _check(GOLDEN / case / "subject.txt", rendered.subject + "\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_message_structure(renderer: Renderer, case: str) -> None:
    edition, rendered, out = _build(renderer, case)
    data = out.data
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert data.isascii()  # 7bit clean: no 8BITMIME needed
    assert max(len(line) for line in data.split(b"\r\n")) <= 998

    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert not msg.defects
    for name in HEADERS:
        assert len(msg.get_all(name) or []) == 1, name
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" and not p.defects for p in parts)
    text, body = (p.get_content().replace("\r\n", "\n") for p in parts)
    assert text == rendered.text
    assert html.unescape(body) == html.unescape(rendered.html)

    # List-Unsubscribe: exactly one https URL, the one the body links to.
    assert msg["List-Unsubscribe"] == f"<{UNSUB}>"
    assert re.findall(r"<([^>]*)>", msg["List-Unsubscribe"]) == [UNSUB]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Id"] == "Paper Digest <digest.example.org>"
    assert UNSUB in rendered.text
    assert f'href="{html.escape(UNSUB)}"' in rendered.html

    # Round trip of the (possibly non-ASCII) subject and display name.
    sub = edition.subscription
    assert msg["Subject"] == rendered.subject
    (to,) = msg["To"].addresses
    assert to.addr_spec == sub.email == out.recipient
    assert to.display_name == (sub.name or "")
    (from_,) = msg["From"].addresses
    assert (from_.display_name, from_.addr_spec) == ("Paper Digest", "digest@example.org")
    assert out.sender == "digest@example.org"
    assert msg["Message-ID"] == out.message_id
    assert out.subscriber_id == sub.id and out.edition_date == edition.date


def test_non_ascii_headers_are_encoded(renderer: Renderer) -> None:
    _, rendered, out = _build(renderer, "keyword")
    head = out.data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head  # Zoë Pérez-Ibáñez and the em dash are RFC 2047 words
    msg = email.message_from_bytes(out.data, policy=email.policy.default)
    assert msg["To"].addresses[0].display_name == "Zoë Pérez-Ibáñez"
    assert "—" in msg["Subject"]


def test_keyword_case_content(renderer: Renderer) -> None:
    _, rendered, _ = _build(renderer, "keyword")
    assert rendered.subject.startswith("23 new papers — Low-probability")
    assert len(rendered.subject) <= 110
    # highlights: escaped text, <mark> around exact forms, case-sensitive, at word boundaries
    assert ">Reinforcement Learning</mark> with Verifiable Reward" in rendered.html
    assert ">RL</mark>: A Spanish-to-Wayuunaiki" in rendered.html
    assert ">RLVR</mark>" in rendered.html
    # 3 authors then "et al."; non-ASCII names; affiliations omitted
    assert "José Ángel Muñoz, Zoë Pérez-Ibáñez, Łukasz Wiśniewski et al." in rendered.text
    assert "Haoran Qiu, Xinyi Feng, Jiahao Luo et al." in rendered.text
    # metadata, with the repo linked
    assert '<a href="https://github.com/example-lab/tulu3-recipes"' in rendered.html
    assert "3,412 GitHub stars" in rendered.text
    flat = " ".join(rendered.text.split())
    assert "code on GitHub <https://github.com/CarlanLark/Lp-Reg> · Tencent" in flat
    assert "Tencent" in rendered.text
    # and N more: 10 listed (MORE_SHOWN), the rest counted
    assert "And 18 more" in rendered.html and "and 8 more." in rendered.html
    assert rendered.text.count("https://arxiv.org/abs/2511.") == 10
    assert "Part 10:" in rendered.text and "Part 11:" not in rendered.text
    # footer
    assert (
        "You get this because alice@example.org subscribed to Paper Digest with interests: "
        "reinforcement learning, post-training, RL, daily at 07:30 Europe/Berlin."
    ) in rendered.html
    assert "Unsubscribe (opens a page with one button, no login): " + UNSUB in rendered.text
    # "Edit your interests": a signed /manage/ link in both parts, next to unsubscribe
    [manage] = re.findall(r"Edit your interests \(keywords, time, how often, pause\): (\S+)", rendered.text)
    assert manage.startswith("https://digest.example.org/manage/")
    assert re.search(f'<a href="{re.escape(html.escape(manage))}"[^>]*>Edit your interests</a>', rendered.html)


def test_trending_case_content(renderer: Renderer) -> None:
    _, rendered, _ = _build(renderer, "trending")
    assert rendered.subject.startswith("5 trending papers — h1:")
    assert "<mark" not in rendered.html
    assert "for the trending papers, on weekdays at 06:00 America/New_York." in rendered.html
    assert "Adapt-∞: Scalable Lifelong" in rendered.text  # TeX typeset
    # no AI summary: the abstract's start, cut at a word boundary with an ellipsis
    (snippet,) = re.findall(r"\n\n(   We introduce Prompt Curriculum.*?)\n\n", rendered.text, re.S)
    flat = " ".join(snippet.split())
    assert flat.endswith("…") and len(flat) <= 300 and not flat.endswith(" …")


def test_empty_case_content(renderer: Renderer) -> None:
    _, rendered, _ = _build(renderer, "empty")
    assert rendered.subject == "Nothing new today"
    assert "Nothing new matched your interests today (graph neural networks, molecule generation)" in (
        rendered.text.replace("\n", " ")
    )
    assert "every Monday at 08:15 Asia/Tokyo" in rendered.html
    assert 'class="paper"' not in rendered.html
