"""The `digest` command: the composition root. Only here (and in the digest/cli_*.py modules it
registers) are concrete backends chosen and errors turned into exit codes (0 all good, 1 some
subscribers or sources failed, 2 configuration/usage).

One module per group of commands, each importing what it needs only when it runs, so that
`digest --help` and `digest check` answer at once (bench/cli_start.py):

    cli_base.py     App (settings on demand), the error edge, shared options, mailer and keys
    cli_send.py     send (and --dry-run, with digest/preview.py)
    cli_inspect.py  check, fetch, rank
    cli_service.py  run, resubscribe
    cli_rate.py     rate
"""

from __future__ import annotations

from pathlib import Path

import click

from digest import __version__
from digest.cli_base import App
from digest.cli_base import old_secrets_for as _old_secrets
from digest.cli_base import secret_for as _secret
from digest.cli_inspect import check, fetch, rank
from digest.cli_rate import rate
from digest.cli_send import send
from digest.cli_service import resubscribe, run
from digest.logs import setup_logging

__all__ = ["main", "cli", "_secret", "_old_secrets"]  # the last two: names older callers import

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
    """Email each reader the newest trending papers that match their interests.

    Run from the folder that holds config/digest.yaml (or give --config). First time: `digest
    check`, then `digest send --dry-run` to preview, then `digest send`.
    """
    setup_logging(log_level)
    ctx.obj = App(config, log_level)


for command in (send, run, check, fetch, rank, rate, resubscribe):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="digest")
