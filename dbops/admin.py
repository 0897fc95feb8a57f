"""Admin page of the ops tools: database health (D7).

Read-only, like the migration history pages of the engine (sqlmigrations.admin); the page
needs the model's view permission (superusers have it), declared with `requires`.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from dbops import health
from dbops.adminsite import healthhistory
from dbops.adminsite.access import requires
from dbops.connections.config import OWNER_ALIAS
from dbops.models import DatabaseHealth
from sqlmigrations.admin import ReadOnlyAdmin
from sqlmigrations.redact import redact


@admin.register(DatabaseHealth)
class DatabaseHealthAdmin(ReadOnlyAdmin):
    """The database-health page stands in for the (table-less) model's changelist."""

    @requires("view")
    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if "query" in request.GET:  # one statement's history: no live checks
            context = self._context(
                request, "Statement history", **healthhistory.query_context(request.GET)
            )
            return TemplateResponse(request, "admin/dbops/databasehealth/query.html", context)
        # The application's own connections (the primary, a replica): the owner alias is
        # the same database as `default` under the role that migrates, not for the web.
        aliases = [a for a in settings.DATABASES if a != OWNER_ALIAS]
        alias = request.GET.get("database", "default")
        if alias not in aliases:
            alias = "default"
        error = ""
        results: list[health.CheckResult] = []
        started = time.monotonic()
        try:
            results = health.run_checks(using=alias)
        except health.CANNOT_CHECK as err:
            error = redact(str(err))
        elapsed_ms = round((time.monotonic() - started) * 1000)
        context = self._context(
            request,
            "Database health",
            results=results,
            worst=health.worst_status(results) if results else "critical",
            error=error,
            alias=alias,
            aliases=aliases,
            database=settings.DATABASES[alias].get("NAME", alias),
            enable_pg_stat_statements=health.ENABLE_PG_STAT_STATEMENTS,
            checked_at=timezone.now(),
            elapsed_ms=elapsed_ms,
            history=healthhistory.figures_context(request.GET),
        )
        return TemplateResponse(request, "admin/dbops/databasehealth/health.html", context)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}_changelist"
        return [path("", view(self.changelist_view), name=name)]
