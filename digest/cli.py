"""The `digest` command: the composition root. Only here are concrete backends chosen and errors
turned into exit codes (0 all good, 1 some subscribers or sources failed, 2 configuration/usage)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from digest import __version__
from digest.config import Settings, load_settings, load_subscriptions
from digest.config.subscriptions import LoadResult
from digest.deliver import Mailer
from digest.deliver.files import MaildirMailer, PreviewMailer
from digest.deliver.smtp import SmtpMailer
from digest.editions import BuildProcess
from digest.errors import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL, ConfigError, DigestError
from digest.logs import setup_logging
from digest.models import Paper, Subscription
from digest.pipeline import Delivery, Outcome, gather, invalid_outcomes, local_date, plan, send_editions
from digest.rank import Ranker
from digest.ratings import load_ratings, paper_vectors
from digest.render import Renderer
from digest.report import print_outcomes, progress
from digest.store import Store, open_store
from digest.store.retention import prune
from digest.store.sqlite import worker_id
from digest.cli_rate import rate as rate_command

__all__ = ["main", "cli"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@dataclasses.dataclass
class App:
    config: Path | None
    log_level: str

    def settings(self) -> Settings:
        settings = load_settings(self.config)
        setup_logging(self.log_level, settings.log_format)
        return settings


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD") from None


@contextmanager
def _edge() -> Iterator[None]:
    """Turn digest errors into a message on stderr and an exit code; no traceback for user errors."""
    try:
        yield
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_CONFIG)
    except DigestError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


@click.group(context_settings=CONTEXT)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Settings file [default: $DIGEST_CONFIG or config/digest.yaml].",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    envvar="DIGEST_LOG_LEVEL",
    help="Log detail (logs go to stderr).",
)
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_level: str) -> None:
    """Email each reader the newest trending papers that match their interests."""
    setup_logging(log_level)
    ctx.obj = App(config, log_level)


_init_option = click.option(
    "--init",
    is_flag=True,
    help="If the SQLite database is empty or damaged, move it aside (kept as <file>.damaged-<time>) "
    "and start a new one. Use once; a sound database is kept.",
)


# -- send ---------------------------------------------------------------------------------


@cli.command()
@click.option("--dry-run", is_flag=True, help="Render into --out; send nothing, record nothing.")
@click.option("--user", "users", multiple=True, metavar="ID", help="Only these subscribers (repeatable).")
@click.option("--date", "date", callback=_date, metavar="YYYY-MM-DD", help="Edition date [default: each subscriber's local date].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("outbox-preview"), show_default=True, help="Where --dry-run writes <id>.eml/.html/.txt.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@_init_option
@click.pass_obj
def send(
    app: App, dry_run: bool, users: tuple[str, ...], date: dt.date | None, out: Path, as_json: bool, init: bool
) -> None:
    """Build and send today's edition to every active subscriber who has not had it yet.

    Example: digest send --dry-run --user alice
    """
    with _edge():
        settings = app.settings()
        if init and dry_run:
            raise click.UsageError("--init starts a new database; --dry-run never writes one")
        loaded = _subscriptions(settings, users)
        now = dt.datetime.now(dt.timezone.utc)
        outcomes, source_failed, seconds, halted = asyncio.run(_send(settings, loaded, now, date, dry_run, out, init))
    print_outcomes(outcomes, as_json, seconds)
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
) -> tuple[list[Outcome], bool, float | None, str | None]:
    """Every reader's outcome, whether a source failed, the seconds the sending took, and why the
    run halted (None: it did not)."""
    subs = loaded.subscriptions
    day = date or now.date()
    papers, results = await gather(settings.source_specs, day=day)
    source_failed = any(not r.ok for r in results)
    outcomes = invalid_outcomes(loaded.invalid)
    if results and all(not r.ok for r in results):
        reason = "; ".join(f"{r.name}: {r.error}" for r in results)
        return outcomes + [
            Outcome(s.id, "skipped-no-sources", edition_date=date or local_date(s, now), error=reason) for s in subs
        ], True, None, None
    store = open_store(settings.database_url, read_only=dry_run, init=init)
    try:
        store.verify()  # a damaged database is refused before anything is sent
        mailer = PreviewMailer(out) if dry_run else _mailer(settings)
        delivery = Delivery(
            store=store,
            mailer=mailer,
            renderer=Renderer(),
            sender=settings.sender,
            public_url=settings.public_url,
            secret=_secret(settings, store),
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
        if not dry_run and delivery.halted is None:  # once a day: what retention no longer needs
            listed = {p.key for p in papers}
            prune(store, retention=settings.retention, listed=listed, complete=not source_failed, now=now)
    finally:
        store.close()
    return outcomes, source_failed, run.seconds, delivery.halted


def _mailer(settings: Settings) -> Mailer:
    smtp = settings.smtp
    if not smtp.host:
        return MaildirMailer(settings.outbox)
    return SmtpMailer(
        host=smtp.host,
        port=smtp.port,
        tls=smtp.tls,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        timeout=smtp.timeout,
        deadline=smtp.deadline,
        connections=smtp.connections,
        messages_per_connection=smtp.messages_per_connection,
        rate_limit=smtp.rate_limit,
        retries=smtp.retries,
        validate_certs=smtp.validate_certs,
        halt_after=smtp.halt_after,
    )


def _secret(settings: Settings, store: Store) -> bytes:
    """The key that signs new links: `secret_key`, else the one generated in the database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return store.secret()


