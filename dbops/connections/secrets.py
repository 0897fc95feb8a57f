"""Database credentials from AWS Secrets Manager (D5): read once, cached, re-read on rotation.

A secret holds the RDS JSON (`username`, `password`, `host`, `port`, `dbname`, `engine`).
Errors name the secret id and the setting that holds it, never the secret's value; every
password read is registered with sqlmigrations.redact so that no later log line can show it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from django.core.exceptions import ImproperlyConfigured

from sqlmigrations.redact import redact, register_secret

logger = logging.getLogger(__name__)
T = TypeVar("T")

AUTHENTICATION_FAILED = "28P01"  # invalid_password
REQUIRED_KEYS = ("username", "password")
SECRET_SHAPE = (
    '{"username": "...", "password": "...", "host": "...", "port": 5432, "dbname": "...", '
    '"engine": "postgres"}'
)


class SecretError(ImproperlyConfigured):
    """A database secret cannot be read or does not hold usable credentials."""


@dataclass(frozen=True)
class DatabaseCredentials:
    """The fields of an RDS database secret that a connection needs."""

    username: str
    password: str = field(repr=False)
    host: str = ""
    port: int | None = None
    dbname: str = ""
    engine: str = ""


@dataclass(frozen=True)
class SecretRef:
    """Where a connection's credentials live: the secret id, its region, and its setting."""

    secret_id: str
    region: str = ""
    setting: str = "DB_SECRET_ID"

    def describe(self) -> str:
        region = f" in region {self.region}" if self.region else ""
        return f"Secrets Manager secret {self.secret_id!r}{region} (set by {self.setting})"

    def get(self, *, stale: DatabaseCredentials | None = None) -> DatabaseCredentials:
        """Return the cached credentials; read the secret if none are cached or they are `stale`."""
        key = (self.secret_id, self.region)
        with _lock:
            cached = _cache.get(key)
            # Another thread may have refreshed already: then the cache differs from `stale`.
            if cached is not None and (stale is None or cached != stale):
                return cached
            fresh = fetch(self)
            _cache[key] = fresh
            return fresh

    def connect(self, open_connection: Callable[[DatabaseCredentials], T]) -> T:
        """Connect with the cached credentials; after a failed login, re-read the secret once."""
        creds = self.get()
        try:
            return open_connection(creds)
        except psycopg.OperationalError as err:
            if not authentication_failed(err):
                raise
            fresh = self.get(stale=creds)
            if fresh == creds:
                raise
            logger.warning(
                "Login with %s failed; its value has changed (password rotation?), "
                "connecting again with the new credentials.",
                self.describe(),
            )
        return open_connection(fresh)


_lock = threading.Lock()
_cache: dict[tuple[str, str], DatabaseCredentials] = {}
_clients: dict[str, Any] = {}


def client(region: str = "") -> Any:
    """Return the process's Secrets Manager client for `region` (boto3's default when empty)."""
    if region not in _clients:
        import boto3  # here, not at import: every process loads this module, few need AWS

        _clients[region] = boto3.client("secretsmanager", region_name=region or None)
    return _clients[region]


def reset() -> None:
    """Forget cached credentials and clients (tests; a new AWS session)."""
    with _lock:
        _cache.clear()
        _clients.clear()


def authentication_failed(err: psycopg.OperationalError) -> bool:
    """Tell whether a connection attempt failed because the password was refused."""
    if getattr(err, "sqlstate", None) == AUTHENTICATION_FAILED:
        return True
    return "password authentication failed" in str(err)


def fetch(ref: SecretRef) -> DatabaseCredentials:
    """Read and parse the secret now (no cache)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client(ref.region).get_secret_value(SecretId=ref.secret_id)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise SecretError(
                f"{ref.describe()} does not exist: check {ref.setting} and AWS_REGION, or create "
                f"the secret with the RDS JSON {SECRET_SHAPE}."
            ) from None
        raise SecretError(
            f"Could not read {ref.describe()}: {code or 'error'}: {redact(str(err))}. The role "
            "needs secretsmanager:GetSecretValue on it (and kms:Decrypt for a customer key)."
        ) from None
    except BotoCoreError as err:
        raise SecretError(
            f"Could not reach AWS to read {ref.describe()}: {redact(str(err))}. Set "
            "AWS_REGION and give the process AWS credentials (an IAM role in AWS)."
        ) from None
    creds = parse(ref, response.get("SecretString"))
    logger.info(
        "Read database credentials from %s (version %s).",
        ref.describe(),
        response.get("VersionId", "?"),
    )
    return creds


def parse(ref: SecretRef, text: str | None) -> DatabaseCredentials:
    """Turn a secret's text into credentials; errors say what is wrong, not what is there."""
    if text is None:
        raise SecretError(
            f"{ref.describe()} holds binary data; store the credentials as a secret string "
            f"with the RDS JSON {SECRET_SHAPE}."
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SecretError(
            f"{ref.describe()} is not valid JSON ({err.msg} at line {err.lineno} column "
            f"{err.colno}): store the RDS JSON {SECRET_SHAPE}."
        ) from None
    if not isinstance(data, dict):
        raise SecretError(f"{ref.describe()} is not a JSON object: store {SECRET_SHAPE}.")
    if isinstance(data.get("password"), str):
        register_secret(data["password"])
    missing = [key for key in REQUIRED_KEYS if not isinstance(data.get(key), str) or not data[key]]
    if missing:
        raise SecretError(
            f"{ref.describe()} has no {' or '.join(repr(k) for k in missing)} (a non-empty "
            f"string): store the RDS JSON {SECRET_SHAPE}."
        )
    port = data.get("port")
    if port not in (None, ""):
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise SecretError(
                f"{ref.describe()} has a 'port' that is not a whole number: use e.g. 5432."
            ) from None
    return DatabaseCredentials(
        username=data["username"],
        password=data["password"],
        host=str(data.get("host") or ""),
        port=port or None,
        dbname=str(data.get("dbname") or ""),
        engine=str(data.get("engine") or ""),
    )
