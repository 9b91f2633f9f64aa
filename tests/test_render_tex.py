"""arXiv metadata carries TeX; the email shows it as a reader would see it typeset (issue 13, item 3)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_render_data import BY_ID, NOW, UNSUB, trending_edition  # noqa: E402

from digest.models import Match, Paper, ScoredPaper  # noqa: E402
from digest.render import Renderer  # noqa: E402
from digest.render.textutil import clean  # noqa: E402


def test_tex_quotes_styles_and_escapes_are_typeset() -> None:
    raw = "pick up ``skills,'' via \\emph{reasoning sparks} at 30\\% and \\textbf{R\\&D} with $\\sim0.01$%"
    assert clean(raw) == "pick up \u201cskills,\u201d via reasoning sparks at 30% and R&D with ~0.01%"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Adapt-$\\infty$: Scalable", "Adapt-∞: Scalable"),
        ("a ($\\sim0.01$% of model parameters) for (>95%) of", "a (~0.01% of model parameters) for (>95%) of"),
        ("a $12.1\\times$ speedup", "a 12.1× speedup"),
        ('T\\"ULU 3', "TÜLU 3"),
        ("$\\alpha$-divergence and $k$-NN, $\\geq$ 3", "α-divergence and k-NN, ≥ 3"),
        ("Schr\\\"odinger, \\'{e}t\\'{e}", "Schrödinger, été"),
        ("an \\(O(n)\\) algorithm", "an O(n) algorithm"),
        # plain-text habits TeX would misread: a bare %, &, ~, # and prices stay as written
        ("~10x faster at 95% for R&D #1, $5 and $10", "~10x faster at 95% for R&D #1, $5 and $10"),
        # math with no plain form, and macros the converter does not know, stay as written
        ("bound $\\frac{a+b}{c}$ and $\\sum_{i=1}^n x_i$", "bound $\\frac{a+b}{c}$ and $\\sum_{i=1}^n x_i$"),
        ("$x^{n+1}$ and $\\foo{x}$ in C:\\Users", "$x^{n+1}$ and $\\foo{x}$ in C:\\Users"),
    ],
)
def test_tex_is_shown_as_read(raw: str, shown: str) -> None:
    assert clean(raw) == shown


def test_plain_text_is_untouched() -> None:
    assert clean("Mixture-of-Experts at 12.1x speed") == "Mixture-of-Experts at 12.1x speed"


def test_both_parts_show_typeset_titles_and_snippets_and_highlights_still_work() -> None:
    paper: Paper = BY_ID["2410.10972"].with_(
        title="Adapt-$\\infty$: T\\\"ULU-style Tuning at $12.1\\times$ Speed",
        ai_summary=None,
        abstract="We tune T\\\"ULU models on $\\sim0.01$% of the data.",
    )
    match = Match("tülu", "title", 2, ('T\\"ULU',))
    edition = dataclasses.replace(trending_edition(), papers=(ScoredPaper(paper, 9, (match,), "matches tülu"),))
    out = Renderer().render(edition, unsubscribe_url=UNSUB, now=NOW)
    assert "$" not in out.text and "$" not in out.html and "\\" not in out.text
    assert out.subject.endswith("Adapt-∞: TÜLU-style Tuning at 12.1× Speed")
    assert "Adapt-∞: TÜLU-style Tuning at 12.1× Speed" in out.text
    assert "We tune TÜLU models on ~0.01% of the data." in " ".join(out.text.split())
    assert '>TÜLU</mark>-style Tuning at 12.1× Speed' in out.html
    assert '>TÜLU</mark> models on ~0.01% of the data' in out.html
