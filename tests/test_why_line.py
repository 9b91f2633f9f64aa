"""Issue 13, item 5: the "why" line is short and in the reader's words: their term as they wrote
it, then where it is ("reinforcement learning, in the title"); no counts, quotes or in-house words
("AI keywords", "semantic match")."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_render_data import BY_ID  # noqa: E402

from digest.models import Match  # noqa: E402
from digest.rank.explain import why_line  # noqa: E402

PAPER = BY_ID["2510.07312"]
GOLDEN = Path(__file__).parent / "golden"


def why(*matches: Match) -> str:
    by_term: dict[str, list[Match]] = {}
    for m in matches:
        by_term.setdefault(m.term, []).append(m)
    return why_line(list(by_term), by_term, PAPER)


def test_one_term_one_field_reads_like_the_issue() -> None:
    assert why(Match("reinforcement learning", "title", 1)) == "reinforcement learning, in the title"


def test_terms_are_grouped_by_where_they_were_found_strongest_first() -> None:
    line = why(
        Match("LoRA", "abstract", 7), Match("LoRA", "title", 1),
        Match("fine-tuning", "abstract", 3), Match("vision-language", "summary", 1),
    )  # fmt: skip
    assert line == "LoRA, in the title and abstract; fine-tuning, in the abstract; vision-language, in the AI summary"
    same = why(Match("RL", "title", 1), Match("post-training", "title", 2))
    assert same == "RL and post-training, in the title"


def test_no_in_house_words_counts_or_quotes() -> None:
    line = why(Match("agents", "keywords", 1), Match("tool use", "abstract", 9), Match("Jane Doe", "authors", 1))
    assert line == "agents, in the Hugging Face tags; tool use, in the abstract; Jane Doe, in the author list"
    assert not re.search(r"AI keywords|×|\"|“|matches|semantic", line)


def test_more_terms_than_shown_and_a_semantic_match() -> None:
    line = why(*(Match(t, "abstract", 1) for t in ("a", "b", "c", "d", "e")), Match("robotics", "semantic", 1))
    assert line == "a, b and c, in the abstract (and 2 more terms); close in meaning to robotics"


def test_the_golden_why_lines_are_short() -> None:
    lines = re.findall(r'<p class="why"[^>]*>(.*?)</p>', (GOLDEN / "keyword" / "expected.html").read_text())
    assert len(lines) == 5 and all(len(line) <= 70 for line in lines), lines
    assert "AI keywords" not in (GOLDEN / "keyword" / "expected.html").read_text()


def test_a_term_found_everywhere_names_the_two_first_places_the_email_shows() -> None:
    everywhere = [Match("post-training", f, 1) for f in ("keywords", "summary", "abstract", "title")]
    assert why(*everywhere) == "post-training, in the title and abstract"
    assert why(Match("agents", "keywords", 2)) == "agents, in the Hugging Face tags"  # only there: say so
