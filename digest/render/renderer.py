"""The Renderer: one Jinja2 environment, templates compiled once, CSS inlined once.

The HTML template is written with a <style> block and classes. When the Renderer is built,
css_inline runs once over the template *source* (Jinja tags are plain text to an HTML
parser), and the inlined source is what gets compiled; so no message pays for CSS inlining.
A guard checks that every Jinja tag survived the HTML round trip unchanged; if one did not
(e.g. a ``>`` inside ``{% if %}`` was escaped), the Renderer falls back to inlining each
rendered message, and says so in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import css_inline
import jinja2
import markupsafe

import digest
from digest.errors import RenderError
from digest.models import Edition, RenderedDigest

from .context import RateLinks, build_context
from .textutil import clean, safe_url, wrap

__all__ = ["Renderer", "default_templates_dir", "HTML_TEMPLATE", "TEXT_TEMPLATE"]

log = logging.getLogger(__name__)

HTML_TEMPLATE = "digest.html"
TEXT_TEMPLATE = "digest.txt"
_INLINED_NAME = "digest.inlined.html"  # the once-inlined HTML, served by a DictLoader

_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def default_templates_dir() -> Path:
    """The installed ``digest/templates`` (the wheel), else the repo's top-level ``templates/``."""
    packaged = Path(digest.__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(digest.__file__).parent.parent / "templates"


try:  # markupsafe's C escaper (markupsafe 2.1+): what markupsafe.escape runs for a str
    from markupsafe import _escape_inner
except ImportError:  # pragma: no cover - another markupsafe: templates keep markupsafe.escape
    _escape_inner = None


def _escaped(value: object, /) -> object:
    """markupsafe.escape, but a str comes back as a plain str (the same characters) instead of
    Markup: Markup's constructor is Python code, run for every ``{{ }}`` of every message (~300 a
    digest: 0.15 ms, a quarter of the HTML render). Anything else (Markup, numbers, Undefined)
    goes through markupsafe.escape unchanged."""
    if type(value) is str:
        return _escape_inner(value)
    return markupsafe.escape(value)


def _plain_output_escape(template: jinja2.Template) -> None:
    """Let an autoescaped template escape its str outputs with `_escaped`. Jinja compiles each
    ``{{ x }}`` of such a template to ``escape(x)`` with `escape` a global of the template's own
    compiled module, and every such value is either joined into the output string or wrapped in
    Markup by the compiled code (a ``{% set %}`` or ``{% call %}`` block): as text, the output is
    the same (tests/test_render_golden.py), only no Markup object is made for each piece.
    Anything unexpected (another Jinja or markupsafe) leaves the template as it is."""
    namespace = getattr(template.root_render_func, "__globals__", None)
    if _escape_inner is not None and isinstance(namespace, dict) and namespace.get("escape") is markupsafe.escape:
        namespace["escape"] = _escaped


def _make_inliner() -> css_inline.CSSInliner:
    # keep_at_rules: @media rules cannot be inlined; they stay in a <style> in <head>.
    # minify_css: ``color:#fff`` for ``color: #fff;`` in every style attribute (css-inline 0.18+).
    return css_inline.CSSInliner(keep_at_rules=True, minify_css=True, load_remote_stylesheets=False)


class Renderer:
    """Edition -> RenderedDigest. Build once, call ``render`` many times (thread-safe)."""

    def __init__(self, *, templates_dir: Path | None = None, site_name: str = "Paper Digest") -> None:
        self.templates_dir = Path(templates_dir) if templates_dir else default_templates_dir()
        self.site_name = clean(site_name) or "Paper Digest"
        self._inlined: dict[str, str] = {}
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [jinja2.DictLoader(self._inlined), jinja2.FileSystemLoader(self.templates_dir)]
            ),
            autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self.env.filters["wrap"] = wrap
        self._inliner = _make_inliner()
        try:
            source, _, _ = self.env.loader.get_source(self.env, HTML_TEMPLATE)  # type: ignore[union-attr]
            self.text_template = self.env.get_template(TEXT_TEMPLATE)
            self.inline_per_message = False
            inlined = self._inliner.inline(source)
            if _JINJA_TAG.findall(inlined) == _JINJA_TAG.findall(source):
                self._inlined[_INLINED_NAME] = inlined
                self.html_template = self.env.get_template(_INLINED_NAME)
            else:
                log.warning(
                    "%s: Jinja tags did not survive CSS inlining; inlining every message instead",
                    self.templates_dir / HTML_TEMPLATE,
                )
                self.inline_per_message = True
                self.html_template = self.env.get_template(HTML_TEMPLATE)
        except (jinja2.TemplateError, OSError, ValueError) as exc:
            raise RenderError(f"cannot load templates from {self.templates_dir}: {exc}") from exc
        _plain_output_escape(self.html_template)
        # The raw (style-block) template, compiled lazily: used only by render_uninlined().
        self._raw_html_template: jinja2.Template | None = None

    def render(
        self, edition: Edition, *, unsubscribe_url: str, now: dt.datetime, rating_links: RateLinks | None = None,
        manage_url: str | None = None,
    ) -> RenderedDigest:
        """Subject, plain text and HTML for one edition, from one context. With `rating_links`
        ((paper key, vote) -> signed URL), every paper carries "more like this" / "not for me";
        with `manage_url`, the footer links to "Edit your interests"."""
        context = self._context(edition, unsubscribe_url=unsubscribe_url, now=now, rating_links=rating_links,
                                manage_url=manage_url)
        try:
            text = self.text_template.render(context)
            html = self.html_template.render(context)
        except jinja2.TemplateError as exc:
            raise RenderError(f"cannot render the digest for {edition.subscription.id}: {exc}") from exc
        if self.inline_per_message:
            html = self._inline(html)
        return RenderedDigest(subject=context["subject"], text=text, html=html)

    def render_uninlined(
        self, edition: Edition, *, unsubscribe_url: str, now: dt.datetime, rating_links: RateLinks | None = None,
        manage_url: str | None = None,
    ) -> str:
        """The HTML from the original template, <style> block and all (for tests and previews)."""
        if self._raw_html_template is None:
            self._raw_html_template = self.env.get_template(HTML_TEMPLATE)
        context = self._context(edition, unsubscribe_url=unsubscribe_url, now=now, rating_links=rating_links,
                                manage_url=manage_url)
        return self._raw_html_template.render(context)

    def inline(self, html: str) -> str:
        """css_inline with this Renderer's settings (what per-message inlining would do)."""
        return self._inline(html)

    def _inline(self, html: str) -> str:
        try:
            return self._inliner.inline(html)
        except (css_inline.InlineError, ValueError) as exc:
            raise RenderError(f"cannot inline CSS: {exc}") from exc

    def _context(
        self, edition: Edition, *, unsubscribe_url: str, now: dt.datetime, rating_links: RateLinks | None,
        manage_url: str | None = None,
    ) -> dict:
        url = safe_url(unsubscribe_url)
        if url is None:
            raise RenderError(f"unsubscribe_url is not an absolute http(s) URL: {unsubscribe_url!r}")
        return build_context(
            edition, unsubscribe_url=url, now=now, site_name=self.site_name, rating_links=rating_links,
            manage_url=manage_url,
        )
