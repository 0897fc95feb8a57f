"""gunicorn's settings for production: `gunicorn -c gunicorn.conf.py` (README, "Production").

Read from the environment, as the project's settings are:
- PORT (8000): the port to listen on, on every interface (the container's).
- WEB_CONCURRENCY: worker processes; default the CPU count, at least 2, so that one
  worker's restart (max-requests) or crash leaves another serving.
- GUNICORN_THREADS (4): threads per worker (gthread). Each worker has its own connection
  pool of DB_POOL_MAX_SIZE: more threads than that would only queue for a connection, so
  that is refused. The database sees at most WEB_CONCURRENCY * DB_POOL_MAX_SIZE
  connections per task.
- DB_STATEMENT_TIMEOUT (30s, read as the settings read it: dbops.connections.waits) and
  DB_POOL_TIMEOUT (10 s): the worker timeout sits above both, so the database's own
  timeouts end a slow request first, with a clear error, before gunicorn kills a worker
  and every request on it.
- GUNICORN_ACCESS_LOG: unset, the request line is Django's (dbops.web.requestlog: one line per
  request, with the request id); `-` adds gunicorn's own access line on stdout.
Logging uses the project's format (LOG_FORMAT, LOG_LEVEL), so gunicorn's lines (worker
boots, timeouts) look like every other.
"""

from __future__ import annotations

import os
from pathlib import Path

from dbops.connections.waits import DurationError, duration_ms
from dbops.web.logformat import FORMATTERS, logging_config
from sqlmigrations.lib import processes


def _whole_number(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SystemExit(f"error: {name}={raw!r} must be a whole number of at least {minimum}.")
    return int(raw)


PRODUCTION = os.environ.get("DJANGO_ENV", "development") == "production"
POOL_MAX_SIZE = _whole_number("DB_POOL_MAX_SIZE", 20 if PRODUCTION else 10)
POOL_TIMEOUT = _whole_number("DB_POOL_TIMEOUT", 10)


def _seconds(name: str, default: str) -> int:
    try:
        ms = duration_ms(name, os.environ.get(name, "").strip() or default)
    except DurationError as err:
        raise SystemExit(f"error: {err}") from None
    return -(-ms // 1000)


# Whole seconds, rounded up; off (0), a statement is bounded by gunicorn's timeout alone,
# which then allows the default's 30 s.
STATEMENT_TIMEOUT = _seconds("DB_STATEMENT_TIMEOUT", "30s") or 30

wsgi_app = "choregarden.wsgi:application"
bind = [f"0.0.0.0:{_whole_number('PORT', 8000)}"]
worker_class = "gthread"
workers = _whole_number("WEB_CONCURRENCY", max(2, os.cpu_count() or 1))
threads = _whole_number("GUNICORN_THREADS", min(4, POOL_MAX_SIZE))
if threads > POOL_MAX_SIZE:
    raise SystemExit(
        f"error: GUNICORN_THREADS={threads} is more than DB_POOL_MAX_SIZE={POOL_MAX_SIZE}: "
        "each thread needs a pooled connection; lower GUNICORN_THREADS or raise "
        "DB_POOL_MAX_SIZE."
    )
# A request waits at most DB_POOL_TIMEOUT for a connection, then runs statements bounded
# by the statement timeout; the margin covers rendering.
timeout = POOL_TIMEOUT + STATEMENT_TIMEOUT + 20
# On SIGTERM (a deploy), requests in flight get as long as one statement may take.
graceful_timeout = STATEMENT_TIMEOUT + 5
# Recycle workers now and then (memory growth), not all at once.
max_requests = 2000
max_requests_jitter = 200
# Above the load balancer's idle timeout (ALB: 60 s): otherwise gunicorn may close a
# connection the balancer is about to reuse, and the client gets a 502.
keepalive = 65
# gunicorn 25+ opens a control socket at one path per user ($HOME/.gunicorn/gunicorn.ctl):
# a second server on the machine (the load benchmark runs two) would take it over, and a
# killed one leaves it behind. Nothing here uses `gunicornc`.
control_socket_disable = True
# The workers' heartbeat files: a memory file system, not the container's overlay.
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"

accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# %(M)s: the request's duration in milliseconds.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'

_log_format = os.environ.get("LOG_FORMAT", "text").strip().lower()
if _log_format not in FORMATTERS:
    raise SystemExit(f"error: LOG_FORMAT={_log_format!r} is not a log format: use text or json.")
logconfig_dict = logging_config(
    _log_format, os.environ.get("LOG_LEVEL", "INFO").strip().upper(), "INFO"
)
logconfig_dict["loggers"].update(
    {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # With a logging config gunicorn always logs access lines: only where asked to.
        "gunicorn.access": {
            "handlers": ["console"] if accesslog else [],
            "level": "INFO",
            "propagate": False,
        },
    }
)


def post_fork(server: object, worker: object) -> None:
    # A worker notices a dead master only between requests, and then finishes what it has
    # for up to graceful_timeout: killed with the master instead, nothing is left behind.
    processes.die_with_parent()
