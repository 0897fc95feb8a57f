"""Admin for user profiles (issue 6.1): fast on millions of rows, preferences as fields."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.avatars import FORMATS, clean_avatar, max_bytes
from accounts.models import UserProfile
from accounts.validators import (
    CLOCK_RE,
    NOTIFICATION_CHANNELS,
    WEEK_STARTS,
    preference_errors,
)
from chores.models import HouseholdMember
from dbops.adminsite import rows as adminrows
from dbops.adminsite.access import log_action
from dbops.adminsite.kit import LargeTableAdmin
from dbops.adminsite.rules import DatabaseRulesAdmin, DatabaseRulesForm

CLOCK_HELP = "24-hour clock, HH:MM (e.g. 22:00). Leave both empty for no quiet hours."


class UserProfileForm(DatabaseRulesForm):
    """The preferences JSON edited as one field per key, validated like the database does."""

    notification_channels = forms.MultipleChoiceField(
        choices=[(c, c.replace("_", " ")) for c in NOTIFICATION_CHANNELS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Where notifications may be sent.",
    )
    quiet_hours_start = forms.CharField(
        max_length=5, required=False, help_text=CLOCK_HELP, label="Quiet hours from"
    )
    quiet_hours_end = forms.CharField(
        max_length=5, required=False, help_text=CLOCK_HELP, label="Quiet hours until"
    )
    week_start = forms.ChoiceField(choices=[(w, w.title()) for w in WEEK_STARTS])

    class Meta:
        model = UserProfile
        exclude = ("preferences",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prefs = dict(self.instance.preferences or {})
        quiet = prefs.get("quiet_hours") or {}
        self.initial.setdefault("notification_channels", prefs.get("notification_channels", []))
        self.initial.setdefault("quiet_hours_start", quiet.get("start", ""))
        self.initial.setdefault("quiet_hours_end", quiet.get("end", ""))
        self.initial.setdefault("week_start", prefs.get("week_start", "monday"))
        if "avatar" in self.fields:
            self.fields[
                "avatar"
            ].help_text = f"A PNG, JPEG, WebP or GIF image of at most {max_bytes() // 1024:,} KB."
            self.fields["avatar"].widget.attrs["accept"] = ",".join(
                mime for _exts, mime in FORMATS.values()
            )

    def clean_avatar(self) -> Any:
        avatar = self.cleaned_data.get("avatar")
        # Only a new upload is checked: the stored file (or False, "clear") passed before.
        if isinstance(avatar, UploadedFile):
            return clean_avatar(avatar)
        return avatar

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start = (data.get("quiet_hours_start") or "").strip()
        end = (data.get("quiet_hours_end") or "").strip()
        if bool(start) != bool(end):
            missing = "quiet_hours_end" if start else "quiet_hours_start"
            self.add_error(missing, "Give both ends of the quiet hours, or neither.")
        for name, value in (("quiet_hours_start", start), ("quiet_hours_end", end)):
            if value and not CLOCK_RE.match(value):
                self.add_error(name, f"{value} is not a time: use 24-hour HH:MM, e.g. 22:00.")
        if self.errors:
            return data
        prefs = {
            **(self.instance.preferences or {}),
            "notification_channels": list(data.get("notification_channels") or []),
            "quiet_hours": {"start": start, "end": end} if start and end else None,
            "week_start": data.get("week_start") or "monday",
        }
        for error in preference_errors(prefs):
            field = next(
                (
                    f
                    for key, f in (
                        ("quiet_hours", "quiet_hours_start"),
                        ("notification_channels", "notification_channels"),
                        ("week_start", "week_start"),
                    )
                    if error.startswith(key)
                ),
                None,
            )
            self.add_error(field, error)
        self.instance.preferences = prefs
        return data


class DeletedFilter(admin.SimpleListFilter):
    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Live"), ("yes", "Deleted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


class ProfileChangeList(ChangeList):
    """The profiles changelist, loading only what its columns show (with ADMIN_FAST_ROWS)."""

    # list_display's fields, and __str__'s (the checkboxes' labels): not the preferences
    # JSON, the avatar and the rest, which the page never shows.
    columns = (
        "id",
        "email",
        "display_name",
        "cognito_sub",
        "created_at",
        "last_seen_at",
        "is_active",
        "deleted_at",
    )

    def get_results(self, request: HttpRequest) -> None:
        if not adminrows.enabled():
            super().get_results(request)
            return
        # Only the page's rows: actions still get every column (get_queryset).
        self.queryset = self.queryset.only(*self.columns)
        super().get_results(request)
        # The page's household names in one query of (profile, name) pairs: a prefetch
        # built a membership, a household and a queryset per row for one column.
        page = list(self.result_list)
        names: dict[Any, list[str]] = {p.pk: [] for p in page}
        pairs = HouseholdMember.objects.filter(user__in=list(names)).values_list(
            "user_id", "household__name"
        )
        for user_id, name in pairs:
            names[user_id].append(name)
        for profile in page:
            profile.page_household_names = names[profile.pk]


@admin.register(UserProfile)
class UserProfileAdmin(DatabaseRulesAdmin, LargeTableAdmin):
    form = UserProfileForm
    list_display = (
        "email",
        "display_name",
        "cognito_sub",
        "household_names",
        "created_at",
        "last_seen_at",
        "is_active",
        "deleted",
    )
    list_display_links = ("email",)
    # icontains on these is UPPER(col::text) LIKE UPPER('%q%'): the trigram GIN indexes of
    # V2 (users_*_trgm) are built on exactly those expressions.
    search_fields = ("email", "display_name", "cognito_sub")
    search_help_text = "Email, display name or Cognito sub (any part)."
    list_filter = ("is_active", "email_verified", DeletedFilter)
    ordering = ("-created_at",)
    actions = ("soft_delete", "restore")
    readonly_fields = ("id", "created_at", "updated_at", "deleted_at")
    fieldsets = (
        (None, {"fields": ("id", "cognito_sub", "email", "email_verified", "display_name")}),
        ("Profile", {"fields": ("avatar", "timezone", "locale")}),
        (
            "Preferences",
            {
                "fields": (
                    "notification_channels",
                    ("quiet_hours_start", "quiet_hours_end"),
                    "week_start",
                )
            },
        ),
        (
            "Status",
            {"fields": ("is_active", "last_seen_at", "created_at", "updated_at", "deleted_at")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if adminrows.enabled():
            return queryset  # ProfileChangeList loads the page's household names itself
        # One query for the page's memberships with their households (not two).
        memberships = HouseholdMember.objects.select_related("household")
        return queryset.prefetch_related(Prefetch("memberships", queryset=memberships))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ProfileChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The Cognito sub links the profile to its identity: set once, never edited.
        return (*self.readonly_fields, "cognito_sub") if obj is not None else self.readonly_fields

    @admin.display(description="households")
    def household_names(self, obj: UserProfile) -> str:
        names = getattr(obj, "page_household_names", None)
        if names is None:  # a profile that is not on a ProfileChangeList page
            names = [m.household.name for m in obj.memberships.all()]
        return ", ".join(names) or "—"

    @admin.display(description="deleted", boolean=True)
    def deleted(self, obj: UserProfile) -> bool:
        return obj.deleted_at is not None

    # Soft delete and restore are the admin's deleting of a profile, and its undoing: both
    # need the permission to delete profiles (issue 13.1).
    @admin.action(
        permissions=["delete"],
        description="Soft-delete selected profiles (deactivate, keep the rows)",
    )
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        live = list(queryset.filter(deleted_at__isnull=True))
        count = UserProfile.objects.filter(
            pk__in=[p.pk for p in live], deleted_at__isnull=True
        ).update(deleted_at=timezone.now(), is_active=False)
        log_action(request, live, "Soft-deleted (deactivated, row kept).")
        self.message_user(request, f"Soft-deleted {count} profiles.", messages.SUCCESS)

    @admin.action(permissions=["delete"], description="Restore selected deleted profiles")
    def restore(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        restored = []
        for profile in queryset.filter(deleted_at__isnull=False):
            clash = UserProfile.objects.by_email(profile.email).exclude(pk=profile.pk).exists()
            if clash:
                self.message_user(
                    request,
                    f"Not restored: {profile.email} — another live profile has this email.",
                    messages.ERROR,
                )
                continue
            profile.deleted_at = None
            profile.is_active = True
            profile.save(update_fields=["deleted_at", "is_active"])
            restored.append(profile)
        log_action(request, restored, "Restored (reactivated).")
        self.message_user(request, f"Restored {len(restored)} profiles.", messages.SUCCESS)
