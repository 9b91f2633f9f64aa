"""`digest run` (the long-running service) and `digest resubscribe` (a reader's state in the
store). Registered on the `digest` group by digest/cli.py."""

from __future__ import annotations

import click

from digest.cli_base import App, edge, init_option, mailer_for, old_secrets_for, secret_for
from digest.errors import ConfigError, Problem
from digest.logs import setup_logging

__all__ = ["run", "resubscribe"]


@click.command()
@init_option
@click.pass_context
def run(ctx: click.Context, init: bool) -> None:
    """Run the service: each edition at the reader's local send_at, plus /healthz, /metrics and
    the unsubscribe endpoint on `listen`. Stops cleanly on SIGTERM or SIGINT; SIGHUP re-reads
    the subscription folder. Logs at info level unless --log-level or DIGEST_LOG_LEVEL says
    otherwise (a service should say what it sent)."""
    import asyncio

    from click.core import ParameterSource

    from digest.service import Service
    from digest.store import open_store

    app: App = ctx.obj
    if ctx.parent is not None and ctx.parent.get_parameter_source("log_level") in (ParameterSource.DEFAULT, None):
        app.log_level = "info"
        setup_logging(app.log_level)
    with edge():
        settings = app.settings()
        if not settings.sources:
            raise ConfigError("sources: no source configured (add at least one under `sources:`)")
        mailer_for(settings)  # a DKIM key that cannot be read stops the start, not every batch later
        store = open_store(settings.database_url, init=init)
        try:
            store.verify()
            service = Service(
                settings, store=store, mailer_factory=lambda: mailer_for(settings),
                secret=secret_for(settings, store), old_secrets=old_secrets_for(settings, store),
            )  # fmt: skip
            asyncio.run(service.run())
        finally:
            store.close()


@click.command()
@click.argument("user", metavar="ID")
@click.pass_obj
def resubscribe(app: App, user: str) -> None:
    """Undo an unsubscribe (or a suspension after repeated permanent failures).

    A reader with neither a subscription file nor a recorded state is an error (exit 2).
    """
    from digest.store import open_store

    with edge():
        settings = app.settings()
        folder = settings.subscriptions_dir
        has_file = any((folder / f"{user}{ext}").exists() for ext in (".yaml", ".yml"))
        store = open_store(settings.database_url, read_only=not has_file)
        try:
            if not has_file and user not in store.subscribers():
                raise ConfigError([Problem(f"digest resubscribe {user}", None, "ID",
                                           f"no such reader: no subscription file {user}.yaml in {folder} "
                                           "and nothing recorded for them")])  # fmt: skip
            if not has_file:  # a reader whose file was removed: their recorded state can still go
                store.close()
                store = open_store(settings.database_url)
            changed = store.resubscribe(user)
        finally:
            store.close()
    click.echo(f"{user}: {'subscribed again' if changed else 'was not unsubscribed or suspended'}")
