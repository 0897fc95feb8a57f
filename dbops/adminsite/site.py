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

The index and the sidebar list the application's sections in the order admins use them
(profiles, households and chores, database operations), then any other app, then the
staff accounts and sign-in tables together under one heading at the end; the index opens
with the dashboard (dbops.adminsite.dashboard).
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
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from chores.audit import acting_as
from dbops.adminsite.access import requires
from dbops.adminsite.dashboard import cards

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
# The application's sections first, in this order; other apps follow alphabetically.
SECTION_ORDER = ("accounts", "chores", "dbops", "sqlmigrations")
# Staff accounts, their TOTP devices and the sign-in throttling tables: one section, last.
SECURITY_APPS = ("auth", "otp_totp", "axes")
SECURITY_LABEL = "security"
SECURITY_NAME = "Security and sign-in"
# Within a section, the tables admins open most first (Django sorts them by name); tables
# not named here follow in Django's order.
MODEL_ORDER = {
    "chores": (
        "Household",
        "HouseholdMember",
        "Task",
        "Assignment",
        "Completion",
        "TaskTemplate",
        "Notification",
        "ServiceDailyStats",
        "AuditLog",
    ),
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


def ordered_app_list(app_list: list[dict[str, Any]], security_url: str) -> list[dict[str, Any]]:
    """Django's app list (already filtered by permission) in the order of SECTION_ORDER,
    the SECURITY_APPS merged into one section at the end."""
    rank = {label: i for i, label in enumerate(SECTION_ORDER)}
    # sorted() is stable: apps outside SECTION_ORDER keep Django's alphabetical order.
    apps = sorted(
        (app for app in app_list if app["app_label"] not in SECURITY_APPS),
        key=lambda app: rank.get(app["app_label"], len(rank)),
    )
    for app in apps:
        order = MODEL_ORDER.get(app["app_label"])
        if order:
            place = {name: i for i, name in enumerate(order)}
            app["models"] = sorted(
                app["models"], key=lambda m: place.get(m.get("object_name", ""), len(place))
            )
    security = {app["app_label"]: app for app in app_list if app["app_label"] in SECURITY_APPS}
    if security:
        apps.append(
            {
                "name": SECURITY_NAME,
                "app_label": SECURITY_LABEL,
                "app_url": security_url,
                "has_module_perms": True,
                "models": [
                    m for label in SECURITY_APPS for m in security.get(label, {}).get("models", ())
                ],
            }
        )
    return apps


class AdminSite(admin.AdminSite):
    """The project's default admin site (choregarden.apps.AdminConfig selects it).

    With ADMIN_REQUIRE_2FA, django-otp's sign-in (dbops.signin.twofactor) and only sessions a
    TOTP device verified; read per request, so tests can turn it on and off.
    """

    site_header = "Chore Garden admin"
    site_title = "Chore Garden admin"
    index_title = "Dashboard"
    index_template = "admin/dbops/dashboard.html"

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list  # one app's own page, as Django lists it
        return ordered_app_list(
            app_list, reverse(f"{self.name}:{SECURITY_LABEL}_index", current_app=self.name)
        )

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return super().index(request, {"cards": cards(request), **(extra_context or {})})

    def security_index(self, request: HttpRequest) -> HttpResponse:
        """The security section's page: its tables from every app in SECURITY_APPS."""
        section = [app for app in self.get_app_list(request) if app["app_label"] == SECURITY_LABEL]
        if not section:
            raise Http404("The requested admin page does not exist.")
        context = {
            **self.each_context(request),
            "title": SECURITY_NAME,
            "subtitle": None,
            "app_list": section,
            "app_label": SECURITY_LABEL,
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/app_index.html", context)

    def get_urls(self) -> list[Any]:
        security = path(
            f"{SECURITY_LABEL}/",
            self.admin_view(self.security_index),
            name=f"{SECURITY_LABEL}_index",
        )
        return [security, *super().get_urls()]

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
