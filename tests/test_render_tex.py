"""arXiv metadata carries TeX outside math; the email shows it as a reader would see it typeset."""

from digest.render.textutil import clean


def test_tex_quotes_styles_and_escapes_are_typeset_and_math_is_kept() -> None:
    raw = "pick up ``skills,'' via \\emph{reasoning sparks} at 30\\% and \\textbf{R\\&D} with $\\sim0.01$"
    assert clean(raw) == "pick up \u201cskills,\u201d via reasoning sparks at 30% and R&D with $\\sim0.01$"


def test_plain_text_is_untouched() -> None:
    assert clean("Mixture-of-Experts at 12.1x speed") == "Mixture-of-Experts at 12.1x speed"
