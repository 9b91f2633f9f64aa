"""The README's Quick start, run as written: in a copy of the checkout, a fresh venv, `pip install .`
(a wheel built from the tree and installed, not the editable tree), the venv activated, and the
commands it shows; what they print is checked against the output the README shows, and what they
write against what it says they leave. Slow (pip resolves and installs the dependencies)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def quick_start() -> tuple[str, str]:
    """The Quick start's shell block and the output block it shows."""
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    shown = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert commands and shown, "the Quick start has a ```sh block and a ```text block of its output"
    return commands.group(1), shown.group(1)


def test_readme_quick_start_as_written_in_a_fresh_venv(tmp_path: Path) -> None:
    script, shown = quick_start()
    checkout = tmp_path / "checkout"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, checkout / name if checkout.exists() else _mkdir(checkout) / name)
    for name in ("digest", "templates", "config"):
        shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "/.venv/" not in p)
    # each README line echoed with a marker, so the output of each command can be told apart
    lines = [line for line in script.splitlines() if line.strip()]
    body = "exec 2>&1\n" + "\n".join(f"echo '@@@ {line}'\n{line}" for line in lines)  # as a terminal shows it
    done = subprocess.run(["bash", "-e", "-c", body], cwd=checkout, env=env, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # the install step says what it installs
    install = done.stdout.split("@@@ ")[2]
    assert "Successfully installed" in install and "paper-digest-mailer" in install, install[-1500:]
    assert (checkout / ".venv" / "bin" / "digest").exists()
    site = list((checkout / ".venv").glob("lib/python*/site-packages"))[0]
    assert (site / "digest" / "cli.py").exists()  # the installed wheel, not a link to the tree
    assert (site / "digest" / "templates" / "digest.html").exists()

    # what `digest check` and `digest send` print: the README's example, up to dates and Message-IDs
    printed = {}
    for chunk in done.stdout.split("@@@ ")[1:]:
        command, _, output = chunk.partition("\n")
        printed[command] = output
    expected = {}
    for chunk in ("\n" + shown).split("\n$ ")[1:]:
        command, _, output = chunk.partition("\n")
        expected[command] = output
    assert set(expected) == {"digest check", "digest send"}
    assert printed["digest check"].strip() == expected["digest check"].strip()
    got = _shape(printed["digest send"])
    not_due = _not_due_today()  # the README shows a Monday: every reader has an edition
    want = _on_this_day(_shape(expected["digest send"]), not_due)
    assert got == want, (printed["digest send"], expected["digest send"], not_due)

    # what they leave: the database and one message per reader due today in the Maildir
    assert (checkout / "data" / "digest.db").is_file()
    assert len(list((checkout / "data" / "outbox" / "new").iterdir())) == 3 - len(not_due)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _not_due_today() -> list[str]:
    """The example's readers whose `frequency` has no edition on their local date now: a plain
    `digest send` skips them (`skipped-not-due`)."""
    import datetime as dt

    from digest.config import load_subscriptions
    from digest.pipeline import local_date
    from digest.schedule import fires_on

    now = dt.datetime.now(dt.timezone.utc)
    subs = load_subscriptions(ROOT / "config" / "subscriptions", ["hf_daily", "arxiv_cs_cl"]).subscriptions
    return sorted(s.id for s in subs if not fires_on(s, local_date(s, now)))


def _on_this_day(lines: list[str], not_due: list[str]) -> list[str]:
    """The README's `digest send` lines (a Monday) as they read on a day these readers are not due."""
    if not not_due:
        return lines
    out = []
    for line in lines:
        user = line.split(" ", 1)[0]
        if user in not_due:
            line = f"{user} skipped-not-due N papers DATE"
        elif line.startswith("3 subscribers:"):
            n = len(not_due)
            line = f"3 subscribers: {3 - n} sent, {n} skipped ({n} not-due), 0 failed in T"
        out.append(line)
    return out


def _shape(text: str) -> list[str]:
    """A line of output without what changes from run to run: dates, Message-IDs, timings, counts
    of papers and bytes (the example's ranking depends on today's date)."""
    text = re.sub(r"<digest\.[^>]+>", "<ID>", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}", "DATE", text)
    text = re.sub(r"in [\d.]+ s \([\d.]+ messages/s\); mean message [\d,]+ bytes", "in T", text)
    text = re.sub(r" +\d+ papers", " N papers", text)
    return [" ".join(line.split()) for line in text.strip().splitlines()]
