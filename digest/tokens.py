"""Signed unsubscribe tokens: the subscriber id plus an HMAC, nothing else. Pure, no I/O.

A token is the unpadded URL-safe base64 of ``version (1 byte) | subscriber id (UTF-8) | tag``,
where ``tag`` is the first 16 bytes of HMAC-SHA256 over a fixed context string, the version and
the id. The token is the only credential an RFC 8058 one-click POST carries (no session, no
cookie), so it must be unforgeable without the secret; it reveals the subscriber id (the file
stem) and nothing more. Tokens do not expire: a link in an old email keeps working.

Rotating the secret: sign with the new one and pass the old ones to :func:`verify_token` as
``old_secrets`` until old emails no longer matter. The version byte lets a later format coexist.

Rating tokens ("more like this" / "not for me" / undo) are signed with a key derived from the same
secret for that one purpose (:func:`derive_key`), so a token of one kind is never valid as the
other. A rating token is the unpadded URL-safe base64 of ``version | len(id) | id | vote | paper
key | tag``: one byte each for the version, the id's length in UTF-8 bytes (at most 255) and the
vote (``0x01`` up, ``0xff`` down, ``0x00`` clear). Version 2 signs a paper's two links with one
HMAC: ``tag`` is a 16-byte half of HMAC-SHA256 with the derived key over a context string, the
version, the id and the paper key: the first half for "more like this", the second for "not for
me" (halves of a PRF's output are independent: one link's tag tells nothing of the other's, so
the vote stays signed); a "clear" tag is the first half under another context string. Version 3
(what is made now) is version 2 with the paper key packed: ``arxiv:2510.01234`` (16 bytes) as
``0x80`` and the number 2510 * 100000 + 1234 in 4 bytes (``0x81`` and * 10000 for the 4-digit
numbers of 2007-2014), any other key as its UTF-8 (which never starts with a byte 0x80-0xbf);
the tag is over the packed bytes, so a token is 15 characters shorter. Version 1 (emails sent
before version 2) signed each link on its own: the first 16 bytes of HMAC-SHA256 over a context
string and everything before the tag. All three verify.

"Edit your interests" tokens (``/manage/<token>``, digest/web_manage.py) carry the reader and an
expiry: ``version | expiry (4 bytes, big-endian Unix seconds) | subscriber id | tag``, the tag
under a key derived for ``"manage"``. They expire MANAGE_TTL after the digest that carried them
was made: a reader always has a fresh one in their latest digest, and a forwarded or leaked old
email stops opening their preferences.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple
from urllib.parse import quote

__all__ = [
    "make_token",
    "verify_token",
    "unsubscribe_url",
    "TOKEN_VERSION",
    "derive_key",
    "make_rating_token",
    "verify_rating_token",
    "RatingLinks",
    "ManageLinks",
    "ManageToken",
    "verify_manage_token",
    "MANAGE_TTL",
]

TOKEN_VERSION = 1
_CONTEXT = b"digest/unsubscribe\x00"
_TAG_BYTES = 16
_MAX_TOKEN_CHARS = 2048  # longer input is rejected before any work
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")


def _tag(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()[:_TAG_BYTES]


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, (bytes, bytearray)) or not secret:
        raise ValueError("the token secret must be non-empty bytes")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(token: object, limit: int = _MAX_TOKEN_CHARS) -> bytes | None:
    """The bytes of a canonical unpadded URL-safe base64 token of at most `limit` characters, else None."""
    if not isinstance(token, str) or len(token) > limit or not _TOKEN_RE.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == token else None  # else non-canonical (e.g. altered padding bits)


def _signed_by_any(tag: bytes, keys: Iterable[bytes], tag_for: Callable[[bytes], bytes]) -> bool:
    """Whether `tag` is ``tag_for(key)`` for one of `keys` (empty keys skipped). Every key is
    tried: no early exit that would time which one matched."""
    ok = False
    for key in keys:
        if key:
            ok |= hmac.compare_digest(tag_for(bytes(key)), tag)
    return ok


def make_token(subscriber_id: str, secret: bytes) -> str:
    """A URL-safe token that carries ``subscriber_id`` and proves it was signed with ``secret``."""
    _check_secret(secret)
    if not subscriber_id:
        raise ValueError("subscriber_id must not be empty")
    payload = bytes([TOKEN_VERSION]) + subscriber_id.encode("utf-8")
    return _b64encode(payload + _tag(bytes(secret), payload))


def verify_token(
    token: str, secret: bytes, *, old_secrets: Iterable[bytes] = ()
) -> str | None:
    """The subscriber id inside ``token`` if it was signed with ``secret`` (or one of
    ``old_secrets``), else None. Never raises on a bad token: truncated, altered, forged,
    non-canonical or garbage input all give None."""
    _check_secret(secret)
    raw = _b64decode(token)
    if raw is None:
        return None
    if len(raw) < 2 + _TAG_BYTES or raw[0] != TOKEN_VERSION:
        return None
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not _signed_by_any(tag, (secret, *old_secrets), lambda key: _tag(key, payload)):
        return None
    try:
        return payload[1:].decode("utf-8")
    except UnicodeDecodeError:  # pragma: no cover - only reachable with a valid tag
        return None


def unsubscribe_url(public_url: str, subscriber_id: str, secret: bytes) -> str:
    """``<public_url>/unsubscribe/<token>`` (a trailing slash on ``public_url`` is ignored)."""
    token = make_token(subscriber_id, secret)
    return f"{public_url.rstrip('/')}/unsubscribe/{quote(token, safe='')}"


# -- rating tokens ------------------------------------------------------------------------------

_RATE_CONTEXT = b"digest/rate\x00"  # version 1: one HMAC per link
# versions 2 and 3 (the version byte is part of what they sign): one HMAC per paper, its halves the up and down tags
_RATE_CONTEXT_2 = b"digest/rate/2\x00"
_RATE_CLEAR_CONTEXT_2 = b"digest/rate/2/clear\x00"  # vote 0 (the confirmation page's undo)
RATE_VERSION = 3  # what RatingLinks makes; version 1 and 2 tokens (older emails) still verify
_ARXIV_NEW = re.compile(r"arxiv:([0-9]{4})\.([0-9]{4,5})")  # [0-9]: \d matches any Unicode digit
_VOTE_BYTE = {1: b"\x01", -1: b"\xff", 0: b"\x00"}
_BYTE_VOTE = {1: 1, 0xFF: -1, 0: 0}


def derive_key(secret: bytes, purpose: str) -> bytes:
    """The key for one purpose (e.g. ``"rate"``), derived from the service secret: HMAC-SHA256 of
    the purpose under the secret. Knowing a derived key tells nothing of the secret or the others."""
    _check_secret(secret)
    return hmac.new(bytes(secret), b"digest/derive\x00" + purpose.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=8192)  # the same papers go to many readers
def _pack_paper(key: str) -> bytes:
    """A paper key as version 3 carries it: a new-style arXiv key in 5 bytes, any other as UTF-8."""
    m = _ARXIV_NEW.fullmatch(key)
    if m is None:
        return key.encode("utf-8")
    yymm, number = m.groups()
    packed = int(yymm) * 10 ** len(number) + int(number)  # < 2**30
    return (b"\x80" if len(number) == 5 else b"\x81") + packed.to_bytes(4, "big")


def _unpack_paper(raw: bytes) -> str:
    """The paper key of `_pack_paper`'s bytes (UnicodeDecodeError for bytes it never makes)."""
    if raw[:1] in (b"\x80", b"\x81") and len(raw) == 5:
        digits = 5 if raw[0] == 0x80 else 4
        yymm, number = divmod(int.from_bytes(raw[1:], "big"), 10**digits)
        if yymm <= 9999:
            return f"arxiv:{yymm:04d}.{number:0{digits}d}"
    return raw.decode("utf-8")


