"""The trending prior: upvotes, comments and recency, one number per paper.

    popularity = ln(1 + upvotes) + 0.5 * ln(1 + comments)
    freshness  = 2 ** (-age_days / 7)        age from `listed`, else `published`, to `now`
                                             (0.5 when the paper has neither)
    prior      = popularity * freshness      (0 for a paper nobody voted on or commented on)

Readers with no keywords get every paper ordered by the prior, then by newest, then by key (so
among papers without votes the newest come first). Readers with keywords get

    score = relevance + BOOST * prior / (prior + PRIOR_HALF)

a boost below ``BOOST`` (half of one abstract mention) that orders near-ties by popularity; the
boost never decides whether a paper is included.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import numpy as np

from ..models import Paper

__all__ = ["BOOST", "PRIOR_HALF", "HALF_LIFE_DAYS", "trending_prior", "paper_time", "boost"]

BOOST = 0.5
PRIOR_HALF = 3.0  # the prior of ~20 upvotes today: gets half of BOOST
HALF_LIFE_DAYS = 7.0
COMMENT_WEIGHT = 0.5


def paper_time(paper: Paper) -> dt.datetime | None:
    t = paper.listed or paper.published
    if t is not None and t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t


def _aware(now: dt.datetime) -> dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=dt.timezone.utc)


def trending_prior(papers: Sequence[Paper], now: dt.datetime) -> tuple[np.ndarray, np.ndarray]:
    """(prior, timestamp) per paper; timestamp is POSIX seconds, -inf when the paper has no date."""
    now = _aware(now)
    prior = np.zeros(len(papers))
    stamp = np.full(len(papers), -np.inf)
    for i, paper in enumerate(papers):
        pop = math.log1p(max(paper.upvotes or 0, 0)) + COMMENT_WEIGHT * math.log1p(
            max(paper.comments or 0, 0)
        )
        t = paper_time(paper)
        if t is None:
            fresh = 0.5  # unknown date: counted as a week old
        else:
            stamp[i] = t.timestamp()
            age = max((now - t).total_seconds() / 86400.0, 0.0)
            fresh = 2.0 ** (-age / HALF_LIFE_DAYS)
        prior[i] = pop * fresh
    return prior, stamp


def boost(prior: np.ndarray) -> np.ndarray:
    return BOOST * prior / (prior + PRIOR_HALF)
