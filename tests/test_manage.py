"""The pieces of "Edit your interests" (/manage): the round-trip rewrite of a subscription file
(comments, order, quoting, weights, exclusions), the form's validation (the messages of `digest
check`), the manage and CSRF tokens, single-use forms, and which files may be read or written."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.config.subscriptions import load_subscription
from digest.config.yamledit import edit_subscription
from digest.manage import (
    FORM_MAX_AGE, Prefs, SpentForms, changes, form_fields, make_form_token, parse_form, prefs_of, read_form_token,
)
from digest.manage_files import Changed, Refused, Saved, read_subscription, rewrite_subscription, subscription_file
from digest.models import Subscription
from digest.tokens import (
    MANAGE_TTL, ManageLinks, RatingLinks, make_rating_token, make_token, verify_manage_token, verify_rating_token,
    verify_token,
)

SECRET = b"m" * 32
NOW = dt.datetime(2025, 10, 9, 6, 0, tzinfo=dt.timezone.utc)

ALICE = """\
# Alice's digest. Written by the operator; the preferences page keeps these comments.
email: alice@example.org
name: Alice Martin
timezone: Europe/Berlin   # she lives in Berlin
send_at: "07:30"
frequency: daily
keywords:
  # the main ones
  - reinforcement learning   # RL, her main topic
  - {term: fine-tuning, weight: 2}
  - post-training
