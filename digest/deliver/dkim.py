"""DKIM signing in the app (RFC 6376, dkimpy), for operators whose relay does not sign.

Optional: `dkim: {selector, domain, key_file}` in the settings. The signature is added at the
delivery edge, over the exact bytes handed to the relay (or written to the outbox or the dry-run
preview), so nothing after it changes what it covers:

- relaxed/relaxed canonicalisation (survives a relay that refolds headers or re-wraps lines);
- the headers a reader sees and a mailbox provider acts on: From, To, Subject, Date, Message-ID,
  MIME-Version, Content-Type, List-Id, Feedback-ID, and List-Unsubscribe with
  List-Unsubscribe-Post (RFC 8058 section 4: the one-click headers must be covered by a valid
  DKIM signature);
- From, Subject and the two unsubscribe headers are signed once more than they occur
  ("oversigned"), so a second copy added on the way breaks the signature instead of being shown.

The key is read and parsed once, when the mailer is made (an unreadable or malformed key is a
ConfigError before anything is sent). `digest check` reads it too. The public half goes in DNS as
a TXT record at `<selector>._domainkey.<domain>` (see the README, "Sender domain: SPF, DKIM, DMARC").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from digest.errors import ConfigError, Problem
from digest.models import OutgoingMessage

from . import Mailer

if TYPE_CHECKING:
    from digest.config.settings import DkimSettings

__all__ = ["DkimSigner", "SigningMailer", "SIGNED_HEADERS", "load_signer", "sign_with"]

_SIGNED = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Id", "Feedback-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
)  # fmt: skip
_OVERSIGNED = ("From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post")
SIGNED_HEADERS = _SIGNED  # for the tests and the README
# The h= list: each header once for the copy the message has, the oversigned ones once more.
_INCLUDE = [h.lower().encode("ascii") for h in _SIGNED + _OVERSIGNED]


class DkimSigner:
    """Signs whole RFC 5322 messages (CRLF line ends) with one RSA key."""

    def __init__(self, selector: str, domain: str, key_pem: bytes) -> None:
        import dkim  # dkimpy: imported only when signing is configured
        from dkim.crypto import UnparsableKeyError, parse_pem_private_key

        try:
            parse_pem_private_key(key_pem)  # fail now, not at the first message
        except (UnparsableKeyError, ValueError, IndexError) as exc:
            raise _key_error(f"not a PEM RSA private key ({str(exc).splitlines()[0]})") from None
        self._dkim = dkim
        self.selector = selector.encode("ascii")
        self.domain = domain.lower().encode("idna")
        self._key = key_pem

    def signature(self, data: bytes) -> bytes:
        """The `DKIM-Signature: …` header (folded, ending in CRLF) for the message `data`."""
        return self._dkim.sign(
            data,
            self.selector,
            self.domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(_INCLUDE),
            linesep=b"\r\n",
        )

    def sign(self, data: bytes) -> bytes:
        """`data` with its DKIM-Signature header first."""
        return self.signature(data) + data


def _key_error(message: str) -> ConfigError:
    return ConfigError([Problem("settings", None, "dkim.key_file", message)])


def load_signer(settings: DkimSettings) -> DkimSigner:
    """The signer for the `dkim:` settings; ConfigError if the key cannot be read or parsed."""
    try:
        pem = settings.pem()
    except OSError as exc:
        raise _key_error(f"cannot read {settings.key_file}: {exc.strerror}") from None
    return DkimSigner(settings.selector, settings.domain, pem)


class SigningMailer:
    """A Mailer that DKIM-signs each message and hands it to another Mailer."""

    def __init__(self, inner: Mailer, signer: DkimSigner) -> None:
        self.inner = inner
        self.signer = signer
        self.concurrency = inner.concurrency

    def __getattr__(self, name: str) -> object:  # `halted` and the like: the inner mailer's
        return getattr(self.inner, name)

    async def __aenter__(self) -> SigningMailer:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.__aexit__(*exc)

    async def send(self, message: OutgoingMessage) -> str:
        import dataclasses

        # ~7.5 ms of CPU a message (dkimpy's pure-Python RSA-2048: two 1024-bit pow; the body
        # hash is 1 ms of a 33 KB message): in a thread, so the event loop keeps the SMTP
        # connections talking in between (pow holds the GIL: this spreads the work, no more).
        data = await asyncio.to_thread(self.signer.sign, message.data)
        return await self.inner.send(dataclasses.replace(message, data=data))


def sign_with(mailer: Mailer, settings: DkimSettings | None) -> Mailer:
    """`mailer` itself, or wrapped in a SigningMailer when `dkim:` is configured."""
    return mailer if settings is None else SigningMailer(mailer, load_signer(settings))
