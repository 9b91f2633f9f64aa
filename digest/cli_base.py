"""What every `digest` command shares: the App handed to each command (settings on demand), the
error edge (digest errors -> a message and an exit code), option helpers, and the choice of
backends (mailer, signing keys).

Imports stay light here and in every digest/cli_*.py module: `digest --help` and `digest check`
must answer at once, so numpy, scipy, httpx, aiohttp, feedparser, jinja2 and the rest are imported
inside the commands that need them (bench/cli_start.py measures it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.errors import EXIT_CONFIG, ConfigError, DigestError, Problem
from digest.logs import setup_logging

if TYPE_CHECKING:
    from digest.config import Settings
    from digest.deliver import Mailer
    from digest.models import Subscription
    from digest.store import Store

__all__ = ["App", "edge", "parse_date", "init_option", "mailer_for", "secret_for", "old_secrets_for", "one_subscription"]

DEFAULT_CONFIG = Path("config/digest.yaml")  # the same default as digest.config.settings


@dataclasses.dataclass
class App:
    config: Path | None
    log_level: str

    def settings(self) -> Settings:
        """The settings; ConfigError when there are none at all here: no settings file at the
        default place, none named, and no source configured through the environment (a command
        run from the wrong directory must say so, not "no source configured" or, worse, create a
        new database in that directory)."""
        from digest.config import load_settings

        settings = load_settings(self.config)
        setup_logging(self.log_level, settings.log_format)
        explicit = self.config is not None or "DIGEST_CONFIG" in os.environ
        if not explicit and not DEFAULT_CONFIG.exists() and not settings.sources:
            where = Path.cwd() / DEFAULT_CONFIG
            raise ConfigError([Problem(str(DEFAULT_CONFIG), None, "-",
                                       f"no {DEFAULT_CONFIG} here (looked at {where}; use --config PATH "
                                       "or DIGEST_CONFIG, or run digest from the folder that holds config/)")])  # fmt: skip
        return settings


def parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD") from None


@contextmanager
def edge() -> Iterator[None]:
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


init_option = click.option(
    "--init",
    is_flag=True,
    help="If the SQLite database is empty or damaged, move it aside (kept as <file>.damaged-<time>) "
    "and start a new one. Use once; a sound database is kept.",
)


def mailer_for(settings: Settings) -> Mailer:
    """The SMTP pool when `smtp.host` is set, else the Maildir outbox."""
    from digest.deliver.dkim import sign_with  # DKIM-signs each message when `dkim:` is set

    smtp = settings.smtp
    if not smtp.host:
        from digest.deliver.files import MaildirMailer

        return sign_with(MaildirMailer(settings.outbox), settings.dkim)
    from digest.deliver.smtp import SmtpMailer

    return sign_with(SmtpMailer(
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
    ), settings.dkim)


def secret_for(settings: Settings, store: Store) -> bytes:
    """The key that signs new links: `secret_key`, else the one generated in the database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    return store.secret()


def old_secrets_for(settings: Settings, store: Store) -> tuple[bytes, ...]:
    """Keys still accepted on links already mailed: `old_secret_keys`, plus the database's
    generated key once `secret_key` is set (so moving to a configured key breaks no link)."""
    old = [k.get_secret_value().encode() for k in settings.old_secret_keys]
    if settings.secret_key is not None:
        old.append(store.secret())
    current = secret_for(settings, store)
    return tuple(dict.fromkeys(k for k in old if k != current))


def one_subscription(settings: Settings, user: str) -> Subscription:
    """The subscriber `user`, from their file; UsageError when there is none, ConfigError when it
    is broken."""
    from digest.config import load_subscription
    from digest.models import Subscription

    folder = settings.subscriptions_dir
    path = next((p for p in (folder / f"{user}.yaml", folder / f"{user}.yml") if p.exists()), None)
    if path is None:
        raise click.UsageError(f"no subscription file for {user!r} in {folder}")
    result = load_subscription(path, settings.source_names)
    if not isinstance(result, Subscription):
        raise ConfigError(result)
    return result
