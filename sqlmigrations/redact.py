"""Mask passwords and tokens in any text that may reach a log, an error or a terminal."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "********"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<pw>[^@\s]+)(?=@)", re.I)
# `password=x`, `owner_password='x y'`, `"password": "x"` (JSON, a dict's repr), `token: x`,
# `('password', 'x')` (a pair's repr, as in a list of connection parameters). A name that
# ends in _id, _arn, _name or _file (DB_SECRET_ID=chore/app) says where a secret is.
_KEYWORD_PASSWORD = re.compile(
    r"""(?P<head>\b[\w-]*(?:password|passwd|pwd|secret|token)"""
    r"""(?![\w-]*[_-](?:id|arn|name|file)\b)[\w-]*"""
    r"""(?:['"]?\s*[=:]|['"]\s*,)\s*)"""
    r"""(?P<pw>'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|[^\s'",;]+)""",
    re.I,
)
# SQL's `[ENCRYPTED] PASSWORD 'x'` (CREATE/ALTER ROLE, as a log or pg_stat_statements
# shows it) in every quoting: '' doubled, E'\'' escaped, $$x$$ or $tag$x$tag$, "x";
# a literal cut short (a truncated statement) is masked to the end of the line.
_SQL_PASSWORD = re.compile(
    r"""(?P<head>\bpassword\s+)"""
    r"""(?P<pw>[eE]'(?:''|\\.|[^'\\])*(?:'|$)"""
    r"""|'(?:''|[^'])*(?:'|$)"""
    r"""|(?P<tag>\$\w*\$)(?s:.*?)(?:(?P=tag)|\Z)"""
    r"""|"(?:""|[^"])*(?:"|$))""",
    re.I | re.M,
)
# A password verifier anywhere: SCRAM (RFC 5803, as pg_authid keeps it) and md5 hashes.
_VERIFIER = re.compile(
    r"SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+|\bmd5[0-9a-f]{32}\b"
)
# Shorter values would mask common words; a pattern above still catches them in a URL.
MIN_SECRET_LENGTH = 4
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so that every later redaction masks it wherever it appears."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _extra_secrets.add(value)


def configured_secrets() -> Iterable[str]:
    """Yield the passwords found in the project's settings, plus registered secrets."""
    from django.conf import settings

    yield from _extra_secrets
    if not settings.configured:
        return
    # Every role's alias is in DATABASES (the owner's too); secrets read later register.
    for config in getattr(settings, "DATABASES", {}).values():
        if config.get("PASSWORD"):
            yield str(config["PASSWORD"])
    if getattr(settings, "SECRET_KEY", None):
        yield settings.SECRET_KEY
    if getattr(settings, "BACKUP_SIGNING_KEY", None):
        yield settings.BACKUP_SIGNING_KEY


def _mask_keyword(match: re.Match[str]) -> str:
    value = match["pw"]
    quote_char = value[0] if value[0] in "'\"" else ""
    return f"{match['head']}{quote_char}{MASK}{quote_char}"


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Return each secret as written, %-encoded (URL) and escaped (repr, JSON), longest first."""
    forms = {
        form
        for secret in secrets
        if len(secret) >= MIN_SECRET_LENGTH
        for form in (secret, quote(secret, safe=""), repr(secret)[1:-1], json.dumps(secret)[1:-1])
    }
    # Longest first: a secret that contains another is masked whole.
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """Return text with known secret values, URL passwords and key=value secrets masked."""
    # Known values first: a pattern that masked part of one would leave the rest unfound.
    for secret in secret_forms(secrets if secrets is not None else configured_secrets()):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _SQL_PASSWORD.sub(lambda m: f"{m['head']}'{MASK}'", text)
    text = _VERIFIER.sub(MASK, text)
    return _KEYWORD_PASSWORD.sub(_mask_keyword, text)


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