class RatingLinks:
    """The rating URLs of one reader's digest: ``links(paper_key, vote)`` is
    ``<public_url>/rate/<token>``, and ``links.pair(paper_key)`` the "more like this" and "not for
    me" URLs of a paper from one HMAC (version 3 tokens). Cheap per link (the reader's part of the
    MAC is computed once); pass a ``key`` from :func:`derive_key` (``"rate"``) to share that work
    across readers."""

    __slots__ = ("base", "_head", "_mac", "_clear")

    def __init__(self, public_url: str, subscriber_id: str, secret: bytes, *, key: bytes | None = None) -> None:
        ident = subscriber_id.encode("utf-8")
        if not ident or len(ident) > 255:
            raise ValueError("subscriber_id must be 1 to 255 bytes of UTF-8")
        self.base = f"{public_url.rstrip('/')}/rate/"
        self._head = bytes([RATE_VERSION, len(ident)]) + ident
        key = key or derive_key(secret, "rate")
        self._mac = hmac.new(key, _RATE_CONTEXT_2 + self._head, hashlib.sha256)
        self._clear = hmac.new(key, _RATE_CLEAR_CONTEXT_2 + self._head, hashlib.sha256)

    def _digest(self, mac: hmac.HMAC, paper: bytes) -> bytes:
        mac = mac.copy()
        mac.update(paper)
        return mac.digest()

    def token(self, paper_key: str, vote: int) -> str:
        paper = _pack_paper(paper_key)
        if vote == 0:
            tag = self._digest(self._clear, paper)[:_TAG_BYTES]
        else:
            tag = _half(self._digest(self._mac, paper), vote)
        return _b64encode(self._head + _VOTE_BYTE[vote] + paper + tag)

    def pair(self, paper_key: str) -> tuple[str, str]:
        """(the "more like this" URL, the "not for me" URL) of a paper."""
        paper = _pack_paper(paper_key)
        digest = self._digest(self._mac, paper)
        return (
            self.base + _b64encode(self._head + b"\x01" + paper + digest[:_TAG_BYTES]),
            self.base + _b64encode(self._head + b"\xff" + paper + digest[_TAG_BYTES : 2 * _TAG_BYTES]),
        )

    def __call__(self, paper_key: str, vote: int) -> str:
        return self.base + self.token(paper_key, vote)


