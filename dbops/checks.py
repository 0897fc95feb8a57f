"""System checks of the database platform (ids dbops.E0xx / W0xx are stable)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_database_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Report a project with no database: no DATABASE_URL and no local cluster yet."""
    if settings.DATABASES["default"].get("NAME") or settings.DATABASES["default"].get("SECRET"):
        return []
    return [
        Error(
            "No database is configured.",
            hint="Run `python manage.py devdb start` to create the local database "
            "(`make run` does it for you), or set DATABASE_URL.",
            id="dbops.E001",
        )
    ]
