"""Configuration: service settings (YAML + environment + secret files) and subscription files."""

from digest.config.settings import DEFAULT_CONFIG, Settings, SmtpSettings, SourceSettings, load_settings
from digest.config.subscriptions import LoadResult, load_subscription, load_subscriptions

__all__ = [
    "DEFAULT_CONFIG",
    "Settings",
    "SmtpSettings",
    "SourceSettings",
    "load_settings",
    "LoadResult",
    "load_subscription",
    "load_subscriptions",
]
