"""Render stage: Edition -> RenderedDigest (subject, text, HTML) -> OutgoingMessage (MIME bytes).

Public API (used by the pipeline and the CLI):

    Renderer(*, templates_dir=None)                                   # compile templates once
    Renderer.render(edition, *, unsubscribe_url, now) -> RenderedDigest
    build_message(edition, rendered, *, sender, message_id, unsubscribe_url, date) -> OutgoingMessage
    message_id_for(subscriber_id, edition_date, sender) -> str        # deterministic per edition

Templates: ``templates_dir``, else the installed ``digest/templates``, else the repo's
``templates/`` (``digest.html`` with a <style> block, inlined once at init; ``digest.txt``).
"""

from __future__ import annotations

from .message import build_message, message_id_for
from .renderer import Renderer, default_templates_dir

__all__ = ["Renderer", "build_message", "message_id_for", "default_templates_dir"]
