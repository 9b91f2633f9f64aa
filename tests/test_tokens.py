from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.tokens import make_token, unsubscribe_url, verify_token

SECRET = b"s3cret-for-tests-only"
ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=200, deadline=None)
@given(subscriber_id=ids, secret=st.binary(min_size=1, max_size=64))
def test_round_trip(subscriber_id: str, secret: bytes) -> None:
    token = make_token(subscriber_id, secret)
    assert set(token) <= set(URLSAFE)
    assert verify_token(token, secret) == subscriber_id


@settings(max_examples=200, deadline=None)
@given(subscriber_id=ids, data=st.data())
def test_any_single_character_alteration_fails(subscriber_id: str, data: st.DataObject) -> None:
    token = make_token(subscriber_id, SECRET)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.characters(codec="utf-8").filter(lambda ch: ch != token[i]))
    altered = token[:i] + c + token[i + 1 :]
    assert verify_token(altered, SECRET) is None
    deleted = token[:i] + token[i + 1 :]
    assert verify_token(deleted, SECRET) is None
    inserted = token[:i] + c + token[i:]
    assert verify_token(inserted, SECRET) is None


@settings(max_examples=100, deadline=None)
@given(subscriber_id=ids, cut=st.integers(min_value=1, max_value=200))
def test_truncated_fails(subscriber_id: str, cut: int) -> None:
    token = make_token(subscriber_id, SECRET)
    assert verify_token(token[: max(0, len(token) - cut)], SECRET) is None


@settings(max_examples=100, deadline=None)
@given(subscriber_id=ids, other=st.binary(min_size=1, max_size=64))
def test_wrong_secret_fails(subscriber_id: str, other: bytes) -> None:
    if other == SECRET:
        return
    assert verify_token(make_token(subscriber_id, SECRET), other) is None


@settings(max_examples=300, deadline=None)
@given(garbage=st.one_of(st.text(max_size=300), st.text(URLSAFE, max_size=300)))
def test_garbage_is_none_never_an_exception(garbage: str) -> None:
    assert verify_token(garbage, SECRET) is None


def test_forged_id_with_reused_tag_fails() -> None:
    import base64

    raw = base64.urlsafe_b64decode(make_token("alice", SECRET) + "==")
    forged = raw[:1] + b"mallory" + raw[-16:]
    token = base64.urlsafe_b64encode(forged).rstrip(b"=").decode()
    assert verify_token(token, SECRET) is None


def test_rotation_with_old_secrets() -> None:
    old = make_token("alice", b"old")
    assert verify_token(old, b"new") is None
    assert verify_token(old, b"new", old_secrets=[b"old"]) == "alice"
    assert verify_token(make_token("alice", b"new"), b"new", old_secrets=[b"old"]) == "alice"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_token("", SECRET)
    with pytest.raises(ValueError):
        make_token("alice", b"")
    assert verify_token(None, SECRET) is None  # type: ignore[arg-type]
    assert verify_token("x" * 10_000, SECRET) is None


def test_unsubscribe_url() -> None:
    url = unsubscribe_url("https://digest.example.org/", "alice", SECRET)
    prefix = "https://digest.example.org/unsubscribe/"
    assert url.startswith(prefix)
    token = url[len(prefix) :]
    assert "alice" not in url  # the id is only inside the signed token
    assert verify_token(token, SECRET) == "alice"
    assert unsubscribe_url("http://localhost:8080", "alice", SECRET) == (
        "http://localhost:8080/unsubscribe/" + make_token("alice", SECRET)
    )
