"""`digest check`, `digest fetch` and `digest rank`: look at the configuration, the sources and one
reader's next edition without sending anything. Registered on the `digest` group by digest/cli.py.
`check` imports only the configuration and the store: it must answer at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from digest.cli_base import App, edge, one_subscription, parse_date
from digest.errors import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL

if TYPE_CHECKING:
    from digest.config import Settings
    from digest.models import Paper

__all__ = ["check", "fetch", "rank", "paper_json"]


@click.command()
@click.pass_obj
def check(app: App) -> None:
    """Validate settings and every subscription file; print `path:line: field: message`.

    Exit 2 if there is any problem. Also reports subscribers who unsubscribed or were suspended,
    and reads every page of an SQLite database (PRAGMA quick_check): damaged, exit 1.
    """
    from digest.config import load_subscriptions
    from digest.store import open_store

    with edge():
        settings = app.settings()
        loaded = load_subscriptions(settings.subscriptions_dir, settings.source_names)
        problems = list(loaded.problems)
        if not settings.sources:
            click.echo("settings: sources: no source configured", err=True)
        for problem in problems:
            click.echo(str(problem))
        for warning in deliverability_warnings(settings):
            click.echo(f"warning: {warning}", err=True)
        dkim_problem = _dkim_problem(settings)
        if dkim_problem:
            click.echo(dkim_problem)
        store = open_store(settings.database_url, read_only=True)
        try:
            store.verify()  # SQLite: PRAGMA quick_check, every page read once
            states = store.subscribers()
            counts = store.rating_counts()
            for sub in loaded.subscriptions:
                state = states.get(sub.id)
                if state and state.unsubscribed_at:
                    click.echo(f"{sub.path}: unsubscribed on {state.unsubscribed_at:%Y-%m-%d} (digest resubscribe {sub.id})")
                if state and state.suspended_at:
                    click.echo(f"{sub.path}: suspended on {state.suspended_at:%Y-%m-%d}: {state.suspended_reason}")
                if sub.id in counts:  # how many, never which papers: ratings are the reader's
                    click.echo(f"{sub.path}: ratings: {counts[sub.id][0]} more like this, {counts[sub.id][1]} not for me")
        finally:
            store.close()
        ok = len(loaded.subscriptions)
        click.echo(f"{ok} valid subscription(s), {len(loaded.invalid)} invalid, {len(settings.sources)} source(s)", err=True)
        if problems or not settings.sources or dkim_problem:
            sys.exit(EXIT_CONFIG)


def deliverability_warnings(settings: Settings) -> list[str]:
    """What mailbox providers will hold against mail sent with these settings (warnings: the mail
    still goes out). Only when real SMTP is configured: the Maildir outbox is a local test."""
    from urllib.parse import urlsplit

    if not settings.smtp.host:
        return []
    out = []
    url = settings.public_url
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost") or host.startswith("127.") or host in ("::1", "0.0.0.0"):
        out.append(f"public_url: {url} is this machine: readers' unsubscribe and rating links will not "
                   "work; set the address readers reach the service at (https://…)")  # fmt: skip
    elif url.startswith("http://"):
        out.append(f"public_url: {url} is not https: Gmail and Yahoo require a working https one-click "
                   "unsubscribe (RFC 8058) from bulk senders; serve it behind TLS and set https://…")  # fmt: skip
    if settings.dkim is not None:
        from email.utils import parseaddr

        sender_domain = parseaddr(settings.sender)[1].rpartition("@")[2].lower()
        d = settings.dkim.domain.lower()
        if sender_domain != d and not sender_domain.endswith("." + d):
            out.append(f"dkim.domain: {d} is not the sender's domain ({sender_domain}) or a parent of it: "
                       "the signature will not align for DMARC")  # fmt: skip
    return out


def _dkim_problem(settings: Settings) -> str | None:
    """Why the DKIM key cannot sign (the send would stop at once), or None."""
    if settings.dkim is None:
        return None
    from digest.deliver.dkim import load_signer
    from digest.errors import ConfigError

    try:
        load_signer(settings.dkim)
    except ConfigError as exc:
        return str(exc)
    return None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD", help="Day to fetch [default: today, UTC].")
@click.pass_obj
def fetch(app: App, as_json: bool, date: dt.date | None) -> None:
    """Fetch every configured source and print the normalised, merged papers."""
    import asyncio

    from digest.pipeline import gather

    with edge():
        settings = app.settings()
        day = date or dt.datetime.now(dt.timezone.utc).date()
        papers, results = asyncio.run(gather(settings.source_specs, day=day))
    for result in results:
        state = f"{len(result.papers)} papers" if result.ok else f"FAILED: {result.error}"
        click.echo(f"source {result.name}: {state}", err=True)
    if as_json:
        click.echo(json.dumps([paper_json(p) for p in papers], indent=2, ensure_ascii=False))
    else:
        for paper in papers:
            votes = f"{paper.upvotes:>4}▲ " if paper.upvotes is not None else "      "
            click.echo(f"{paper.key:<24} {votes}{paper.title}")
    sys.exit(EXIT_PARTIAL if any(not r.ok for r in results) else EXIT_OK)


def paper_json(paper: Paper) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(paper))


@click.command()
@click.option("--user", "user", required=True, metavar="ID", help="The subscriber.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="How many [default: their max_papers; 0: all that qualify].")
@click.pass_obj
def rank(app: App, user: str, as_json: bool, limit: int | None) -> None:
    """Show what the next edition would include for one subscriber, best first, and why.

    Sends nothing and marks nothing. When nothing qualifies it says why on stderr (nothing new
    since the last edition, or nothing that matches) and exits 0.
    """
    import asyncio

    from digest.pipeline import gather, local_date, plan
    from digest.ratings import load_ratings, ranker_for
    from digest.store import open_store

    with edge():
        settings = app.settings()
        sub = one_subscription(settings, user)
        now = dt.datetime.now(dt.timezone.utc)
        papers, results = asyncio.run(gather(settings.source_specs, day=now.date()))
        store = open_store(settings.database_url)  # writes only the vectors of papers new to it
        try:
            seen = store.seen(sub.id)
            last = store.editions(sub.id, limit=1)
            ranker = ranker_for(store, papers, now=now, semantic=settings.semantic)
            edition = plan(
                dataclasses.replace(sub, max_papers=10**9), ranker, seen=seen, papers=papers,
                edition_date=local_date(sub, now), rated=load_ratings(store, [sub.id])[sub.id],
            )  # fmt: skip (the ranking reads the model's background from the store)
        finally:
            store.close()
    for result in results:
        if not result.ok:
            click.echo(f"source {result.name}: FAILED: {result.error}", err=True)
    limit = sub.max_papers if limit is None else limit
    # In the email's order: the full entries, then the titles under "and N more" (mentions last).
    listed = edition.papers + edition.more_papers
    chosen = listed[:limit] if limit else listed
    if not chosen:
        click.echo(_why_nothing(user, papers, seen, last), err=True)
    if as_json:
        rows = [
            {
                "paper_id": s.paper.key,
                "title": s.paper.title,
                "score": round(s.score, 4),
                "matched": list(s.matched_terms),
                "url": s.paper.url,
                "via": s.via,  # what put it there: keywords | model | explore | semantic | trending | mention
            }
            for s in chosen
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for s in chosen:
            via = "" if s.via in ("keywords", "trending") else f"  [{s.via}]"
            click.echo(f"{s.score:7.3f}  {s.paper.title}\n         {s.why}{via}")
    sys.exit(EXIT_PARTIAL if any(not r.ok for r in results) else EXIT_OK)


def _why_nothing(user: str, papers: list[Paper], seen: set[str], last: list[Any]) -> str:
    """The one line `rank` prints instead of silence when no paper qualifies."""
    if not papers:
        return f"{user}: no papers from the sources today"
    sent = sum(p.key in seen for p in papers)
    if last and last[0].status == "sent" and sent:
        edition = last[0]
        return (f"{user}: nothing new since the last edition ({edition.edition_date.isoformat()}, "
                f"{edition.paper_count or 0} papers): {sent} of today's {len(papers)} papers were sent "
                "already and none of the rest qualifies")  # fmt: skip
    return f"{user}: none of today's {len(papers)} papers qualifies ({sent} sent already)"
