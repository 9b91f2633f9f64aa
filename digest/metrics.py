"""Prometheus metrics of ``digest run``, in a registry of their own.

Each :class:`Metrics` owns a fresh ``CollectorRegistry`` (never the process-global one), so tests
and several app instances in one process do not collide. Exposed names (all prefixed ``digest_``):

=========================================  =========  ===========  =====================================
name                                       type       labels       meaning
=========================================  =========  ===========  =====================================
digest_digests_sent_total                  counter               digests accepted by the relay/outbox
digest_digests_failed_total                counter    reason       digests that could not be delivered
digest_digests_skipped_total               counter    reason       editions not sent (empty, paused, ...)
digest_papers_fetched_total                counter    source       papers a source returned
digest_source_errors_total                 counter    source       fetches of a source that failed
digest_send_seconds                        histogram               time to deliver one digest
digest_editions_pending                    gauge                   editions due and not yet done
digest_last_success_timestamp_seconds      gauge                   Unix time of the last good run
digest_unsubscribes_total                  counter                 unsubscribes through the web endpoint
=========================================  =========  ===========  =====================================
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics", "render_latest", "CONTENT_TYPE"]

CONTENT_TYPE = CONTENT_TYPE_LATEST  # the Content-Type that goes with render_latest()

_SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """The service's counters, histograms and gauges. Cheap to create; one per app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.digests_sent = Counter(
            "digest_digests_sent", "Digests accepted by the relay or written to the outbox.",
            registry=r,
        )
        self.digests_failed = Counter(
            "digest_digests_failed", "Digests that could not be delivered, by reason.",
            ["reason"], registry=r,
        )
        self.digests_skipped = Counter(
            "digest_digests_skipped", "Editions not sent, by reason (empty, paused, ...).",
            ["reason"], registry=r,
        )
        self.papers_fetched = Counter(
            "digest_papers_fetched", "Papers a source returned.", ["source"], registry=r
        )
        self.source_errors = Counter(
            "digest_source_errors", "Fetches of a source that failed.", ["source"], registry=r
        )
        self.send_seconds = Histogram(
            "digest_send_seconds", "Seconds to deliver one digest.", buckets=_SEND_BUCKETS,
            registry=r,
        )
        self.editions_pending = Gauge(
            "digest_editions_pending", "Editions due and not yet sent or skipped.", registry=r
        )
        self.last_success = Gauge(
            "digest_last_success_timestamp_seconds",
            "Unix time at which the last run finished without failures.", registry=r,
        )
        self.unsubscribes = Counter(
            "digest_unsubscribes", "Unsubscribes through the web endpoint.", registry=r
        )

    # Small helpers so callers need not know label names.
    def sent(self, seconds: float | None = None) -> None:
        self.digests_sent.inc()
        if seconds is not None:
            self.send_seconds.observe(seconds)

    def failed(self, reason: str) -> None:
        self.digests_failed.labels(reason=reason).inc()

    def skipped(self, reason: str) -> None:
        self.digests_skipped.labels(reason=reason).inc()

    def fetched(self, source: str, papers: int, *, error: bool = False) -> None:
        self.papers_fetched.labels(source=source).inc(papers)
        if error:
            self.source_errors.labels(source=source).inc()

    def run_succeeded(self, at: float | None = None) -> None:
        self.last_success.set(time.time() if at is None else at)


def render_latest(metrics: Metrics) -> bytes:
    """The Prometheus text exposition of ``metrics``; serve it with :data:`CONTENT_TYPE`."""
    return generate_latest(metrics.registry)
