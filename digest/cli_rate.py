"""`digest rate`: a reader's ratings from the command line (operators, imports, scripts), the same
votes the signed links of each email record. Registered on the `digest` group by digest/cli.py."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import click

from digest.cli_base import edge, one_subscription
from digest.errors import ConfigError, Problem

if TYPE_CHECKING:
    from digest.config import Settings
    from digest.store import Store

__all__ = ["rate"]

_WORDS = {1: "more like this", -1: "not for me", 0: "rating removed"}


@click.command()
@click.argument("user", metavar="USER")
@click.option("--up", "ups", multiple=True, metavar="PAPER", help='"More like this" (repeatable).')
@click.option("--down", "downs", multiple=True, metavar="PAPER", help='"Not for me" (repeatable).')
@click.option("--clear", "clears", multiple=True, metavar="PAPER", help="Remove a rating (repeatable).")
@click.pass_obj
def rate(app: Any, user: str, ups: tuple[str, ...], downs: tuple[str, ...], clears: tuple[str, ...]) -> None:
    """Record a reader's ratings, as the links in each email do; the next edition uses them.

    PAPER is a paper_id as `digest rank --json` prints it: a paper of the current sources, or one
    the reader was sent. An unknown reader or paper records nothing and exits 2. When a paper is
    named twice, the last option wins.

    Example: digest rate alice --up arxiv:2212.04089 --down arxiv:2401.00001
    """
    from digest.store import open_store

    votes: dict[str, int] = {}
    for vote, papers in ((1, ups), (-1, downs), (0, clears)):
        for paper in papers:
            votes[paper] = vote
    with edge():
        settings = app.settings()
        if not votes:
            raise click.UsageError("nothing to record: give --up, --down or --clear PAPER")
        sub = one_subscription(settings, user)
        now = dt.datetime.now(dt.timezone.utc)
        store = open_store(settings.database_url)
        try:
            unknown = _unknown_papers(settings, store, sub.id, list(votes), now)
            if unknown:
                message = (
                    f"no such paper: {', '.join(unknown)} (neither in the current sources nor sent to "
                    f"{user}; use a paper_id from `digest rank --json`); nothing recorded"
                )
                raise ConfigError([Problem(f"digest rate {user}", None, "PAPER", message)])
            for paper, vote in votes.items():
                store.rate(sub.id, paper, vote, now=now)
        finally:
            store.close()
    for paper, vote in votes.items():
        click.echo(f"{user}: {paper}: {_WORDS[vote]}")


def _unknown_papers(settings: Settings, store: Store, sub_id: str, keys: list[str], now: dt.datetime) -> list[str]:
    """Those of `keys` that are neither stored (papers table: every paper a run met, or this
    reader was sent) nor in today's sources (fetched only when the store does not know one)."""
    known = set(store.titles(keys)) | (store.seen(sub_id) & set(keys))
    missing = [k for k in keys if k not in known]
    if missing:
        import asyncio

        from digest.pipeline import gather

        papers, _ = asyncio.run(gather(settings.source_specs, day=now.date()))
        current = {p.key for p in papers}
        from digest.ratings import paper_vectors

        # keep the rated papers' vectors and titles: the model needs them next time
        paper_vectors(store, [p for p in papers if p.key in missing], now=now)
        missing = [k for k in missing if k not in current]
    return missing