def _half(digest: bytes, vote: int) -> bytes:
    """A version 2 or 3 tag of an up (+1) or down (-1) vote: its half of the paper's HMAC."""
    return digest[:_TAG_BYTES] if vote == 1 else digest[_TAG_BYTES : 2 * _TAG_BYTES]


def make_rating_token(subscriber_id: str, paper_key: str, vote: int, secret: bytes) -> str:
    """A token that carries (reader, paper, vote: +1, -1 or 0 to clear), signed for rating."""
    return RatingLinks("", subscriber_id, secret).token(paper_key, vote)


def _rating_tag(secret: bytes, payload: bytes) -> bytes:
    """The tag of a rating token's payload (everything before the tag), any version."""
    key = derive_key(secret, "rate")
    if payload[0] == 1:
        return hmac.new(key, _RATE_CONTEXT + payload, hashlib.sha256).digest()[:_TAG_BYTES]
    n = payload[1]
    head, vote, paper = payload[: 2 + n], _BYTE_VOTE[payload[2 + n]], payload[3 + n :]
    if vote == 0:
        return hmac.new(key, _RATE_CLEAR_CONTEXT_2 + head + paper, hashlib.sha256).digest()[:_TAG_BYTES]
    return _half(hmac.new(key, _RATE_CONTEXT_2 + head + paper, hashlib.sha256).digest(), vote)


