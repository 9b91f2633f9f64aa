"""Signed unsubscribe tokens: the subscriber id plus an HMAC, nothing else. Pure, no I/O.

A token is the unpadded URL-safe base64 of ``version (1 byte) | subscriber id (UTF-8) | tag``,
where ``tag`` is the first 16 bytes of HMAC-SHA256 over a fixed context string, the version and
the id. The token is the only credential an RFC 8058 one-click POST carries (no session, no
cookie), so it must be unforgeable without the secret; it reveals the subscriber id (the file
stem) and nothing more. Tokens do not expire: a link in an old email keeps working.

Rotating the secret: sign with the new one and pass the old ones to :func:`verify_token` as
``old_secrets`` until old emails no longer matter. The version byte lets a later format coexist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["make_token", "verify_token", "unsubscribe_url", "TOKEN_VERSION"]

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
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        return None
    if not _TOKEN_RE.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if _b64encode(raw) != token:  # non-canonical spelling (e.g. altered padding bits)
        return None
    if len(raw) < 2 + _TAG_BYTES or raw[0] != TOKEN_VERSION:
        return None
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    ok = False
    for key in (secret, *old_secrets):
        if key:  # evaluate every key: no early exit that would time which one matched
            ok |= hmac.compare_digest(_tag(bytes(key), payload), tag)
    if not ok:
        return None
    try:
        return payload[1:].decode("utf-8")
    except UnicodeDecodeError:  # pragma: no cover - only reachable with a valid tag
        return None


def unsubscribe_url(public_url: str, subscriber_id: str, secret: bytes) -> str:
    """``<public_url>/unsubscribe/<token>`` (a trailing slash on ``public_url`` is ignored)."""
    token = make_token(subscriber_id, secret)
    return f"{public_url.rstrip('/')}/unsubscribe/{quote(token, safe='')}"
