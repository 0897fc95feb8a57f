"""The admin site: every registered changelist reads its query string safely (issue 11.4).

A changelist turns its query string into SQL: filter values, search, ordering, paging.
Django refuses most malformed values as an invalid lookup (a redirect to `?e=1`), but
passes text with a NUL character on to PostgreSQL, which cannot store or compare it (a
server error), and lets the date hierarchy step past the year 9999. The site gives every
ModelAdmin registered with it, Django's and other apps' too, a changelist that refuses
those the same way.

Every view of the site that can write (any request but GET, HEAD and OPTIONS, by signed-in
staff) runs in one transaction whose changes the audit log attributes to
`staff:<username>` (issue 13.4): the name comes from the session's user, never from the
request's data. Actions of other apps' admins that declare no permission get the one
they need here (issue 13.1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models.base import ModelBase
from django.http import HttpRequest, HttpResponse

from chores.audit import acting_as
from dbops.adminsite.access import requires

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Actions of other apps' admins that declare no permission, and the permissions they need:
# django-axes offers "Clean up expired attempts", which deletes rows, to anyone who can
# view the attempts.
ACTION_PERMISSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("axes.accessattempt", "cleanup_expired_attempts"): ("delete",),
}
# Pages other apps' admins add, and the permission they need. django-otp's pages show a
# TOTP device's key: OTP_ADMIN_HIDE_SENSITIVE_DATA turns them off for everyone; should it
# ever be turned on, they need change permission, not just the list's view.
PAGE_PERMISSIONS: dict[tuple[str, str], str] = {
    ("otp_totp.totpdevice", "config_view"): "change",
    ("otp_totp.totpdevice", "qrcode_view"): "change",
}


class QueryStringChecks:
    """Changelist checks: what PostgreSQL cannot take is an invalid lookup, not an error."""

    def get_filters_params(self, params: Any = None) -> dict[str, list[str]]:
        lookup_params = super().get_filters_params(params)  # type: ignore[misc]
        for key, values in lookup_params.items():
            if "\x00" in key or any("\x00" in str(value) for value in values):
                raise IncorrectLookupParameters(f"{key}: a NUL character cannot be looked up")
        return lookup_params

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)  # type: ignore[misc]
        except (ValueError, OverflowError) as err:  # the date hierarchy past 9999-12-31
            raise IncorrectLookupParameters(err) from err


@functools.cache
def checked_changelist(base: type[ChangeList]) -> type[ChangeList]:
    """The changelist class `base` with QueryStringChecks."""
    if issubclass(base, QueryStringChecks):
        return base
    return type(base.__name__, (QueryStringChecks, base), {"__module__": __name__})


class QueryStringChecksAdmin:
    """A ModelAdmin mixin: its changelist applies QueryStringChecks."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return checked_changelist(super().get_changelist(request, **kwargs))  # type: ignore[misc]


def staff_actor(request: HttpRequest) -> str:
    """The audit log's actor for a request of a signed-in staff user."""
    return f"staff:{request.user.get_username()}"


def with_permissions(function: Callable[..., Any], permissions: tuple[str, ...]) -> Any:
    """An admin action that runs `function` and needs one of `permissions`."""

    def action(model_admin: Any, request: HttpRequest, queryset: Any) -> Any:
        # axes' cleanup reads the attempt time that its middleware sets on sign-in requests
        # only; on an admin request it raised AttributeError. None means "now" to axes.
        if not hasattr(request, "axes_attempt_time"):
            request.axes_attempt_time = None  # type: ignore[attr-defined]
        return function(model_admin, request, queryset)

    description = getattr(function, "short_description", None)
    return admin.action(permissions=permissions, description=description)(action)


def project_admin(model: Any, admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """`admin_class` with QueryStringChecks and the permissions ACTION_/PAGE_PERMISSIONS add."""
    attrs: dict[str, Any] = {}
    for (label, name), permissions in ACTION_PERMISSIONS.items():
        if label != model._meta.label_lower:
            continue
        function = getattr(admin_class, name, None)
        if function is not None and not getattr(function, "allowed_permissions", None):
            attrs[name] = with_permissions(function, permissions)
    for (label, name), permission in PAGE_PERMISSIONS.items():
        view = getattr(admin_class, name, None)
        if label == model._meta.label_lower and view is not None:
            attrs[name] = requires(permission)(view)
    if issubclass(admin_class, QueryStringChecksAdmin) and not attrs:
        return admin_class
    bases = (admin_class,)
    if not issubclass(admin_class, QueryStringChecksAdmin):
        bases = (QueryStringChecksAdmin, admin_class)
    # As Django itself does for `options`: a subclass made here, named as the original.
    attrs |= {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__}
    return type(admin_class.__name__, bases, attrs)


class AdminSite(admin.AdminSite):
    """The project's default admin site (choregarden.apps.AdminConfig selects it).

    With ADMIN_REQUIRE_2FA, django-otp's sign-in (dbops.signin.twofactor) and only sessions a
    TOTP device verified; read per request, so tests can turn it on and off.
    """

    @property
    def login_form(self) -> Any:  # type: ignore[override]
        if settings.ADMIN_REQUIRE_2FA:
            from dbops.signin.twofactor import TOTPAdminAuthenticationForm

            return TOTPAdminAuthenticationForm
        return None

    @property
    def login_template(self) -> Any:  # type: ignore[override]
        return "otp/admin111/login.html" if settings.ADMIN_REQUIRE_2FA else None

    def has_permission(self, request: HttpRequest) -> bool:
        if settings.ADMIN_REQUIRE_2FA and not request.user.is_verified():  # type: ignore[union-attr]
            return False
        return super().has_permission(request)

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        models = (
            [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        )
        for model in models:
            super().register(
                model, project_admin(model, admin_class or admin.ModelAdmin), **options
            )

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Any:
        def as_staff(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method in SAFE_METHODS:
                return view(request, *args, **kwargs)
            # Django's wrapper around this one has already refused all but active staff.
            with acting_as(staff_actor(request)):
                return view(request, *args, **kwargs)

        return super().admin_view(functools.update_wrapper(as_staff, view), cacheable)
