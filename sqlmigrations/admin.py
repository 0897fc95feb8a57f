"""Admin pages of the migration engine: the schema history, files and states, validate (D7).

All read-only: no add, change or delete, and nothing here changes the schema. Every page
(the list, files and states, validate, a file's SQL) needs the model's view permission
(superusers have it); the pages the admin adds say so with `requires_view`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from sqlmigrations import engine
from sqlmigrations import states as migration_states
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.models import FlywaySchemaHistory
from sqlmigrations.redact import redact

View = Callable[..., HttpResponse]
TEMPLATES = "admin/sqlmigrations/flywayschemahistory"


def requires_view(view: View) -> View:
    """Refuse a page the ModelAdmin adds (403) to a user without the model's view permission."""

    @functools.wraps(view)
    def checked(model_admin: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        return view(model_admin, request, *args, **kwargs)

    # Read by a project that walks its admin to prove every page declares its permission.
    checked.admin_permission = "view"  # type: ignore[attr-defined]
    return checked


STATE_CLASSES = {
    migration_states.APPLIED: "ok",
    migration_states.PENDING: "info",
    migration_states.FAILED: "critical",
    migration_states.EDITED: "warning",
    migration_states.MISSING: "critical",
}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Show rows and pages; add, change and delete nothing (dbops' health page uses it too)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            **extra,
        }


def state_badge(state: str) -> str:
    return format_html(
        '<span class="sqlmigrations-badge sqlmigrations-{}">{}</span>',
        STATE_CLASSES.get(state, "info"),
        state,
    )


@admin.register(FlywaySchemaHistory)
class MigrationHistoryAdmin(ReadOnlyAdmin):
    # One line per row at 1400 px beside the filters: the description is already in the
    # script's name, long names end in an ellipsis (the full name is the tooltip), and the
    # checksums are compared on "Files and states"; the detail page has every column.
    list_display = (
        "rank",
        "version",
        "script_link",
        "success",
        "installed",
        "installed_by",
        "duration",
        "type",
    )
    list_display_links = ("rank", "version")
    list_filter = ("success", "type")
    search_fields = ("script", "description", "version")
    readonly_fields = (
        "state",
        "installed_rank",
        "version",
        "description",
        "type",
        "script",
        "checksum",
        "file_checksum",
        "installed_by",
        "installed_on",
        "execution_time",
        "success",
        "sql",
    )
    fields = readonly_fields
    show_full_result_count = False
    change_list_template = f"{TEMPLATES}/change_list.html"

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path("states/", view(self.states_view), name="sqlmigrations_states"),
            path("validate/", view(self.validate_view), name="sqlmigrations_validate"),
            path("file/<path:script>/", view(self.file_view), name="sqlmigrations_file"),
            *super().get_urls(),
        ]

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        states = self._states(request)

        @admin.display(description="state")
        def state(obj: FlywaySchemaHistory) -> str:
            info = states.get(obj.installed_rank)
            return state_badge(migration_states.label(info)) if info else "-"

        return (*self.list_display[:2], state, *self.list_display[2:])

    def _states(self, request: HttpRequest) -> dict[int, Any]:
        return _overview(request).by_rank()

    @admin.display(description="script", ordering="script")
    def script_link(self, obj: FlywaySchemaHistory) -> str:
        if migration_states.find_file(obj.script) is None:
            return format_html('<span title="{0}">{0}</span>', obj.script)
        return format_html(
            '<a href="{}" title="{}">{}</a>',
            _file_url(obj.script),
            obj.script,
            obj.script,
        )

    @admin.display(description="rank", ordering="installed_rank")
    def rank(self, obj: FlywaySchemaHistory) -> int:
        return obj.installed_rank

    @admin.display(description="installed", ordering="installed_on")
    def installed(self, obj: FlywaySchemaHistory) -> str:
        # Flyway's column is a timestamp without time zone: shown as stored.
        return f"{obj.installed_on:%Y-%m-%d %H:%M}"

    @admin.display(description="time", ordering="execution_time")
    def duration(self, obj: FlywaySchemaHistory) -> str:
        return f"{obj.execution_time:,} ms"

    @admin.display(description="state")
    def state(self, obj: FlywaySchemaHistory) -> str:
        info = migration_states.read_overview().by_rank().get(obj.installed_rank)
        if info is None:
            return "-"
        return format_html(
            "{} (Flyway: {})", state_badge(migration_states.label(info)), info.state.value
        )

    @admin.display(description="checksum of the file on disk")
    def file_checksum(self, obj: FlywaySchemaHistory) -> str:
        mf = migration_states.find_file(obj.script)
        return "not on disk" if mf is None else str(mf.checksum)

    @admin.display(description="SQL file")
    def sql(self, obj: FlywaySchemaHistory) -> str:
        mf = migration_states.find_file(obj.script)
        if mf is None:
            return f"{obj.script} is not on disk."
        return format_html('<pre class="sqlmigrations-sql">{}</pre>', mf.read_text())

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        overview = _overview(request)
        extra = {"overview": overview, "counts": overview.counts(), **(extra_context or {})}
        return super().changelist_view(request, extra)

    @requires_view
    def states_view(self, request: HttpRequest) -> HttpResponse:
        overview = migration_states.read_overview()
        lines = [
            {
                "info": info,
                "state": migration_states.label(info),
                "badge": state_badge(migration_states.label(info)),
                "file_url": _file_url(info.script) if info.file is not None else "",
            }
            for info in overview.infos
        ]
        context = self._context(
            request,
            "Migration files and history",
            overview=overview,
            counts=overview.counts(),
            lines=lines,
            location=str(engine.option("LOCATION")),
        )
        return TemplateResponse(request, f"{TEMPLATES}/states.html", context)

    @requires_view
    def validate_view(self, request: HttpRequest) -> HttpResponse:
        error = ""
        problems: list[Any] = []
        try:
            problems = migration_states.validate()
        except (DatabaseError, SqlMigrationError) as err:
            error = redact(str(err))
        context = self._context(
            request,
            "Validate migrations",
            problems=problems,
            error=error,
            files=len(engine.load_files()),
        )
        return TemplateResponse(request, f"{TEMPLATES}/validate.html", context)

    @requires_view
    def file_view(self, request: HttpRequest, script: str) -> HttpResponse:
        mf = migration_states.find_file(script)
        if mf is None:
            raise Http404(f"{script} is not in the migrations folder")
        overview = migration_states.read_overview()
        infos = [i for i in overview.infos if i.script == script]
        context = self._context(
            request,
            script,
            file=mf,
            sql=mf.read_text(),
            infos=[(i, state_badge(migration_states.label(i))) for i in infos],
            conf=mf.config,
        )
        return TemplateResponse(request, f"{TEMPLATES}/file.html", context)


def _overview(request: HttpRequest) -> migration_states.Overview:
    # Files and history are read once per request, not once per row.
    if not hasattr(request, "_sqlmigrations_overview"):
        request._sqlmigrations_overview = migration_states.read_overview()  # type: ignore[attr-defined]
    return request._sqlmigrations_overview  # type: ignore[attr-defined]


def _file_url(script: str) -> str:
    return reverse("admin:sqlmigrations_file", args=[script])
