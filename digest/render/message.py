"""RenderedDigest -> OutgoingMessage: the MIME message, built with the stdlib ``email`` package.

multipart/alternative, text/plain first and text/html last, UTF-8. The HTML is made ASCII with
character references (``&#233;``) and goes as 7bit; the plain text goes as quoted-printable
(7bit if it is ASCII). A part with a line over 998 bytes, a NUL or a bare CR goes as QP.

Efficiency (the plain stdlib path, set_content + generator, costs ~3 ms a message):
  * every header value is already folded: From, To, Subject and List-Id by headers.py (RFC 2047;
    the registry's folder is slow and loses spaces between encoded words), the rest built here
    from validated parts; the header block is written here exactly as the email package's
    generator writes raw values under the SMTP policy (``POLICY``), and checked the way it checks
    them (no line break that is not a fold);
  * the body parts are encoded by C code (``str.encode``, ``binascii.b2a_qp``) and joined
    into the multipart body here;
  * the boundary is derived from the Message-ID (one edition, the same bytes) and checked
    against the bodies.

Every header value is collapsed to one line before it is set; an address that contains a
line break or a control character, or does not parse as exactly one address, is a RenderError.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import hashlib
import re
from email import policy as email_policy
from email.errors import HeaderParseError, MessageError
from email.headerregistry import Address
from email.utils import format_datetime, getaddresses

from digest.errors import RenderError
from digest.models import Edition, OutgoingMessage, RenderedDigest

from .headers import fold_mailbox, fold_subject
from .textutil import clean, safe_url

__all__ = ["build_message", "message_id_for", "parse_sender", "POLICY"]


# CRLF line endings. Every header is set raw and already folded (or short), so the writer
# copies it verbatim (a refold would RFC 2047-encode a long unbreakable List-Unsubscribe URL).
POLICY = email_policy.SMTP.clone(refold_source="none")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")  # printable ASCII, no < > or space
_LABEL_JUNK = re.compile(r"[^a-z0-9-]+")
# In a header block: a CR or LF that is not part of CRLF, or a CRLF not followed by a fold (space
# or tab) or by the next header name.
_BAD_FOLD = re.compile(r"\r(?!\n)|(?<!\r)\n|\r\n(?![ \t]|[!-9;-~]+: |$)")
# dot-atom local part @ LDH domain with a dot: needs no quoting and no IDNA
_SIMPLE_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


# ---- addresses ---------------------------------------------------------------------------


def _address(addr: str, what: str) -> Address:
    """One bare address, strictly: no control characters, no display name, one ``@``."""
    if not isinstance(addr, str) or _CONTROL.search(addr):
        raise RenderError(f"{what} address contains a line break or control character: {addr!r}")
    addr = addr.strip()
    if _SIMPLE_ADDRESS.fullmatch(addr):  # the common case, without the (slow) full parser
        local, _, domain = addr.rpartition("@")
        return Address(username=local, domain=domain.lower())
    try:
        parsed = Address(addr_spec=addr)
    except (ValueError, HeaderParseError, MessageError, IndexError) as exc:
        raise RenderError(f"{what} address is not valid: {addr!r} ({exc})") from exc
    if not parsed.username or not parsed.domain or not parsed.username.isascii():
        raise RenderError(f"{what} address is not a plain ASCII-local-part address: {addr!r}")
    domain = parsed.domain
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise RenderError(f"{what} address has an invalid domain: {addr!r}") from exc
    return Address(username=parsed.username, domain=domain.lower())


@functools.lru_cache(maxsize=64)
def parse_sender(sender: str) -> Address:
    """``Paper Digest <digest@example.org>`` (or a bare address) -> Address."""
    if not isinstance(sender, str) or _CONTROL.search(sender):
        raise RenderError(f"sender contains a line break or control character: {sender!r}")
    pairs = getaddresses([sender])
    if len(pairs) != 1 or not pairs[0][1]:
        raise RenderError(f"sender is not exactly one address: {sender!r}")
    name, addr = pairs[0]
    bare = _address(addr, "sender")
    return Address(display_name=clean(name), username=bare.username, domain=bare.domain)


def message_id_for(subscriber_id: str, edition_date: dt.date, sender: str) -> str:
    """``<digest.2026-11-21.<16 hex>@<sender domain>>``: the same for the same edition, always."""
    domain = parse_sender(sender).domain
    day = edition_date.isoformat()
    h = hashlib.sha256(f"{subscriber_id}|{day}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"<digest.{day}.{h[:16]}@{domain}>"


# ---- headers -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _sender_headers(sender: str) -> tuple[Address, str, str, str]:
    """(From address, folded From value, folded List-Id value, the list's id): the same for every
    message."""
    from_ = parse_sender(sender)
    label = _LABEL_JUNK.sub("-", from_.username.lower()).strip("-") or "digest"
    list_id = f"{label}.{from_.domain}"
    list_id_value = fold_mailbox("List-Id", from_.display_name or "Paper Digest", list_id)
    return from_, fold_mailbox("From", from_.display_name, from_.addr_spec), list_id_value, list_id


def _feedback_id(frequency: str, list_id: str) -> str:
    """Feedback-ID (Gmail's feedback loop, ``campaign:customer:type:sender``; spam reports are
    counted per field, so no field is per reader): the edition kind, "digest", the list's id."""
    return f"{_LABEL_JUNK.sub('-', frequency.lower()).strip('-') or 'daily'}:digest:{list_id}"


# ---- body --------------------------------------------------------------------------------

_PART_HEAD = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: {}\r\n\r\n'


def _plain_7bit_ok(data: bytes) -> bool:
    return (
        data.isascii()
        and b"\x00" not in data
        and b"\r" not in data
        and max(map(len, data.split(b"\n"))) <= 998
    )


def _encode_part(body: str, subtype: str) -> str:
    """One body part (headers and content, CRLF line breaks) as an ASCII string."""
    if subtype == "html":
        data = body.encode("ascii", "xmlcharrefreplace")  # &#233; for é: HTML-only trick
    else:
        data = body.encode("utf-8", "replace")
    if _plain_7bit_ok(data):
        return _PART_HEAD.format(subtype, "7bit") + data.decode("ascii").replace("\n", "\r\n")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    # istext=True keeps the line breaks (LF in, LF out); soft breaks at 76 columns.
    qp = binascii.b2a_qp(data, quotetabs=False, istext=True).decode("ascii")
    return _PART_HEAD.format(subtype, "quoted-printable") + qp.replace("\n", "\r\n")


def _multipart_body(message_id: str, parts: list[str]) -> tuple[str, str]:
    seed = message_id
    while True:
        boundary = "=_digest_" + hashlib.sha256(seed.encode("ascii")).hexdigest()[:24]
        if not any(boundary in p for p in parts):
            break
        seed += "+"  # a body quoted our boundary: pick another
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"
    return boundary, body


# ---- the message -------------------------------------------------------------------------


def build_message(
    edition: Edition,
    rendered: RenderedDigest,
    *,
    sender: str,
    message_id: str,
    unsubscribe_url: str,
    date: dt.datetime,
) -> OutgoingMessage:
    """The full RFC 5322 message for one edition, CRLF line endings."""
    sub = edition.subscription
    from_, from_value, list_id_value, list_id = _sender_headers(sender)
    bare_to = _address(sub.email, "recipient")
    to = Address(display_name=clean(sub.name), username=bare_to.username, domain=bare_to.domain)
    url = safe_url(unsubscribe_url)
    if url is None or len(url) > 900 or any(c in url for c in "<>,"):
        raise RenderError(f"unsubscribe_url is not a usable http(s) URL: {unsubscribe_url!r}")
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        raise RenderError(f"message_id is not <local@domain>: {message_id!r}")
    if date.tzinfo is None:
        date = date.replace(tzinfo=dt.timezone.utc)

    parts = [_encode_part(rendered.text, "plain"), _encode_part(rendered.html, "html")]
    boundary, body = _multipart_body(message_id, parts)
    # Raw values are folded by headers.py or built from validated parts: none can hold a CR or LF
    # that is not a folding break (checked below, as the email package's generator would).
    headers = (
        ("From", from_value),
        ("To", fold_mailbox("To", to.display_name, to.addr_spec)),
        ("Subject", fold_subject(clean(rendered.subject) or "Paper digest")),
        ("Date", format_datetime(date)),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
        ("List-Unsubscribe", f"<{url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("List-Id", list_id_value),
        ("Feedback-ID", _feedback_id(sub.frequency, list_id)),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
        ("Content-Type", f'multipart/alternative;\r\n boundary="{boundary}"'),
    )
    # What EmailMessage.set_raw + as_bytes(policy=POLICY) write for these values (each header
    # "Name: value" + CRLF, as set; a blank line; the str payload verbatim), without the generator.
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    if _BAD_FOLD.search(head) or not head.isascii():
        raise RenderError(f"cannot build the message for {sub.id}: a header would hold a line break or non-ASCII")
    data = (head + "\r\n" + body).encode("ascii")
    return OutgoingMessage(
        subscriber_id=sub.id,
        edition_date=edition.date,
        sender=from_.addr_spec,
        recipient=to.addr_spec,
        message_id=message_id,
        data=data,
    )
