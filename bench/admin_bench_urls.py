"""URLs for bench/admin_bench.py: the project's admin and a plain-ModelAdmin twin.

The plain site registers the same models with the same columns, search and filters as the
project's admin, and nothing else: Django's default paginator (exact COUNT(*), twice with
the full result count), no select_related/prefetch, default form widgets.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.urls import path
from django.utils.formats import date_format

from accounts.admin import DeletedFilter, UserProfileAdmin
from accounts.models import UserProfile
from chores.admin import CompletionAdmin, MonthFilter
from chores.models import Completion

plain = admin.AdminSite(name="plain")


class PlainProfileAdmin(admin.ModelAdmin):
    list_display = UserProfileAdmin.list_display
    search_fields = UserProfileAdmin.search_fields
    list_filter = ("is_active", "email_verified", DeletedFilter)
    ordering = UserProfileAdmin.ordering

    @admin.display(description="households")
    def household_names(self, obj: Any) -> str:
        return ", ".join(m.household.name for m in obj.memberships.all()) or "—"

    @admin.display(boolean=True)
    def deleted(self, obj: Any) -> bool:
        return obj.deleted_at is not None


class PlainCompletionAdmin(admin.ModelAdmin):
    list_display = CompletionAdmin.list_display
    search_fields = CompletionAdmin.search_fields
    list_filter = (MonthFilter,)
    ordering = CompletionAdmin.ordering

    @admin.display(description="member")
    def member_name(self, obj: Any) -> str:
        return str(obj.member.user) if obj.member else "—"

    @admin.display(description="completed (household time)")
    def completed(self, obj: Any) -> str:
        # The same text as the project's column, formatted by Django per value.
        local = obj.completed_at.astimezone(obj.household.zone)
        return f"{date_format(local, 'DATETIME_FORMAT')} {local:%Z} ({obj.household.zone})"


plain.register(UserProfile, PlainProfileAdmin)
plain.register(Completion, PlainCompletionAdmin)

urlpatterns = [path("admin/", admin.site.urls), path("plain/", plain.urls)]
