"""The optional semantic extra (skipped when `pip install '.[semantic]'` was not done)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from digest.models import Keyword, Paper, Subscription
from digest.rank import Ranker
from digest.rank.semantic import available
from tests.conftest import ROOT
from tests.smtpd import SmtpServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="semantic extra not installed: pip install '.[semantic]'"),
]

NOW = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
PAPERS = [
    Paper(key="arxiv:2501.00001", title="Continual learning with replay",
          abstract="We study continual learning and catastrophic forgetting when tasks arrive in sequence."),
    Paper(key="arxiv:2501.00002", title="Lifelong learning without forgetting",
          abstract="Neural networks trained on a sequence of tasks forget earlier tasks. We propose a regulariser "
                   "that keeps old knowledge while learning new tasks incrementally."),
    Paper(key="arxiv:2501.00003", title="Faster attention kernels", abstract="We speed up GPU attention kernels by tiling."),
    Paper(key="arxiv:2501.00004", title="Protein folding with diffusion", abstract="A diffusion model for protein structures."),
]
SUB = Subscription(id="r", email="r@example.org",
                   keywords=(Keyword("continual learning"), Keyword("catastrophic forgetting")))


def test_semantic_finds_a_paper_without_the_readers_words():
    plain = [s.paper.key for s in Ranker(PAPERS, now=NOW).rank(SUB)]
    assert plain == ["arxiv:2501.00001"]
    res = Ranker(PAPERS, now=NOW, semantic=True).rank(SUB)
    assert [s.paper.key for s in res] == ["arxiv:2501.00001", "arxiv:2501.00002"]
    found = res[1]
    assert [m.field for m in found.matches] == ["semantic"]
    assert found.matches[0].term in ("continual learning", "catastrophic forgetting")
    assert found.why.startswith("close in meaning to ")
    # the trending digest is unchanged by the setting
    assert Ranker(PAPERS, now=NOW, semantic=True).rank(Subscription(id="t", email="t@example.org")) == Ranker(
        PAPERS, now=NOW
    ).rank(Subscription(id="t", email="t@example.org"))


def test_embeddings_are_computed_once_and_kept_in_the_store(tmp_path):
    """A paper is run through the model once: the next run (a new process's store connection)
    reads its embedding back and computes none, and ranks exactly as with fresh embeddings."""
    from digest.ratings import DENSE_EMBEDDED, paper_dense, paper_vectors
    from digest.store import open_store

    url = f"sqlite:///{tmp_path}/digest.db"
    store = open_store(url)
    try:
        paper_vectors(store, PAPERS, now=NOW)
        first, made = paper_dense(store, PAPERS)
        assert made == len(PAPERS) and DENSE_EMBEDDED.last == len(PAPERS)
    finally:
        store.close()
    store = open_store(url)
    try:
        again, made = paper_dense(store, PAPERS)
    finally:
        store.close()
    assert made == 0 and again == first and all(len(b) == 768 for b in again)
    fresh = Ranker(PAPERS, now=NOW, semantic=True).rank(SUB)
    stored = Ranker(PAPERS, now=NOW, semantic=True, dense=again).rank(SUB)
    assert [(s.paper.key, s.score, s.why) for s in stored] == [(s.paper.key, s.score, s.why) for s in fresh]


# --- end to end: `digest send` / `digest rank` with `semantic: true` read the stored embeddings back ---

DAY = "2025-10-09"


def _feed(papers: list[Paper]) -> str:
    """An arXiv RSS feed of these papers (what `kind: feed` reads, as in config/examples/)."""
    from xml.sax.saxutils import escape

    items = []
    for p in papers:
        arxiv_id = p.key.split(":", 1)[1]
        items.append(
            f"<item><title>{escape(p.title)}</title><link>https://arxiv.org/abs/{arxiv_id}</link>"
            f"<description>arXiv:{arxiv_id}v1 Announce Type: new \nAbstract: {escape(p.abstract or '')}</description>"
            f'<guid isPermaLink="false">oai:arXiv.org:{arxiv_id}v1</guid>'
            "<pubDate>Thu, 09 Oct 2025 00:00:00 -0400</pubDate></item>"
        )
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n<rss version=\"2.0\"><channel><title>cs.LG updates on arXiv.org</title>"
        "<link>http://rss.arxiv.org/rss/cs.LG</link><description>cs.LG</description>"
        + "".join(items) + "</channel></rss>\n"
    )


def _semantic_project(root: Path, smtpd: SmtpServer | None = None) -> Path:
    """The example project with `semantic: true`, one source holding PAPERS, and two readers:
    rita (SUB's keywords) and tom (no keywords: the trending digest)."""
    from tests.test_send import configure

    shutil.copytree(ROOT / "config", root / "config")
    (root / "config" / "examples" / "papers.xml").write_text(_feed(PAPERS))
    subs = root / "config" / "subscriptions"
    for old in subs.iterdir():
        old.unlink()
    (subs / "rita.yaml").write_text(
        "email: rita@example.org\nkeywords: [continual learning, catastrophic forgetting]\n"
    )
    (subs / "tom.yaml").write_text("email: tom@example.org\n")
    configure(root, smtpd, semantic=True,
              sources=[{"name": "arxiv_cs_lg", "kind": "feed", "url": "config/examples/papers.xml"}])  # fmt: skip
    return root


def _digest(*args: str):
    from click.testing import CliRunner

    from digest.cli import cli

    return CliRunner().invoke(cli, ["--config", "config/digest.yaml", "--log-level", "info", *args])


def _rank(user: str) -> tuple[list[dict], str]:
    result = _digest("rank", "--user", user, "--json", "--limit", "0")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.output


def test_send_and_rank_with_semantic_true_read_the_stored_embeddings_back(
    tmp_path: Path, smtpd: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real CLI with `semantic: true` in digest.yaml: the first `digest send` computes every
    paper's embedding and stores it; `digest rank` and a second `digest send` compute none, read
    them back, and rank with them (the same ranking as fresh embeddings, a semantic-only match
    in the reader's email; a changed stored embedding changes the ranking)."""
    from digest import ratings
    from digest.rank.semantic import DENSE_MODEL
    from digest.store import open_store

    n = len(PAPERS)
    main = _semantic_project(tmp_path / "main", smtpd)
    monkeypatch.chdir(main)

    # 1. A real send (tom only): every paper embedded by the model, and stored.
    first = _digest("send", "--date", DAY, "--user", "tom")
    assert first.exit_code == 0, first.output
    assert f"dense embeddings: {n} embedded, 0 stored" in first.output
    assert ratings.DENSE_EMBEDDED.last == n
    assert [m["To"].addresses[0].username for m in smtpd.handler.messages] == ["tom"]  # type: ignore[union-attr]
    store = open_store("sqlite:///data/digest.db", read_only=True)
    try:
        kept = store.dense(DENSE_MODEL, [p.key for p in PAPERS])
    finally:
        store.close()
    assert sorted(kept) == sorted(p.key for p in PAPERS) and all(len(b) == 768 for b in kept.values())

    # 2. `digest rank` reads them back and computes none.
    stored_rows, output = _rank("rita")
    assert f"dense embeddings: 0 embedded, {n} stored" in output and ratings.DENSE_EMBEDDED.last == 0
    assert [r["paper_id"] for r in stored_rows] == ["arxiv:2501.00001", "arxiv:2501.00002"]
    assert stored_rows[1]["matched"] in (["continual learning"], ["catastrophic forgetting"])  # semantic only
    assert [r["via"] for r in stored_rows] == ["keywords", "semantic"]

    # ... and ranks exactly as a fresh project does with embeddings just computed.
    fresh = _semantic_project(tmp_path / "fresh")
    monkeypatch.chdir(fresh)
    fresh_rows, output = _rank("rita")
    assert f"dense embeddings: {n} embedded, 0 stored" in output and ratings.DENSE_EMBEDDED.last == n
    assert fresh_rows == stored_rows

    # The ranking is the stored embeddings' own: give the semantic-only paper another paper's
    # stored embedding and it drops out, though nothing is computed again.
    store = open_store("sqlite:///data/digest.db")
    try:
        unrelated = store.dense(DENSE_MODEL, ["arxiv:2501.00004"])["arxiv:2501.00004"]
        store.save_dense(DENSE_MODEL, [("arxiv:2501.00002", unrelated)])
    finally:
        store.close()
    changed, output = _rank("rita")
    assert f"dense embeddings: 0 embedded, {n} stored" in output and ratings.DENSE_EMBEDDED.last == 0
    assert [r["paper_id"] for r in changed] == ["arxiv:2501.00001"]

    # 3. A second real send (rita): nothing computed, and her email is the stored ranking, with
    #    the semantic-only paper and its why line.
    monkeypatch.chdir(main)
    again = _digest("send", "--date", DAY, "--user", "rita")
    assert again.exit_code == 0, again.output
    assert f"dense embeddings: 0 embedded, {n} stored" in again.output
    assert ratings.DENSE_EMBEDDED.last == 0
    assert len(smtpd.handler.messages) == 2
    message = smtpd.handler.messages[-1]
    assert message["To"].addresses[0].username == "rita"  # type: ignore[union-attr]
    text = " ".join(message.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    titles = [p.title for p in PAPERS]
    assert text.index(titles[0]) < text.index(titles[1])  # in `digest rank`'s order
    assert titles[2] not in text and titles[3] not in text
    assert "close in meaning to " + stored_rows[1]["matched"][0] in text
