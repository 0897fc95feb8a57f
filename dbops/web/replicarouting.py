"""Read-your-writes and the replica's mid-request failures, per request (D9).

- A request that writes (an unsafe method, or an ORM write) gets a signed cookie that keeps
  that client's reporting reads on the primary for DB_READ_YOUR_WRITES seconds: the
  replica may not have replayed the change yet, and a user must see what they just did.
- A read-only request during which the replica failed (the connection was refused, reset
  or lost, dbops.connections.replicas) runs again on the primary, with a log line, instead
  of answering an error page. The replica stays marked down until its next check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from dbops.connections import replicas
from dbops.connections.routers import REPLICA, primary_only, tracking_writes

logger = logging.getLogger("dbops.replica")
COOKIE = "cg_primary_until"
SALT = "dbops.replicarouting"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def _pinned_by_cookie(request: HttpRequest) -> bool:
    try:
        until = float(request.get_signed_cookie(COOKIE, salt=SALT))
    except (KeyError, signing.BadSignature, ValueError):
        return False
    return until > time.time()


class ReplicaRoutingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if REPLICA not in settings.DATABASES:
            return self.get_response(request)
        token = replicas.track_request()
        try:
            with tracking_writes() as marks:
                if _pinned_by_cookie(request):
                    with primary_only():
                        response = self.get_response(request)
                else:
                    response = self.get_response(request)
                    if replicas.failed_in_request() and request.method in SAFE_METHODS:
                        logger.warning(
                            "The read replica failed during %s %s: the request runs again on "
                            "the primary.",
                            request.method,
                            request.path,
                        )
                        with primary_only():
                            response = self.get_response(request)
                wrote = bool(marks) or request.method not in SAFE_METHODS
        finally:
            replicas.end_request(token)
        window = float(getattr(settings, "DB_READ_YOUR_WRITES", 5))
        if wrote and window > 0:
            response.set_signed_cookie(
                COOKIE,
                str(time.time() + window),
                salt=SALT,
                max_age=window,
                secure=request.is_secure(),
                httponly=True,
                samesite="Lax",
            )
        return response
