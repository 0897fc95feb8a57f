"""The admin site: every registered changelist reads its query string safely (issue 11.4).

A changelist turns its query string into SQL: filter values, search, ordering, paging.
Django refuses most malformed values as an invalid lookup (a redirect to `?e=1`), but
passes text with a NUL character on to PostgreSQL, which cannot store or compare it (a
server error), and lets the date hierarchy step past the year 9999. The site gives every
ModelAdmin registered with it, Django's and other apps' too, a changelist that refuses
those the same way.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest


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


class AdminSite(admin.AdminSite):
    """The project's default admin site (choregarden.apps.AdminConfig selects it).

    With ADMIN_REQUIRE_2FA, django-otp's sign-in (dbops.twofactor) and only sessions a
    TOTP device verified; read per request, so tests can turn it on and off.
    """

    @property
    def login_form(self) -> Any:  # type: ignore[override]
        if settings.ADMIN_REQUIRE_2FA:
            from dbops.twofactor import TOTPAdminAuthenticationForm

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
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, QueryStringChecksAdmin):
            # As Django itself does for `options`: a subclass made here, named as the original.
            admin_class = type(
                admin_class.__name__,
                (QueryStringChecksAdmin, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
            )
        super().register(model_or_iterable, admin_class, **options)
