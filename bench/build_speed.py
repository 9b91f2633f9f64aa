"""CPU per reader of what the helper process does for each digest, on the send benchmark's data.

    .venv/bin/python bench/build_speed.py              # the 10,000 readers of bench/data/
    .venv/bin/python bench/build_speed.py -n 3000

Uses bench/data/ as bench/send_throughput.py leaves it (generated the same way when missing). One
process, no SMTP, no store, no ratings: the readers are planned (the vectorised ranking the sending
process does), then built in batches of 16 as `digest send`'s helper builds them, each step timed
on its own (process CPU time, per reader):

  editions  the ScoredPaper objects of what each message shows (matches, the why line)
  render    the template context, the plain-text and the HTML templates (signed links included)
  mime      the message bytes (build_message), made by the helper when it is ahead of the senders

One pass, caches cold at the start as in a real run (they warm up over the readers, as they do in
`digest send`). The machine's other work shows in CPU time too: run it a few times, read the lowest.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from send_throughput import DATA, DAY, generate  # noqa: E402

from digest.config import load_subscriptions  # noqa: E402
from digest.config.settings import load_settings  # noqa: E402
from digest.editions import Builder, Built  # noqa: E402
from digest.pipeline import gather  # noqa: E402
from digest.rank import Ranker  # noqa: E402
from digest.render import Renderer  # noqa: E402

BATCH = 16  # readers a helper builds between two looks at the event loop (build_in_process)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--readers", type=int, default=10_000, help="the first N readers of bench/data/")
    args = ap.parse_args()

    config = DATA / "digest.yaml"
    if not config.exists():
        config = generate(10_000, 1_000, 25, 4, 20251009)  # the port is never used here
    settings = load_settings(config)
    subs = load_subscriptions(settings.subscriptions_dir, settings.source_names, processes=1).subscriptions
    subs = subs[: args.readers]
    papers, _ = asyncio.run(gather(settings.source_specs, day=DAY))
    now = dt.datetime.combine(DAY, dt.time(8), dt.timezone.utc)
    builder = Builder(
        Ranker(papers, now=now), subs, {}, Renderer(),
        sender=settings.sender, public_url=settings.public_url, secret=b"b" * 32, now=now,
    )  # fmt: skip

    cpu = {"plan": 0.0, "editions": 0.0, "render": 0.0, "mime": 0.0}
    size = 0
    for lo in range(0, len(subs), 256):  # the pipeline's chunk
        indexes = list(range(lo, min(lo + 256, len(subs))))
        t0 = time.process_time()
        items = [builder.item(i, DAY, planned) for i, planned in zip(indexes, builder.plan(indexes))]
        cpu["plan"] += time.process_time() - t0
        for b in range(0, len(items), BATCH):
            batch = items[b : b + BATCH]
            t0 = time.process_time()
            editions = builder.editions(batch)
            t1 = time.process_time()
            rendered = [builder.render(e) for e in editions]
            t2 = time.process_time()
            for item, (parts, link) in zip(batch, rendered):
                size += len(builder.finish(Built(item.index, item.day, "ok", None, parts, link)).data)
            t3 = time.process_time()
            cpu["editions"] += t1 - t0
            cpu["render"] += t2 - t1
            cpu["mime"] += t3 - t2
    n = max(len(subs), 1)
    helper = cpu["editions"] + cpu["render"] + cpu["mime"]
    print(f"{len(subs):,} readers, {len(papers):,} papers; CPU ms per reader:")
    for stage, seconds in cpu.items():
        print(f"  {stage:<9} {seconds / n * 1e3:6.3f}")
    print(f"  helper    {helper / n * 1e3:6.3f}  (editions + render + mime)")
    print(f"mean message {size / n / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
