"""Issue 13, item 6: deliverability. `digest check` warns about an unsubscribe URL the mailbox
providers will not accept, every message carries a Feedback-ID, the app can DKIM-sign (verified
here with dkimpy against a throwaway key, no network), and SpamAssassin's local rules score each
golden message 0 (when SpamAssassin is installed: .ci/run installs it)."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import mailbox
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))

from test_render_golden import _build  # noqa: E402
from test_render_data import CASES  # noqa: E402

from digest.cli import cli  # noqa: E402
from digest.cli_base import mailer_for  # noqa: E402
from digest.config import load_settings  # noqa: E402
from digest.deliver.dkim import SIGNED_HEADERS, DkimSigner, SigningMailer  # noqa: E402
from digest.errors import ConfigError  # noqa: E402
from digest.render import Renderer  # noqa: E402

SELECTOR, DOMAIN = "digest2026", "example.org"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    """A throwaway RSA-2048 key: (private PEM, the TXT record a DNS zone would publish)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)


def _verify(data: bytes, txt: bytes) -> bool:
    """dkimpy's verify with the key served from a dict instead of DNS."""
    zone = {f"{SELECTOR}._domainkey.{DOMAIN}.".encode(): txt}
    return dkim.verify(data, dnsfunc=lambda name, timeout=5: zone.get(name))


