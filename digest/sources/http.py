"""Fetching one source URL safely: deadline, retries, size cap, redirects, address checks.

- The whole fetch of one URL (every attempt, redirect and backoff) runs under one deadline,
  ``spec.timeout``, so a server that trickles bytes cannot hold us.
- Retries (tenacity): ``spec.retries`` attempts after the first, on connection errors, timeouts,
  429 and 5xx; capped exponential backoff with jitter; ``Retry-After`` (seconds or HTTP date) is
  honoured, and if it points past the deadline we give up at once instead of hammering.
- Redirects are followed here (at most 5, loops refused) and EVERY hop's host is resolved and
  checked before connecting; the request then goes to the checked address (Host header and TLS
  SNI keep the name), so a DNS answer cannot change between the check and the connection.
  Loopback, private, unspecified, multicast, reserved and other non-global addresses are refused
  unless ``spec.allow_private``; link-local (169.254.0.0/16, the cloud metadata address,
  fe80::/10) is refused always.
- The body is streamed and decompressed here (gzip/deflate, bounded output per step), so the
  ``spec.max_bytes`` cap applies after decompression and a gzip bomb stops at the cap.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import random
import socket
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from digest import __version__
from digest.errors import SourceError
from digest.models import SourceSpec

__all__ = [
    "USER_AGENT",
    "Fetched",
    "fetch_url",
    "fetch_source_url",
    "local_path",
    "read_local",
    "address_problem",
    "new_client",
]

USER_AGENT = f"digest/{__version__}"
MAX_REDIRECTS = 5
BACKOFF_INITIAL = 0.5  # seconds, doubled per attempt, full wait drawn from [base/2, base]
BACKOFF_MAX = 8.0
RETRY_AFTER_MAX = 120.0
_CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class Fetched:
    body: bytes
    content_type: str | None
    url: str  # the last URL after redirects
    attempts: int = 1


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": USER_AGENT})


# --- addresses -------------------------------------------------------------------------------


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    """Why we must not connect to ``ip`` (``"a link-local address"``...), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.is_link_local:
        return "a link-local address"
    if allow_private:
        return None
    for attr, label in (("is_loopback", "a loopback"), ("is_unspecified", "an unspecified"),
                        ("is_multicast", "a multicast"), ("is_private", "a private"),
                        ("is_reserved", "a reserved")):  # fmt: skip
        if getattr(ip, attr):
            return f"{label} address"
    if not ip.is_global:
        return "a non-public address"
    return None


async def _checked_address(host: str, port: int, allow_private: bool) -> str:
    """Resolve ``host`` and return the address to connect to; SourceError if any is forbidden."""
    literal = True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        literal = False
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            if e.errno == socket.EAI_AGAIN:
                raise _Retryable(f"cannot resolve {host}: {e.strerror}") from None
            raise SourceError(f"cannot resolve {host}: {e.strerror}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos))
    if not addresses:
        raise SourceError(f"cannot resolve {host}: no address")
    for ip in addresses:
        problem = address_problem(ip, allow_private)
        if problem:
            named = "" if literal else f" ({host})"
            raise SourceError(f"refused: {ip} is {problem}{named}")
    v4 = [ip for ip in addresses if ip.version == 4]
    return str((v4 or addresses)[0])


# --- body ------------------------------------------------------------------------------------


class _CappedBody:
    """Collects a response body, decompressing with bounded output, refusing past ``cap``."""

    def __init__(self, encoding: str, cap: int) -> None:
        enc = encoding.strip().lower()
        if enc not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise SourceError(f"unsupported Content-Encoding: {encoding}")
        self.encoding = enc
        self.cap = cap
        self.buf = bytearray()
        self._d: zlib._Decompress | None = None  # type: ignore[name-defined]
        self._started = False

    def _too_big(self) -> SourceError:
        return SourceError(f"body larger than {self.cap} bytes")

    def _add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > self.cap:
            raise self._too_big()

    def _new_decoder(self, first: bytes) -> zlib._Decompress:  # type: ignore[name-defined]
        if self.encoding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        is_zlib = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS)

    def feed(self, chunk: bytes) -> None:
        if self.encoding in ("", "identity"):
            self._add(chunk)
            return
        data = chunk
        while data:
            if self._d is None:
                self._d = self._new_decoder(data)
            room = self.cap - len(self.buf) + 1
            self._add(self._d.decompress(data, room))
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._d.eof and self._d.unused_data.strip(b"\0"):  # concatenated gzip members
                data, self._d = self._d.unused_data, None
            else:
                data = b""

    def finish(self) -> bytes:
        if self._d is not None:
            self._add(self._d.flush())
        return bytes(self.buf)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# --- one attempt -----------------------------------------------------------------------------


