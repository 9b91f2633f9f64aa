from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from tests.smtpd import SmtpServer

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

hypothesis_settings.register_profile("ci", max_examples=100, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def smtpd() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1, port 0; `smtpd.handler.messages` is what it accepted."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory laid out like a fresh checkout's example: config/ with saved payloads."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path
