"""PostgreSQL connection URLs in messages and logs: never with their password."""

from __future__ import annotations

import re
from urllib.parse import quote

import psycopg

__all__ = ["redact", "safe_url"]


def redact(text: str, url: str) -> str:
    """`text` with the password of `url` (and the URL itself) replaced by ***."""
    secrets_in_url: set[str] = set()
    try:
        password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = None
    if password:
        secrets_in_url |= {str(password), quote(str(password), safe=""), quote(str(password))}
    match = re.match(r"^[a-z]+://[^:/@]*:([^@]*)@", url)
    if match and match.group(1):
        secrets_in_url.add(match.group(1))
    text = text.replace(url, safe_url(url))
    for secret in sorted(secrets_in_url, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    url = re.sub(r"^([a-z]+://[^:/@]*):[^@]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
