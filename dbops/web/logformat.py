"""Log lines an operator can use: UTC time, level, logger, process, thread, request id.

LOG_FORMAT=text gives one line per event; LOG_FORMAT=json gives one JSON object per line
(CloudWatch Logs indexes its keys). Both show a request log line's method, path, status and
duration (dbops.web.requestlog) and keep an error's traceback (masked by
sqlmigrations.redact.RedactSecretsFilter, which runs first and leaves it in `exc_text`).
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

NO_REQUEST = "-"
# The id of the request this thread is serving; set and reset by dbops.web.requestlog.
request_id: ContextVar[str] = ContextVar("request_id", default=NO_REQUEST)
# Attributes dbops.web.requestlog adds to its records (`extra=`), in the order they are shown.
REQUEST_FIELDS = ("method", "path", "status", "duration_ms")


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


def utc_time(record: logging.LogRecord) -> str:
    """Return the record's time as ISO 8601 in UTC with milliseconds, e.g. ...T20:38:05.123Z."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`time level logger pid=… thread=… request_id=… message`, one line."""

    def format(self, record: logging.LogRecord) -> str:
        # A request's line says method, path, status and duration in its message.
        line = (
            f"{utc_time(record)} {record.levelname} {record.name} pid={record.process} "
            f"thread={record.threadName} request_id={getattr(record, 'request_id', NO_REQUEST)} "
            f"{record.getMessage()}"
        )
        exception = self._exception(record)
        # The traceback follows on its own lines, as Python prints it (JSON keeps it in one).
        return f"{line}\n{exception}" if exception else line

    def _exception(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return record.exc_text or ""


class JsonFormatter(TextFormatter):
    """One JSON object per line: time, level, logger, process, thread, request_id, message,
    the request fields when present, and `exception` (the traceback) on errors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "thread": record.threadName,
            "request_id": getattr(record, "request_id", NO_REQUEST),
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        exception = self._exception(record)
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, default=str)


FORMATTERS = {"text": TextFormatter, "json": JsonFormatter}


def logging_config(log_format: str, level: str, aws_sdk_level: str) -> dict[str, Any]:
    """Return the LOGGING dict: every handler masks secrets and carries the request id.

    Django's own loggers come with handlers of their own (django.utils.log.DEFAULT_LOGGING)
    that would print a record before the filtered handler sees it: they are replaced here.
    ("mail_admins" goes too: ADMINS is empty.) gunicorn's loggers use the same handler
    (choregarden/gunicorn.conf.py), so its worker timeouts look like every other line.
    """
    filters = ["request_id", "redact"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "dbops.web.logformat.RequestIdFilter"},
            "redact": {"()": "sqlmigrations.redact.RedactSecretsFilter"},
        },
        "formatters": {
            "operator": {"()": f"dbops.web.logformat.{FORMATTERS[log_format].__name__}"},
            "django.server": {
                "()": "django.utils.log.ServerFormatter",
                "format": "[{server_time}] {message}",
                "style": "{",
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "operator",
                "filters": filters,
            },
            "django.server": {
                "class": "logging.StreamHandler",
                "formatter": "django.server",
                "filters": filters,
            },
        },
        "loggers": {
            "django": {"handlers": [], "level": "INFO"},
            "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
            "botocore": {"level": aws_sdk_level},
            "boto3": {"level": aws_sdk_level},
            # The pool warns at each failed connect attempt, several times a second in an
            # outage; the 503's one line per request (dbops.web.dbtrouble) names the same cause.
            "psycopg.pool": {"level": "ERROR"},
        },
        "root": {"handlers": ["console"], "level": level},
    }