def _digest(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# ---- Feedback-ID -------------------------------------------------------------------------


def test_every_message_has_one_feedback_id_without_a_per_reader_field(renderer: Renderer) -> None:
    expected = {"keyword": "daily", "trending": "weekdays", "empty": "weekly-mon"}
    for case in sorted(CASES):
        edition, _, out = _build(renderer, case)
        msg = email.message_from_bytes(out.data, policy=email.policy.default)
        assert msg.get_all("Feedback-ID") == [f"{expected[case]}:digest:digest.example.org"], case
        assert edition.subscription.id not in msg["Feedback-ID"]


# ---- digest check ------------------------------------------------------------------------


@pytest.fixture
def here(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)
    return project


@pytest.mark.parametrize(
    ("public_url", "smtp_host", "warning"),
    [
        ("http://digest.example.org", "smtp.example.org", "is not https"),
        ("https://localhost:8080", "smtp.example.org", "is this machine"),
        ("http://127.0.0.1:8080", "smtp.example.org", "is this machine"),
        ("https://digest.example.org", "smtp.example.org", None),
        ("http://localhost:8080", None, None),  # the Maildir outbox: a local test, nothing to warn about
    ],
)
def test_check_warns_about_an_unsubscribe_url_providers_reject(
    here: Path, monkeypatch: pytest.MonkeyPatch, public_url: str, smtp_host: str | None, warning: str | None
) -> None:
    monkeypatch.setenv("DIGEST_PUBLIC_URL", public_url)
    if smtp_host:
        monkeypatch.setenv("DIGEST_SMTP__HOST", smtp_host)
    result = _digest("check")
    assert result.exit_code == 0, result.output  # a warning, not a configuration error
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: public_url:")]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0] and public_url in warnings[0]


def _dkim_yaml(here: Path, key_file: Path, domain: str = DOMAIN) -> None:
    """Append a `dkim:` block to the example's settings file."""
    conf = here / "config" / "digest.yaml"
    conf.write_text(conf.read_text() + f"\ndkim: {{selector: {SELECTOR}, domain: {domain}, key_file: {key_file}}}\n")


def test_check_reports_a_dkim_key_that_cannot_sign_and_a_domain_that_does_not_align(
    here: Path, monkeypatch: pytest.MonkeyPatch, keypair: tuple[bytes, bytes]
) -> None:
    original = (here / "config" / "digest.yaml").read_text()
    _dkim_yaml(here, here / "missing.pem")
    result = _digest("check")
    assert result.exit_code == 2
    assert "settings: dkim.key_file: cannot read" in result.stdout

    (here / "junk.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n")
    (here / "config" / "digest.yaml").write_text(original)
    _dkim_yaml(here, here / "junk.pem")
    result = _digest("check")
    assert result.exit_code == 2 and "dkim.key_file: not a PEM RSA private key" in result.stdout

    (here / "dkim.pem").write_bytes(keypair[0])
    (here / "config" / "digest.yaml").write_text(original)
    _dkim_yaml(here, here / "dkim.pem", domain="example.net")
    assert _digest("check").exit_code == 0
    monkeypatch.setenv("DIGEST_SMTP__HOST", "smtp.example.org")
    monkeypatch.setenv("DIGEST_PUBLIC_URL", "https://digest.example.org")
    result = _digest("check")
    assert result.exit_code == 0
    assert "warning: dkim.domain: example.net is not the sender's domain (example.org)" in result.stderr


def test_dkim_needs_exactly_one_key(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_DKIM__SELECTOR", SELECTOR)
    monkeypatch.setenv("DIGEST_DKIM__DOMAIN", DOMAIN)
    with pytest.raises(ConfigError, match="dkim: key_file: set the path"):
        load_settings()


# ---- DKIM --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_signature_made_by_the_app_verifies_and_covers_the_unsubscribe_headers(
    renderer: Renderer, keypair: tuple[bytes, bytes], case: str
) -> None:
    _, _, out = _build(renderer, case)
    signed = DkimSigner(SELECTOR, DOMAIN, keypair[0]).sign(out.data)
    assert signed.endswith(out.data) and signed.isascii()
    assert _verify(signed, keypair[1])

    msg = email.message_from_bytes(signed, policy=email.policy.compat32)
    tags = dict(
        (k.strip(), v) for k, v in (t.split("=", 1) for t in re.sub(r"\s+", "", msg["DKIM-Signature"]).split(";") if t)
    )
    assert (tags["d"], tags["s"], tags["c"], tags["a"]) == (DOMAIN, SELECTOR, "relaxed/relaxed", "rsa-sha256")
    covered = tags["h"].lower().split(":")
    for name in ("from", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id"):
        assert name in covered, name
    assert set(covered) == {h.lower() for h in SIGNED_HEADERS}

    # What the signature protects: a changed or an added unsubscribe header no longer verifies.
    head, body = signed.split(b"\r\n\r\n", 1)
    changed = head.replace(b"https://digest.example.org/unsubscribe/", b"https://evil.example/unsubscribe/")
    assert changed != head and not _verify(changed + b"\r\n\r\n" + body, keypair[1])
    added = head + b"\r\nList-Unsubscribe: <https://evil.example/u>"
    assert not _verify(added + b"\r\n\r\n" + body, keypair[1])
    tampered = body.replace(b"unsubscribe", b"unsubscrib3", 1)
    assert tampered != body and not _verify(head + b"\r\n\r\n" + tampered, keypair[1])


def test_the_signature_survives_a_relay_that_refolds_and_a_maildir_that_uses_lf(
    renderer: Renderer, keypair: tuple[bytes, bytes]
) -> None:
    _, _, out = _build(renderer, "keyword")
    signed = DkimSigner(SELECTOR, DOMAIN, keypair[0]).sign(out.data)
    refolded = signed.replace(b"Subject: 23 new papers", b"Subject:  23 new papers\r\n ", 1)
    assert refolded != signed and _verify(refolded, keypair[1])  # relaxed header canonicalisation


@pytest.mark.parametrize("how", ["yaml key_file", "secret file DIGEST_DKIM__KEY_FILE"])
def test_mailer_for_signs_every_message_when_dkim_is_configured(
    here: Path, monkeypatch: pytest.MonkeyPatch, renderer: Renderer, keypair: tuple[bytes, bytes], how: str
) -> None:
    (here / "dkim.pem").write_bytes(keypair[0])
    if how == "yaml key_file":
        _dkim_yaml(here, here / "dkim.pem")
    else:  # the Docker secrets route: the file's contents become dkim.key
        monkeypatch.setenv("DIGEST_DKIM__SELECTOR", SELECTOR)
        monkeypatch.setenv("DIGEST_DKIM__DOMAIN", DOMAIN)
        monkeypatch.setenv("DIGEST_DKIM__KEY_FILE", str(here / "dkim.pem"))
    monkeypatch.setenv("DIGEST_OUTBOX", str(here / "outbox"))
    settings = load_settings()
    mailer = mailer_for(settings)
    assert isinstance(mailer, SigningMailer) and mailer.concurrency == 1
    _, _, out = _build(renderer, "trending")

    async def go() -> str:
        async with mailer:
            return await mailer.send(out)

    receipt = asyncio.run(go())
    (stored,) = mailbox.Maildir(here / "outbox", create=False)
    data = stored.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert receipt.startswith(str(here / "outbox")) and data.startswith(b"DKIM-Signature: ")
    assert _verify(data, keypair[1])


def test_without_dkim_settings_nothing_is_signed(here: Path) -> None:
    assert not isinstance(mailer_for(load_settings()), SigningMailer)  # unset: the relay signs, or nobody


def test_an_unusable_key_stops_before_anything_is_sent(tmp_path: Path) -> None:
    from digest.config.settings import DkimSettings
    from digest.deliver.dkim import load_signer

    with pytest.raises(ConfigError, match="dkim.key_file: cannot read"):
        load_signer(DkimSettings(selector=SELECTOR, domain=DOMAIN, key_file=tmp_path / "nope.pem"))
    (tmp_path / "bad.pem").write_text("hello")
    with pytest.raises(ConfigError, match="not a PEM RSA private key"):
        load_signer(DkimSettings(selector=SELECTOR, domain=DOMAIN, key_file=tmp_path / "bad.pem"))


# ---- SpamAssassin ------------------------------------------------------------------------

# Informational rules SpamAssassin always reports for a message handed to it straight from the
# program that made it (no Received header: it did not pass a relay yet) and for any HTML mail.
# Each scores 0 in every score set; any other rule is a regression.
SA_INFORMATIONAL = {"NO_RECEIVED", "NO_RELAYS", "HTML_MESSAGE"}


@pytest.mark.skipif(shutil.which("spamassassin") is None, reason="spamassassin is not installed (.ci/run installs it)")
@pytest.mark.parametrize("case", sorted(CASES))
def test_spamassassin_local_score_of_each_golden_message_is_zero(
    renderer: Renderer, tmp_path: Path, case: str
) -> None:
    _, _, out = _build(renderer, case)
    # -L: local tests only (no DNS blocklists, no network); -t: test mode, the report appended.
    # HOME: SpamAssassin writes a user_prefs file there on its first run.
    proc = subprocess.run(
        ["spamassassin", "-L", "-t"], input=out.data, capture_output=True, timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    report = email.message_from_bytes(proc.stdout, policy=email.policy.compat32)
    status = re.sub(r",\s+", ",", " ".join(str(report["X-Spam-Status"]).split()))
    score = float(re.search(r"score=(-?[\d.]+)", status).group(1))
    rules = set(re.search(r"tests=([A-Z0-9_,]*)", status).group(1).split(",")) - {""}
    assert score == 0.0, status
    assert rules <= SA_INFORMATIONAL, status
    table = re.findall(r"^\s*(-?\d+\.\d+) ([A-Z0-9_]+) ", proc.stdout.decode(errors="replace"), re.M)
    assert {name for _, name in table} == rules and all(float(pts) == 0.0 for pts, _ in table), table



def test_a_dry_run_preview_is_signed_as_the_real_message_would_be(
    here: Path, keypair: tuple[bytes, bytes]
) -> None:
    (here / "dkim.pem").write_bytes(keypair[0])
    _dkim_yaml(here, here / "dkim.pem")
    result = _digest("send", "--dry-run", "--user", "alice", "--out", "preview")
    assert result.exit_code == 0, result.output
    data = (here / "preview" / "alice.eml").read_bytes()
    assert data.startswith(b"DKIM-Signature: ") and _verify(data, keypair[1])


def test_digest_run_refuses_to_start_with_an_unusable_dkim_key(project: Path) -> None:
    """Not a log line at every due batch while nothing goes out: the service does not start."""
    import yaml

    config = project / "config" / "digest.yaml"
    (project / "bad.pem").write_text("hello")
    settings = yaml.safe_load(config.read_text())
    settings["dkim"] = {"selector": SELECTOR, "domain": DOMAIN, "key_file": str(project / "bad.pem")}
    settings["listen"] = "127.0.0.1:0"
    config.write_text(yaml.safe_dump(settings))
    done = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), "run"], cwd=project,
                  capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "not a PEM RSA private key" in done.stderr and "Traceback" not in done.stderr
    assert not (project / "data" / "digest.db").exists()  # stopped before the store was even opened
