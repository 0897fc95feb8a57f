"""Mask passwords and tokens in any text that may reach a log, an error or a terminal."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "********"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^@\s]+)(?=@)", re.I)
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|secret_key)\s*[=:]\s*['\"]?)(?P<pw>[^\s'\",;]+)",
    re.I,
)
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later redaction masks it wherever it appears."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def configured_secrets() -> Iterable[str]:
    """Yield the passwords found in the project's settings, plus registered secrets."""
    from django.conf import settings

    yield from _extra_secrets
    if not settings.configured:
        return
    configs = list(getattr(settings, "DATABASES", {}).values())
    configs.append(getattr(settings, "MIGRATION_DATABASE", None) or {})
    for config in configs:
        if config.get("PASSWORD"):
            yield str(config["PASSWORD"])
    if getattr(settings, "SECRET_KEY", None):
        yield settings.SECRET_KEY


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Return text with URL passwords, key=value secrets and known secret values masked."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _KEYWORD_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    for secret in sorted(set(secrets if secrets is not None else configured_secrets()), key=len):
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_url(url: str) -> str:
    """Return a connection URL with its password replaced by asterisks."""
    return _URL_PASSWORD.sub(lambda m: m["head"] + MASK, url)


class RedactSecretsFilter(logging.Filter):
    """Logging filter: render the message once and mask every secret in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
