"""URLconf of the error-page probe: the admin, and a view that fails holding a password."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path


def boom(request: HttpRequest) -> HttpResponse:
    """Fail while locals hold the default database's password, as a connection would."""
    params = connections["default"].get_connection_params()
    password = params["password"]
    note = f"login {params['user']} with {password}"
    conninfo = " ".join(f"{key}={value}" for key, value in params.items())
    raise ValueError(f"cannot use {settings.DATABASE_URL or note} ({len(conninfo)} bytes)")


urlpatterns = [path("boom/", boom), path("admin/", admin.site.urls)]
