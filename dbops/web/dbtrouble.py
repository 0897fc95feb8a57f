"""503 with Retry-After when the database, not the code, is the trouble.

A pool that gives no connection, a refused or reset connection, a statement or lock
timeout, a server shutting down, a read-only standby: the request answers 503 with
`Retry-After` and a short page without internals, and the log gets one WARNING line with
the cause (the traceback at DEBUG). Load balancers and clients can then tell these from
bugs, which stay 500s. The middleware catches what views and template rendering raise;
`server_error` (handler500) catches the rest (another middleware's database work). With
DEBUG on (development), Django's error page shows the traceback instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
from django.conf import settings
from django.db.utils import OperationalError as DjangoOperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from django.views.defaults import server_error as django_server_error
from psycopg_pool import PoolTimeout

from dbops.connections.errors import DatabaseUnavailable, one_line
from dbops.connections.pooltimeout import current_request

logger = logging.getLogger("dbops.web.dbtrouble")
RETRY_AFTER_SECONDS = 5
BUSY = "The database is busy; try again shortly."
UNAVAILABLE = "The database is unavailable; try again shortly."
READ_ONLY = "The database accepts no changes at the moment (maintenance); try again shortly."
PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    "<title>Service unavailable</title></head><body><h1>Service unavailable</h1>"
    "<p>{text}</p></body></html>"
)


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__
    return seen


# The first class an error is an instance of names its cause; None: ours, a 500.
KINDS: tuple[tuple[type[BaseException], tuple[str, str] | None], ...] = (
    (PoolTimeout, ("no pooled connection", BUSY)),
    (psycopg.errors.LockNotAvailable, ("lock timeout", BUSY)),
    (psycopg.errors.QueryCanceled, ("statement timeout", BUSY)),
    (psycopg.errors.IdleInTransactionSessionTimeout, ("idle-in-transaction timeout", BUSY)),
    (psycopg.errors.AdminShutdown, ("server shutting down", UNAVAILABLE)),
    (psycopg.errors.ReadOnlySqlTransaction, ("read-only database", READ_ONLY)),
    # A statement too complex or too large: psycopg files it as operational, yet it is
    # the query's fault every time.
    (psycopg.errors.ProgramLimitExceeded, None),
    # Refused, reset, too many connections, a deadlock: the server's state, not our code.
    (psycopg.OperationalError, ("connection failed", UNAVAILABLE)),
    (DjangoOperationalError, ("connection failed", UNAVAILABLE)),
)


def _kind(exc: BaseException) -> tuple[str, str] | None:
    if isinstance(exc, DatabaseUnavailable):  # no connection: the pool's timeout, or refused
        if isinstance(exc.__cause__, PoolTimeout):
            return "no pooled connection", BUSY
        return "connection failed", UNAVAILABLE
    return next((kind for cls, kind in KINDS if isinstance(exc, cls)), None)


def diagnose(err: BaseException) -> tuple[str, str] | None:
    """Return (cause, what the page says) if `err` is the database's trouble, else None."""
    for exc in _chain(err):
        wrapper = isinstance(exc, DjangoOperationalError) and exc.__cause__ is not None
        if wrapper and not isinstance(exc, DatabaseUnavailable):
            continue  # Django's copy of psycopg's error: its cause says which
        found = _kind(exc)
        if found is not None:
            return found
    return None


def unavailable_response(request: HttpRequest, err: BaseException) -> HttpResponse | None:
    """Return the 503 for the database's trouble (logged once here), or None."""
    found = diagnose(err)
    if found is None:
        return None
    cause, text = found
    logger.warning(
        "database trouble (%s): %s %s -> 503: %s: %s",
        cause,
        request.method,
        request.path,
        type(err).__name__,
        one_line(str(err))[:500],
    )
    logger.debug("database trouble on %s %s", request.method, request.path, exc_info=err)
    response = HttpResponse(PAGE.format(text=escape(text)), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    # Django logs every 5xx again ("Service Unavailable: /path") unless told it was.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class DatabaseTroubleMiddleware:
    """Turn the database's trouble in a view or its template into a 503 with Retry-After."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Named in the pool-timeout message as the holder of a connection.
        token = current_request.set(f"{request.method} {request.path}")
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if settings.DEBUG:
            return None  # development: Django's error page, with the traceback
        return unavailable_response(request, exception)


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """handler500: a 503 for the database's trouble anywhere, else Django's 500 page."""
    import sys

    err = sys.exc_info()[1]
    if err is not None:
        response = unavailable_response(request, err)
        if response is not None:
            return response
    return django_server_error(request, template_name)
