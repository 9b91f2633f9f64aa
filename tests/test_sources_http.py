"""Pure pieces of the HTTP layer: capped decompression, Retry-After, the address policy."""

from __future__ import annotations

import email.utils
import ipaddress
import time
import tracemalloc
import zlib

import pytest

from digest.errors import SourceError
from digest.sources.http import _CappedBody, _retry_after, address_problem, local_path


def bomb(size: int = 10_000_000) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * 1_000_000
    return b"".join(c.compress(block) for _ in range(size // len(block))) + c.flush()


def test_capped_body_stops_a_bomb_at_the_cap() -> None:
    body = _CappedBody("gzip", 2_000_000)
    data = bomb()
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match="body larger than 2000000 bytes"):
            for i in range(0, len(data), 65536):
                body.feed(data[i : i + 65536])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000


def test_capped_body_deflate_and_identity() -> None:
    data = b"hello " * 1000
    for enc, payload in (("deflate", zlib.compress(data)), ("deflate", zlib.compress(data)[2:-4]),
                         ("identity", data), ("", data), ("x-gzip", zlib.compress(data, wbits=31))):  # fmt: skip
        body = _CappedBody(enc, 10_000)
        body.feed(payload[:7])
        body.feed(payload[7:])
        assert body.finish() == data
    with pytest.raises(SourceError, match="unsupported Content-Encoding: br"):
        _CappedBody("br", 10)


def test_retry_after_forms() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after(" 0.5 ") == 0.5
    assert _retry_after("-4") == 0.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= _retry_after(future) <= 31  # type: ignore[operator]
    assert _retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


@pytest.mark.parametrize(
    ("address", "allow_private", "problem"),
    [
        ("8.8.8.8", False, None),
        ("2606:4700::1111", False, None),
        ("127.0.0.1", False, "a loopback address"),
        ("127.0.0.1", True, None),
        ("::1", False, "a loopback address"),
        ("10.1.2.3", False, "a private address"),
        ("172.16.0.1", False, "a private address"),
        ("192.168.1.1", True, None),
        ("fd00:ec2::254", False, "a private address"),
        ("169.254.169.254", False, "a link-local address"),
        ("169.254.169.254", True, "a link-local address"),
        ("fe80::1", True, "a link-local address"),
        ("::ffff:169.254.169.254", True, "a link-local address"),
        ("64:ff9b::a9fe:a9fe", True, "a link-local address"),
        ("::ffff:10.0.0.1", False, "a private address"),
        ("0.0.0.0", False, "an unspecified address"),
        ("224.0.0.1", False, "a multicast address"),
        ("240.0.0.1", False, "a private address"),
        ("100.64.0.1", False, "a non-public address"),
    ],
)
def test_address_policy(address: str, allow_private: bool, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address), allow_private) == problem


def test_local_path_forms() -> None:
    assert local_path("https://x.example/feed") is None
    assert str(local_path("file:///tmp/a%20b.xml")) == "/tmp/a b.xml"
    assert str(local_path("data/feed.xml")) == "data/feed.xml"
    with pytest.raises(SourceError, match="refused: file URL with a host"):
        local_path("file://evil.example/etc/passwd")
    with pytest.raises(SourceError, match="unsupported URL scheme: ftp"):
        local_path("ftp://x.example/feed")