def _old_secrets(settings: Settings, store: Store) -> tuple[bytes, ...]:
    """Keys still accepted on links already mailed: `old_secret_keys`, plus the database's
    generated key once `secret_key` is set (so moving to a configured key breaks no link)."""
    old = [k.get_secret_value().encode() for k in settings.old_secret_keys]
    if settings.secret_key is not None:
        old.append(store.secret())
    current = _secret(settings, store)
    return tuple(dict.fromkeys(k for k in old if k != current))


def _subscriptions(settings: Settings, users: tuple[str, ...]) -> LoadResult:
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
        raise click.UsageError(
            f"no subscription file for {', '.join(unknown)} in {settings.subscriptions_dir}"
        )
    wanted = set(users)
    return LoadResult(
        [s for s in loaded.subscriptions if s.id in wanted],
        [p for p in loaded.problems if Path(p.path).stem in wanted],
        {k: v for k, v in loaded.invalid.items() if k in wanted},
    )


# -- check --------------------------------------------------------------------------------


@cli.command()
@click.pass_obj
def check(app: App) -> None:
    """Validate settings and every subscription file; print `path:line: field: message`.

    Exit 2 if there is any problem. Also reports subscribers who unsubscribed or were suspended,
    and reads every page of an SQLite database (PRAGMA quick_check): damaged, exit 1.
    """
    with _edge():
        settings = app.settings()
        loaded = load_subscriptions(settings.subscriptions_dir, settings.source_names)
        problems = list(loaded.problems)
        if not settings.sources:
            click.echo("settings: sources: no source configured", err=True)
        for problem in problems:
            click.echo(str(problem))
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
        if problems or not settings.sources:
            sys.exit(EXIT_CONFIG)


# -- fetch --------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@click.option("--date", "date", callback=_date, metavar="YYYY-MM-DD", help="Day to fetch [default: today, UTC].")
@click.pass_obj
def fetch(app: App, as_json: bool, date: dt.date | None) -> None:
    """Fetch every configured source and print the normalised, merged papers."""
    with _edge():
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


# -- rank ---------------------------------------------------------------------------------


