"""Service settings: `config/digest.yaml`, overridden by `DIGEST_*` variables and secret files.

Precedence, highest first:
1. environment variables `DIGEST_<FIELD>` (nested with `__`: `DIGEST_SMTP__HOST`);
2. Docker-style secret files: `DIGEST_<FIELD>_FILE=/run/secrets/…` holds the value
   (`DIGEST_SMTP__PASSWORD_FILE`), as the official database images do;
3. the YAML file (`--config PATH`, else `DIGEST_CONFIG`, else `config/digest.yaml`);
4. the defaults below.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from digest.config.yamlfile import YamlDoc, load_yaml
from digest.errors import ConfigError, Problem
from digest.models import SourceSpec

__all__ = ["Settings", "SmtpSettings", "DkimSettings", "SourceSettings", "SignupDomains", "load_settings", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = Path("config/digest.yaml")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?")
ENV_PREFIX = "DIGEST_"
MIN_KEY_BYTES = 32  # secret_key: HMAC-SHA256 keys shorter than the hash are guessable


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SmtpSettings(_Strict):
    host: str | None = None  # unset: deliver into the Maildir `outbox` instead
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "tls", "none"] = "starttls"  # starttls never falls back to plaintext
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = Field(30.0, gt=0)  # seconds for one SMTP command
    deadline: float = Field(120.0, gt=0)  # seconds for one whole message, however slow the server
    connections: int = Field(4, ge=1, le=64)  # parallel SMTP connections
    messages_per_connection: int = Field(100, ge=1)  # then reconnect (relays cap sessions)
    rate_limit: int | None = Field(None, ge=1)  # messages per minute, overall; unset: no limit
    retries: int = Field(3, ge=0)  # attempts after the first, within one run, on 4xx / drops
    validate_certs: bool = True
    halt_after: int = Field(3, ge=1)  # relay failures in a row (timeouts, refused) that stop the run


class SignupDomains(_Strict):
    """`signup: {domains: [lab.example.org]}`: only addresses at these domains may subscribe."""

    domains: list[str] = Field(min_length=1)

    @field_validator("domains")
    @classmethod
    def _plain_domains(cls, value: list[str]) -> list[str]:
        out = []
        for domain in value:
            domain = domain.strip().lower().lstrip("@")
            if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+", domain):
                raise ValueError(f"not a domain name: {domain!r} (like lab.example.org)")
            out.append(domain)
        return out


class DkimSettings(_Strict):
    """DKIM signing in the app (digest/deliver/dkim.py), for a relay that does not sign."""

    selector: str = Field(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$")
    domain: str = Field(max_length=253, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
    key_file: Path | None = None  # PEM RSA private key (PKCS#1 or PKCS#8), 2048 bits; public half in DNS
    # or the PEM itself, from a secret file: DIGEST_DKIM__KEY_FILE=/run/secrets/dkim.pem (the
    # `*_FILE` convention reads that file into `dkim.key`: the same key, either way)
    key: SecretStr | None = None

    @model_validator(mode="after")
    def _one_key(self) -> DkimSettings:
        if (self.key_file is None) == (self.key is None):
            raise ValueError("key_file: set the path of the PEM private key (key_file), or DIGEST_DKIM__KEY_FILE")
        return self

    def pem(self) -> bytes:
        """The private key's PEM bytes; OSError if `key_file` cannot be read."""
        if self.key is not None:
            return self.key.get_secret_value().encode("ascii", "replace") + b"\n"
        assert self.key_file is not None
        return self.key_file.read_bytes()


class SourceSettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["hf_daily", "feed"]
    url: str  # http(s)://, file://, or a local path
    timeout: float = Field(20.0, gt=0)
    max_bytes: int = Field(20_000_000, gt=0)
    retries: int = Field(3, ge=0)
    lookback_days: int = Field(3, ge=1, le=14)
    allow_private: bool = False  # allow loopback/private addresses (a LAN mirror)

    def spec(self) -> SourceSpec:
        return SourceSpec(**self.model_dump())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    sender: str = "Paper Digest <digest@localhost>"
    database_url: str = "sqlite:///data/digest.db"  # postgresql://… for several replicas
    subscriptions_dir: Path = Path("config/subscriptions")
    smtp: SmtpSettings = SmtpSettings()
    dkim: DkimSettings | None = None  # sign in the app: {selector, domain, key_file}; unset: the relay signs (or nobody)
    outbox: Path = Path("data/outbox")  # Maildir used when smtp.host is unset
    public_url: str = "http://localhost:8080"  # base of unsubscribe links
    listen: str = "0.0.0.0:8080"  # where `digest run` serves /healthz, /metrics, unsubscribe
    secret_key: SecretStr | None = None  # signs unsubscribe and rating links; unset: generated, kept in the DB
    old_secret_keys: Annotated[list[SecretStr], NoDecode] = []  # still accepted on links, never used to sign
    sources: list[SourceSettings] = []
    catch_up: dt.timedelta = dt.timedelta(hours=12)  # send a missed edition this late at most
    edition_max_age: dt.timedelta = dt.timedelta(hours=20)  # then a pending edition expires
    retention: dt.timedelta | None = dt.timedelta(days=90)  # then a sent paper's rows are pruned; null: never
    claim_lease: dt.timedelta = dt.timedelta(minutes=10)  # a dead worker's claim is taken over
    suspend_after: int = Field(3, ge=1)  # permanent failures in a row that suspend a reader
    rescan_interval: float = Field(30.0, gt=0)  # seconds between re-reads of subscriptions_dir
    semantic: bool = False  # semantic matching (needs `pip install 'paper-digest-mailer[semantic]'`)
    log_format: Literal["auto", "json", "text"] = "auto"
    # who may subscribe on /subscribe: closed (no such page), open, or {domains: [...]}
    signup: Literal["closed", "open"] | SignupDomains = "closed"

    @field_validator("catch_up", "edition_max_age", "claim_lease", "retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """Also accept `90s`, `10m`, `12h`, `2d` (and `1h30m`)."""
        if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
            return dt.timedelta(seconds=float(value))
        if isinstance(value, str):
            match = _DURATION.fullmatch(value.strip().lower())
            if match and any(match.groups()):
                d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
                return dt.timedelta(days=d, hours=h, minutes=m, seconds=s)
        return value

    @field_validator("signup", mode="before")
    @classmethod
    def _signup(cls, value: Any) -> Any:
        """One readable message instead of one per member of the union."""
        if isinstance(value, str) and value.strip().lower() in ("closed", "open"):
            return value.strip().lower()
        if isinstance(value, dict):
            try:
                return SignupDomains.model_validate(value)
            except ValidationError as exc:
                raise ValueError("; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {_message(e)}" for e in exc.errors()
                )) from None
        if isinstance(value, SignupDomains):
            return value
        raise ValueError("must be closed, open, or {domains: [lab.example.org, ...]}")

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        size = len(value.get_secret_value().encode("utf-8"))
        if size == 0:
            raise ValueError("is empty: set at least 32 random bytes (openssl rand -hex 32), "
                             "or unset it to use the key generated in the database")
        if size < MIN_KEY_BYTES:
            raise ValueError(f"is {size} bytes long; use at least {MIN_KEY_BYTES} random bytes (openssl rand -hex 32)")
        return value

    @field_validator("old_secret_keys", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        """A list; or, from a variable or a secret file, one key per line (or a JSON list)."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [k.strip() for k in value.splitlines() if k.strip()]
        return value

    @field_validator("old_secret_keys")
    @classmethod
    def _no_empty_key(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not k.get_secret_value() for k in value):
            raise ValueError("an old key is empty")
        return value

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: list[SourceSettings]) -> list[SourceSettings]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source name: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _retention_outlives_lookback(self) -> Settings:
        """A paper whose seen rows are pruned must never come back from a source: retention has to
        exceed every source's lookback, plus a day each side for readers' time zones."""
        if self.retention is not None:
            longest = max((s.lookback_days for s in self.sources), default=1)
            if self.retention < dt.timedelta(days=longest + 2):
                raise ValueError(
                    f"retention: must be at least {longest + 2}d (the longest source lookback_days, "
                    f"{longest}, plus a day either side for time zones), or null to keep everything"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the YAML file; env and *_FILE secrets beat it.
        return (_Env(settings_cls), _SecretFiles(settings_cls), init_settings)

    @property
    def source_specs(self) -> list[SourceSpec]:
        return [s.spec() for s in self.sources]

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]


class _Env(EnvSettingsSource):
    """`DIGEST_*` variables, less `DIGEST_CONFIG` and the `*_FILE` ones (they name files)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            k: v
            for k, v in super()._load_env_vars().items()
            if not k.endswith("_file") and k != "digest_config"
        }


class _SecretFiles(PydanticBaseSettingsSource):
    """`DIGEST_SMTP__PASSWORD_FILE=/run/secrets/pw` sets smtp.password from that file."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ does the work

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, path in os.environ.items():
            upper = name.upper()
            if not (upper.startswith(ENV_PREFIX) and upper.endswith("_FILE")):
                continue
            if upper == "DIGEST_CONFIG_FILE":
                continue
            parts = upper[len(ENV_PREFIX) : -len("_FILE")].lower().split("__")
            try:
                value = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"{name}: cannot read secret file {path}: {exc.strerror}") from None
            node = out
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return out


def load_settings(path: Path | None = None) -> Settings:
    """Build settings from the YAML file, the environment and secret files.

    Raises ConfigError with `path:line: field: message` problems.
    """
    explicit = path is not None or "DIGEST_CONFIG" in os.environ
    path = path or Path(os.environ.get("DIGEST_CONFIG", DEFAULT_CONFIG))
    doc: YamlDoc | None = None
    data: dict[str, Any] = {}
    if path.exists():
        try:
            doc = load_yaml(path)
        except ValueError as exc:
            raise ConfigError([exc.args[0]]) from None
        if doc.data is not None and not isinstance(doc.data, dict):
            raise ConfigError([doc.problem((), "the settings file must be a mapping")])
        data = doc.data or {}
    elif explicit:
        raise ConfigError([Problem(str(path), None, "-", "settings file not found")])
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, doc, str(path))) from None


def _problems(exc: ValidationError, doc: YamlDoc | None, path: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "-"
        env = ENV_PREFIX + "__".join(str(p) for p in loc).upper()
        message = _message(err)
        if env in {k.upper() for k in os.environ}:
            problems.append(Problem(f"environment {env}", None, field, message))
        elif doc is not None:
            problems.append(doc.problem(loc, message))
        else:
            problems.append(Problem(path, None, field, message))
    return problems


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown setting"
    if err["type"] == "missing":
        return "required"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")
