"""What a reader checks at 7 am (issue 13): what each paper is (version, first posted), replacements
only on request, the order of the text list, dates that do not wrap."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from test_render_data import BY_ID, NOW, UNSUB, scored, trending_edition  # noqa: E402

from digest.cli import cli  # noqa: E402
from digest.config import load_subscriptions  # noqa: E402
from digest.models import Match, Paper, ScoredPaper  # noqa: E402
from digest.render import Renderer  # noqa: E402
from digest.render.context import what_it_is  # noqa: E402
from digest.render.textutil import wrap  # noqa: E402

UTC = dt.timezone.utc
NB = "\u00a0"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---- item 1: what each paper is ----------------------------------------------------------


def test_a_replacement_says_its_version_and_when_it_was_first_posted() -> None:
    replaced = Paper("arxiv:2302.06600", "Skills", arxiv_id="2302.06600", version=3, announce_type="replace")
    assert what_it_is(replaced, 2025) == ("v3", f"first posted Feb{NB}2023")  # month from the id
    dated = replaced.with_(published=dt.datetime(2023, 2, 13, 18, 0, tzinfo=UTC))
    assert what_it_is(dated, 2025) == ("v3", f"first posted 13{NB}Feb{NB}2023")
    first = dated.with_(version=1, announce_type="new", published=dt.datetime(2025, 10, 8, tzinfo=UTC))
    assert what_it_is(first, 2025) == (f"first posted 8{NB}Oct",)  # this year: no year
    old_style = Paper("arxiv:hep-th/9901001", "Strings", arxiv_id="hep-th/9901001", version=2)
    assert what_it_is(old_style, 2025) == ("v2", f"first posted Jan{NB}1999")
    assert what_it_is(Paper("url:x", "A blog post"), 2025) == ()


def test_the_digest_shows_version_and_first_posted_date_in_both_parts(renderer: Renderer) -> None:
    paper = BY_ID["2410.10972"].with_(version=3, announce_type="replace")
    edition = dataclasses.replace(trending_edition(), papers=(scored(paper, 9, why="trending"),))
    out = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    assert "v3 · first posted 14 Oct 2024" in _flat(out.text)
    assert f"v3 · first posted 14{NB}Oct{NB}2024" in out.html


def test_a_date_never_wraps_across_lines() -> None:
    line = "9 upvotes · project page <https://example.org/adapt-infinity> · first posted" + f" 14{NB}Oct{NB}2024"
    for width in range(40, 100):
        text = wrap(line, "   ", width=width)
        assert "14 Oct 2024" in text and NB not in text, width


def test_replacements_is_a_per_reader_choice_off_by_default(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("email: a@example.org\n")
    (tmp_path / "b.yaml").write_text("email: b@example.org\nreplacements: true\n")
    subs = {s.id: s for s in load_subscriptions(tmp_path).subscriptions}
    assert subs["a"].replacements is False and subs["b"].replacements is True


def test_send_leaves_out_replacements_unless_the_reader_asks(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    runner = CliRunner()

    def keys(user: str) -> str:
        out = project / f"out-{user}"
        result = runner.invoke(cli, ["send", "--dry-run", "--date", "2025-10-09", "--user", "alice", "--out",
                                     str(out), "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return (out / "alice.txt").read_text()

    default = keys("default")
    assert "2302.06600" not in default  # the 2023 paper's v3 ("replace") is not news
    path = project / "config" / "subscriptions" / "alice.yaml"
    path.write_text(path.read_text() + "replacements: true\n")
    chosen = keys("chosen")
    assert "2302.06600" in chosen
    assert "v3 · first posted Feb 2023" in _flat(chosen)


# ---- item 2: the snippet shows what the reason points at ---------------------------------

LONG_ABSTRACT = (
    "Large models are everywhere. They are trained on a lot of text and cost a lot to run. "
    "Many papers study their scaling and their data at great length, with many results. "
    "We show that parameter-efficient fine-tuning of 0.01% of the weights recovers 95% of the gains. "
    "Experiments on nine tasks confirm it. Code is released."
)


def test_the_snippet_is_the_sentence_that_holds_the_match(renderer: Renderer) -> None:
    paper = Paper("arxiv:2302.06600", "Skill Localization", abstract=LONG_ABSTRACT, arxiv_id="2302.06600",
                  ai_summary="A tiny subset of parameters holds the task skills.")
    match = Match("fine-tuning", "abstract", 1, ("fine-tuning",))
    edition = dataclasses.replace(trending_edition(), papers=(ScoredPaper(paper, 9, (match,), "matches fine-tuning"),))
    out = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    flat = _flat(out.text)
    assert "…We show that parameter-efficient fine-tuning of 0.01% of the weights" in flat
    assert "AI summary" not in flat  # the summary does not hold the match: the abstract does
    assert ">fine-tuning</mark> of 0.01% of the weights" in out.html


def test_an_ai_summary_that_holds_the_match_is_shown_and_labelled(renderer: Renderer) -> None:
    paper = Paper("arxiv:2302.06600", "Skill Localization", abstract=LONG_ABSTRACT, arxiv_id="2302.06600",
                  ai_summary="Sparse fine-tuning of a tiny subset of parameters holds the task skills.")
    match = Match("fine-tuning", "summary", 1, ("fine-tuning",))
    edition = dataclasses.replace(trending_edition(), papers=(ScoredPaper(paper, 9, (match,), "matches fine-tuning"),))
    out = renderer.render(edition, unsubscribe_url=UNSUB, now=NOW)
    assert "AI summary: Sparse fine-tuning of a tiny subset" in _flat(out.text)
    assert re.search(r'<span class="label"[^>]*>AI summary:</span> Sparse <mark[^>]*>fine-tuning</mark>', out.html)


def test_every_reason_in_the_example_digest_can_be_checked_by_eye(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the example's keyword digest, each full entry shows a highlighted match in its title or
    snippet (the issue found entries whose reason pointed at text the reader could not see)."""
    monkeypatch.chdir(project)
    out = project / "prev"
    result = CliRunner().invoke(cli, ["send", "--dry-run", "--date", "2025-10-09", "--user", "alice", "--out",
                                      str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    html = (out / "alice.html").read_text()
    entries = html.split('class="paper"')[1:]
    assert entries
    for entry in entries:
        entry = entry.split('class="more"')[0]
        why = re.search(r'class="why"[^>]*>(.*?)</p>', entry, re.S)
        snippet = re.search(r'class="snippet"[^>]*>(.*?)</p>', entry, re.S)
        assert why and snippet, entry[:300]
        if "abstract" in why.group(1) or "summary" in why.group(1):
            assert "<mark" in snippet.group(1), (why.group(1), snippet.group(1))


# ---- item 8: the small defects -------------------------------------------------------------


def _ten_papers_edition():  # type: ignore[no-untyped-def]
    base = trending_edition()
    papers = tuple(
        scored(Paper(f"arxiv:2511.{i:05d}", f"Paper number {i} about things", arxiv_id=f"2511.{i:05d}"), 20 - i,
               why="trending")
        for i in range(1, 12)
    )
    return dataclasses.replace(base, papers=papers)


def test_two_digit_numbers_keep_their_space_in_the_text_part(renderer: Renderer) -> None:
    text = renderer.render(_ten_papers_edition(), unsubscribe_url=UNSUB, now=NOW).text
    assert "\n10. Paper number 10 about things\n" in text
    assert "\n9. Paper number 9 about things\n" in text
    assert "10.Paper" not in text


def test_subject_leads_with_the_count_and_best_title_and_the_preheader_adds_to_it(renderer: Renderer) -> None:
    out = renderer.render(trending_edition(), unsubscribe_url=UNSUB, now=NOW)
    assert out.subject.startswith("5 trending papers — h1: Bootstrapping LLMs")
    assert "Paper Digest" not in out.subject and "Nov" not in out.subject  # From and Date say those
    pre = re.search(r'class="preheader"[^>]*>(.*?)</div>', out.html, re.S).group(1)
    assert pre.startswith("Also: Spectrum Tuning") and "h1: Bootstrapping" not in pre


def test_the_footer_says_what_the_unsubscribe_link_does_and_the_lead_says_the_order(renderer: Renderer) -> None:
    out = renderer.render(trending_edition(), unsubscribe_url=UNSUB, now=NOW)
    for part in (out.text, html.unescape(out.html)):
        flat = _flat(part)
        assert "one click" not in flat
        assert "opens a page with one button" in flat
        assert "Most upvoted and discussed first; a paper's votes count half as much for each week" in flat
