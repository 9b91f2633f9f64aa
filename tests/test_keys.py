"""Key rotation and key strength (issue 12, item 7): `secret_key` signs, `old_secret_keys` (and the
database's generated key once `secret_key` is set) still verify links already in readers' inboxes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from digest.cli import _old_secrets, _secret, cli
from digest.config import load_settings
from digest.metrics import Metrics
from digest.store import open_store
from digest.tokens import make_rating_token, make_token
from digest.web import make_app, start_server

OLD = b"the key of last year, 32 bytes or more"
NEW = b"the key of this year, 32 bytes or more"
OTHER = b"nobody's key, but 32 bytes long too!!"


def _post_all(app, paths: list[str]) -> list[int]:
    async def main() -> list[int]:
        server = await start_server(app, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=5) as client:
                return [(await client.post(p)).status_code for p in paths]
        finally:
            await server.stop()

    return asyncio.run(main())


def test_links_signed_with_an_old_key_keep_working_over_http() -> None:
    unsubscribed: list[str] = []
    rated: list[tuple[str, str, int]] = []

    def rate(sub: str, key: str, vote: int):
        from digest.web_rate import Rated

        rated.append((sub, key, vote))
        return Rated(0, None)

    app = make_app(secret=NEW, old_secrets=[OLD], unsubscribe=lambda s: unsubscribed.append(s) or True,
                   is_known=lambda s: True, health=lambda: {"scheduler_running": True}, metrics=Metrics(), rate=rate)
    statuses = _post_all(app, [
        f"/unsubscribe/{make_token('alice', OLD)}",
        f"/unsubscribe/{make_token('bob', NEW)}",
        f"/unsubscribe/{make_token('eve', OTHER)}",
        f"/rate/{make_rating_token('alice', 'arxiv:1', 1, OLD)}",
        f"/rate/{make_rating_token('bob', 'arxiv:2', -1, NEW)}",
        f"/rate/{make_rating_token('eve', 'arxiv:3', 1, OTHER)}",
    ])
    assert statuses == [200, 200, 400, 200, 200, 400]
    assert unsubscribed == ["alice", "bob"]
    assert rated == [("alice", "arxiv:1", 1), ("bob", "arxiv:2", -1)]


def _settings_file(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "digest.yaml"
    path.write_text(yaml.safe_dump({"database_url": f"sqlite:///{tmp_path / 'd.db'}", **extra}))
    return path


def test_configuring_a_key_keeps_the_generated_one_valid(tmp_path: Path) -> None:
    generated_settings = load_settings(_settings_file(tmp_path))
    store = open_store(generated_settings.database_url)
    try:
        generated = _secret(generated_settings, store)  # the default: generated, kept in the database
        assert len(generated) == 32 and _old_secrets(generated_settings, store) == ()
        rotated = load_settings(_settings_file(tmp_path, secret_key=NEW.decode(), old_secret_keys=[OLD.decode()]))
        assert _secret(rotated, store) == NEW
        assert _old_secrets(rotated, store) == (OLD, generated)
    finally:
        store.close()


@pytest.mark.parametrize("value,expected", [
    ("", "secret_key: is empty"),
    ("short", "secret_key: is 5 bytes long; use at least 32"),
])
def test_an_empty_or_short_key_is_a_check_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   value: str, expected: str) -> None:
    (tmp_path / "subs").mkdir()
    config = _settings_file(tmp_path, subscriptions_dir=str(tmp_path / "subs"),
                            sources=[{"name": "x", "kind": "feed", "url": str(tmp_path / "feed.xml")}])
    ok = CliRunner().invoke(cli, ["--config", str(config), "check"], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output  # the rest of the settings is fine
    monkeypatch.setenv("DIGEST_SECRET_KEY", value)
    for command in ("check", "send"):
        result = CliRunner().invoke(cli, ["--config", str(config), command], catch_exceptions=False)
        assert result.exit_code == 2, (command, result.output)
        assert f"environment DIGEST_SECRET_KEY: {expected}" in result.output, result.output


def test_old_keys_from_one_variable_or_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "old_keys"
    keys.write_text(f"{OLD.decode()}\n{OTHER.decode()}\n")
    monkeypatch.setenv("DIGEST_OLD_SECRET_KEYS_FILE", str(keys))
    settings = load_settings(_settings_file(tmp_path))
    assert [k.get_secret_value() for k in settings.old_secret_keys] == [OLD.decode(), OTHER.decode()]
    assert "32 bytes" not in repr(settings)  # secrets stay masked
    monkeypatch.delenv("DIGEST_OLD_SECRET_KEYS_FILE")
    monkeypatch.setenv("DIGEST_OLD_SECRET_KEYS", '["a", "b"]')
    assert [k.get_secret_value() for k in load_settings(_settings_file(tmp_path)).old_secret_keys] == ["a", "b"]