async def _attempt(url: str, spec: SourceSpec, client: httpx.AsyncClient, deadline: float) -> Fetched:
    loop = asyncio.get_running_loop()
    seen: set[str] = set()
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        if current in seen:
            raise SourceError(f"redirect loop at {current}")
        seen.add(current)
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"refused: redirect to a non-HTTP URL {current[:200]}")
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise SourceError(f"bad port in {current[:200]}") from None
        ip = await _checked_address(host, port, spec.allow_private)
        ip_host = f"[{ip}]" if ":" in ip else ip
        target = urlunsplit((parts.scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
        headers = {
            "User-Agent": USER_AGENT,
            "Host": parts.netloc.rsplit("@", 1)[-1],
            "Accept-Encoding": "gzip, deflate",
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        remaining = max(0.01, deadline - loop.time())
        try:
            async with client.stream("GET", target, headers=headers, extensions=extensions,
                                     follow_redirects=False, timeout=remaining + 1.0) as resp:  # fmt: skip
                code = resp.status_code
                if code in _REDIRECTS:
                    location = resp.headers.get("location")
                    if not location:
                        raise SourceError(f"HTTP {code} without Location from {current}")
                    current = urljoin(current, location.strip())
                    continue
                if code == 429 or 500 <= code <= 599:
                    raise _Retryable(f"HTTP {code} from {current}", _retry_after(resp.headers.get("retry-after")))
                if not 200 <= code <= 299:
                    raise SourceError(f"HTTP {code} from {current}")
                length = resp.headers.get("content-length", "")
                encoding = resp.headers.get("content-encoding", "")
                if encoding.strip().lower() in ("", "identity") and length.isdigit() and int(length) > spec.max_bytes:
                    raise SourceError(f"body larger than {spec.max_bytes} bytes (Content-Length {length})")
                body = _CappedBody(encoding, spec.max_bytes)
                try:
                    async for chunk in resp.aiter_raw(_CHUNK):
                        body.feed(chunk)
                    data = body.finish()
                except zlib.error as e:
                    raise SourceError(f"bad {encoding} body from {current}: {e}") from None
                return Fetched(data, resp.headers.get("content-type"), current)
        except httpx.TimeoutException as e:
            raise _Retryable(f"{type(e).__name__} from {current}") from None
        except httpx.TransportError as e:
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "CERTIFICATE_VERIFY_FAILED" in detail:  # retrying cannot help
                raise SourceError(f"TLS certificate rejected by {current}: {detail}") from None
            raise _Retryable(f"connection error from {current}: {detail}") from None
    raise SourceError(f"too many redirects (more than {MAX_REDIRECTS}) from {url}")


class _Backoff:
    """tenacity stop + wait sharing one plan per attempt, kept within the deadline.

    (tenacity 9 asks wait before stop, 8.x stop before wait: whichever comes first plans.)"""

    def __init__(self, deadline: float, attempts: int) -> None:
        self.deadline = deadline
        self.attempts = attempts
        self.delay = 0.0
        self.give_up = False
        self.gave_up: str | None = None
        self._planned = 0

    def _plan(self, rs: RetryCallState) -> None:
        if self._planned == rs.attempt_number:
            return
        self._planned = rs.attempt_number
        self.delay, self.give_up = 0.0, True
        if rs.attempt_number >= self.attempts:
            return
        exc = rs.outcome.exception() if rs.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        remaining = self.deadline - asyncio.get_running_loop().time()
        if retry_after is not None:
            if retry_after > min(remaining - 0.05, RETRY_AFTER_MAX):
                self.gave_up = f"Retry-After {retry_after:g} s is past the deadline"
                return
            self.delay, self.give_up = retry_after, False
            return
        base = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (rs.attempt_number - 1))
        self.delay = min(random.uniform(base / 2, base), max(0.0, remaining / 2))
        self.give_up = remaining - self.delay < 0.05

    def stop(self, rs: RetryCallState) -> bool:
        self._plan(rs)
        return self.give_up

    def wait(self, rs: RetryCallState) -> float:
        self._plan(rs)
        return self.delay


async def fetch_url(url: str, spec: SourceSpec, client: httpx.AsyncClient | None = None) -> Fetched:
    """GET one http(s) URL under the rules above. Raises SourceError with a one-line reason."""
    own = client is None
    client = client or new_client()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + spec.timeout
    backoff = _Backoff(deadline, spec.retries + 1)
    attempts = 0
    try:
        async with asyncio.timeout(spec.timeout):
            retrying = AsyncRetrying(
                stop=backoff.stop,
                wait=backoff.wait,
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    fetched = await _attempt(url, spec, client, deadline)
                    return Fetched(fetched.body, fetched.content_type, fetched.url, attempts)
    except TimeoutError:
        raise SourceError(f"timed out after {spec.timeout:g} s fetching {url}") from None
    except _Retryable as e:
        suffix = f"; {backoff.gave_up}" if backoff.gave_up else ""
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        raise SourceError(f"{e}{tries}{suffix}") from None
    finally:
        if own:
            await client.aclose()
    raise SourceError(f"no response from {url}")  # pragma: no cover (tenacity always returns or raises)


# --- local files -----------------------------------------------------------------------------


def local_path(location: str) -> Path | None:
    """The local path of a ``file://`` URL or a plain path; None for http(s); SourceError otherwise."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"refused: file URL with a host: {location}")
        return Path(unquote(parts.path))
    if scheme and len(scheme) > 1:  # not a Windows drive letter
        raise SourceError(f"unsupported URL scheme: {scheme}")
    return Path(location)


def read_local(path: Path, max_bytes: int) -> Fetched:
    """Read a local file with the same size cap. Blocking: run it in a thread."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise SourceError(f"no such file: {path}") from None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None
    if len(data) > max_bytes:
        raise SourceError(f"body larger than {max_bytes} bytes ({path})")
    return Fetched(data, None, path.as_uri() if path.is_absolute() else str(path))


async def fetch_source_url(location: str, spec: SourceSpec, client: httpx.AsyncClient | None) -> Fetched:
    """A local file or an http(s) URL, whichever ``location`` is."""
    path = local_path(location)
    if path is not None:
        return await asyncio.to_thread(read_local, path, spec.max_bytes)
    return await fetch_url(location, spec, client)
