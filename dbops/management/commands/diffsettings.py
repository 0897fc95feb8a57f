"""`diffsettings` with passwords, keys and tokens masked (Django's prints them as they are)."""

from __future__ import annotations

from typing import Any

from django.core.management.commands.diffsettings import Command as DjangoDiffsettings

from dbops.web.error_reports import SecretsExceptionReporterFilter
from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import MASK, redact


class Command(DatabaseCommand, DjangoDiffsettings):
    def output_hash(
        self, user_settings: dict[str, str], default_settings: dict[str, str], **options: Any
    ) -> list[str]:
        return super().output_hash(*masked(user_settings, default_settings), **options)

    def output_unified(
        self, user_settings: dict[str, str], default_settings: dict[str, str], **options: Any
    ) -> list[str]:
        return super().output_unified(*masked(user_settings, default_settings), **options)


def masked(
    user_settings: dict[str, str], default_settings: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Mask the settings' reprs by name (SECRET_KEY) and by shape (a URL's password).

    A value left at its default stays comparable with it, so `###` still marks exactly
    the settings the project changed.
    """
    hidden = SecretsExceptionReporterFilter().hidden
    user = {
        key: redact(value)
        if default_settings.get(key) == value
        else (repr(MASK) if hidden(key) else redact(value))
        for key, value in user_settings.items()
    }
    return user, {key: redact(value) for key, value in default_settings.items()}
