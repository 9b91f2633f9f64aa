"""Identity: arXiv id parsing in every prefix form, keys, URL/DOI normalisation (incl. properties)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.sources import normalise_doi, normalise_url, paper_key, parse_arxiv_id
from digest.sources.identity import OLD_ARCHIVES, title_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2302.06600", ("2302.06600", None)),
        ("2302.06600v3", ("2302.06600", 3)),
        ("arXiv:2302.06600v3", ("2302.06600", 3)),
        ("ARXIV:2302.06600", ("2302.06600", None)),
        ("oai:arXiv.org:2510.06084v1", ("2510.06084", 1)),
        ("https://arxiv.org/abs/2510.06084", ("2510.06084", None)),
        ("http://arxiv.org/abs/2302.06600v3", ("2302.06600", 3)),
        ("https://arxiv.org/pdf/2302.06600v2.pdf", ("2302.06600", 2)),
        ("https://arxiv.org/pdf/2302.06600", ("2302.06600", None)),
        ("https://export.arxiv.org/abs/2302.06600?context=cs#x", ("2302.06600", None)),
        ("arxiv.org/abs/2302.06600/", ("2302.06600", None)),
        ("https://huggingface.co/papers/2510.07312", ("2510.07312", None)),
        ("https://huggingface.co/papers/2510.07312.md", ("2510.07312", None)),
        ("10.48550/arXiv.2302.06600", ("2302.06600", None)),
        ("https://doi.org/10.48550/arXiv.2302.06600", ("2302.06600", None)),
        ("  0704.0001 ", ("0704.0001", None)),
        ("1412.9999v2", ("1412.9999", 2)),
        ("1501.00001", ("1501.00001", None)),
        ("hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("HEP-TH/9901001", ("hep-th/9901001", None)),
        ("math.CA/0611800", ("math/0611800", None)),
        ("math.CA/0611800v2", ("math/0611800", 2)),
        ("cs/0703117", ("cs/0703117", None)),
        ("http://arxiv.org/abs/cs/0703117v2", ("cs/0703117", 2)),
        ("https://arxiv.org/pdf/astro-ph/0601001v1.pdf", ("astro-ph/0601001", 1)),
        ("oai:arXiv.org:quant-ph/0201082", ("quant-ph/0201082", None)),
        ("cond-mat/9107001", ("cond-mat/9107001", None)),
    ],
)
def test_parse_arxiv_id_forms(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_arxiv_id(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "", None, "   ", "hello", "2302.0660",  # too short
        "1412.00001",  # 5 digits before 1501
        "1501.0001",  # 4 digits from 1501
        "0703.0001",  # the new scheme starts at 0704
        "2313.00001",  # month 13
        "2300.00001",  # month 00
        "2302.06600v0", "cs/0704001",  # old scheme ended 0703
        "hep-th/9013001", "nosuch/9901001", "hep-th/990100",
        "https://example.com/abs/2302.06600", "https://arxiv.org/list/cs.CL/new",
        "10.1145/3395363.3397376",
    ],
)  # fmt: skip
def test_parse_arxiv_id_rejects(text: str | None) -> None:
    assert parse_arxiv_id(text) is None


def test_paper_key_precedence() -> None:
    assert paper_key(arxiv_id="2302.06600v3", doi="10.5555/x", url="https://e.org/a") == "arxiv:2302.06600"
    assert paper_key(doi="10.48550/arXiv.2302.06600") == "arxiv:2302.06600"
    assert paper_key(url="https://arxiv.org/abs/2302.06600v2") == "arxiv:2302.06600"
    assert paper_key(doi="https://doi.org/10.5555/TEL.2025.0042", url="https://e.org/a") == "doi:10.5555/tel.2025.0042"
    assert paper_key(url="https://doi.org/10.1000/ABC") == "doi:10.1000/abc"
    assert paper_key(url="HTTPS://Example.ORG/Paper/?utm_source=x&id=3#top") == "url:https://example.org/Paper?id=3"
    assert paper_key() is None
    assert paper_key(url="not a url") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM/a/b/", "https://example.com/a/b"),
        ("https://example.com/", "https://example.com"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com:8443/x#frag", "https://example.com:8443/x"),
        ("https://e.com/p?utm_source=rss&utm_medium=feed&a=1&fbclid=z&ref=home", "https://e.com/p?a=1"),
        ("ftp://e.com/x", None),
        ("mailto:x@y", None),
        ("https://[::1]:8080/x/", "https://[::1]:8080/x"),
    ],
)
def test_normalise_url(url: str, expected: str | None) -> None:
    assert normalise_url(url) == expected


def test_normalise_doi() -> None:
    assert normalise_doi("doi:10.1145/ABC.def") == "10.1145/abc.def"
    assert normalise_doi("https://dx.doi.org/10.1145/abc%2Fdef") == "10.1145/abc/def"
    assert normalise_doi("10.1145") is None
    assert normalise_doi("nonsense") is None


def test_title_key_ignores_case_width_and_spacing() -> None:
    assert title_key("Amuro  &  Char") == title_key("amuro & CHAR")
    assert title_key("   ") is None


# --- properties ------------------------------------------------------------------------------

_yymm_new = st.integers(min_value=704, max_value=9912).filter(lambda v: 1 <= v % 100 <= 12)


@st.composite
def new_style(draw: st.DrawFn) -> str:
    yymm = draw(_yymm_new)
    digits = 4 if yymm <= 1412 else 5
    num = draw(st.integers(min_value=0, max_value=10**digits - 1))
    return f"{yymm:04d}.{num:0{digits}d}"


@st.composite
def old_style(draw: st.DrawFn) -> tuple[str, str]:
    """(canonical id, id as written, maybe with a subject class and odd case)."""
    archive = draw(st.sampled_from(sorted(OLD_ARCHIVES)))
    yy = draw(st.sampled_from([91, 92, 95, 99, 0, 3, 7]))
    mm = draw(st.integers(1, 12 if yy != 7 else 3))
    if yy == 91:
        mm = max(mm, 7)
    num = draw(st.integers(0, 999))
    canonical = f"{archive}/{yy:02d}{mm:02d}{num:03d}"
    subject = draw(st.sampled_from(["", ".CA", ".AI", ".GT", ".mes-hall"]))
    written_archive = draw(st.sampled_from([archive, archive.upper(), archive.title()]))
    return canonical, f"{written_archive}{subject}/{yy:02d}{mm:02d}{num:03d}"


_FORMS = [
    "{id}", "arXiv:{id}", "ARXIV:{id}", "arxiv:{id}", "oai:arXiv.org:{id}",
    "https://arxiv.org/abs/{id}", "http://arxiv.org/abs/{id}", "https://www.arxiv.org/abs/{id}",
    "https://arxiv.org/pdf/{id}", "https://arxiv.org/pdf/{id}.pdf", "http://export.arxiv.org/abs/{id}",
    "https://huggingface.co/papers/{id}", "https://huggingface.co/papers/{id}.md", " {id}\n",
]  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(base=new_style(), version=st.none() | st.integers(1, 30), form=st.sampled_from(_FORMS))
def test_new_style_any_form_gives_one_key(base: str, version: int | None, form: str) -> None:
    written = base + (f"v{version}" if version else "")
    if "huggingface" in form and version:
        written = base  # HF ids carry no version
        version = None
    text = form.format(id=written)
    assert parse_arxiv_id(text) == (base, version)
    assert paper_key(arxiv_id=text) == f"arxiv:{base}"
    assert paper_key(url=text) == f"arxiv:{base}" or "://" not in text
    # round trip: the canonical id parses to itself
    assert parse_arxiv_id(base) == (base, None)
    assert paper_key(doi=f"10.48550/arXiv.{base}") == f"arxiv:{base}"


@settings(max_examples=40, deadline=None)
@given(ids=old_style(), version=st.none() | st.integers(1, 9), form=st.sampled_from(_FORMS[:11]))
def test_old_style_subject_class_dropped(ids: tuple[str, str], version: int | None, form: str) -> None:
    canonical, written = ids
    text = form.format(id=written + (f"v{version}" if version else ""))
    assert parse_arxiv_id(text) == (canonical, version)
    assert paper_key(arxiv_id=text) == f"arxiv:{canonical}"
    assert parse_arxiv_id(canonical) == (canonical, None)


_hosts = st.from_regex(r"[a-z][a-z0-9]{0,8}\.(com|org|net)", fullmatch=True)
_segments = st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True), max_size=3)


@settings(max_examples=30, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "HtTpS"]),
    host=_hosts,
    upper=st.booleans(),
    path=_segments,
    slash=st.booleans(),
    query=st.lists(st.tuples(st.sampled_from(["a", "id", "utm_source", "fbclid", "page"]),
                             st.from_regex(r"[a-z0-9]{0,4}", fullmatch=True)), max_size=3),
    fragment=st.sampled_from(["", "#top", "#"]),
)  # fmt: skip
def test_url_key_stable(scheme, host, upper, path, slash, query, fragment) -> None:  # type: ignore[no-untyped-def]
    url = f"{scheme}://{host.upper() if upper else host}/" + "/".join(path) + ("/" if slash else "")
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query)
    url += fragment
    norm = normalise_url(url)
    assert norm is not None
    assert normalise_url(norm) == norm  # idempotent
    assert paper_key(url=url) == paper_key(url=norm) == f"url:{norm}"
    assert "utm_" not in norm and "fbclid" not in norm and "#" not in norm
    assert not norm.endswith("/")
    assert norm.startswith(scheme.lower() + "://" + host.lower())
