"""/healthz and /readyz for the load balancer: cheap, unauthenticated, rate-limited.

- /healthz: the process answers (no database): 200 "ok".
- /readyz: the database answers within READY_TIMEOUT_SECONDS and its schema is at least
  the newest V file on disk: 200 "ok", else 503 "not ok". A database *newer* than the
  files is ready: migrations are made safe for the previous release (expand/contract),
  and a deploy migrates before the new release starts, so the running tasks must stay in
  service meanwhile.

The body never says more; the cause goes to the log. The middleware sits before
SecurityMiddleware and CommonMiddleware, so a balancer's check (plain HTTP, its Host the
target's address) is answered before the HTTPS redirect and the ALLOWED_HOSTS check.
Each endpoint allows HEALTH_CHECKS_PER_SECOND requests a second per process (a token
bucket with a second's burst); beyond that: 429.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections
from django.db.utils import load_backend
from django.http import HttpRequest, HttpResponse

from sqlmigrations.engine import history_for, load_files
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.validation import applied_versions

logger = logging.getLogger("choregarden.health")

READY_TIMEOUT_SECONDS = 1
# libpq's connect_timeout: 2 s is the least it honours.
READY_CONNECT_TIMEOUT_SECONDS = 2
DEFAULT_CHECKS_PER_SECOND = 10


def now() -> float:
    return time.monotonic()


class TokenBucket:
    """Allow `rate` calls a second, `rate` at once; thread-safe."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._updated = now()
        # Held for a few arithmetic operations, never across I/O.
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            moment = now()
            self._tokens = min(self.rate, self._tokens + (moment - self._updated) * self.rate)
            self._updated = moment
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


_buckets: dict[str, TokenBucket] = {}


def checks_per_second() -> int:
    return int(getattr(settings, "HEALTH_CHECKS_PER_SECOND", DEFAULT_CHECKS_PER_SECOND))


def _bucket(path: str) -> TokenBucket:
    rate = checks_per_second()
    bucket = _buckets.get(path)
    if bucket is None or bucket.rate != rate:
        bucket = _buckets[path] = TokenBucket(rate)
    return bucket


def _probe_settings(alias: str) -> dict[str, Any]:
    """The alias's settings for one unpooled connection with short timeouts."""
    config = dict(connections[alias].settings_dict)
    options = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    options["connect_timeout"] = READY_CONNECT_TIMEOUT_SECONDS
    config["OPTIONS"] = options
    config["CONN_MAX_AGE"] = 0
    return config


def schema_gap(alias: str = "default") -> str:
    """Return why the database is not ready ("" when it is); never raises for the DB's faults."""
    try:
        newest_file = max((f.name.version for f in load_files() if f.kind == "V"), default=None)
        # Its own connection: the pool may be full or waiting, and its timeouts are long.
        probe = load_backend(connections[alias].settings_dict["ENGINE"]).DatabaseWrapper(
            _probe_settings(alias), alias
        )
        try:
            with probe.cursor() as cursor:
                # The timeout for this transaction only: not as a startup parameter, which
                # a transaction pooler (PgBouncer, RDS Proxy) refuses or pins on.
                cursor.execute("BEGIN")
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)",
                    [str(READY_TIMEOUT_SECONDS * 1000)],
                )
                rows = history_for(cursor).rows()
                cursor.execute("COMMIT")
        finally:
            probe.close()
    except (DatabaseError, ImproperlyConfigured, SqlMigrationError, OSError) as err:
        return f"{type(err).__name__}: {err}"
    newest_applied = max(applied_versions(rows), default=None)
    if newest_file is not None and (newest_applied is None or newest_applied < newest_file):
        applied = newest_applied.raw if newest_applied else "none"
        return (
            f"the database's schema is at version {applied}, the newest migration file is "
            f"{newest_file.raw}: run `manage.py migrate`"
        )
    return ""


def _plain(body: str, status: int) -> HttpResponse:
    response = HttpResponse(f"{body}\n", status=status, content_type="text/plain")
    response["Cache-Control"] = "no-store"
    return response


def healthz() -> HttpResponse:
    return _plain("ok", 200)


def readyz() -> HttpResponse:
    gap = schema_gap()
    if gap:
        logger.warning("not ready: %s", gap)
        return _plain("not ok", 503)
    return _plain("ok", 200)


ENDPOINTS: dict[str, Callable[[], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware:
    """Answer /healthz and /readyz before host checks, redirects, sessions and auth."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is None:
            return self.get_response(request)
        if not _bucket(request.path_info).take():
            response = _plain("too many requests", 429)
            response["Retry-After"] = "1"
            return response
        return endpoint()
