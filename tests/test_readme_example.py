"""Issue 13: the README shows one real digest, the example's alice, text and HTML screenshot. The text
it shows is what `digest send --dry-run --user alice --date 2025-10-09` renders now (up to the
signed tokens in links, which depend on the key), and the screenshot is there and small."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import cli
from tests.conftest import ROOT

COMMAND = ["send", "--dry-run", "--user", "alice", "--date", "2025-10-09", "--out", "preview"]


def _tokens_out(text: str) -> str:
    return re.sub(r"/(rate|unsubscribe|manage)/[A-Za-z0-9_-]+", r"/\1/TOKEN", text)


def test_the_readme_shows_alices_digest_as_the_example_renders_it(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## What a reader gets", 1)[1].split("\n## ", 1)[0]
    assert "digest send --dry-run --user alice --date 2025-10-09" in section
    (shown,) = re.findall(r"```text\n(.*?)\n```", section, re.S)

    monkeypatch.chdir(project)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, COMMAND, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rendered = (project / "preview" / "alice.txt").read_text().rstrip("\n")
    assert _tokens_out(shown) == _tokens_out(rendered)


def test_the_screenshot_is_in_the_readme_and_small() -> None:
    png = ROOT / "docs" / "digest.png"
    assert "](docs/digest.png)" in (ROOT / "README.md").read_text()
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (800, 1800) and len(data) < 300_000
