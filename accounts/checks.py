"""System checks of the accounts app (ids accounts.W0xx are stable)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_avatar_storage(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Warn when production would keep user uploads on the web server's own disk."""
    if settings.DJANGO_ENV != "production" or settings.AVATAR_BUCKET:
        return []
    return [
        Warning(
            "Avatars are stored on the web server's disk in production.",
            hint="Set AVATAR_BUCKET to a private S3 bucket for user uploads (served from "
            "its own domain, never the admin's; docs/security.md).",
            id="accounts.W001",
        )
    ]