def verify_rating_token(
    token: str, secret: bytes, *, old_secrets: Iterable[bytes] = ()
) -> tuple[str, str, int] | None:
    """(subscriber id, paper key, vote) of a rating token (version 1, 2 or 3) signed with ``secret``
    (or one of ``old_secrets``), else None; never raises on a bad token."""
    _check_secret(secret)
    raw = _b64decode(token)
    if raw is None or len(raw) < 4 + _TAG_BYTES or raw[0] not in (1, 2, RATE_VERSION):
        return None
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    n = payload[1]
    if len(payload) < 2 + n + 2 or payload[2 + n] not in _BYTE_VOTE:
        return None
    if not _signed_by_any(tag, (secret, *old_secrets), lambda key: _rating_tag(key, payload)):
        return None
    paper = payload[3 + n :]
    try:
        key = _unpack_paper(paper) if raw[0] == 3 else paper.decode("utf-8")
        return payload[2 : 2 + n].decode("utf-8"), key, _BYTE_VOTE[payload[2 + n]]
    except UnicodeDecodeError:  # pragma: no cover - only reachable with a valid tag
        return None


# -- "Edit your interests" tokens ----------------------------------------------------------------

MANAGE_TTL = dt.timedelta(days=60)
_MANAGE_CONTEXT = b"digest/manage\x00"
_EXPIRY_BYTES = 4


class ManageToken(NamedTuple):
    """A manage token with a valid signature: its reader and expiry (Unix seconds)."""

    subscriber_id: str
    expires: int

    def expired(self, now: dt.datetime) -> bool:
        return self.expires < now.timestamp()


class ManageLinks:
    """``links(subscriber_id)`` is ``<public_url>/manage/<token>``, valid until the end of the
    UTC day of ``now + ttl``.
    One per run: the derived key is computed once."""

    __slots__ = ("base", "_expiry", "_mac")

    def __init__(self, public_url: str, secret: bytes, *, now: dt.datetime, ttl: dt.timedelta = MANAGE_TTL) -> None:
        self.base = f"{public_url.rstrip('/')}/manage/"
        # until the end of that UTC day: every message of a run (and a dry-run preview made the
        # same day) carries the same link, whatever second it was built in
        expires = -(-int((now + ttl).timestamp()) // 86400) * 86400
        self._expiry = bytes([TOKEN_VERSION]) + expires.to_bytes(_EXPIRY_BYTES, "big")
        self._mac = hmac.new(derive_key(secret, "manage"), _MANAGE_CONTEXT, hashlib.sha256)

    def token(self, subscriber_id: str) -> str:
        ident = subscriber_id.encode("utf-8")
        if not ident:
            raise ValueError("subscriber_id must not be empty")
        payload = self._expiry + ident
        mac = self._mac.copy()
        mac.update(payload)
        return _b64encode(payload + mac.digest()[:_TAG_BYTES])

    def __call__(self, subscriber_id: str) -> str:
        return self.base + self.token(subscriber_id)


def _manage_tag(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(derive_key(secret, "manage"), _MANAGE_CONTEXT + payload, hashlib.sha256).digest()[:_TAG_BYTES]


def verify_manage_token(token: str, secret: bytes, *, old_secrets: Iterable[bytes] = ()) -> ManageToken | None:
    """The reader and expiry of a manage token signed with ``secret`` (or one of ``old_secrets``),
    expired or not (the caller says which); None for anything forged, altered or truncated."""
    _check_secret(secret)
    raw = _b64decode(token)
    if raw is None or len(raw) < 1 + _EXPIRY_BYTES + 1 + _TAG_BYTES or raw[0] != TOKEN_VERSION:
        return None
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not _signed_by_any(tag, (secret, *old_secrets), lambda key: _manage_tag(key, payload)):
        return None
    try:
        ident = payload[1 + _EXPIRY_BYTES :].decode("utf-8")
    except UnicodeDecodeError:  # pragma: no cover - only reachable with a valid tag
        return None
    return ManageToken(ident, int.from_bytes(payload[1 : 1 + _EXPIRY_BYTES], "big"))
