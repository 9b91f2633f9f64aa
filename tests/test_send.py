"""`digest send` end to end: saved payloads → real SQLite → real SMTP server on loopback."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from digest.cli import cli
from tests.conftest import DATA
from tests.smtpd import SmtpServer

DAY = "2025-10-09"


def configure(project: Path, smtpd: SmtpServer | None = None, **extra: object) -> Path:
    settings = yaml.safe_load((project / "config" / "digest.yaml").read_text())
    if smtpd is not None:
        settings["smtp"] = {"host": smtpd.host, "port": smtpd.port, "tls": "none", "timeout": 5, "deadline": 10}
    settings.update(extra)
    path = project / "config" / "digest.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def digest(project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(project / "config" / "digest.yaml"), *args], catch_exceptions=False)


def rows(result: Result) -> dict[str, dict]:
    return {row["user"]: row for row in json.loads(result.stdout)}


@pytest.fixture
def run_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def test_send_delivers_one_well_formed_digest_per_reader_then_nothing_new(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    first = digest(run_dir, "send", "--date", DAY, "--json")
    assert first.exit_code == 0, first.output
    assert {u: r["status"] for u, r in rows(first).items()} == {"alice": "sent", "bob": "sent", "chen": "sent"}

    messages: list[EmailMessage] = smtpd.handler.messages
    assert sorted(str(m["To"]) for m in messages) == [
        "Alice Martin <alice@example.org>", "Bob <bob@example.org>", "陈静 <chen@example.org>"]
    for received, message in zip(smtpd.handler.received, messages):
        assert len(received.rcpt_tos) == 1
        assert message.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert message["List-Unsubscribe"].startswith("<http://localhost:8080/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Message-ID"] == rows(first)[received.rcpt_tos[0].split("@")[0]]["message_id"]
        assert re.match(r"\d+ (new|trending) papers? — ", message["Subject"])  # the count and best title lead
        assert message["Date"]  # the date is the client's to show, not the subject's

    second = digest(run_dir, "send", "--date", DAY, "--json")
    assert second.exit_code == 0
    assert {r["status"] for r in rows(second).values()} == {"already-sent"}
    assert len(smtpd.handler.received) == 3  # nothing new went out


def test_a_paper_is_never_sent_twice_across_editions(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    digest(run_dir, "send", "--date", DAY)
    next_day = digest(run_dir, "send", "--date", "2025-10-10", "--json")
    statuses = {u: r["status"] for u, r in rows(next_day).items()}
    # The same payloads the next day hold nothing new: quiet readers are skipped, chen (send_empty) gets a note.
    assert statuses == {"alice": "skipped-empty", "bob": "skipped-empty", "chen": "sent"}
    note = smtpd.handler.messages[-1]
    assert "nothing new" in note["Subject"].lower() or "no new" in note["Subject"].lower()
    assert rows(next_day)["chen"]["papers"] == 0


def test_dry_run_writes_previews_and_leaves_the_database_byte_for_byte(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    digest(run_dir, "send", "--date", DAY, "--user", "alice")
    db = run_dir / "data" / "digest.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    result = digest(run_dir, "send", "--dry-run", "--date", "2025-10-10", "--out", "preview", "--json")
    assert result.exit_code == 0
    assert {u: r["status"] for u, r in rows(result).items()} == {
        "alice": "skipped-empty", "bob": "dry-run", "chen": "dry-run"}
    for name in ("bob.eml", "bob.html", "bob.txt", "chen.eml"):
        assert (run_dir / "preview" / name).stat().st_size > 0
    assert not (run_dir / "preview" / "alice.eml").exists()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert len(smtpd.handler.received) == 1  # only alice's real send


def test_dry_run_on_a_fresh_machine_creates_no_database(run_dir: Path) -> None:
    result = digest(run_dir, "send", "--dry-run", "--date", DAY)
    assert result.exit_code == 0
    assert not (run_dir / "data").exists()
    assert sorted(p.name for p in (run_dir / "outbox-preview").iterdir())[:3] == ["alice.eml", "alice.html", "alice.txt"]


def test_without_smtp_host_messages_go_into_the_maildir_outbox(run_dir: Path) -> None:
    result = digest(run_dir, "send", "--date", DAY)
    assert result.exit_code == 0
    assert len(list((run_dir / "data" / "outbox" / "new").iterdir())) == 3


def test_a_broken_subscription_file_skips_that_reader_and_serves_the_others(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    (run_dir / "config" / "subscriptions" / "zed.yaml").write_text("email: zed@example.org\ntimezone: Mars/Base\n")
    result = digest(run_dir, "send", "--date", DAY, "--json")
    assert result.exit_code == 1
    got = rows(result)
    assert got["zed"]["status"] == "skipped-invalid"
    assert "zed.yaml:2: timezone: unknown time zone" in got["zed"]["error"]
    assert {got[u]["status"] for u in ("alice", "bob", "chen")} == {"sent"}
    assert "zed.yaml:2: timezone" in result.stderr


def test_a_broken_source_is_skipped_with_its_reason_and_the_others_still_count(run_dir: Path, smtpd: SmtpServer) -> None:
    broken = run_dir / "config" / "examples" / "hf_daily_papers.json"
    broken.write_bytes(broken.read_bytes()[:5000])  # truncated JSON
    configure(run_dir, smtpd)
    result = digest(run_dir, "send", "--date", DAY, "--json")
    assert result.exit_code == 1
    got = rows(result)
    assert got["alice"]["status"] == "sent"  # arXiv alone still has matches for alice
    assert got["bob"]["status"] == "skipped-empty"  # bob reads hf_daily only
    assert "hf_daily" in result.stderr and "JSON" in result.stderr


def test_every_source_failing_sends_nothing_and_touches_no_state(run_dir: Path, smtpd: SmtpServer) -> None:
    for name in ("hf_daily_papers.json", "arxiv_rss_cs_CL.xml"):
        (run_dir / "config" / "examples" / name).write_text("<html>502 Bad Gateway</html>")
    configure(run_dir, smtpd)
    result = digest(run_dir, "send", "--date", DAY, "--json")
    assert result.exit_code == 1
    assert {r["status"] for r in rows(result).values()} == {"skipped-no-sources"}
    assert smtpd.handler.received == []
    assert not (run_dir / "data" / "digest.db").exists()


def test_a_5xx_for_one_reader_fails_only_that_reader(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    original = smtpd.handler.handle_RCPT

    async def refuse_bob(server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if address.startswith("bob@"):
            return "550 5.1.1 mailbox unavailable"
        return await original(server, session, envelope, address, options)

    smtpd.handler.handle_RCPT = refuse_bob  # type: ignore[method-assign]
    result = digest(run_dir, "send", "--date", DAY, "--json")
    assert result.exit_code == 1
    got = rows(result)
    assert got["bob"]["status"] == "failed" and "550" in got["bob"]["error"]
    assert got["alice"]["status"] == got["chen"]["status"] == "sent"
    again = rows(digest(run_dir, "send", "--date", DAY, "--json"))
    assert again["bob"]["status"] == "skipped-failed"  # permanent: not retried for this edition


def test_check_reports_problems_and_exits_2(run_dir: Path) -> None:
    (run_dir / "config" / "subscriptions" / "zed.yaml").write_text("email: zed@example.org\nfrequency: hourly\n")
    result = digest(run_dir, "check")
    assert result.exit_code == 2
    assert "config/subscriptions/zed.yaml:2: frequency:" in result.stdout
    (run_dir / "config" / "subscriptions" / "zed.yaml").unlink()
    assert digest(run_dir, "check").exit_code == 0


def test_rank_lists_the_next_edition_with_scores_and_terms(run_dir: Path) -> None:
    result = digest(run_dir, "rank", "--user", "alice", "--json", "--limit", "0")
    assert result.exit_code == 0
    ranked = json.loads(result.stdout)
    assert len(ranked) >= 5
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert all(r["matched"] and r["paper_id"].startswith("arxiv:") and r["url"] for r in ranked)
    limited = json.loads(digest(run_dir, "rank", "--user", "alice", "--json").stdout)
    assert limited == ranked[:5]  # alice's max_papers


def test_usage_errors_exit_2(run_dir: Path) -> None:
    assert digest(run_dir, "send", "--user", "nobody").exit_code == 2
    assert digest(run_dir, "send", "--date", "yesterday").exit_code == 2
    assert digest(run_dir, "rank", "--user", "nobody").exit_code == 2


def test_fetch_prints_merged_papers(run_dir: Path) -> None:
    result = digest(run_dir, "fetch", "--json")
    assert result.exit_code == 0
    papers = json.loads(result.stdout)
    keys = [p["key"] for p in papers]
    assert len(keys) == len(set(keys))
    both = next(p for p in papers if p["key"] == "arxiv:2510.06084")
    assert set(both["sources"]) == {"hf_daily", "arxiv_cs_cl"}
    assert both["upvotes"] is not None and both["categories"]


def test_the_helper_process_builds_byte_for_byte_the_messages_this_process_builds(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large runs rank and render in a forked helper (pipeline.PROCESS_MIN readers and up): same messages."""
    from digest import pipeline
    from digest.editions import BuildProcess

    if not BuildProcess.available():
        pytest.skip("one CPU (or no fork): the helper process is never used here")
    batches: list[int] = []
    real_build = BuildProcess.build

    async def counted(self: BuildProcess, items: list, **options: bool) -> list:
        batches.append(len(items))
        return await real_build(self, items, **options)

    monkeypatch.setattr(BuildProcess, "build", counted)
    configure(run_dir, secret_key="one key for both runs, 32+ bytes long")  # else a dry run signs with a throwaway key
    out: dict[str, dict[str, bytes]] = {}
    for label, threshold in (("here", 10**9), ("helper", 1)):
        monkeypatch.setattr(pipeline, "PROCESS_MIN", threshold)
        result = digest(run_dir, "send", "--dry-run", "--date", DAY, "--out", str(run_dir / label), "--json")
        assert result.exit_code == 0, result.output
        # The Date header is the moment of the run; everything else is the edition's.
        out[label] = {
            p.name: b"\n".join(line for line in p.read_bytes().split(b"\n") if not line.startswith(b"Date: "))
            for p in (run_dir / label).glob("*.eml")
        }
    assert sum(batches) == 3  # the three readers were built in the helper
    assert sorted(out["here"]) == ["alice.eml", "bob.eml", "chen.eml"]
    assert out["helper"] == out["here"]


def test_without_a_terminal_progress_goes_to_stderr_as_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from digest.report import progress
    from digest.pipeline import Outcome

    with progress(4, every=0.0) as run:  # a line per reader here; every 5 s by default
        for status in ("sent", "skipped-empty", "failed", "sent"):
            run.advance(Outcome("reader", status))
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(";")[0] for line in lines] == [
        "sending: 1/4 (25%): 1 sent, 0 skipped, 0 failed",
        "sending: 2/4 (50%): 1 sent, 1 skipped, 0 failed",
        "sending: 3/4 (75%): 1 sent, 1 skipped, 1 failed",
    ]  # the last reader is told by the summary
    assert all(re.search(r"; [\d,]+/s, \d+ s$", line) for line in lines)
