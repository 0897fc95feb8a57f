"""Who may open an admin page or run an action, and the admin's log of what actions did.

Django checks the model's view, add, change and delete permissions on its own pages; a
page an admin adds (`get_urls`) and an action check nothing unless they say so (issue
13.1). A custom page is decorated with `requires("view")` (or another permission name
with a `has_<name>_permission` method on the ModelAdmin), and an action with
`@admin.action(permissions=[...])`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def requires(permission: str) -> Callable[[View], View]:
    """Refuse the ModelAdmin's page (403) to a user without `has_<permission>_permission`."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(model_admin: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not getattr(model_admin, f"has_{permission}_permission")(request):
                raise PermissionDenied
            return view(model_admin, request, *args, **kwargs)

        checked.admin_permission = permission  # type: ignore[attr-defined]
        return checked

    return decorate


def log_action(request: HttpRequest, objects: Iterable[Any], message: str) -> None:
    """Write one admin log entry (History) per object an action changed."""
    objects = list(objects)
    if objects:
        LogEntry.objects.log_actions(
            user_id=request.user.pk, queryset=objects, action_flag=CHANGE, change_message=message
        )
