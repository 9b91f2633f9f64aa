"""The HTML of the preferences page (``/manage/<token>``, digest/web_manage.py): pure functions
of what to show, every value escaped. No JavaScript; readable at 375 px and in dark mode, in the
digest's colours (digest/web.py's base style)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .manage import BLANK_ROWS, MAX_ROWS, Preview, PreviewPaper, RatingRow, keyword_rows
from .models import FREQUENCIES
from .web import _page

__all__ = ["View", "manage_page", "message_page", "FREQUENCY_LABELS"]

FREQUENCY_LABELS = {"daily": "Every day", "weekdays": "Monday to Friday"}

_STYLE = (
    "main{max-width:40rem}"
    "h2{font-size:1.05rem;margin:1.75rem 0 .5rem;padding-top:1.25rem;border-top:1px solid #e1e4e8}"
    "label,legend{display:block;font-weight:600;margin:1rem 0 .25rem;padding:0}"
    "fieldset{border:0;margin:0;padding:0;min-width:0}"
    "input,textarea,select{display:block;width:100%;padding:.5rem;font:inherit;color:inherit;"
    "background:transparent;border:1px solid #8c959f;border-radius:6px}"
    "textarea{min-height:4.5rem}select option{color:#1f2328;background:#fff}"
    ".row{display:flex;gap:.75rem}.row>div{flex:1;min-width:0}"
    ".kw{display:flex;gap:.5rem;margin:0 0 .5rem}.kw input{margin:0}.kw .t{flex:1;min-width:0}.kw .w{flex:0 0 4.75rem}"
    ".hint{font-size:.875rem;color:#57606a;margin:.25rem 0 .5rem}.err{color:#cf222e;font-size:.875rem;margin:-.25rem 0 .5rem}"
    ".check{display:flex;gap:.5rem;align-items:center;font-weight:400;margin:1.25rem 0 0}.check input{width:auto;margin:0}"
    ".hp{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}"
    ".buttons{display:flex;gap:.75rem;margin-top:1.25rem}.buttons button{flex:1}"
    "button.go{background:#1f883d}button.alt{color:#1f2328;background:#f6f8fa;border:1px solid #d0d7de}"
    "button.small{display:inline;width:auto;padding:.25rem .75rem;font-size:.875rem;font-weight:600;"
    "color:#1f2328;background:#f6f8fa;border:1px solid #d0d7de;white-space:nowrap}"
    ".note{padding:.75rem 1rem;border-radius:6px;margin:0 0 1rem;background:#ddf4ff;border:1px solid #54aeff}"
    ".note.warn{background:#fff8c5;border-color:#d4a72c}.note.bad{background:#ffebe9;border-color:#ff8182}"
    ".note form{margin:.5rem 0 0}"
    "ol,ul{margin:0;padding:0 0 0 1.25rem}li{margin:0 0 .6rem}.why{display:block;font-size:.875rem;color:#1a7f37}"
    ".sent{font-size:.8rem;color:#57606a}"
    ".rated{list-style:none;padding:0}.rated li{display:flex;gap:.75rem;align-items:baseline;justify-content:space-between}"
    ".rated span{min-width:0}.rated form{flex:0 0 auto}.vote{font-size:.875rem;color:#57606a}"
    "button.stop{background:#cf222e}"
    "@media (prefers-color-scheme:dark){h2{border-top-color:#30363d}.hint,.sent,.vote{color:#a2abb5}"
    ".err{color:#ff7b72}.why{color:#56d364}button.alt,button.small{color:#e6edf3;background:#21262d;border-color:#30363d}"
    ".note{background:#0c2d6b;border-color:#1f6feb}.note.warn{background:#3b2e00;border-color:#9e6a03}"
    ".note.bad{background:#490202;border-color:#da3633}}"
)


@dataclass
class View:
    """Everything the page shows."""

    email: str
    fields: Mapping[str, str]  # the form's values: from the file, or as submitted
    csrf: str
    unsubscribe: str  # the relative URL of the unsubscribe button
    errors: Mapping[str, str] = field(default_factory=dict)
    notice: str = ""  # HTML, already escaped
    notice_kind: str = ""  # "" (info) | "warn" | "bad"
    next_digest: str = ""
    preview: Preview | None = None
    ratings: Sequence[RatingRow] = ()
    unsubscribed: dt.datetime | None = None


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _err(errors: Mapping[str, str], name: str) -> str:
    return f'<p class="err" id="{name}-err">{_e(errors[name])}</p>' if name in errors else ""


def _described(name: str, errors: Mapping[str, str], hint: bool = False) -> str:
    ids = ([f"{name}-hint"] if hint else []) + ([f"{name}-err"] if name in errors else [])
    return f' aria-describedby="{" ".join(ids)}"' if ids else ""


def _keywords(fields: Mapping[str, str], errors: Mapping[str, str]) -> str:
    rows = keyword_rows(fields)
    out = ['<fieldset><legend>Keywords</legend><p class="hint" id="kw-hint">A paper matching more keywords, '
           "or weightier ones, ranks higher. Weight 1 is normal, 2 counts double, 0.5 half. Empty a row "
           "to remove it; none at all: the day's trending papers.</p>"]
    blanks = max(0, min(BLANK_ROWS, MAX_ROWS - len(rows)))  # never a row the save would not read
    for j, (i, term, weight) in enumerate([*rows, *[(None, "", "1")] * blanks]):
        t_err = errors.get(f"term-{i}") if i is not None else None
        w_err = errors.get(f"weight-{i}") if i is not None else None
        shown_weight = fields.get(f"weight-{i}", weight) if i is not None else ""
        out.append(
            f'<div class="kw"><input class="t" id="term-{j}" name="term-{j}" value="{_e(term)}" '
            f'aria-label="Keyword {j + 1}" autocomplete="off"{" aria-invalid=true" if t_err else ""}>'
            f'<input class="w" id="weight-{j}" name="weight-{j}" value="{_e(shown_weight)}" inputmode="decimal" '
            f'placeholder="1" aria-label="Weight of keyword {j + 1}"{" aria-invalid=true" if w_err else ""}></div>'
        )
        for message in (t_err, w_err):
            if message:
                out.append(f'<p class="err">Keyword {j + 1}: {_e(message)}</p>')
    out.append(_err(errors, "keywords"))
    return "".join(out) + "</fieldset>"


def _form(view: View) -> str:
    v, errors = view.fields, view.errors
    frequency = v.get("frequency", "daily")
    options = "".join(
        f'<option value="{f}"{" selected" if frequency == f else ""}>'
        f"{FREQUENCY_LABELS.get(f) or 'Weekly, on ' + f[7:].capitalize() + 'days'}</option>"
        for f in FREQUENCIES
    )
    paused = " checked" if v.get("paused") else ""
    return (
        '<form method="post" novalidate>'
        f'<input type="hidden" name="csrf" value="{_e(view.csrf)}">'
        + _keywords(v, errors)
        + '<label for="exclude">Leave out papers about</label>'
        f'<textarea id="exclude" name="exclude" rows="3"{_described("exclude", errors, True)}>{_e(v.get("exclude", ""))}</textarea>'
        '<p class="hint" id="exclude-hint">One term per line: a paper that mentions any of them is left out.</p>'
        + _err(errors, "exclude")
        + '<div class="row"><div><label for="send_at">Send at</label>'
        f'<input id="send_at" name="send_at" type="time" value="{_e(v.get("send_at", ""))}"{_described("send_at", errors)}>'
        + _err(errors, "send_at")
        + '</div><div><label for="timezone">Time zone</label>'
        f'<input id="timezone" name="timezone" autocomplete="off" value="{_e(v.get("timezone", ""))}"{_described("timezone", errors)}>'
        + _err(errors, "timezone")
        + '</div></div><div class="row"><div><label for="frequency">How often</label>'
        f'<select id="frequency" name="frequency"{_described("frequency", errors)}>{options}</select>'
        + _err(errors, "frequency")
        + '</div><div><label for="max_papers">Papers in full</label>'
        f'<input id="max_papers" name="max_papers" type="number" min="1" max="100" inputmode="numeric" '
        f'value="{_e(v.get("max_papers", ""))}"{_described("max_papers", errors)}>'
        + _err(errors, "max_papers")
        + "</div></div>"
        '<p class="hint">Time zone: an IANA name, e.g. Europe/Berlin. After the papers in full, up to 10 more are '
        "listed by title.</p>"
        f'<label class="check"><input type="checkbox" name="paused" value="1"{paused}> Pause my digest '
        "(nothing is sent until you clear this)</label>"
        '<div class="hp" aria-hidden="true"><label for="website">Leave this empty</label>'
        '<input id="website" name="website" tabindex="-1" autocomplete="off"></div>'
        '<div class="buttons"><button type="submit" name="action" value="save" class="go">Save</button>'
        '<button type="submit" name="action" value="preview" class="alt">Preview</button></div></form>'
    )


def _paper(p: PreviewPaper) -> str:
    title = f'<a href="{_e(p.url)}">{_e(p.title)}</a>' if p.url else _e(p.title)
    sent = ' <span class="sent">(sent to you already)</span>' if p.sent else ""
    return f'<li>{title}{sent}<span class="why">{_e(p.why)}</span></li>'


def _preview(preview: Preview, paused: bool) -> str:
    out = ['<section id="preview"><h2>Preview</h2>']
    if preview.fetched_at is None:
        out.append("<p>The service has no papers yet; they are being fetched now. Press <b>Preview</b> again "
                   "in a minute.</p></section>")
        return "".join(out)
    when = preview.fetched_at.strftime("%d %b %Y, %H:%M UTC")
    if not preview.papers:
        out.append(f"<p>With these settings, none of the {preview.considered:,} papers fetched on {_e(when)} "
                   "matches well enough for an edition.</p>")
        if preview.more:
            out.append("<p>These mention your keywords in passing (an edition is never sent for such papers "
                       "alone):</p><ul>" + "".join(_paper(p) for p in preview.more) + "</ul>")
    else:
        out.append(f"<p>With these settings, today's edition would hold (from the {preview.considered:,} papers "
                   f"fetched on {_e(when)}):</p><ol>" + "".join(_paper(p) for p in preview.papers) + "</ol>")
        if preview.more:
            out.append(f"<p>And {preview.more_total:,} more, listed by title:</p><ul>"
                       + "".join(_paper(p) for p in preview.more) + "</ul>")
    if any(p.sent for p in (*preview.papers, *preview.more)):
        out.append('<p class="hint">A paper you have had already is not sent again: the next edition leaves '
                   "it out.</p>")
    if paused:
        out.append('<p class="hint">With <b>Pause</b> on, no edition is sent at all.</p>')
    out.append("<p class=\"hint\">Nothing is saved until you press <b>Save</b>.</p></section>")
    return "".join(out)


def _ratings(view: View) -> str:
    if not view.ratings:
        return ""
    rows = []
    for r in view.ratings:
        vote = "more like this" if r.vote > 0 else "not for me"
        day = f", {r.rated_at:%d %b %Y}" if r.rated_at else ""
        rows.append(
            f'<li><span>{_e(r.title or r.key)} <span class="vote">({vote}{_e(day)})</span></span>'
            f'<form method="post"><input type="hidden" name="csrf" value="{_e(view.csrf)}">'
            f'<input type="hidden" name="paper" value="{_e(r.key)}">'
            '<button type="submit" name="action" value="unrate" class="small">Undo</button></form></li>'
        )
    return ('<section id="ratings"><h2>Your ratings</h2><p class="hint">What you rated in your digests; it '
            "teaches the ranking what you mean. Undo forgets a rating.</p>"
            f'<ul class="rated">{"".join(rows)}</ul></section>')


def manage_page(view: View) -> str:
    """The preferences page: notice, form, preview, ratings, unsubscribe."""
    body = [f'<h1>Your paper digest</h1><p class="hint">For {_e(view.email)}.'
            + (f" {_e(view.next_digest)}" if view.next_digest else "") + "</p>"]
    if view.notice:
        kind = f" {view.notice_kind}" if view.notice_kind else ""
        body.append(f'<div class="note{kind}" role="status">{view.notice}</div>')
    body.append(_form(view))
    if view.preview is not None:
        body.append(_preview(view.preview, bool(view.fields.get("paused"))))
    body.append(_ratings(view))
    body.append(
        '<section id="unsubscribe"><h2>Unsubscribe</h2><p>Stop all digests to this address. Your settings '
        f'are kept.</p><form method="post" action="{_e(view.unsubscribe)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit" class="stop">Unsubscribe</button></form></section>'
    )
    return _page("Your paper digest", "".join(body), extra_style=_STYLE)


def message_page(title: str, text: str) -> str:
    """A page with a heading and a paragraph (`text` is HTML, already escaped)."""
    return _page(_e(title), f"<h1>{_e(title)}</h1><p>{text}</p>", extra_style=_STYLE)
