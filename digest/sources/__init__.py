"""Sources stage: fetch every configured source concurrently, parse, and merge by identity.

Public API (used by the pipeline and the CLI):

    fetch_all(specs, *, day, client=None) -> list[SourceResult]   # never raises for one bad source
    merge(results) -> list[Paper]                                   # one Paper per identity key

Pure helpers: parse_hf_daily(data, source=...), parse_feed(data, source=...), paper_key(...),
parse_arxiv_id(text), normalise_url(url), normalise_doi(text).

Kinds of source: ``hf_daily`` (the HF Daily Papers JSON API; for an http(s) URL one request per
day from ``day - (lookback_days - 1)`` to ``day`` and per page ``p=0,1,...`` with
``limit=page_size``, stopping at a short page, at a page that repeats one already seen or at one
longer than ``limit`` (a static mirror ignores both); a local file is read once) and ``feed`` (any RSS/Atom feed, arXiv-aware).
A failed source gives a SourceResult with ``error`` = a one-line reason, logged on
``digest.sources``. ``extra`` carries ``kind``, ``requests``, ``warnings`` (skipped items, a bozo
feed used anyway) and ``note="empty"`` when a source answered with no papers.
"""

from __future__ import annotations

import importlib
from typing import Any

# Light and eager (the stdlib only): `merge` must be the function, not the submodule of that name.
from .identity import normalise_doi, normalise_url, paper_key, parse_arxiv_id
from .merge import merge

__all__ = [
    "fetch_all",
    "merge",
    "parse_hf_daily",
    "parse_feed",
    "paper_key",
    "parse_arxiv_id",
    "normalise_url",
    "normalise_doi",
]

# Imported on first use, so that `digest check` (which needs only digest.sources.text) does not
# pay for httpx and feedparser: the name -> the submodule that defines it.
_LAZY = {"fetch_all": "fetch", "KINDS": "fetch", "parse_hf_daily": "hf", "parse_feed": "feeds"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
