"""Settings and subscription files: valid files load, every bad input is named by path, line, field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from digest.config import load_settings, load_subscriptions
from digest.errors import ConfigError
from digest.models import Keyword


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_bundled_example_configuration_is_valid(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    settings = load_settings()
    loaded = load_subscriptions(settings.subscriptions_dir, settings.source_names)
    assert loaded.problems == []
    assert {s.id for s in loaded.subscriptions} == {"alice", "bob", "chen"}


def test_a_full_subscription_file_is_read_as_written(tmp_path: Path) -> None:
    write(tmp_path, "alice.yaml", """\
email: Alice@Example.org
name: Alice
timezone: Europe/Berlin
send_at: "07:30"
frequency: weekly:MON
keywords:
  - mixture of experts
  - {term: LoRA, weight: 2}
exclude: [robotics]
sources: [hf_daily]
max_papers: 5
send_empty: true
paused: false
""")
    loaded = load_subscriptions(tmp_path, ["hf_daily", "arxiv"])
    (sub,) = loaded.subscriptions
    assert sub.id == "alice"
    assert sub.email == "Alice@example.org"  # the domain is normalised, the local part kept
    assert sub.send_at == dt.time(7, 30)
    assert sub.frequency == "weekly:mon"
    assert sub.keywords == (Keyword("mixture of experts"), Keyword("LoRA", 2.0))
    assert sub.exclude == ("robotics",)
    assert sub.sources == ("hf_daily",)
    assert (sub.max_papers, sub.send_empty, sub.paused) == (5, True, False)


def test_defaults_for_a_minimal_file(tmp_path: Path) -> None:
    write(tmp_path, "min.yaml", "email: min@example.org\n")
    (sub,) = load_subscriptions(tmp_path).subscriptions
    assert (sub.timezone, sub.send_at, sub.frequency, sub.keywords, sub.sources) == (
        "UTC", dt.time(7, 0), "daily", (), None)


def test_unquoted_times_are_not_read_as_base_60_numbers(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "email: a@example.org\nsend_at: 7:30\n")
    write(tmp_path, "b.yaml", "email: b@example.org\nsend_at: 10:45\n")
    subs = {s.id: s for s in load_subscriptions(tmp_path).subscriptions}
    assert subs["a"].send_at == dt.time(7, 30)
    assert subs["b"].send_at == dt.time(10, 45)


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("email: a@example.org\nkeywords: [x\n", 3, "-", "YAML syntax error"),
        ("email: a@example.org\ncolour: blue\n", 2, "colour", "unknown key"),
        ("email: a@example.org\nmax_papers: many\n", 2, "max_papers", "integer"),
        ("email: not-an-address\n", 1, "email", "not a valid email address"),
        ("email: a@example.org\ntimezone: Mars/Olympus\n", 2, "timezone", "unknown time zone"),
        ("email: a@example.org\nsend_at: '25:00'\n", 2, "send_at", "HH:MM"),
        ("email: a@example.org\nfrequency: hourly\n", 2, "frequency", "daily"),
        ("name: Nobody\n", 1, "email", "required"),
        ("email: a@example.org\nkeywords:\n  - {term: LoRA, wieght: 2}\n", 3, "keywords.0.wieght", "unknown key"),
        ("email: a@example.org\nsources: [nope]\n", 2, "sources.0", "unknown source"),
        ("email: a@example.org\nemail: b@example.org\n", 2, "email", "duplicate key"),
        ("- just\n- a list\n", 1, "-", "mapping"),
    ],
)
def test_each_bad_input_names_file_line_and_field(tmp_path: Path, text: str, line: int, field: str, words: str) -> None:
    path = write(tmp_path, "broken.yaml", text)
    write(tmp_path, "good.yaml", "email: good@example.org\n")
    loaded = load_subscriptions(tmp_path, ["hf_daily"])
    assert [s.id for s in loaded.subscriptions] == ["good"]  # the others are still served
    assert list(loaded.invalid) == ["broken"]
    first = loaded.problems[0]
    assert (first.path, first.line, first.field) == (str(path), line, field)
    assert words in first.message
    assert str(first).startswith(f"{path}:{line}: {field}: ")


def test_header_injection_in_a_name_or_address_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", 'email: "a@example.org\\r\\nBcc: evil@example.com"\n')
    write(tmp_path, "y.yaml", 'email: y@example.org\nname: "Y\\r\\nBcc: evil@example.com"\n')
    loaded = load_subscriptions(tmp_path)
    assert loaded.subscriptions == []
    assert {p.field for p in loaded.problems} == {"email", "name"}


def test_settings_yaml_then_environment_then_secret_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path, "digest.yaml", """\
sender: "Digest <d@example.org>"
smtp: {host: smtp.example.org, port: 2525, password: from-yaml}
sources:
  - {name: hf, kind: hf_daily, url: https://huggingface.co/api/daily_papers}
""")
    secret = write(tmp_path, "pw", "from-secret-file\n")
    monkeypatch.setenv("DIGEST_SMTP__PORT", "465")
    monkeypatch.setenv("DIGEST_SMTP__PASSWORD_FILE", str(secret))
    settings = load_settings(config)
    assert settings.smtp.host == "smtp.example.org"
    assert settings.smtp.port == 465
    assert settings.smtp.password.get_secret_value() == "from-secret-file"
    assert "from-secret-file" not in repr(settings) and "from-secret-file" not in str(settings.model_dump())
    assert settings.source_specs[0].kind == "hf_daily"


def test_bad_settings_name_the_line(tmp_path: Path) -> None:
    config = write(tmp_path, "digest.yaml", "sender: x\nsmtp:\n  port: 99999\n  tls: maybe\nsourcez: []\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    found = {(p.line, p.field) for p in caught.value.problems}
    assert found == {(3, "smtp.port"), (4, "smtp.tls"), (5, "sourcez")}


def test_a_missing_explicit_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_an_address_that_needs_smtputf8_is_refused_up_front(tmp_path: Path) -> None:
    write(tmp_path, "j.yaml", "email: jöse@example.org\n")
    loaded = load_subscriptions(tmp_path)
    assert loaded.subscriptions == [] and loaded.problems[0].field == "email"


@pytest.mark.parametrize(("text", "expected"), [
    ("12h", dt.timedelta(hours=12)), ("10m", dt.timedelta(minutes=10)), ("90s", dt.timedelta(seconds=90)),
    ("1h30m", dt.timedelta(minutes=90)), ("2d", dt.timedelta(days=2)), ("PT20H", dt.timedelta(hours=20)),
    ("60", dt.timedelta(seconds=60)),
])
def test_durations_read_as_people_write_them(tmp_path: Path, text: str, expected: dt.timedelta) -> None:
    config = write(tmp_path, "digest.yaml", f"catch_up: '{text}'\n")
    assert load_settings(config).catch_up == expected


def test_a_nonsense_duration_is_an_error_on_its_line(tmp_path: Path) -> None:
    config = write(tmp_path, "digest.yaml", "sender: x\ncatch_up: soon\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert (caught.value.problems[0].line, caught.value.problems[0].field) == (2, "catch_up")


@pytest.mark.parametrize(
    "address",
    [
        "Alice.Smith@Example.ORG", "a+tag@sub.example.co.uk", "x@bücher.de", "x@BÜCHER.de", "ALICE@EXAMPLE.ORG",
        "bob@localhost", "c@example.invalid", "a..b@x.org", ".a@x.org", '"q"@x.org', "a@b@c.org", "é@x.org",
        "a@-x.org", "a@x..org", "a" * 65 + "@x.org", "a@" + "b" * 64 + ".org", "noat", "@x.org", "a@",
    ],
)
def test_email_check_agrees_with_email_validator(address: str) -> None:
    """The per-domain shortcut accepts, rejects and normalises exactly as email_validator does."""
    from email_validator import EmailNotValidError, validate_email

    from digest.config.subscriptions import _valid_email

    try:
        expected = validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        got = _valid_email(address)
    except ValueError:
        got = None
    assert got == expected


def test_a_large_folder_read_by_several_processes_gives_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.config import subscriptions

    for i in range(12):
        write(tmp_path, f"r{i:02d}.yaml", f"email: r{i}@example.org\nkeywords: [LoRA]\n")
    write(tmp_path, "r05.yaml", "email: r5@example.org\nmax_papers: 0\n")  # broken, mid-folder
    write(tmp_path, "r09.yaml", "email: [not, an, address]\n")
    alone = load_subscriptions(tmp_path, ["hf_daily"])
    monkeypatch.setattr(subscriptions, "PARALLEL_MIN", 2)
    together = load_subscriptions(tmp_path, ["hf_daily"], processes=2)
    assert together == alone
    assert [s.id for s in together.subscriptions] == [f"r{i:02d}" for i in range(12) if i not in (5, 9)]
    assert [(Path(p.path).name, p.line, p.field) for p in together.problems] == [
        ("r05.yaml", 2, "max_papers"), ("r09.yaml", 1, "email")]


def test_a_file_cache_rereads_only_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service rescans every 30 s: unchanged files are not parsed again, changed ones are."""
    from digest.config import subscriptions

    write(tmp_path, "a.yaml", "email: a@example.org\nkeywords: [LoRA]\n")
    write(tmp_path, "b.yaml", "email: b@example.org\n")
    write(tmp_path, "c.yaml", "email: c@example.org\nmax_papers: 0\n")
    parsed: list[str] = []
    real = subscriptions.load_subscription
    monkeypatch.setattr(subscriptions, "load_subscription", lambda path, names=None: parsed.append(path.name) or real(path, names))
    cache = subscriptions.FileCache()
    first = load_subscriptions(tmp_path, cache=cache)
    assert sorted(parsed) == ["a.yaml", "b.yaml", "c.yaml"]
    parsed.clear()
    assert load_subscriptions(tmp_path, cache=cache) == first and parsed == []  # nothing changed
    write(tmp_path, "b.yaml", "email: b@example.org\nmax_papers: 3\n")  # rewritten in place, same size or not
    write(tmp_path, "c.yaml", "email: c@example.org\nmax_papers: 4\n")  # fixed
    (tmp_path / "a.yaml").unlink()
    write(tmp_path, "d.yaml", "email: d@example.org\n")
    again = load_subscriptions(tmp_path, cache=cache)
    assert sorted(parsed) == ["b.yaml", "c.yaml", "d.yaml"]
    assert {s.id: s.max_papers for s in again.subscriptions} == {"b": 3, "c": 4, "d": 5}  # d: the default
    assert again.problems == []


# --- issue 11: one file costs only its own reader ------------------------------------------------


def _bomb(depth: int = 9) -> str:
    names = "abcdefghi"[:depth]
    lines = [f"{names[0]}: &{names[0]} [x,x,x,x,x,x,x,x,x,x]"]
    lines += [f"{n}: &{n} [{','.join(['*' + p] * 10)}]" for p, n in zip(names, names[1:])]
    return "email: bomb@example.org\n" + "\n".join(lines) + f"\nkeywords: *{names[-1]}\n"


def test_an_alias_bomb_is_refused_fast_and_costs_only_its_file(tmp_path: Path) -> None:
    import time
    import tracemalloc

    path = write(tmp_path, "bomb.yaml", _bomb())
    assert path.stat().st_size < 400
    write(tmp_path, "good.yaml", "email: good@example.org\n")
    tracemalloc.start()
    start = time.monotonic()
    loaded = load_subscriptions(tmp_path)
    elapsed, peak = time.monotonic() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 2 and peak < 20_000_000
    assert [s.id for s in loaded.subscriptions] == ["good"]
    (problem,) = loaded.invalid["bomb"]
    assert (problem.line, "alias") == (3, "alias") and "alias" in problem.message


@pytest.mark.parametrize("text", [
    "email: a@example.org\nname: &n Ann\nexclude: [*n]\n",  # a harmless alias is refused too
    "email: a@example.org\nkeywords: &k [*k]\n",  # a recursive one
    "email: a@example.org\nbase: &b {max_papers: 3}\n<<: *b\n",  # a merge key
])  # fmt: skip
def test_every_alias_is_refused_with_its_line(tmp_path: Path, text: str) -> None:
    write(tmp_path, "a.yaml", text)
    (problem,) = load_subscriptions(tmp_path).problems
    assert "alias" in problem.message and problem.line == text.count("\n", 0, text.index("*")) + 1


def test_an_oversized_subscription_file_is_refused_unread(tmp_path: Path) -> None:
    write(tmp_path, "big.yaml", "email: big@example.org\nexclude:\n" + "  - x\n" * 200_000)
    (problem,) = load_subscriptions(tmp_path).problems
    assert "larger than" in problem.message


@pytest.mark.parametrize("text,field,words", [
    ("email: a@example.org\nmax_papers: " + "9" * 5000 + "\n", "max_papers", "number too large"),
    ("email: a@example.org\nname: !!binary aGk=\n", "-", "tag"),
    ("email: a@example.org\nname: !!python/object:os.system x\n", "-", "tag"),
    ("email: a@example.org\nname: !!float abc\n", "-", "not a number"),
    ("email: a@example.org\nexclude: !!set {a, b}\n", "-", "tag"),
    ("email: a@example.org\nname: =\n", None, None),  # YAML 1.1's "value" key: a plain string
    ("email: a@example.org\nexclude: " + "[" * 5000 + "]" * 5000 + "\n", "-", "nest"),
    ("email: a@example.org\nexclude: " + "[" * 100 + "]" * 100 + "\n", "-", "nested too deeply"),
])  # fmt: skip
def test_yaml_constructs_that_used_to_crash_are_problems(tmp_path: Path, text: str, field: str | None,
                                                         words: str | None) -> None:  # fmt: skip
    write(tmp_path, "a.yaml", text)
    loaded = load_subscriptions(tmp_path)
    if words is None:
        assert loaded.problems == [] and loaded.subscriptions[0].name == "="
        return
    (problem,) = loaded.problems
    assert problem.line == 2 and words in problem.message, problem


def test_yaml_1_1_booleans_octals_and_dates_are_plain_text(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "email: a@example.org\nname: Yes\nexclude: [on, off, y, n, No, 2024-01-01]\n")
    write(tmp_path, "b.yaml", "email: b@example.org\nsend_at: 0730\n")
    loaded = load_subscriptions(tmp_path)
    (a,) = loaded.subscriptions
    assert a.name == "Yes" and a.exclude == ("on", "off", "y", "n", "No", "2024-01-01")
    (problem,) = loaded.problems
    assert (Path(problem.path).name, problem.line, problem.field) == ("b.yaml", 2, "send_at")
    assert "'0730'" in problem.message  # as written, not octal 472


def test_yaml_1_2_scalars_keep_their_types(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "email: a@example.org\nmax_papers: 0x0c\nsend_empty: true\npaused: False\n"
                              "min_score: 1e0\nkeywords: [{term: x, weight: .5}]\nname: ~\n")  # fmt: skip
    (a,) = load_subscriptions(tmp_path).subscriptions
    assert (a.max_papers, a.send_empty, a.paused, a.min_score, a.keywords[0].weight, a.name) == (
        12, True, False, 1.0, 0.5, None)


def test_misnamed_subscription_files_are_named_not_ignored(tmp_path: Path) -> None:
    write(tmp_path, "Upper.YAML", "email: u@example.org\n")
    write(tmp_path, "notepad.yaml.txt", "email: n@example.org\n")
    (tmp_path / "x.yaml").mkdir()
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    write(tmp_path, "ok.yaml", "email: ok@example.org\n")
    write(tmp_path, "README.txt", "not a subscription\n")
    write(tmp_path, ".hidden.yaml", "email: h@example.org\n")
    write(tmp_path, "ok.yaml~", "email: ok@example.org\n")  # an editor's backup
    loaded = load_subscriptions(tmp_path)
    assert [s.id for s in loaded.subscriptions] == ["ok"]
    skipped = {Path(p.path).name: p.message for p in loaded.problems}
    assert set(skipped) == {"Upper.YAML", "notepad.yaml.txt", "x.yaml", "gone.yaml"}
    assert all(m.startswith("skipped: ") for m in skipped.values())
    assert "dangling" in skipped["gone.yaml"] and "directory" in skipped["x.yaml"]
    assert ".yaml" in skipped["Upper.YAML"] and loaded.invalid == {}


def test_bidi_controls_never_enter_from_a_subscription_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", 'email: a@example.org\nname: "Ann \\u202eeL"\nkeywords: ["Lo\\u2066RA"]\n'
                              'exclude: ["ro\\u202dbots"]\n')  # fmt: skip
    (a,) = load_subscriptions(tmp_path).subscriptions
    assert (a.name, a.keywords[0].term, a.exclude) == ("Ann eL", "LoRA", ("robots",))
