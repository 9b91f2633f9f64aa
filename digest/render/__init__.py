"""Render stage: Edition -> RenderedDigest (subject, text, HTML) -> OutgoingMessage (MIME bytes).

Public API (used by the pipeline and the CLI):

    Renderer(*, templates_dir=None)                                   # compile templates once
    Renderer.render(edition, *, unsubscribe_url, now) -> RenderedDigest
    build_message(edition, rendered, *, sender, message_id, unsubscribe_url, date) -> OutgoingMessage
    message_id_for(subscriber_id, edition_date, sender) -> str        # deterministic per edition

INTERFACE STUB: being implemented; the signatures above are the contract.
"""
