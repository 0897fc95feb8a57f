"""URLconf of the error-page probe: the admin, and views that fail holding a password.

One view per error page Django renders: 400 (SuspiciousOperation), 403 (PermissionDenied),
404 (Http404), 500 (any other exception); a POST without a CSRF token gets the CSRF page.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path

FAILURES: dict[str, type[Exception]] = {
    "bad": SuspiciousOperation,
    "denied": PermissionDenied,
    "missing": Http404,
    "boom": ValueError,
}


def boom(request: HttpRequest, kind: str = "boom") -> HttpResponse:
    """Fail while locals hold the default database's password, as a connection would."""
    params = connections["default"].get_connection_params()
    password = params["password"]
    note = f"login {params['user']} with {password}"
    conninfo = " ".join(f"{key}={value}" for key, value in params.items())
    raise FAILURES[kind](f"cannot use {settings.DATABASE_URL or note} ({len(conninfo)} bytes)")


def accept_post(request: HttpRequest) -> HttpResponse:
    return HttpResponse("posted")  # reached only with a CSRF token


urlpatterns = [
    path("boom/", boom),
    *(path(f"{kind}/", boom, {"kind": kind}) for kind in FAILURES if kind != "boom"),
    path("post/", accept_post),
    path("admin/", admin.site.urls),
]