@cli.command()
@click.option("--user", "user", required=True, metavar="ID", help="The subscriber.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="How many [default: their max_papers; 0: all that qualify].")
@click.pass_obj
def rank(app: App, user: str, as_json: bool, limit: int | None) -> None:
    """Show what the next edition would include for one subscriber, best first, and why.

    Sends nothing and marks nothing.
    """
    with _edge():
        settings = app.settings()
        sub = _one_subscription(settings, user)
        now = dt.datetime.now(dt.timezone.utc)
        papers, results = asyncio.run(gather(settings.source_specs, day=now.date()))
        store = open_store(settings.database_url)  # writes only the vectors of papers new to it
        try:
            seen = store.seen(sub.id)
            vectors, _ = paper_vectors(store, papers, now=now)
            rated = load_ratings(store, [sub.id])[sub.id]
        finally:
            store.close()
        ranker = Ranker(papers, now=now, semantic=settings.semantic, vectors=vectors)
        edition = plan(
            dataclasses.replace(sub, max_papers=10**9), ranker, seen=seen, papers=papers,
            edition_date=local_date(sub, now), rated=rated,
        )  # fmt: skip
    for result in results:
        if not result.ok:
            click.echo(f"source {result.name}: FAILED: {result.error}", err=True)
    limit = sub.max_papers if limit is None else limit
    chosen = edition.papers[:limit] if limit else edition.papers
    if as_json:
        rows = [
            {
                "paper_id": s.paper.key,
                "title": s.paper.title,
                "score": round(s.score, 4),
                "matched": list(s.matched_terms),
                "url": s.paper.url,
                "via": s.via,  # what put it there: keywords | model | explore | trending
            }
            for s in chosen
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for s in chosen:
            via = "" if s.via in ("keywords", "trending") else f"  [{s.via}]"
            click.echo(f"{s.score:7.3f}  {s.paper.title}\n         {s.why}{via}")
    sys.exit(EXIT_PARTIAL if any(not r.ok for r in results) else EXIT_OK)


def _one_subscription(settings: Settings, user: str) -> Subscription:
    path = next(
        (p for p in (settings.subscriptions_dir / f"{user}.yaml", settings.subscriptions_dir / f"{user}.yml") if p.exists()),
        None,
    )
    if path is None:
        raise click.UsageError(f"no subscription file for {user!r} in {settings.subscriptions_dir}")
    from digest.config import load_subscription

    result = load_subscription(path, settings.source_names)
    if not isinstance(result, Subscription):
        raise ConfigError(result)
    return result


# -- run ----------------------------------------------------------------------------------


@cli.command()
@_init_option
@click.pass_context
def run(ctx: click.Context, init: bool) -> None:
    """Run the service: each edition at the reader's local send_at, plus /healthz, /metrics and
    the unsubscribe endpoint on `listen`. Stops cleanly on SIGTERM or SIGINT; SIGHUP re-reads
    the subscription folder. Logs at info level unless --log-level or DIGEST_LOG_LEVEL says
    otherwise (a service should say what it sent)."""
    from click.core import ParameterSource

    from digest.service import Service

    app: App = ctx.obj
    if ctx.parent is not None and ctx.parent.get_parameter_source("log_level") in (ParameterSource.DEFAULT, None):
        app.log_level = "info"
        setup_logging(app.log_level)
    with _edge():
        settings = app.settings()
        if not settings.sources:
            raise ConfigError("sources: no source configured (add at least one under `sources:`)")
        store = open_store(settings.database_url, init=init)
        try:
            store.verify()
            service = Service(
                settings, store=store, mailer_factory=lambda: _mailer(settings), secret=_secret(settings, store),
                old_secrets=_old_secrets(settings, store),
            )
            asyncio.run(service.run())
        finally:
            store.close()


# -- reader state -------------------------------------------------------------------------


@cli.command()
@click.argument("user", metavar="ID")
@click.pass_obj
def resubscribe(app: App, user: str) -> None:
    """Undo an unsubscribe (or a suspension after repeated permanent failures)."""
    with _edge():
        settings = app.settings()
        store = open_store(settings.database_url)
        try:
            changed = store.resubscribe(user)
        finally:
            store.close()
    click.echo(f"{user}: {'subscribed again' if changed else 'was not unsubscribed or suspended'}")


cli.add_command(rate_command)


def main() -> None:
    cli(prog_name="digest")
