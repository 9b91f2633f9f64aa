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


# -- rating tokens ------------------------------------------------------------------------------

from digest.tokens import RatingLinks, derive_key, make_rating_token, verify_rating_token  # noqa: E402

keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(subscriber_id=ids, paper_key=keys, vote=st.sampled_from([1, -1, 0]))
def test_rating_round_trip(subscriber_id: str, paper_key: str, vote: int) -> None:
    token = make_rating_token(subscriber_id, paper_key, vote, SECRET)
    assert set(token) <= set(URLSAFE)
    assert verify_rating_token(token, SECRET) == (subscriber_id, paper_key, vote)
    assert verify_rating_token(token, b"another secret") is None
    assert verify_rating_token(token, b"new", old_secrets=[SECRET]) == (subscriber_id, paper_key, vote)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_character_alteration_of_a_rating_token_fails(data: st.DataObject) -> None:
    token = make_rating_token("alice", "arxiv:2510.01234", 1, SECRET)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from(URLSAFE).filter(lambda ch: ch != token[i]))
    assert verify_rating_token(token[:i] + c + token[i + 1 :], SECRET) is None
    assert verify_rating_token(token[:i] + token[i + 1 :], SECRET) is None


def test_rating_and_unsubscribe_tokens_are_not_interchangeable() -> None:
    unsub = make_token("alice", SECRET)
    rate = make_rating_token("alice", "arxiv:1", 1, SECRET)
    assert verify_rating_token(unsub, SECRET) is None
    assert verify_token(rate, SECRET) is None
    assert verify_token(unsub, SECRET) == "alice"  # the unsubscribe format is unchanged
    # the rating key is derived per purpose: neither the secret nor another purpose's key
    assert derive_key(SECRET, "rate") not in (SECRET, derive_key(SECRET, "other"))


def test_the_vote_is_signed() -> None:
    """Flipping the vote byte of a "more like this" token does not make a valid "not for me" one."""
    import base64

    token = make_rating_token("alice", "arxiv:1", 1, SECRET)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[2 + len("alice")] = 0xFF
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert verify_rating_token(flipped, SECRET) is None


def test_rating_links() -> None:
    links = RatingLinks("https://digest.example.org/base/", "alice", SECRET)
    url = links("arxiv:2510.01234", -1)
    assert url.startswith("https://digest.example.org/base/rate/") and len(url) < 120
    assert verify_rating_token(url.rsplit("/", 1)[1], SECRET) == ("alice", "arxiv:2510.01234", -1)
    shared = RatingLinks("https://x", "alice", SECRET, key=derive_key(SECRET, "rate"))
    assert shared.token("arxiv:1", 1) == links.token("arxiv:1", 1)
    with pytest.raises(ValueError):
        RatingLinks("https://x", "a" * 256, SECRET)


@pytest.mark.parametrize("bad", ["", "x", "AQ", "=" * 10, "é", "A" * 3000, None])
def test_garbage_rating_tokens(bad: object) -> None:
    assert verify_rating_token(bad, SECRET) is None  # type: ignore[arg-type]


