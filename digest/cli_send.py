"""`digest send`: the manual and cron trigger, and `--dry-run`, its preview. Registered on the
`digest` group by digest/cli.py; the pipeline, ranking and rendering are imported when it runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.cli_base import App, edge, init_option, mailer_for, parse_date, secret_for
from digest.errors import EXIT_OK, EXIT_PARTIAL, ConfigError

if TYPE_CHECKING:
    from digest.config import Settings
    from digest.config.subscriptions import LoadResult
    from digest.models import Subscription
    from digest.runstate import Outcome

__all__ = ["send"]


@click.command()
@click.option("--dry-run", is_flag=True, help="Render into --out; send nothing, record nothing.")
@click.option("--user", "users", multiple=True, metavar="ID", help="Only these subscribers (repeatable).")
@click.option("--date", "date", callback=parse_date, metavar="YYYY-MM-DD", help="Edition date [default: each subscriber's local date].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("outbox-preview"), show_default=True, help="Where --dry-run writes <id>.eml/.html/.txt.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@init_option
@click.pass_obj
def send(
    app: App, dry_run: bool, users: tuple[str, ...], date: dt.date | None, out: Path, as_json: bool, init: bool
) -> None:
    """Build and send today's edition to every active subscriber who has not had it yet.

    Honours each reader's `frequency`: a reader with no edition on their local date today (a
    weekly reader on another weekday, a weekdays reader at the weekend) is skipped (not-due),
    unless --user or --date asks for that edition. Example: digest send --dry-run --user alice
    """
    import asyncio

    from digest.report import print_outcomes

    with edge():
        settings = app.settings()
        if init and dry_run:
            raise click.UsageError("--init starts a new database; --dry-run never writes one")
        loaded = _subscriptions(settings, users)
        now = _now()
        outcomes, source_failed, seconds, halted = asyncio.run(
            _send(settings, loaded, now, date, dry_run, out, init, asked=bool(users))
        )
    print_outcomes(outcomes, as_json, seconds)
    if dry_run and any(o.status in ("dry-run", "already-sent") for o in outcomes):
        click.echo(f"previews: {out}/<id>.eml, .html, .txt (nothing sent, nothing recorded)", err=True)
    if halted:  # the relay, the outbox or the store failed: one line that says what to fix
        click.echo(f"error: stopped sending: {halted}", err=True)
    failed = source_failed or any(o.failed or o.status in ("skipped-invalid", "skipped-deferred") for o in outcomes)
    sys.exit(EXIT_PARTIAL if failed or halted else EXIT_OK)


async def _send(
    settings: Settings,
    loaded: LoadResult,
    now: dt.datetime,
    date: dt.date | None,
    dry_run: bool,
    out: Path,
    init: bool = False,
    *,
    asked: bool = False,
) -> tuple[list[Outcome], bool, float | None, str | None]:
    """Every reader's outcome, whether a source failed, the seconds the sending took, and why the
    run halted (None: it did not)."""
    from digest.deliver.dkim import sign_with
    from digest.deliver.files import PreviewMailer
    from digest.pipeline import Delivery, Outcome, gather, invalid_outcomes, local_date, send_editions
    from digest.render import Renderer
    from digest.report import progress
    from digest.store import open_store
    from digest.store.retention import prune
    from digest.store.sqlite import worker_id

    everyone = loaded.subscriptions
    subs, not_due = _due(everyone, now, asked=asked or date is not None)
    day = date or now.date()
    papers, results = await gather(settings.source_specs, day=day)
    source_failed = any(not r.ok for r in results)
    # a broken file has no time zone to give its reader's local date: the run's (UTC or --date)
    outcomes = [dataclasses.replace(o, edition_date=o.edition_date or day) for o in invalid_outcomes(loaded.invalid)]
    # listed last: the readers this run was not for
    skipped = [Outcome(s.id, "skipped-not-due", edition_date=local_date(s, now)) for s in not_due]
    if results and all(not r.ok for r in results):
        reason = "; ".join(f"{r.name}: {r.error}" for r in results)
        return outcomes + [
            Outcome(s.id, "skipped-no-sources", edition_date=date or local_date(s, now), error=reason) for s in subs
        ] + skipped, True, None, None
    store = open_store(settings.database_url, read_only=dry_run, init=init)
    try:
        store.verify()  # a damaged database is refused before anything is sent
        if dry_run:
            from digest.preview import PreviewStore, clear_previews

            clear_previews(out, [s.id for s in everyone])  # no stale files from an earlier preview
            store = PreviewStore(store, {s.id: date or local_date(s, now) for s in subs})
        # the preview is signed as a real send would be (`dkimverify < <id>.eml` checks the key)
        mailer = sign_with(PreviewMailer(out), settings.dkim) if dry_run else mailer_for(settings)
        delivery = Delivery(
            store=store,
            mailer=mailer,
            renderer=Renderer(),
            sender=settings.sender,
            public_url=settings.public_url,
            secret=secret_for(settings, store),
            worker=worker_id(),
            lease=settings.claim_lease,
            suspend_after=settings.suspend_after,
            edition_max_age=settings.edition_max_age,
            sent_status="dry-run" if dry_run else "sent",
        )
        with progress(len(subs)) as run:
            delivery.on_outcome = run.advance
            async with mailer:
                outcomes += await send_editions(
                    subs, papers, delivery, now=now, edition_date=date, semantic=settings.semantic
                )
        if dry_run:
            outcomes = store.mark(outcomes)  # editions that went out already say so
        elif delivery.halted is None:  # once a day: what retention no longer needs
            listed = {p.key for p in papers}
            prune(store, retention=settings.retention, listed=listed, complete=not source_failed, now=now)
    finally:
        store.close()
    return outcomes + skipped, source_failed, run.seconds, delivery.halted


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _due(subs: list[Subscription], now: dt.datetime, *, asked: bool) -> tuple[list[Subscription], list[Subscription]]:
    """(the readers whose `frequency` has an edition on their local date at `now`, the others):
    the rule `digest run` schedules by (digest/schedule.py). A plain `send` sends only the first;
    `--user` or `--date` (`asked`) sends the edition asked for, whatever the frequency."""
    if asked:
        return list(subs), []
    from digest.pipeline import local_date
    from digest.schedule import fires_on

    due = [s for s in subs if fires_on(s, local_date(s, now))]
    wanted = {s.id for s in due}
    return due, [s for s in subs if s.id not in wanted]


def _subscriptions(settings: Settings, users: tuple[str, ...]) -> LoadResult:
    from digest.config import load_subscriptions
    from digest.config.subscriptions import LoadResult
    from digest.editions import BuildProcess

    if not settings.sources:
        raise ConfigError("sources: no source configured (add at least one under `sources:`)")
    loaded = load_subscriptions(settings.subscriptions_dir, settings.source_names, processes=BuildProcess.cpus())
    for problem in loaded.problems:
        click.echo(str(problem), err=True)
    if not users:
        return loaded
    known = {s.id for s in loaded.subscriptions} | set(loaded.invalid)
    unknown = [u for u in users if u not in known]
    if unknown:
        raise click.UsageError(f"no subscription file for {', '.join(unknown)} in {settings.subscriptions_dir}")
    wanted = set(users)
    return LoadResult(
        [s for s in loaded.subscriptions if s.id in wanted],
        [p for p in loaded.problems if Path(p.path).stem in wanted],
        {k: v for k, v in loaded.invalid.items() if k in wanted},
    )
