"""What `digest send` tells the person running it: progress while it runs (a bar in a terminal,
a line every few seconds otherwise) and the outcome of every reader with a summary at the end."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from digest.runstate import Outcome

__all__ = ["Run", "progress", "print_outcomes", "outcome_json", "JSON_KEYS"]

# Every `send --json` row has exactly these keys, whatever its status (null when not known).
JSON_KEYS = ("user", "status", "papers", "message_id", "date", "error")


class Run:
    """What `progress` hands out: `advance(outcome)` for each reader, and the run's wall time in
    `seconds` once the block ends (for the summary)."""

    def __init__(self, advance: Callable[[Outcome], None] = lambda outcome: None) -> None:
        self.advance = advance
        self.seconds: float | None = None


@contextmanager
def progress(total: int, *, every: float = 5.0) -> Iterator[Run]:
    """Progress over subscribers: a bar when stderr is a terminal, else a line on stderr every
    `every` seconds (`sending: 4,100/10,000 (41%): 4,000 sent, 100 skipped, 0 failed; 512/s`)."""
    started = time.monotonic()
    run = Run()
    counts = {"done": 0, "sent": 0, "skipped": 0, "failed": 0}

    def count(outcome: Outcome) -> None:
        counts["done"] += 1
        if outcome.status in ("sent", "dry-run"):
            counts["sent"] += 1
        elif outcome.failed:
            counts["failed"] += 1
        else:
            counts["skipped"] += 1

    try:
        if total <= 1:
            yield run
        elif sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                       TextColumn("{task.fields[rate]}"), TimeElapsedColumn())  # fmt: skip
            with Progress(*columns, transient=True, console=_stderr_console()) as progress:
                task = progress.add_task("sending", total=total, rate="")

                def advance(outcome: Outcome) -> None:
                    count(outcome)
                    seconds = time.monotonic() - started
                    rate = f"{counts['sent'] / seconds:,.0f}/s" if seconds > 0 else ""
                    progress.update(task, advance=1, rate=rate)

                run.advance = advance
                yield run
        else:
            last = [started]

            def line(outcome: Outcome) -> None:
                count(outcome)
                now = time.monotonic()
                if now - last[0] < every or counts["done"] == total:
                    return
                last[0] = now
                seconds = now - started
                click.echo(
                    f"sending: {counts['done']:,}/{total:,} ({100 * counts['done'] // total}%): "
                    f"{counts['sent']:,} sent, {counts['skipped']:,} skipped, {counts['failed']:,} failed; "
                    f"{counts['sent'] / seconds:,.0f}/s, {seconds:.0f} s",
                    err=True,
                )

            run.advance = line
            yield run
    finally:
        run.seconds = time.monotonic() - started


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def outcome_json(o: Outcome) -> dict[str, object]:
    """One `send --json` row: the keys of JSON_KEYS, in that order, for every status."""
    return {
        "user": o.user,
        "status": o.status,
        "papers": o.papers,
        "message_id": o.message_id,
        "date": o.edition_date.isoformat() if o.edition_date else None,
        "error": o.error or None,
    }


def print_outcomes(outcomes: list[Outcome], as_json: bool, seconds: float | None = None) -> None:
    """One line per subscriber on stdout (or the JSON document), then a summary on stderr:
    `5 subscribers: 3 sent, 1 skipped (1 paused), 1 failed in 2.1 s (1.4 messages/s); mean message
    31,412 bytes` (the time and rate when `seconds` is known)."""
    if as_json:
        click.echo(json.dumps([outcome_json(o) for o in outcomes], indent=2))
    else:
        width = max((len(o.user) for o in outcomes), default=4)
        for o in outcomes:
            line = f"{o.user:<{width}}  {o.status:<16} {o.papers:>3} papers"
            if o.edition_date:
                line += f"  {o.edition_date.isoformat()}"
            if o.message_id:
                line += f"  {o.message_id}"
            if o.error:
                line += f"  ({o.error})"
            click.echo(line)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    sent, dry, failed = counts.get("sent", 0), counts.get("dry-run", 0), counts.get("failed", 0)
    skipped = {k.removeprefix("skipped-"): n for k, n in sorted(counts.items()) if k.startswith("skipped-")}
    parts = [f"{dry} dry-run"] if dry else []
    if sent or not dry:
        parts.append(f"{sent} sent")
    n_skipped = sum(skipped.values())
    detail = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
    parts.append(f"{n_skipped} skipped" + (f" ({detail})" if detail else ""))
    parts.append(f"{failed} failed")
    if counts.get("already-sent"):
        parts.append(f"{counts['already-sent']} already sent")
    summary = f"{len(outcomes)} subscribers: {', '.join(parts)}"
    if seconds is not None:
        rate = (sent + dry) / seconds if seconds > 0 else 0.0
        summary += f" in {seconds:.1f} s ({rate:.1f} messages/s)"
    sizes = [o.size for o in outcomes if o.size]
    if sizes:
        summary += f"; mean message {sum(sizes) / len(sizes):,.0f} bytes"
    click.echo(summary, err=True)