def _v1_rating_token(subscriber_id: str, paper_key: str, vote: int, secret: bytes) -> str:
    """A rating token as emails sent before version 2 carry it (one HMAC per link)."""
    import base64
    import hashlib
    import hmac

    ident = subscriber_id.encode()
    payload = bytes([1, len(ident)]) + ident + {1: b"\x01", -1: b"\xff", 0: b"\x00"}[vote] + paper_key.encode()
    tag = hmac.new(derive_key(secret, "rate"), b"digest/rate\x00" + payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


def test_a_papers_two_links_come_from_one_hmac_and_each_vote_is_signed() -> None:
    """Version 2: "more like this" carries the first half of the paper's HMAC, "not for me" the
    second; neither tag is valid for the other vote, nor for clearing, nor as a version 1 token."""
    import base64

    links = RatingLinks("https://digest.example.org", "alice", SECRET)
    up, down = links.pair("arxiv:2510.01234")
    assert (up, down) == (links("arxiv:2510.01234", 1), links("arxiv:2510.01234", -1))
    assert verify_rating_token(up.rsplit("/", 1)[1], SECRET) == ("alice", "arxiv:2510.01234", 1)
    assert verify_rating_token(down.rsplit("/", 1)[1], SECRET) == ("alice", "arxiv:2510.01234", -1)

    def raw(url: str) -> bytes:
        token = url.rsplit("/", 1)[1]
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))

    def token(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    a, b = raw(up), raw(down)
    assert a[0] == 3 and a[:-16] != b[:-16] and a[-16:] != b[-16:]
    vote_at = 2 + len("alice")
    for body, tag in ((a[:-16], b[-16:]), (b[:-16], a[-16:])):  # a vote with the other vote's tag
        assert verify_rating_token(token(body + tag), SECRET) is None
    for tag in (a[-16:], b[-16:]):  # clearing with either tag
        assert verify_rating_token(token(a[:vote_at] + b"\x00" + a[vote_at + 1 : -16] + tag), SECRET) is None
    assert verify_rating_token(token(b"\x01" + a[1:]), SECRET) is None  # relabelled as version 1
    assert verify_rating_token(token(b"\x02" + a[1:]), SECRET) is None  # relabelled as version 2
    clear = make_rating_token("alice", "arxiv:2510.01234", 0, SECRET)
    assert verify_rating_token(clear, SECRET) == ("alice", "arxiv:2510.01234", 0)


def _v2_rating_token(subscriber_id: str, paper_key: str, vote: int, secret: bytes) -> str:
    """A rating token as emails sent before version 3 carry it: the paper key as UTF-8."""
    import base64
    import hashlib
    import hmac

    ident = subscriber_id.encode()
    head, paper = bytes([2, len(ident)]) + ident, paper_key.encode()
    key = derive_key(secret, "rate")
    if vote == 0:
        tag = hmac.new(key, b"digest/rate/2/clear\x00" + head + paper, hashlib.sha256).digest()[:16]
    else:
        digest = hmac.new(key, b"digest/rate/2\x00" + head + paper, hashlib.sha256).digest()
        tag = digest[:16] if vote == 1 else digest[16:]
    payload = head + {1: b"\x01", -1: b"\xff", 0: b"\x00"}[vote] + paper
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


@pytest.mark.parametrize("vote", [1, -1, 0])
@pytest.mark.parametrize("make, prefix", [
    (_v1_rating_token, "AQVhbGljZ"),  # version 1, a five-byte id: "alice"
    (_v2_rating_token, "AgVhbGljZ"),  # version 2
])  # fmt: skip
def test_links_in_emails_sent_before_still_verify(make, prefix: str, vote: int) -> None:
    old = make("alice", "arxiv:2510.01234", vote, SECRET)
    assert old.startswith(prefix)
    assert verify_rating_token(old, SECRET) == ("alice", "arxiv:2510.01234", vote)
    assert verify_rating_token(old, b"new", old_secrets=[SECRET]) == ("alice", "arxiv:2510.01234", vote)
    assert verify_rating_token(old, b"another secret") is None


@pytest.mark.parametrize("vote", [1, -1, 0])
def test_version_3_packs_the_arxiv_key_in_5_bytes_instead_of_16(vote: int) -> None:
    old = _v2_rating_token("alice", "arxiv:2510.01234", vote, SECRET)
    new = make_rating_token("alice", "arxiv:2510.01234", vote, SECRET)
    assert len(new) == len(old) - 15


@pytest.mark.parametrize("paper_key, packed", [
    ("arxiv:2510.01234", True), ("arxiv:0704.0001", True), ("arxiv:9912.99999", True), ("arxiv:0000.00000", True),
    ("arxiv:2510.1234", True), ("arxiv:2510.123", False), ("arxiv:2510.012345", False), ("arxiv:2510.01234v2", False),
    ("arXiv:2510.01234", False), ("arxiv:hep-th/9901001", False), ("arxiv:\u0662\u0665\u0661\u0660.01234", False),
    ("doi:10.1000/xyz", False), ("url:https://example.org/p", False), ("\x80", False),
])
def test_version_3_packs_new_style_arxiv_keys(paper_key: str, packed: bool) -> None:
    """A new-style arXiv key goes in 5 bytes, any other key as it is; every one comes back the same."""
    import base64

    links = RatingLinks("https://x", "alice", SECRET)
    for url, vote in zip(links.pair(paper_key), (1, -1)):
        token = url.rsplit("/", 1)[1]
        assert verify_rating_token(token, SECRET) == ("alice", paper_key, vote)
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) == 3 + len("alice") + (5 if packed else len(paper_key.encode())) + 16
    assert verify_rating_token(make_rating_token("alice", paper_key, 0, SECRET), SECRET) == ("alice", paper_key, 0)