# what she does not want
exclude: [robotics]
sources: [hf_daily, arxiv_cs_cl]
max_papers: 5
# the end
"""
COMMENTS = [line.strip() for line in ALICE.splitlines() if line.lstrip().startswith("#")]


def folder_with(tmp_path: Path, name: str = "alice.yaml", text: str = ALICE) -> Path:
    folder = tmp_path / "subs"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def loaded_prefs(path: Path) -> Prefs:
    sub = load_subscription(path)
    assert isinstance(sub, Subscription), sub
    return prefs_of(sub)


# -- the round trip -------------------------------------------------------------------------------


def test_save_keeps_comments_order_and_untouched_lines(tmp_path: Path) -> None:
    path = folder_with(tmp_path)
    loaded = read_subscription(path)
    wanted = dataclasses.replace(
        prefs_of(loaded.sub), keywords=(("post-training", 1.0), ("LoRA", 2.0), ("reinforcement learning", 1.5)),
        exclude=("robotics", "computer vision"), send_at="06:45", paused=True, max_papers=7,
    )  # fmt: skip
    result = rewrite_subscription(path, wanted, loaded.version, ["hf_daily", "arxiv_cs_cl"])
    assert isinstance(result, Saved) and result.changed
    text = path.read_text()
    assert loaded_prefs(path) == wanted
    assert [line.strip() for line in text.splitlines() if line.lstrip().startswith("#")] == COMMENTS
    assert "# RL, her main topic" in text.split("reinforcement learning", 1)[1].splitlines()[0]  # with its item
    keys = [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]
    assert keys == ["email", "name", "timezone", "send_at", "frequency", "keywords", "exclude", "sources",
                    "max_papers", "paused"]  # the file's order; a new key last
    for line in ("email: alice@example.org", "name: Alice Martin", "timezone: Europe/Berlin   # she lives in Berlin",
                 "frequency: daily", "sources: [hf_daily, arxiv_cs_cl]", "# what she does not want"):
        assert line in text.splitlines()
    assert 'send_at: "06:45"' in text and "  - {term: LoRA, weight: 2}" in text
    assert "exclude: [robotics, computer vision]" in text and "paused: true" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["alice.yaml"]  # no temporary left behind


def test_weights_exclusions_and_emptied_lists(tmp_path: Path) -> None:
    path = folder_with(tmp_path)
    base = loaded_prefs(path)
    # a weight back to 1: the plain form; a weight on a plain term: the {term, weight} form
    text = edit_subscription(ALICE, changes(base, dataclasses.replace(
        base, keywords=(("reinforcement learning", 3.0), ("fine-tuning", 1.0), ("post-training", 0.5)))))
    assert "  - {term: reinforcement learning, weight: 3} # RL, her main topic" in text
    assert "  - fine-tuning\n" in text and "  - {term: post-training, weight: 0.5}\n" in text
    # every keyword and exclusion gone: [] on the key's line, the lines below the list kept below it
    text = edit_subscription(ALICE, {"keywords": [], "exclude": []})
    assert "keywords: []\n# what she does not want\nexclude: []\n" in text
    path.write_text(text)
    assert loaded_prefs(path).keywords == () and loaded_prefs(path).exclude == ()


def test_the_lines_after_a_list_stay_after_it_whatever_its_last_item_becomes() -> None:
    for last in ("  - b   # bee\n", "  - {term: b, weight: 2}\n", "  - term: b\n    weight: 2   # w\n"):
        text = f"email: x@example.org\nkeywords:\n  - a   # ay\n{last}# about exclusions\nexclude: [robotics]\n"
        for wanted in ([("a", 1.0)], [("b", 2.0), ("a", 1.0)], [("a", 1.0), ("c", 1.0)], []):
            out = edit_subscription(text, {"keywords": wanted})
            lines = out.splitlines()
            assert lines.index("# about exclusions") == lines.index("exclude: [robotics]") - 1, out
            assert ("# ay" in out) == any(t == "a" for t, _ in wanted), out


def test_nothing_to_change_writes_nothing(tmp_path: Path) -> None:
    path = folder_with(tmp_path)
    loaded = read_subscription(path)
    before = path.stat()
    result = rewrite_subscription(path, prefs_of(loaded.sub), loaded.version)
    assert isinstance(result, Saved) and not result.changed
    assert path.read_text() == ALICE and path.stat().st_ino == before.st_ino


def test_a_new_file_style_gets_the_readme_layout_and_quoted_times() -> None:
    text = edit_subscription("email: bob@example.org\nsend_at: 07:30\nmax_papers: 5  # five\n",
                             {"send_at": "08:00", "keywords": [("LoRA", 2.0), ("graphs", 1.0)], "exclude": ["x"]})
    assert text == ('email: bob@example.org\nsend_at: "08:00"\nmax_papers: 5  # five\n'
                    "keywords:\n  - {term: LoRA, weight: 2}\n  - graphs\nexclude: [x]\n")


TERM = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cf", "Zl", "Zp", "Co", "Cn")), min_size=1, max_size=30)


@given(
    keywords=st.lists(st.tuples(TERM, st.sampled_from([0.5, 1.0, 2.0, 3.25])), max_size=6),
    exclude=st.lists(TERM, max_size=4, unique=True),
    paused=st.booleans(),
    send_at=st.sampled_from(["00:00", "07:05", "23:59"]),
)
def test_any_edit_reads_back_as_asked(tmp_path_factory: pytest.TempPathFactory, keywords, exclude, paused, send_at) -> None:
    norm = [(" ".join(t.split()), w) for t, w in keywords]
    norm = [(t, w) for t, w in norm if t]
    excl = [e for e in dict.fromkeys(" ".join(x.split()) for x in exclude) if e]
    base = Prefs(keywords=(("reinforcement learning", 1.0), ("fine-tuning", 2.0), ("post-training", 1.0)),
                 exclude=("robotics",), timezone="Europe/Berlin", send_at="07:30")
    wanted = dataclasses.replace(base, keywords=tuple(norm), exclude=tuple(excl), paused=paused, send_at=send_at)
    path = tmp_path_factory.mktemp("rt") / "alice.yaml"
    path.write_text(edit_subscription(ALICE, changes(base, wanted)))
    assert loaded_prefs(path) == wanted  # the strict YAML 1.2 reader of `digest check` agrees
    assert [line.strip() for line in path.read_text().splitlines() if line.lstrip().startswith("# ")][:1] == COMMENTS[:1]


# -- the form -------------------------------------------------------------------------------------


def test_form_fields_round_trip() -> None:
    prefs = Prefs(keywords=(("LoRA", 2.0), ("mixture of experts", 1.0), ("RL", 0.5)), exclude=("robotics", "vision"),
                  timezone="America/New_York", send_at="06:05", frequency="weekly:mon", max_papers=9, paused=True)
    assert parse_form(form_fields(prefs)) == (prefs, {})
    fields = {**form_fields(prefs), "term-1": "", "term-7": "  new   term ", "weight-7": "", "paused": "",
              "send_at": "7:30", "exclude": "robotics\r\n\r\nrobotics\r\nvision"}
    parsed, errors = parse_form(fields)
    assert errors == {} and parsed.keywords == (("LoRA", 2.0), ("RL", 0.5), ("new term", 1.0))
    assert parsed.send_at == "07:30" and not parsed.paused and parsed.exclude == ("robotics", "vision")


@pytest.mark.parametrize(("field", "value", "yaml_line"), [
    ("timezone", "Mars/Olympus", "timezone: Mars/Olympus"),
    ("send_at", "0730", "send_at: 0730"),
    ("send_at", "25:00", 'send_at: "25:00"'),
    ("frequency", "hourly", "frequency: hourly"),
    ("max_papers", "0", "max_papers: 0"),
    ("max_papers", "many", "max_papers: many"),
    ("weight-0", "abc", "keywords: [{term: LoRA, weight: abc}]"),
    ("weight-0", "0", "keywords: [{term: LoRA, weight: 0}]"),
    ("weight-0", "500", "keywords: [{term: LoRA, weight: 500}]"),
    ("term-0", "x" * 201, f"keywords: [{'x' * 201}]"),
])
def test_form_errors_are_the_messages_of_digest_check(tmp_path: Path, field: str, value: str, yaml_line: str) -> None:
    fields = {**form_fields(Prefs(keywords=(("LoRA", 1.0),))), field: value}
    prefs, errors = parse_form(fields)
    path = folder_with(tmp_path, "x.yaml", f"email: x@example.org\n{yaml_line}\n")
    [problem] = load_subscription(path)
    assert prefs is None and errors == {field: problem.message}, (errors, str(problem))


def test_form_errors_name_the_row() -> None:
    fields = {"term-0": "a", "weight-0": "1", "term-3": "b", "weight-3": "x", "term-5": "", "weight-5": "zz"}
    prefs, errors = parse_form(fields)
    assert prefs is None and list(errors) == ["weight-3"]  # a row without a term is an empty row


# -- tokens ---------------------------------------------------------------------------------------


def test_manage_tokens() -> None:
    url = ManageLinks("https://d.example.org/", SECRET, now=NOW)("alice")
    assert url.startswith("https://d.example.org/manage/")
    token = url.rsplit("/", 1)[1]
    found = verify_manage_token(token, SECRET)
    end_of_day = dt.datetime.combine((NOW + MANAGE_TTL).date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    assert found.subscriber_id == "alice" and not found.expired(end_of_day - dt.timedelta(seconds=1))
    assert found.expired(end_of_day + dt.timedelta(seconds=1))
    # the same day's runs carry the same link, whatever the second (a preview and the send alike)
    later = ManageLinks("https://d.example.org/", SECRET, now=NOW + dt.timedelta(hours=17, seconds=59))("alice")
    assert later == url
    assert verify_manage_token(token, b"k" * 32) is None
    assert verify_manage_token(token, b"k" * 32, old_secrets=[SECRET]) == found  # key rotation
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (altered, token[:-1], "", "x" * 5000, make_token("alice", SECRET),
                make_rating_token("alice", "arxiv:1", 1, SECRET)):
        assert verify_manage_token(bad, SECRET) is None
    # one purpose per key: a manage token is neither an unsubscribe nor a rating token
    assert verify_token(token, SECRET) is None and verify_rating_token(token, SECRET) is None
    assert RatingLinks("https://d.example.org", "alice", SECRET).token("arxiv:1", 1) != token


def test_form_tokens_bind_reader_version_and_time() -> None:
    now = NOW.timestamp()
    token = make_form_token(SECRET, "alice", "v" * 22, now=now)
    found = read_form_token(token, SECRET, "alice", now=now + 10)
    assert found is not None and found.version == "v" * 22
    assert read_form_token(token, SECRET, "bob", now=now) is None  # another reader's form
    assert read_form_token(token, SECRET, "alice", now=now + FORM_MAX_AGE + 1) is None  # expired
    assert read_form_token(token, b"k" * 32, "alice", now=now) is None
    stamp, nonce, version, tag = token.split(".")
    assert read_form_token(f"{stamp}.{nonce}.{'w' * 22}.{tag}", SECRET, "alice", now=now) is None  # another version
    assert read_form_token(None, SECRET, "alice") is None and read_form_token("1.2.3.4", SECRET, "alice") is None
    spent = SpentForms(max_size=2)
    issued = time.time()
    assert spent.spend(found.nonce, issued) and not spent.spend(found.nonce, issued) and spent.spent(found.nonce)
    assert spent.spend("b", issued) and spent.spend("c", issued) and not spent.spent(found.nonce)  # bounded
    spent = SpentForms()
    assert spent.spend("old", issued - FORM_MAX_AGE - 120) and spent.spend("d", issued)
    assert not spent.spent("old") and spent.spent("d")  # forgotten once its form would have expired anyway


# -- which files ----------------------------------------------------------------------------------


def test_only_regular_files_directly_inside_the_folder(tmp_path: Path) -> None:
    path = folder_with(tmp_path)
    folder = path.parent
    outside = tmp_path / "outside.yaml"
    outside.write_text(ALICE)
    os.symlink(outside, folder / "link.yaml")
    (folder / "dir.yaml").mkdir()
    assert subscription_file(folder, "alice") == path.resolve()
    assert subscription_file(folder, "alice", path) == path.resolve()
    for sub_id, known in (("../outside", None), ("link", None), ("dir", None), ("nobody", None),
                          ("outside", outside), ("alice", outside), ("a/b", None), (".hidden", None)):
        assert subscription_file(folder, sub_id, known) is None, sub_id


def test_a_file_changed_since_loading_is_not_overwritten(tmp_path: Path) -> None:
    path = folder_with(tmp_path)
    loaded = read_subscription(path)
    edited = ALICE.replace("max_papers: 5", "max_papers: 6  # the operator's edit")
    path.write_text(edited)
    result = rewrite_subscription(path, dataclasses.replace(prefs_of(loaded.sub), paused=True), loaded.version)
    assert isinstance(result, Changed) and result.now.sub.max_papers == 6
    assert path.read_text() == edited


def test_a_result_digest_check_refuses_is_not_written(tmp_path: Path) -> None:
    path = folder_with(tmp_path)
    loaded = read_subscription(path)
    # `sources: [hf_daily, arxiv_cs_cl]` names sources this configuration does not have
    result = rewrite_subscription(path, dataclasses.replace(prefs_of(loaded.sub), paused=True), loaded.version,
                                  ["hf_daily"])
    assert isinstance(result, Refused) and "unknown source 'arxiv_cs_cl'" in result.problems[0]
    assert path.read_text() == ALICE and [p.name for p in path.parent.iterdir()] == ["alice.yaml"]


def test_the_page_escapes_what_it_shows() -> None:
    from digest.manage import Preview, PreviewPaper, RatingRow
    from digest.web_manage_pages import View, manage_page

    prefs = Prefs(keywords=(('<script>alert(1)</script>', 1.0),), exclude=("</textarea><b>x",), timezone='"><i>')
    view = View(email="a&b@example.org", fields=form_fields(prefs), csrf='x"y', unsubscribe="../unsubscribe/T",
                errors={"timezone": "unknown time zone '\"><i>'"}, ratings=[RatingRow("arxiv:1", "<i>T</i>", 1)],
                preview=Preview(papers=(PreviewPaper("<b>t</b>", None, "<why>", False),), fetched_at=NOW, considered=1))
    page = manage_page(view)
    for raw in ("<script>", "</textarea><b>", '"><i>', "<i>T</i>", "<b>t</b>", "<why>", 'x"y'):
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a&amp;b@example.org" in page


def test_a_file_the_form_cannot_show_whole_is_not_editable(tmp_path: Path) -> None:
    from digest.manage import BLANK_ROWS, MAX_ROWS
    from digest.web_manage import _editable

    fits = "email: x@example.org\nkeywords:\n" + "".join(f"  - k{i}\n" for i in range(MAX_ROWS - BLANK_ROWS))
    assert _editable(read_subscription(folder_with(tmp_path, "fits.yaml", fits)))
    more = fits + "  - one too many\n"
    assert not _editable(read_subscription(folder_with(tmp_path, "more.yaml", more)))
    assert not _editable(read_subscription(folder_with(tmp_path, "bad.yaml", "email: x@example.org\nmax_papers: 0\n")))
