"""One error hierarchy. Stages raise these; only the CLI turns them into exit codes.

Each class also inherits the built-in exception a caller would naturally catch (the aiosmtplib
habit), so ``except ValueError`` still works on a ConfigError.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DigestError",
    "ConfigError",
    "Problem",
    "SourceError",
    "StoreError",
    "DeliveryError",
    "TemporaryDeliveryError",
    "PermanentDeliveryError",
    "RelayError",
    "RenderError",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_CONFIG",
]

EXIT_OK = 0  # all good
EXIT_PARTIAL = 1  # the run finished but some subscribers or sources failed
EXIT_CONFIG = 2  # configuration or usage error: nothing was sent


class DigestError(Exception):
    """Root of every error digest raises on purpose."""

    exit_code = EXIT_PARTIAL


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in one file, printed as ``path:line: field: message``."""

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}"


class ConfigError(DigestError, ValueError):
    """Settings or a subscription file are invalid. Carries every problem found."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("settings", None, "-", problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(DigestError):
    """A source could not be fetched or parsed; the run goes on without it."""


class StoreError(DigestError, RuntimeError):
    """The seen-store could not be read or written."""


class RenderError(DigestError):
    """A digest could not be rendered (a template bug, never user data)."""


class DeliveryError(DigestError, ConnectionError):
    """A message was not accepted."""

    permanent = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TemporaryDeliveryError(DeliveryError):
    """4xx, a dropped connection or a timeout: worth retrying later."""


class PermanentDeliveryError(DeliveryError):
    """5xx: the server refused this message for good; do not retry."""

    permanent = True


class RelayError(TemporaryDeliveryError):
    """The mail server (or the outbox) failed, not this reader: a refused or silent connection,
    TLS, AUTH, or a reply to MAIL FROM. Never counted against the reader: the edition stays
    pending. `halts`: sending more in this run cannot help (a wrong password, a relay that stopped
    answering): the run stops starting new messages and ends with this reason."""

    def __init__(self, message: str, *, code: int | None = None, halts: bool = False) -> None:
        super().__init__(message, code=code)
        self.halts = halts
