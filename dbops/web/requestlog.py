"""One log line per request, with the request id the load balancer sent (or a new one).

The id comes from X-Request-Id, else from the ALB's X-Amzn-Trace-Id (`Root=1-…`), when it
is short and plain (letters, digits and `-_.:;=/+`: anything else could forge log lines or
fill the log); otherwise a new one is made. Every record logged while the request runs
carries it (dbops.web.logformat), and the response returns it as X-Request-ID, so a user's
report and the log meet.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from dbops.web.logformat import request_id

logger = logging.getLogger("choregarden.request")

MAX_REQUEST_ID_LENGTH = 200
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:;=/+-]+")
# WSGI names of the headers tried in turn; the first valid one wins.
REQUEST_ID_HEADERS = ("HTTP_X_REQUEST_ID", "HTTP_X_AMZN_TRACE_ID")
RESPONSE_HEADER = "X-Request-ID"


def valid_request_id(value: str) -> bool:
    """Say whether a header's value may be used as the request id as it is."""
    return 0 < len(value) <= MAX_REQUEST_ID_LENGTH and _PLAIN_ID.fullmatch(value) is not None


def request_id_for(request: HttpRequest) -> str:
    """Return the id the load balancer sent, or a new random one."""
    for header in REQUEST_ID_HEADERS:
        value = request.META.get(header, "")
        if valid_request_id(value):
            return value
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """First in MIDDLEWARE: set the request id, then log method, path, status, duration."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = request_id_for(request)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            # Django turns a view's exception into a 500 response inside; this catches
            # only what escapes every middleware, so that it is counted too.
            response = self.get_response(request)
            status = response.status_code
            response[RESPONSE_HEADER] = rid
            return response
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            # The path without the query string: queries may hold personal data.
            logger.info(
                "%s %s %s %.1f ms",
                request.method,
                request.path,
                status,
                duration_ms,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
            request_id.reset(token)
