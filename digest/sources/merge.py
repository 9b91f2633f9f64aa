"""Merge the papers of several sources into one Paper per identity key. Pure.

What each merged field keeps:

- title, abstract: arXiv's (feeds and the API) before Hugging Face's, because HF may carry a copy
  with TeX stripped (``12.1times``) and hard wraps; among arXiv records the longest non-empty
  abstract (title: from the highest version). HF's text is used only when no other source has one.
- authors: the list with the most affiliations, then the longest, arXiv first on ties.
- url: ``https://arxiv.org/abs/<id>`` for arXiv papers, else the first link.
- version: the highest; published: the earliest; listed: the latest (most recent listing).
- categories: union, arXiv order (primary first); doi, journal_ref: the first given.
- upvotes, comments, github_stars: the highest; github_repo, project_page, organization,
  ai_summary, ai_keywords: the first given (HF); announce_type: from the highest version
  (``new`` before ``cross`` before ``replace`` on the same version); withdrawn if any says so.
- sources: union of source names in the order of the results (spec order).

A ``doi:`` key whose DOI an arXiv record also carries joins that arXiv paper.
Output is sorted by key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from digest.models import Paper, SourceResult

from .identity import arxiv_abs_url

__all__ = ["merge"]

T = TypeVar("T")
_ANNOUNCE_ORDER = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3}


@dataclass(frozen=True, slots=True)
class _Item:
    paper: Paper
    is_hf: bool
    order: int  # index of its result, then of the paper inside it


def _first(values: Iterable[T | None]) -> T | None:
    for v in values:
        if v:
            return v
    return None


def _max(values: Iterable[T | None]) -> T | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None  # type: ignore[type-var]


def _min(values: Iterable[T | None]) -> T | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None  # type: ignore[type-var]


def _combine(key: str, items: list[_Item], source_rank: dict[str, int]) -> Paper:
    ranked = sorted(items, key=lambda i: (i.is_hf, -(i.paper.version or 0), i.order))
    papers = [i.paper for i in ranked]
    arxiv_side = [i.paper for i in ranked if not i.is_hf]
    hf_side = [i.paper for i in ranked if i.is_hf]
    abstracts = [p.abstract for p in arxiv_side if p.abstract] or [p.abstract for p in hf_side if p.abstract]
    abstract = max(abstracts, key=len) if abstracts else ""  # max keeps the first of equal length
    authors = max((p.authors for p in papers), key=lambda a: (sum(1 for x in a if x.affiliation), len(a)))
    arxiv_id = _first(p.arxiv_id for p in papers)
    announced = [p for p in arxiv_side if p.announce_type]
    announced.sort(key=lambda p: (-(p.version or 0), _ANNOUNCE_ORDER.get(p.announce_type or "", 9)))
    names: dict[str, tuple[int, int]] = {}
    for i in items:
        for n, name in enumerate(i.paper.sources):
            names.setdefault(name, (source_rank.get(name, len(source_rank)), i.order * 100 + n))
    return Paper(
        key=key,
        title=_first(p.title for p in papers) or "",
        abstract=abstract,
        authors=authors,
        url=arxiv_abs_url(arxiv_id) if arxiv_id else (_first(p.url for p in papers) or ""),
        arxiv_id=arxiv_id,
        version=_max(p.version for p in papers),
        doi=_first(p.doi for p in papers),
        published=_min(p.published for p in papers),
        listed=_max(p.listed for p in papers),
        categories=tuple(dict.fromkeys(c for p in papers for c in p.categories)),
        upvotes=_max(p.upvotes for p in papers),
        comments=_max(p.comments for p in papers),
        github_repo=_first(p.github_repo for p in papers),
        github_stars=_max(p.github_stars for p in papers),
        project_page=_first(p.project_page for p in papers),
        organization=_first(p.organization for p in papers),
        ai_summary=_first(p.ai_summary for p in papers),
        ai_keywords=_first(p.ai_keywords for p in papers) or (),
        announce_type=announced[0].announce_type if announced else None,
        journal_ref=_first(p.journal_ref for p in papers),
        withdrawn=any(p.withdrawn for p in papers),
        sources=tuple(sorted(names, key=lambda n: names[n])),
    )


def _is_hf(result: SourceResult, paper: Paper) -> bool:
    kind = result.extra.get("kind") if isinstance(result.extra, dict) else None
    if kind is not None:
        return kind == "hf_daily"
    return paper.upvotes is not None  # only HF has votes


def _merge_items(items: list[_Item], source_rank: dict[str, int]) -> list[Paper]:
    doi_alias = {f"doi:{i.paper.doi}": i.paper.key for i in items
                 if i.paper.doi and i.paper.key.startswith("arxiv:")}  # fmt: skip
    groups: dict[str, list[_Item]] = {}
    for i in items:
        groups.setdefault(doi_alias.get(i.paper.key, i.paper.key), []).append(i)
    return [_combine(k, groups[k], source_rank) for k in sorted(groups)]


def merge(results: Iterable[SourceResult]) -> list[Paper]:
    """One Paper per identity key across all ok results, sorted by key (see the module doc)."""
    items: list[_Item] = []
    source_rank: dict[str, int] = {}
    for r_index, result in enumerate(results):
        source_rank.setdefault(result.name, r_index)
        if not result.ok:
            continue
        for p_index, paper in enumerate(result.papers):
            items.append(_Item(paper, _is_hf(result, paper), r_index * 1_000_000 + p_index))
    return _merge_items(items, source_rank)
