"""SMTP delivery over a small pool of reused aiosmtplib connections.

- `connections` connections at once, each reused for up to `messages_per_connection` messages,
  then closed and reopened (relays cap messages per session).
- 4xx replies, dropped connections and timeouts are temporary: retried with capped, jittered
  backoff (tenacity) up to `retries` times, then raised as TemporaryDeliveryError. A 421 ("closing
  connection", also a relay's per-session cap) reconnects at once without counting as a retry.
- 5xx replies are permanent: PermanentDeliveryError with the server's reply, never retried.
- Whose fault: only a reply about the message's one recipient (RCPT, DATA) counts against that
  reader. A refused, dropped or silent connection, TLS, AUTH and a reply to MAIL FROM are the
  relay's (RelayError): the edition stays pending and nobody is suspended. AUTH, TLS and a 5xx to
  MAIL FROM halt the run at once (no message can go through until an operator acts); after
  `halt_after` relay failures in a row with no message accepted in between, the relay is taken for
  dead, like an MTA marks a destination: every send, and every retry waiting, fails at once with
  that reason, so a silent server ends a run of any size within about one `timeout`.
- One overall `deadline` per message: aiosmtplib's `timeout` covers one socket operation only, so
  a server that trickles its replies would otherwise hold a connection for ever.
- `tls="starttls"` requires STARTTLS: a server that does not offer it is an error, never a silent
  downgrade to plaintext (and no AUTH in the clear).
- The mail transaction (MAIL, RCPT, DATA) is driven here with aiosmtplib's command API rather than
  `sendmail`: our messages already have CRLF line ends, so the payload is only dot-stuffed (two C
  `bytes` operations) instead of going through sendmail's three regular-expression passes over the
  whole message (~1 ms of CPU per 30 KB message). Same replies, same errors.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import aiosmtplib
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from digest.errors import DeliveryError, PermanentDeliveryError, RelayError, TemporaryDeliveryError
from digest.models import OutgoingMessage

__all__ = ["SmtpMailer"]

log = logging.getLogger("digest.deliver")


class _Connection:
    def __init__(self) -> None:
        self.client: aiosmtplib.SMTP | None = None
        self.sent = 0


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        tls: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        deadline: float = 120.0,
        connections: int = 4,
        messages_per_connection: int = 100,
        rate_limit: int | None = None,
        retries: int = 3,
        validate_certs: bool = True,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        local_hostname: str | None = None,
        halt_after: int = 3,
    ) -> None:
        if tls not in ("starttls", "tls", "none"):
            raise ValueError(f"tls must be starttls, tls or none, not {tls!r}")
        self.host, self.port, self.tls = host, port, tls
        self._auth = (username, password) if username else None
        self.timeout, self.deadline = timeout, deadline
        self.concurrency = connections
        self.per_connection = messages_per_connection
        self.retries = retries
        self.validate_certs = validate_certs
        self.backoff = (backoff_initial, backoff_max)
        self.local_hostname = local_hostname
        self._interval = 60.0 / rate_limit if rate_limit else 0.0
        self._next_start = 0.0
        self._rate_lock = asyncio.Lock()
        self._pool: asyncio.Queue[_Connection] = asyncio.Queue()
        self.halt_after = max(1, halt_after)
        self._relay_failures = 0  # relay failures in a row, no message accepted in between
        self.halted: RelayError | None = None  # set: the relay is taken for dead for this run

    async def __aenter__(self) -> SmtpMailer:
        for _ in range(self.concurrency):
            self._pool.put_nowait(_Connection())
        return self

    async def __aexit__(self, *exc: object) -> None:
        while not self._pool.empty():
            await self._close(self._pool.get_nowait(), polite=True)

    async def send(self, message: OutgoingMessage) -> str:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_random_exponential(multiplier=self.backoff[0], max=self.backoff[1]),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(message)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(self, message: OutgoingMessage) -> str:
        if self.halted is not None:
            raise self.halted
        try:
            reply = await self._attempt(message)
        except RelayError as exc:
            raise self._relay_failed(exc) from None
        self._relay_failures = 0
        return reply

    def _relay_failed(self, exc: RelayError) -> RelayError:
        """Count a relay failure; the error to raise (the halting one once the relay is dead)."""
        if self.halted is not None:
            return self.halted
        self._relay_failures += 1
        if exc.halts:
            self.halted = exc
        elif self._relay_failures >= self.halt_after:
            self.halted = RelayError(
                f"{self.host}:{self.port} failed {self._relay_failures} times in a row, "
                f"last: {exc}; the rest stay pending",
                code=exc.code,
                halts=True,
            )
            log.error("smtp: %s", self.halted)
        return self.halted or exc

    async def _attempt(self, message: OutgoingMessage) -> str:
        await self._pace()
        conn = await self._pool.get()
        try:
            for reconnects in range(2):  # a 421 gets one immediate reconnect
                phase = "connect"
                try:
                    async with asyncio.timeout(self.deadline):
                        client = await self._ready(conn)
                        phase = "send"
                        reply = await self._transaction(client, message)
                    conn.sent += 1
                    return reply
                except aiosmtplib.SMTPResponseException as exc:
                    await self._close(conn)
                    if exc.code == 421 and reconnects == 0:
                        log.info("smtp: 421 from %s, reconnecting", self.host)
                        continue
                    if phase == "connect" or isinstance(exc, _MailFromRefused):
                        raise self._relay_reply(exc, phase) from None
                    raise _classify(exc) from None
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    await self._close(conn)
                    first = exc.recipients[0]
                    raise _classify(first) from None
                except DeliveryError:  # ours (no STARTTLS): already says why; do not rewrap as retryable
                    await self._close(conn)
                    raise
                except aiosmtplib.SMTPTimeoutError:  # one socket operation took longer than `timeout`
                    await self._close(conn)
                    raise RelayError(f"no answer from {self.host}:{self.port} within {self.timeout:g} s") from None
                except TimeoutError:  # the whole message took longer than `deadline`
                    await self._close(conn)
                    raise RelayError(
                        f"no answer from {self.host}:{self.port} within {self.deadline:g} s (deadline)"
                    ) from None
                except (aiosmtplib.SMTPException, OSError) as exc:
                    await self._close(conn)
                    raise RelayError(f"{self.host}:{self.port}: {_text(exc)}") from None
            raise RelayError(f"{self.host}:{self.port}: closed the connection twice (421)")
        finally:
            self._pool.put_nowait(conn)

    def _relay_reply(self, exc: aiosmtplib.SMTPResponseException, phase: str) -> RelayError:
        """A reply before the recipient was named: the relay's, never the reader's. A 5xx (a wrong
        password, a sender the relay refuses) or any AUTH failure halts the run."""
        reply = f"{exc.code} {exc.message}".strip()
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            what = "refused our login (check smtp.username and smtp.password)"
        elif isinstance(exc, _MailFromRefused):
            what = "refused the sender (MAIL FROM)"
        else:
            what = "refused the connection" if phase == "connect" else "refused"
        halts = 500 <= exc.code < 600 or isinstance(exc, aiosmtplib.SMTPAuthenticationError)
        return RelayError(f"{self.host}:{self.port} {what}: {reply}", code=exc.code, halts=halts)

    async def _ready(self, conn: _Connection) -> aiosmtplib.SMTP:
        if conn.client is not None and (conn.sent >= self.per_connection or not conn.client.is_connected):
            await self._close(conn, polite=True)
        if conn.client is None:
            client = aiosmtplib.SMTP(
                hostname=self.host,
                port=self.port,
                timeout=self.timeout,
                use_tls=self.tls == "tls",
                start_tls=False,
                validate_certs=self.validate_certs,
                local_hostname=self.local_hostname,
            )
            await client.connect()
            conn.client, conn.sent = client, 0  # from here a failure's _close() closes this socket
            if self.tls == "starttls":
                await client.ehlo()  # connect() with start_tls=False sends no EHLO: no extensions known yet
                if not client.supports_extension("starttls"):
                    client.close()
                    raise _no_starttls(f"{self.host}:{self.port} does not offer STARTTLS; refusing to send in plaintext")
                await client.starttls()
            if self._auth:
                await client.login(*self._auth)
        return conn.client

    async def _transaction(self, client: aiosmtplib.SMTP, message: OutgoingMessage) -> str:
        """MAIL, RCPT, DATA for one message; the server's final reply. A reply that is not the
        expected one raises SMTPResponseException with its code, as `sendmail` would."""
        protocol = client.protocol
        if (
            protocol is None
            or not hasattr(protocol, "read_response")
            or not _PLAIN_ADDRESS.fullmatch(message.sender)
            or not _PLAIN_ADDRESS.fullmatch(message.recipient)
        ):  # not a message build_message made: let aiosmtplib quote and normalise
            _, reply = await client.sendmail(message.sender, [message.recipient], message.data)
            return reply
        if client.is_ehlo_or_helo_needed:
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        data = _normalised(message.data)
        options = [b"SIZE=%d" % len(data)] if client.supports_extension("size") else []
        response = await client.execute_command(
            b"MAIL", b"FROM:<" + message.sender.encode("ascii") + b">", *options
        )
        if response.code != 250:
            raise _MailFromRefused(response.code, response.message)
        for command, ok in (
            ((b"RCPT", b"TO:<" + message.recipient.encode("ascii") + b">"), (250, 251)),
            ((b"DATA",), (354,)),
        ):
            response = await client.execute_command(*command)
            if response.code not in ok:
                raise aiosmtplib.SMTPResponseException(response.code, response.message)
        protocol.write(_dot_stuffed(data) + b".\r\n")
        response = await protocol.read_response(timeout=self.timeout)
        if response.code != 250:
            raise aiosmtplib.SMTPResponseException(response.code, response.message)
        return response.message

    async def _close(self, conn: _Connection, *, polite: bool = False) -> None:
        client, conn.client, conn.sent = conn.client, None, 0
        if client is None:
            return
        if polite and client.is_connected:
            try:
                async with asyncio.timeout(min(self.timeout, 5.0)):
                    await client.quit()
                return
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        client.close()

    async def _pace(self) -> None:
        if not self._interval:
            return
        async with self._rate_lock:
            now = time.monotonic()
            wait = self._next_start - now
            self._next_start = max(now, self._next_start) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)


_PLAIN_ADDRESS = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII, no < > or space
_LINE_ENDS = re.compile(rb"\r\n|\n|\r")


def _normalised(data: bytes) -> bytes:
    """`data` with CRLF line ends only, ending with CRLF (what goes on the wire before stuffing)."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:  # a bare CR or LF: rare, slow path
        data = _LINE_ENDS.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with "." gets another "."."""
    data = data.replace(b"\r\n.", b"\r\n..")
    return b"." + data if data.startswith(b".") else data


class _MailFromRefused(aiosmtplib.SMTPResponseException):
    """The relay's reply to MAIL FROM was not 250 (about our sender, not the reader)."""


def _no_starttls(message: str) -> RelayError:
    """The server does not offer STARTTLS: retrying now cannot help, an operator must act."""
    return RelayError(message, halts=True)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TemporaryDeliveryError) and not getattr(exc, "halts", False)


def _classify(exc: aiosmtplib.SMTPResponseException) -> DeliveryError:
    reply = f"{exc.code} {exc.message}".strip()
    if 500 <= exc.code < 600:
        return PermanentDeliveryError(f"refused: {reply}", code=exc.code)
    return TemporaryDeliveryError(f"deferred: {reply}", code=exc.code)


def _text(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
