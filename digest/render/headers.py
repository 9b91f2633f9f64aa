"""Folded header values for the Subject and the To display name (RFC 5322 + RFC 2047).

Why not the header registry: besides being slow (~0.3 ms a header), its folder drops the
space between two encoded words at a fold (``… 000¡ ࠀ ¡`` comes back as ``000¡ࠀ ¡``;
CPython 3.11), which would eat spaces in non-Latin titles. Here: ASCII words are folded at
spaces; a run of words that need encoding is encoded with its inner spaces, as encoded words
of at most 75 characters split only between characters. Whitespace between adjacent encoded
words is not text (RFC 2047 6.2), so decoding gives back exactly the input.
"""

from __future__ import annotations

import base64
import functools
from email.utils import formataddr

__all__ = ["fold_subject", "fold_mailbox", "MAX_LINE"]

MAX_LINE = 78
_FOLD = "\r\n "
_EW_MAX = 75  # RFC 2047: an encoded word is at most 75 characters
_EW_OVERHEAD = len("=?utf-8?q?") + len("?=")
# Q-encoding keeps only the characters allowed in every context, phrases included (RFC 2047 5.3).
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


@functools.lru_cache(maxsize=4096)
def _q_char(ch: str) -> str:
    out = []
    for b in ch.encode("utf-8", "replace"):
        if b in _Q_SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append("_")
        else:
            out.append(f"={b:02X}")
    return "".join(out)


def _q_words(text: str, first_room: int) -> list[str]:
    words: list[str] = []
    chunk: list[str] = []
    size, room = 0, first_room - _EW_OVERHEAD
    for ch in text:
        q = _q_char(ch)
        if chunk and size + len(q) > room:
            words.append("=?utf-8?q?" + "".join(chunk) + "?=")
            chunk, size, room = [], 0, _EW_MAX - _EW_OVERHEAD
        chunk.append(q)
        size += len(q)
    if chunk:
        words.append("=?utf-8?q?" + "".join(chunk) + "?=")
    return words


def _b_words(text: str, first_room: int) -> list[str]:
    words: list[str] = []
    chunk = bytearray()
    limit = (first_room - _EW_OVERHEAD) // 4 * 3  # bytes that fit, base64 expands 3 -> 4
    for ch in text:
        b = ch.encode("utf-8", "replace")
        if chunk and len(chunk) + len(b) > limit:
            words.append("=?utf-8?b?" + base64.b64encode(chunk).decode("ascii") + "?=")
            chunk = bytearray()
            limit = (_EW_MAX - _EW_OVERHEAD) // 4 * 3
        chunk += b
    if chunk:
        words.append("=?utf-8?b?" + base64.b64encode(chunk).decode("ascii") + "?=")
    return words


def encoded_words(text: str, first_room: int = _EW_MAX) -> list[str]:
    """``text`` as RFC 2047 UTF-8 encoded words; the first fits in ``first_room`` columns.

    Q for mostly-Latin text (readable, short), B when most characters are not ASCII.
    """
    first_room = min(first_room, _EW_MAX)
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    if non_ascii * 3 > len(text):
        return _b_words(text, first_room)
    return _q_words(text, first_room)


def _needs_encoding(text: str) -> bool:
    return not text.isascii() or "=?" in text


def _fold_atoms(atoms: list[str], first_room: int) -> str:
    """Join ``atoms`` with single spaces, breaking lines (``CRLF SP``) between atoms."""
    lines: list[str] = []
    line, room = "", first_room
    for atom in atoms:
        if line and len(line) + 1 + len(atom) > room:
            lines.append(line)
            line, room = atom, MAX_LINE - 1
        else:
            line = f"{line} {atom}" if line else atom
    lines.append(line)
    return _FOLD.join(lines)


@functools.lru_cache(maxsize=4096)
def fold_subject(subject: str) -> str:
    """The Subject value, folded, ready for ``set_raw`` (``subject`` is one cleaned line).

    ASCII words stay as they are; each run of words that need encoding (non-ASCII, or
    looking like an encoded word) becomes encoded words with the run's inner spaces encoded,
    so the spaces between words survive whichever way the line is folded.
    """
    room = MAX_LINE - len("Subject: ")
    if not _needs_encoding(subject):
        return _fold_atoms(subject.split(" "), room)
    atoms: list[str] = []
    run: list[str] = []
    for word in subject.split(" ") + [""]:
        if word and _needs_encoding(word):
            run.append(word)
            continue
        if run:  # the first atom shares its line with "Subject: "
            atoms.extend(encoded_words(" ".join(run), room if not atoms else _EW_MAX))
            run = []
        if word:
            atoms.append(word)
    return _fold_atoms(atoms, room)


def fold_mailbox(header: str, display_name: str, addr_spec: str) -> str:
    """``Name <addr>`` for a To/From value, folded, ready for ``set_raw``."""
    if not display_name:
        return addr_spec
    room = MAX_LINE - len(header) - 2
    if not _needs_encoding(display_name):
        value = formataddr((display_name, addr_spec))  # quotes and escapes as needed
        if len(value) <= room:
            return value
    words = encoded_words(display_name, room)
    last_line = (len(header) + 2 if len(words) == 1 else 1) + len(words[-1])
    sep = " " if last_line + 1 + len(addr_spec) + 2 <= MAX_LINE else _FOLD
    return _FOLD.join(words) + sep + f"<{addr_spec}>"
