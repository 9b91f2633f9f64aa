"""Canonical paper identity: arXiv ids, DOIs and links. Pure functions, no I/O.

A key is ``arxiv:<base id>`` (no version; old-style ids without their subject class), else
``doi:<lower-cased doi>`` (an arXiv DOI ``10.48550/arXiv.<id>`` gives the arxiv key), else
``url:<normalised link>``. :func:`title_key` is the last resort for items with no usable link.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "parse_arxiv_id",
    "paper_key",
    "arxiv_key",
    "arxiv_abs_url",
    "normalise_doi",
    "normalise_url",
    "title_key",
]

# Archives of the old scheme (9107-0703), from arxiv_identifier.md.
OLD_ARCHIVES = frozenset(
    "acc-phys adap-org alg-geom ao-sci astro-ph atom-ph bayes-an chao-dyn chem-ph cmp-lg comp-gas "
    "cond-mat cs dg-ga funct-an gr-qc hep-ex hep-lat hep-ph hep-th math math-ph mtrl-th nlin "
    "nucl-ex nucl-th patt-sol physics plasm-ph q-alg q-bio quant-ph solv-int supr-con".split()
)

_NEW_RE = re.compile(r"(\d{2})(\d{2})\.(\d{4,5})(?:v(\d+))?", re.IGNORECASE)
_OLD_RE = re.compile(
    r"([a-z]+(?:-[a-z]+)*)(?:\.[a-z]+(?:-[a-z]+)*)?/(\d{2})(\d{2})(\d{3})(?:v(\d+))?", re.IGNORECASE
)
_PREFIX_RE = re.compile(r"^(?:oai:arxiv\.org:|arxiv:)", re.IGNORECASE)
_ARXIV_HOSTS = {"arxiv.org", "www.arxiv.org", "export.arxiv.org", "rss.arxiv.org", "xxx.lanl.gov"}
_ARXIV_PATHS = ("/abs/", "/pdf/", "/html/", "/format/", "/ps/")
_HF_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
_ARXIV_DOI_RE = re.compile(r"^10\.48550/arxiv\.(.+)$", re.IGNORECASE)
_DOI_PREFIX_RE = re.compile(
    r"^(?:doi:\s*|https?://(?:dx\.)?doi\.org/|https?://(?:www\.)?doi\.org/)", re.IGNORECASE
)

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
        "_hsenc", "_hsmi", "ref", "ref_src", "ref_url", "source", "spm", "cmpid", "ncid",
    }
)  # fmt: skip


def _match_bare(text: str) -> tuple[str, int | None] | None:
    m = _NEW_RE.fullmatch(text)
    if m:
        yy, mm, num, ver = m.groups()
        yymm = int(yy + mm)
        if not 1 <= int(mm) <= 12 or yymm < 704:
            return None
        if (len(num) == 4) != (yymm <= 1412):
            return None
        version = int(ver) if ver is not None else None
        if version == 0:
            return None
        return f"{yy}{mm}.{num}", version
    m = _OLD_RE.fullmatch(text)
    if m:
        archive, yy, mm, num, ver = m.groups()
        archive = archive.lower()
        if archive not in OLD_ARCHIVES or not 1 <= int(mm) <= 12:
            return None
        yymm = int(yy + mm)
        if not (yymm >= 9107 or yymm <= 703):
            return None
        version = int(ver) if ver is not None else None
        if version == 0:
            return None
        return f"{archive}/{yy}{mm}{num}", version
    return None


def parse_arxiv_id(text: str | None) -> tuple[str, int | None] | None:
    """``(base id, version or None)`` from any usual spelling of an arXiv id, else None.

    Accepts bare ids (``2302.06600v3``, ``hep-th/9901001``, ``math.CA/0611800`` -> ``math/0611800``),
    ``arXiv:`` and ``oai:arXiv.org:`` prefixes, arxiv.org ``/abs/`` and ``/pdf/`` links (with
    ``.pdf``), huggingface.co/papers links (with ``.md``) and the arXiv DOI ``10.48550/arXiv.<id>``.
    """
    if not text:
        return None
    s = text.strip()
    if not s:
        return None
    low = s.lower()
    if "://" in s or low.startswith(("arxiv.org/", "www.arxiv.org/", "huggingface.co/")):
        if "://" not in s:
            s = "https://" + s
        try:
            parts = urlsplit(s)
        except ValueError:
            return None
        host = (parts.hostname or "").lower()
        path = unquote(parts.path)
        if host in _ARXIV_HOSTS:
            for prefix in _ARXIV_PATHS:
                if path.lower().startswith(prefix):
                    s = path[len(prefix) :]
                    break
            else:
                return None
        elif host in _HF_HOSTS and path.lower().startswith("/papers/"):
            s = path[len("/papers/") :]
        elif host in {"doi.org", "dx.doi.org", "www.doi.org"}:
            s = path.lstrip("/")
        else:
            return None
    s = s.strip().rstrip("/")
    m = _ARXIV_DOI_RE.match(s)
    if m:
        s = m.group(1)
    s = _PREFIX_RE.sub("", s).strip()
    for suffix in (".pdf", ".md"):
        if s.lower().endswith(suffix):
            s = s[: -len(suffix)]
    return _match_bare(s)


def arxiv_key(base_id: str) -> str:
    return f"arxiv:{base_id}"


def arxiv_abs_url(base_id: str) -> str:
    return f"https://arxiv.org/abs/{base_id}"


def normalise_doi(text: str | None) -> str | None:
    """Lower-cased bare DOI (``10.x/...``) from ``doi:``/doi.org forms, else None."""
    if not text:
        return None
    s = unquote(_DOI_PREFIX_RE.sub("", text.strip())).strip()
    if not s.lower().startswith("10.") or "/" not in s or any(c.isspace() for c in s):
        return None
    return s.lower()


def normalise_url(url: str | None) -> str | None:
    """Scheme and host lower-cased, default port, fragment, tracking params and trailing slash dropped."""
    if not url:
        return None
    s = url.strip()
    try:
        parts = urlsplit(s)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    ]
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, host, path, urlencode(query), ""))


def title_key(title: str) -> str | None:
    """``title:<sha1>`` of the NFKC-casefolded, whitespace-collapsed title (last resort)."""
    norm = " ".join(unicodedata.normalize("NFKC", title).casefold().split())
    if not norm:
        return None
    return "title:" + hashlib.sha1(norm.encode("utf-8")).hexdigest()


def paper_key(
    *, arxiv_id: str | None = None, doi: str | None = None, url: str | None = None
) -> str | None:
    """The canonical key from whatever identifiers an item has; None if none is usable.

    ``arxiv_id`` may be any form :func:`parse_arxiv_id` accepts; an arXiv DOI or an arxiv.org /
    huggingface.co/papers ``url`` also give the arxiv key.
    """
    for candidate in (arxiv_id, doi, url):
        parsed = parse_arxiv_id(candidate)
        if parsed:
            return arxiv_key(parsed[0])
    d = normalise_doi(doi) or normalise_doi(url)
    if d:
        return f"doi:{d}"
    u = normalise_url(url)
    if u:
        return f"url:{u}"
    return None
