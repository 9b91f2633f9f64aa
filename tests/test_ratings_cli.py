"""Ratings through the real `digest` commands (saved payloads, real SQLite, real SMTP on loopback):
rating links in both parts of every message, `digest rate`, `digest rank --json` (`via`),
`digest check` (counts only), and paper vectors embedded once."""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest import ratings
from digest.cli import cli
from digest.store import open_store
from digest.tokens import verify_rating_token
from tests.smtpd import SmtpServer
from tests.test_send import DAY, configure

RATE_LINK = re.compile(r"https?://[^\s\"<>]+/rate/([A-Za-z0-9_-]+)")


def digest(project: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(project / "config" / "digest.yaml"), *args])


@pytest.fixture
def run_dir(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html


def ranked(project: Path, user: str) -> list[dict]:
    result = digest(project, "rank", "--user", user, "--json", "--limit", "0")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_paper_of_both_parts_carries_signed_rating_links(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    result = digest(run_dir, "send", "--date", DAY, "--json")
    assert result.exit_code == 0, result.output
    sent = {row["user"]: row for row in json.loads(result.stdout) if row["status"] == "sent"}
    assert sent
    store = open_store("sqlite:///data/digest.db", read_only=True)
    secret, _ = store.secret(), store.close()
    for message in smtpd.handler.messages:
        user = message["To"].addresses[0].username  # type: ignore[union-attr]
        text, html = parts(message)
        votes = []
        for part in (text, html):
            found = [verify_rating_token(t, secret) for t in RATE_LINK.findall(part)]
            assert found and None not in found
            votes.append(found)
        assert votes[0] == votes[1]  # the same links, in the same order, in both parts
        by_paper: dict[str, set[int]] = {}
        for sub_id, key, vote in votes[0]:
            by_paper.setdefault(key, set()).add(vote)
            assert sub_id in sent and sub_id.startswith(user[:3])
        assert all(v == {1, -1} for v in by_paper.values())  # "more like this" and "not for me" each
        shown = sent[sub_id]["papers"]
        assert len(by_paper) == min(shown, len(by_paper)) and len(by_paper) >= min(shown, 1)
        assert "More like this" in text and "Not for me" in text


def test_a_second_run_embeds_no_paper_again(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    first = digest(run_dir, "--log-level", "info", "send", "--date", DAY)
    assert first.exit_code == 0
    embedded = ratings.EMBEDDED.last
    assert embedded > 0 and f"paper vectors: {embedded} embedded, 0 stored" in first.output
    again = digest(run_dir, "--log-level", "info", "send", "--date", DAY)  # already sent; ranks all the same
    assert again.exit_code == 0 and ratings.EMBEDDED.last == 0
    assert f"paper vectors: 0 embedded, {embedded} stored" in again.output
    ranked(run_dir, "alice")  # `digest rank` reads them too
    assert ratings.EMBEDDED.last == 0


def test_dry_run_embeds_but_stores_nothing(run_dir: Path) -> None:
    assert digest(run_dir, "send", "--dry-run", "--date", DAY).exit_code == 0
    assert not (run_dir / "data" / "digest.db").exists()
    assert digest(run_dir, "send", "--dry-run", "--date", DAY).exit_code == 0
    assert ratings.EMBEDDED.last > 0


def test_digest_rate_records_votes_and_rank_shows_via(run_dir: Path) -> None:
    rows = ranked(run_dir, "alice")
    assert rows and all(r["via"] in ("keywords", "model", "explore", "trending") for r in rows)
    assert {r["via"] for r in rows} == {"keywords"}  # no ratings yet: the keyword ranking
    up, down = rows[0]["paper_id"], rows[-1]["paper_id"]
    result = digest(run_dir, "rate", "alice", "--up", up, "--down", down)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"alice: {up}: more like this", f"alice: {down}: not for me"]
    check = digest(run_dir, "check")
    assert "alice.yaml: ratings: 1 more like this, 1 not for me" in check.stdout
    assert rows[0]["title"] not in check.output  # counts, never titles

    result = digest(run_dir, "rate", "alice", "--down", up, "--clear", down)  # the last vote wins; clear
    assert result.exit_code == 0, result.output
    store = open_store("sqlite:///data/digest.db", read_only=True)
    try:
        assert store.rating_counts() == {"alice": (0, 1)}
        rated = store.ratings_many(["alice"], "hash-v1")["alice"]
        assert [(r.key, r.vote, r.title) for r in rated] == [(up, -1, rows[0]["title"])]
    finally:
        store.close()


def test_digest_rate_refuses_unknown_readers_and_papers_and_records_nothing(run_dir: Path) -> None:
    known = ranked(run_dir, "alice")[0]["paper_id"]
    bad = digest(run_dir, "rate", "alice", "--up", known, "--up", "arxiv:0000.00000")
    assert bad.exit_code == 2
    assert "arxiv:0000.00000" in bad.output and "nothing recorded" in bad.output
    bad = digest(run_dir, "rate", "nobody", "--up", known)
    assert bad.exit_code == 2 and "nobody" in bad.output
    assert digest(run_dir, "rate", "alice").exit_code == 2  # nothing to record
    store = open_store("sqlite:///data/digest.db", read_only=True)
    try:
        assert store.rating_counts() == {}
    finally:
        store.close()
    assert "ratings:" not in digest(run_dir, "check").stdout


def test_a_paper_the_reader_was_sent_can_be_rated_after_it_left_the_sources(run_dir: Path, smtpd: SmtpServer) -> None:
    configure(run_dir, smtpd)
    assert digest(run_dir, "send", "--date", DAY, "--user", "alice").exit_code == 0
    store = open_store("sqlite:///data/digest.db", read_only=True)
    key = sorted(store.seen("alice"))[0]
    store.close()
    # the sources no longer list it: an empty feed, a source that fails
    (run_dir / "config" / "examples" / "hf_daily_papers.json").write_text("[]")
    (run_dir / "config" / "examples" / "arxiv_rss_cs_CL.xml").unlink()
    result = digest(run_dir, "rate", "alice", "--up", key)
    assert result.exit_code == 0, result.output


def test_rank_shows_a_rated_readers_next_email_in_its_order(run_dir: Path, smtpd: SmtpServer) -> None:
    """`digest rank` builds its Ranker as the send does (stored vectors, the store's idf background),
    so what it prints for a reader with ratings is the email they get, paper for paper."""
    configure(run_dir, smtpd)
    rows = ranked(run_dir, "alice")
    assert digest(run_dir, "rate", "alice", "--up", rows[0]["paper_id"], "--up", rows[1]["paper_id"],
                  "--down", rows[-1]["paper_id"]).exit_code == 0  # fmt: skip
    expected = [r["paper_id"] for r in ranked(run_dir, "alice")]
    result = digest(run_dir, "send", "--date", DAY, "--json")
    assert result.exit_code == 0, result.output
    store = open_store("sqlite:///data/digest.db", read_only=True)
    secret, _ = store.secret(), store.close()
    (message,) = [m for m in smtpd.handler.messages if m["To"].addresses[0].username == "alice"]  # type: ignore[union-attr]
    in_email = list(dict.fromkeys(verify_rating_token(t, secret)[1] for t in RATE_LINK.findall(parts(message)[0])))
    assert in_email and in_email == expected[: len(in_email)]


def test_the_models_idf_comes_from_the_newest_stored_papers(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from digest.rank.vectors import DIM, VECTOR_MODEL, matrix

    assert digest(run_dir, "rank", "--user", "alice").exit_code == 0  # stores the day's vectors
    monkeypatch.setattr(ratings, "BACKGROUND", 3)
    store = open_store("sqlite:///data/digest.db", read_only=True)
    try:
        df, n = ratings.background(store)  # type: ignore[misc]
        newest = store.newest_vectors(VECTOR_MODEL, 3)
        assert n == 3 and len(newest) == 3
        assert (df == np.bincount(matrix(newest).indices, minlength=DIM)).all()  # papers having each feature
    finally:
        store.close()


def test_the_idf_background_is_read_only_for_readers_with_ratings(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    read = ratings.background
    monkeypatch.setattr(ratings, "background", lambda store: calls.append(1) or read(store))
    rows = ranked(run_dir, "alice")
    assert calls == []  # no reader with ratings: no run pays for reading 5,000 vectors
    assert digest(run_dir, "rate", "alice", "--up", rows[0]["paper_id"], "--up", rows[1]["paper_id"]).exit_code == 0
    ranked(run_dir, "alice")
    assert calls == [1]
