"""Issue 15: the first hour of a new operator. What the README promises, as an operator meets it:
the command table, the dry-run after a send, the words where there used to be silence, the JSON
shape, every problem of a file in one pass, and a CLI that does not import the heavy stack."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import cli
from tests.conftest import ROOT

DAY = "2025-10-09"
KEYS = ["user", "status", "papers", "message_id", "date", "error"]


def digest(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def here(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    for name in ("DIGEST_CONFIG", "DIGEST_DATABASE_URL", "DIGEST_SOURCES"):
        monkeypatch.delenv(name, raising=False)
    return project


def preview_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def test_readme_command_table_matches_digest_help() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].strip().split("\n\n", 1)[0]
    documented = set(re.findall(r"^\| `digest ([a-z]+)", table, re.MULTILINE))
    assert documented == set(cli.commands), "README's command table and `digest --help` differ"
    help_text = digest("--help").output
    for name in cli.commands:
        assert re.search(rf"^  {name}\b", help_text, re.MULTILINE)


def test_dry_run_after_a_send_previews_todays_edition_marked_already_sent(here: Path) -> None:
    sent = digest("send", "--date", DAY, "--json")
    assert sent.exit_code == 0, sent.output
    ids = {r["user"]: r["message_id"] for r in json.loads(sent.stdout)}
    db = here / "data" / "digest.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    out = here / "outbox-preview"
    (out).mkdir()
    (out / "notes.txt").write_text("mine")  # not a preview: never touched
    dry = digest("send", "--dry-run", "--date", DAY, "--json")
    assert dry.exit_code == 0, dry.output
    rows = json.loads(dry.stdout)
    assert {r["user"]: r["status"] for r in rows} == {u: "already-sent" for u in ids}
    assert {r["user"]: r["message_id"] for r in rows} == ids
    assert all(r["papers"] > 0 for r in rows)
    assert preview_files(out) == sorted([f"{u}{s}" for u in ids for s in (".eml", ".html", ".txt")] + ["notes.txt"])
    for user, message_id in ids.items():  # the preview is that edition: same Message-ID
        assert f"Message-ID: {message_id}" in (out / f"{user}.eml").read_text()

    # the database is as it was, and nothing is left beside it
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in db.parent.iterdir() if p.name.startswith("digest.db")) == ["digest.db"]

    # a second dry-run for one reader only: the others' previews of the first one do not stay
    again = digest("send", "--dry-run", "--date", DAY, "--user", "alice")
    assert again.exit_code == 0, again.output
    assert preview_files(out) == ["alice.eml", "alice.html", "alice.txt", "notes.txt"]
    assert sorted(p.name for p in db.parent.iterdir() if p.name.startswith("digest.db")) == ["digest.db"]


def test_a_dry_run_leaves_no_wal_beside_a_database_it_opened(here: Path) -> None:
    assert digest("send", "--date", DAY).exit_code == 0
    data = here / "data"
    for args in (["send", "--dry-run", "--date", DAY], ["check"]):
        result = digest(*args)
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in data.iterdir() if p.name.startswith("digest.db")) == ["digest.db"], args


def test_send_json_rows_have_the_same_keys_for_every_status(here: Path) -> None:
    (here / "config" / "subscriptions" / "dora.yaml").write_text("email: not-an-address\n")
    (here / "config" / "subscriptions" / "eve.yaml").write_text("email: eve@example.org\npaused: true\n")
    result = digest("send", "--date", DAY, "--json")
    assert result.exit_code == 1  # a broken file counts
    rows = {r["user"]: r for r in json.loads(result.stdout)}
    assert {u: r["status"] for u, r in rows.items()} == {
        "alice": "sent", "bob": "sent", "chen": "sent", "dora": "skipped-invalid", "eve": "skipped-paused"}
    for row in rows.values():
        assert list(row) == KEYS
        assert row["date"] == DAY
    assert rows["dora"]["error"] and rows["alice"]["error"] is None and rows["eve"]["message_id"] is None
    readme = (ROOT / "README.md").read_text()
    for key in KEYS:  # every key is documented
        assert f"`{key}` (" in readme, key


def test_rank_after_a_send_says_there_is_nothing_new(here: Path) -> None:
    assert digest("send").exit_code == 0
    result = digest("rank", "--user", "alice")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "alice: nothing new since the last edition" in result.stderr


def test_resubscribe_of_a_reader_who_does_not_exist_says_so(here: Path) -> None:
    result = digest("resubscribe", "nosuch")
    assert result.exit_code == 2
    assert "no such reader" in result.stderr
    assert not (here / "data").exists()  # and no database made for it
    assert digest("resubscribe", "alice").stdout == "alice: was not unsubscribed or suspended\n"


@pytest.mark.parametrize("command", [["send"], ["check"], ["rank", "--user", "alice"], ["resubscribe", "alice"], ["fetch"]])
def test_run_from_another_directory_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DIGEST_CONFIG", "DIGEST_SOURCES"):
        monkeypatch.delenv(name, raising=False)
    result = digest(*command)
    assert result.exit_code == 2
    assert f"no config/digest.yaml here (looked at {tmp_path / 'config' / 'digest.yaml'}; use --config" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_check_reports_an_unknown_source_with_the_files_other_errors(here: Path) -> None:
    (here / "config" / "subscriptions" / "bob.yaml").write_text(
        "email: bob@example.org\ntimezone: Mars/Olympus\nsources: [hf_daily, nosuch]\nmax_papers: 0\n"
    )
    result = digest("check")
    assert result.exit_code == 2
    lines = [line for line in result.stdout.splitlines() if "bob.yaml" in line]
    assert [line.split(": ", 2)[1] for line in lines] == ["timezone", "sources.1", "max_papers"], lines
    assert "unknown source 'nosuch'" in lines[1]


def test_the_cli_imports_only_what_a_command_needs() -> None:
    """`digest --help` and `digest check` answer at once (bench/cli_start.py has the times): the
    heavy stack is imported inside the commands that use it."""
    heavy = ["numpy", "scipy", "httpx", "aiohttp", "feedparser", "jinja2", "aiosmtplib", "apscheduler",
             "prometheus_client", "css_inline", "rich", "tenacity", "digest.pipeline", "digest.rank", "digest.render"]  # fmt: skip
    probe = "import sys, digest.cli, digest.cli_inspect, digest.config, digest.store.sqlite; print(sorted(sys.modules))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe.replace("print(sorted(sys.modules))",
                    "import json; print(json.dumps(sorted(sys.modules)))")], capture_output=True, text=True,
                    check=True, cwd=ROOT).stdout))  # fmt: skip
    assert [m for m in heavy if m in loaded] == []
