"""The rating links of a real digest against the real `digest run` on loopback: GET changes
nothing, POST records, a forged or altered token is refused (400), undo works, votes are
idempotent and the last one wins, nothing of them reaches the logs."""

from __future__ import annotations

import html
import json
import re
import secrets
from pathlib import Path

from digest.store import open_store
from digest.tokens import make_rating_token
from tests.service_helpers import Service, digest_cli, http, local_send_at, make_project, reader, record_arrivals, wait_for
from tests.smtpd import SmtpServer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def votes(base: Path) -> list[tuple[str, str, int]]:
    store = open_store(f"sqlite:///{base / 'data' / 'digest.db'}", read_only=True)
    try:
        return [(r.key, r.title, r.vote) for r in store.ratings_many(["dora"], "hash-v1")["dora"]]
    finally:
        store.close()


def undo_action(page: str) -> str:
    match = re.search(r'<form method="post" action="([A-Za-z0-9_-]+)"', page)
    assert match, page
    return match.group(1)


def test_rating_links_through_the_real_service(tmp_path: Path, smtpd: SmtpServer) -> None:
    tz = "Europe/Berlin"
    send_at, _ = local_send_at(tz, minutes=0)
    arrivals = record_arrivals(smtpd)
    config = make_project(tmp_path, smtpd, {"dora": reader("dora@example.org", timezone=tz, send_at=send_at,
                                                           keywords=["reinforcement learning", "reasoning"])})
    service = Service(config).start()
    try:
        service.wait_healthy()
        wait_for(lambda: arrivals, 15, "the catch-up digest")
        message = smtpd.handler.messages[0]
        text = message.get_body(("plain",)).get_content()
        links = re.findall(r"More like this: (\S+)", text)
        downs = re.findall(r"Not for me: +(\S+)", text)
        assert links and len(links) == len(downs) and links[0].startswith(service.url + "/rate/")
        html_part = message.get_body(("html",)).get_content()
        assert html.escape(links[0]) in html_part and html.escape(downs[-1]) in html_part
        up, down = links[0], downs[0]

        # GET (a link scanner, a prefetch) changes nothing: a page with one button
        status, body, headers = http("GET", up)
        assert status == 200 and body.count("<form") == 1 and "<button" in body
        assert headers["Cache-Control"] == "no-store"
        assert votes(tmp_path) == []

        # forged, altered, nonsense: 400, nothing recorded
        token = up.rsplit("/", 1)[1]
        forged = make_rating_token("dora", "arxiv:2510.03222", 1, secrets.token_bytes(32))
        altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        for bad in (forged, altered, "nonsense"):
            for method in ("GET", "POST"):
                status, body, _ = http(method, f"{service.url}/rate/{bad}", data=b"" if method == "POST" else None)
                assert status == 400 and "not valid" in body, (method, bad)
        assert votes(tmp_path) == []

        # POST records; the answer says what changes and offers undo
        status, body, _ = http("POST", up, data=b"", headers=FORM)
        assert status == 200 and "rank higher" in body and "Undo" in body
        first_undo = undo_action(body)
        [(key, title, vote)] = votes(tmp_path)
        assert vote == 1 and title and html.escape(title) in body
        status, body, _ = http("POST", up, data=b"", headers=FORM)  # idempotent
        assert status == 200 and "Already rated" in body and votes(tmp_path) == [(key, title, 1)]
        check = digest_cli(config, "check")
        assert "dora.yaml: ratings: 1 more like this, 0 not for me" in check.stdout
        assert title not in check.stdout

        status, body, _ = http("POST", down, data=b"", headers=FORM)  # the last vote wins
        assert status == 200 and "rank lower" in body and votes(tmp_path) == [(key, title, -1)]
        # undo puts back the vote it replaced (+1); undoing the undo gives -1 again
        status, body, _ = http("POST", f"{service.url}/rate/{undo_action(body)}", data=b"", headers=FORM)
        assert status == 200 and votes(tmp_path) == [(key, title, 1)]
        status, body, _ = http("POST", f"{service.url}/rate/{undo_action(body)}", data=b"", headers=FORM)
        assert status == 200 and votes(tmp_path) == [(key, title, -1)]
        # the undo of the first vote (there was none before it) removes the rating
        status, body, _ = http("POST", f"{service.url}/rate/{first_undo}", data=b"", headers=FORM)
        assert status == 200 and "Rating removed" in body and votes(tmp_path) == []

        status, _, _ = http("POST", up, data=b"", headers=FORM)
        ranked = json.loads(digest_cli(config, "rank", "--user", "dora", "--json", "--limit", "0").stdout)
        assert all(r["via"] in ("keywords", "model", "explore") for r in ranked)

        logs = service.text()
        assert "/rate/<redacted>" in logs
        for private in (token, key, title, forged):
            assert private not in logs
        assert service.stop() == 0
    finally:
        service.kill()
