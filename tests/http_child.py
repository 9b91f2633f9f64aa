"""`digest.web` in a child process with a lowered open-file limit (tests/test_web_limits.py).

    python tests/http_child.py NOFILE [--burn N] [--max-connections N] [--idle-timeout S]

Prints the bound port on stdout, logs to stderr, serves until killed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from digest.metrics import Metrics  # noqa: E402
from digest.web import make_app, start_server  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    app = make_app(secret=b"k" * 32, unsubscribe=lambda s: True, is_known=lambda s: True,
                   health=lambda: {"scheduler_running": True}, metrics=Metrics())
    options = {} if args.max_connections is None else {"max_connections": args.max_connections}
    if args.idle_timeout is not None:
        options["idle_timeout"] = args.idle_timeout
    server = await start_server(app, "127.0.0.1", 0, **options)
    burnt = [open(os.devnull) for _ in range(args.burn)]  # the fds something else would hold
    print(server.port, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for f in burnt:
            f.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("nofile", type=int)
    parser.add_argument("--burn", type=int, default=0)
    parser.add_argument("--max-connections", type=int)
    parser.add_argument("--idle-timeout", type=float)
    ns = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (ns.nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    asyncio.run(main(ns))
