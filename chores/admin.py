"""Admin for households and chores (issue 6.2): list columns, filters, search, no N+1.

The high-volume tables (assignments, completions, notifications, audit log) use
`LargeTableAdmin` (estimated counts), `raw_id_fields` instead of select boxes with every
row of a related table, and orderings that an index serves.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts.models import UserProfile
from accounts.validators import NOTIFICATION_CHANNELS
from chores.analytics.charts import PERIODS, household_charts, period, service_page
from chores.models import (
    Assignment,
    AuditLog,
    Completion,
    Household,
    HouseholdMember,
    Notification,
    ServiceDailyStats,
    Task,
    TaskTemplate,
)
from dbops.adminsite import datetimes
from dbops.adminsite.access import log_action, requires
from dbops.adminsite.kit import LargeTableAdmin
from dbops.adminsite.rules import (
    DatabaseRulesAdmin,
    DatabaseRulesForm,
    DatabaseRulesInline,
    explain_refusal,
)
from sqlmigrations.admin import ReadOnlyAdmin

OWNER_STAYS = (
    "The owner cannot be removed: make another member the owner first (select that member "
    "in Household members and run “Make the selected member the household's owner”)."
)
ONE_OWNER = (
    "A household needs exactly one owner: give one member the role owner (to move "
    "ownership, use “Make the selected member the household's owner”)."
)
# The deferred has-an-owner triggers of V4, should a write get past the forms.
explain_refusal("23000", r"household \d+ has no owner", ONE_OWNER)


class MemberFormSet(BaseInlineFormSet):
    """The household's members: exactly one owner stays (V4's index and triggers)."""

    def clean(self) -> None:
        super().clean()
        for form in self.forms:
            if self._should_delete_form(form) and form.instance.pk is not None:
                loaded = getattr(form.instance, "_loaded_role", form.instance.role)
                if loaded == HouseholdMember.Role.OWNER:
                    raise ValidationError(OWNER_STAYS)
        if any(self.errors):
            return  # a form in error has no role to count
        kept = [
            form
            for form in self.forms
            if not self._should_delete_form(form) and (form.has_changed() or form.instance.pk)
        ]
        owners = [f for f in kept if f.cleaned_data.get("role") == HouseholdMember.Role.OWNER]
        if len(owners) != 1:
            raise ValidationError(ONE_OWNER)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs = super().get_form_kwargs(index)
        if self.instance.pk is None and index == 0:
            # A new household's first row is its owner, as the database requires.
            kwargs["initial"] = {"role": HouseholdMember.Role.OWNER}
        return kwargs


class EmailSearchMixin:
    """Search a large table by a person's exact email through users_email_lower_uniq.

    Django's `=user__email` search compares UPPER(email), which only the trigram index
    can serve, and a trigram index is slow for equality on common letters (tens of ms on
    a million profiles); `UserProfile.objects.by_email` uses the unique lower(email)
    index of live profiles instead.
    """

    email_search_path = "user"  # the foreign-key path from this model to a UserProfile

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        people = UserProfile.objects.by_email(term).values("pk")
        return queryset.filter(**{f"{self.email_search_path}__in": people}), False


class MemberInline(DatabaseRulesInline):
    model = HouseholdMember
    formset = MemberFormSet
    raw_id_fields = ("user",)
    fields = ("user", "role", "joined_at")
    readonly_fields = ("joined_at",)

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 1 if obj is None else 0  # a new household: one row, for its owner

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("user")


@admin.register(Household)
class HouseholdAdmin(DatabaseRulesAdmin, LargeTableAdmin):
    list_display = ("name", "timezone", "owner", "created_at")
    search_fields = ("name",)
    ordering = ("-id",)
    inlines = (MemberInline,)
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("members__user")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The last 12 weeks below the members (admin/chores/household/change_form.html);
        # an unknown id is left to Django (a message and a redirect).
        household = self.get_object(request, object_id)
        if household is not None:
            extra_context = {**(extra_context or {}), "weeks": household_charts(household)}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="owner")
    def owner(self, obj: Household) -> str:
        owner = next((m for m in obj.members.all() if m.role == HouseholdMember.Role.OWNER), None)
        return str(owner.user) if owner else "—"


@admin.register(HouseholdMember)
class HouseholdMemberAdmin(DatabaseRulesAdmin, LargeTableAdmin):
    list_display = ("user", "household", "role", "joined_at")
    list_select_related = ("user", "household")
    list_filter = ("role",)
    search_fields = ("=user__email", "household__name")
    raw_id_fields = ("user", "household")
    ordering = ("-id",)
    actions = ("make_owner",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.role == HouseholdMember.Role.OWNER:
            return False  # the database requires one owner per household
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        owners = queryset.filter(role=HouseholdMember.Role.OWNER)
        if owners.exists():
            self.message_user(
                request, f"{owners.count()} owners were kept. {OWNER_STAYS}", messages.WARNING
            )
        super().delete_queryset(request, queryset.exclude(role=HouseholdMember.Role.OWNER))

    # Roles of members change, as on a member's change form (issue 13.1).
    @admin.action(
        permissions=["change"], description="Make the selected member the household's owner"
    )
    def make_owner(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one member.", messages.ERROR)
            return
        member = queryset.select_related("household").get()
        previous = list(member.household.members.filter(role=HouseholdMember.Role.OWNER))
        member.household.transfer_ownership(member)
        log_action(request, [member], "Made the household's owner.")
        log_action(
            request, [p for p in previous if p.pk != member.pk], "Owner became admin (transfer)."
        )
        self.message_user(
            request,
            f"{member.user} now owns {member.household}; the previous owner became an admin.",
            messages.SUCCESS,
        )


@admin.register(TaskTemplate)
class TaskTemplateAdmin(DatabaseRulesAdmin):
    list_display = ("title", "household", "effort_points", "recurrence")
    list_select_related = ("household",)
    list_filter = (("household", admin.EmptyFieldListFilter),)
    search_fields = ("title",)
    raw_id_fields = ("household",)


@admin.register(Task)
class TaskAdmin(DatabaseRulesAdmin, LargeTableAdmin):
    list_display = ("title", "household", "effort_points", "recurrence", "starts_on", "archived")
    list_select_related = ("household",)
    list_filter = (("archived_at", admin.EmptyFieldListFilter),)
    search_fields = ("title",)
    raw_id_fields = ("household", "template")
    ordering = ("-id",)

    @admin.display(boolean=True)
    def archived(self, obj: Task) -> bool:
        return obj.archived_at is not None


class HouseholdClockAdmin:
    """A household's times on the household's clock, the zone named: list cells, change
    pages (shown and read there), and an add page's input where the zone is known."""

    clock_field = ""  # the date-time field the form edits
    add_help = ""  # which clock an add page reads it on

    def household_zone(self, request: HttpRequest, obj: Any) -> ZoneInfo | None:
        """The zone a change or add page shows and reads times in; None: the site's."""
        return obj.household.zone if obj is not None else None

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        with datetimes.page():  # one formatter for every cell of the page
            response = super().changelist_view(request, extra_context)  # type: ignore[misc]
            if isinstance(response, TemplateResponse):
                response.render()  # the cells are formatted when the page renders
        return response

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        view = super().changeform_view  # type: ignore[misc]
        obj = self.get_object(request, object_id) if object_id else None  # type: ignore[attr-defined]
        zone = self.household_zone(request, obj)
        if zone is None:
            return view(request, object_id, form_url, extra_context)
        with timezone.override(zone):
            response = view(request, object_id, form_url, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()  # widgets format the times when the page renders
        return response

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)  # type: ignore[misc]
        if obj is None or not fieldsets:
            return fieldsets
        (name, options), *rest = fieldsets
        note = f"Times on this page are on the household's clock: {obj.household.zone}."
        return [(name, {**options, "description": note}), *rest]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]
        field = form.base_fields.get(self.clock_field)
        if field is not None:
            if obj is not None:
                local = getattr(obj, self.clock_field).astimezone(obj.household.zone)
                field.help_text = f"On the household's clock: {obj.household.zone} ({local:%Z})."
            else:
                field.help_text = self.add_help.format(zone=timezone.get_current_timezone_name())
        return form


def posted_id(request: HttpRequest, name: str) -> int | None:
    """A submitted form's key field, when it is a plausible key."""
    value = request.POST.get(name, "").strip() if request.method == "POST" else ""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


@admin.register(Assignment)
class AssignmentAdmin(HouseholdClockAdmin, EmailSearchMixin, DatabaseRulesAdmin, LargeTableAdmin):
    email_search_path = "assignee__user"
    list_display = ("task", "household", "assignee_name", "due", "status")
    list_select_related = ("task", "household", "assignee__user")
    list_filter = ("status",)
    search_fields = ("=assignee__user__email",)
    search_help_text = "Assignee's exact email."
    raw_id_fields = ("task", "assignee")
    ordering = ("-due_at",)
    readonly_fields = ("status_changed_at", "created_at", "updated_at")
    clock_field = "due_at"
    add_help = "On the clock of the task's household: its time zone, named once saved."

    @admin.display(description="assignee", ordering="assignee__user__email")
    def assignee_name(self, obj: Assignment) -> str:
        return str(obj.assignee.user) if obj.assignee else "—"

    @admin.display(description="due (household time)", ordering="due_at")
    def due(self, obj: Assignment) -> str:
        return datetimes.current().zoned(obj.due_at, obj.household.zone)

    def household_zone(self, request: HttpRequest, obj: Any) -> ZoneInfo | None:
        if obj is not None:
            return obj.household.zone
        # A new assignment's due time is read on its task's household's clock.
        key = posted_id(request, "task")
        task = None if key is None else Task.objects.select_related("household").filter(pk=key)
        found = None if task is None else task.first()
        return None if found is None else found.household.zone

    def save_model(self, request: HttpRequest, obj: Assignment, form: Any, change: bool) -> None:
        obj.household_id = obj.task.household_id  # kept equal by a composite foreign key
        super().save_model(request, obj, form, change)


class MonthFilter(admin.SimpleListFilter):
    """The last 12 months: each one is one partition of completions."""

    title = "month"
    parameter_name = "month"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        today = date.today()
        months = []
        for back in range(12):
            index = today.year * 12 + today.month - 1 - back
            months.append(date(index // 12, index % 12 + 1, 1))
        return [(f"{m:%Y-%m}", f"{m:%B %Y}") for m in months]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if not self.value():
            return queryset
        try:
            start = datetime.strptime(self.value(), "%Y-%m").replace(tzinfo=UTC)
            end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        except ValueError as err:  # not YYYY-MM, or December 9999 (no month follows)
            raise IncorrectLookupParameters(f"month={self.value()}: use YYYY-MM") from err
        return queryset.filter(completed_at__gte=start, completed_at__lt=end)


@admin.register(Completion)
class CompletionAdmin(HouseholdClockAdmin, EmailSearchMixin, DatabaseRulesAdmin, LargeTableAdmin):
    email_search_path = "member__user"
    list_display = ("id", "completed", "household", "member_name", "task", "points")
    list_select_related = ("household", "member__user", "task")
    list_filter = (MonthFilter,)
    search_fields = ("=member__user__email",)
    search_help_text = "Member's exact email."
    raw_id_fields = ("household", "member", "task", "assignment")
    # Newest first by id: each partition's primary key index (id, completed_at) serves it,
    # merged across partitions, with no sort of the whole table.
    ordering = ("-id",)
    sortable_by = ("id",)

    # completed_at starts at "now" on an add page, shown on the site's clock: the form
    # reads it there too, so a time is never moved to a household chosen afterwards.
    clock_field = "completed_at"
    add_help = "In {zone} on this page; once saved, shown on the household's clock."

    @admin.display(description="member")
    def member_name(self, obj: Completion) -> str:
        return str(obj.member.user) if obj.member else "—"

    @admin.display(description="completed (household time)")
    def completed(self, obj: Completion) -> str:
        return datetimes.current().zoned(obj.completed_at, obj.household.zone)


class NotificationForm(DatabaseRulesForm):
    # Ticked boxes, not the ArrayField's comma-separated text: its error for an unknown
    # channel interpolates the typed value twice (Django's prefix_validation_error), so a
    # "%" in it was a server error, and the boxes offer only what the CHECK accepts.
    delivered_channels = forms.MultipleChoiceField(
        choices=[(c, c) for c in NOTIFICATION_CHANNELS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=Notification._meta.get_field("delivered_channels").help_text,
    )


@admin.register(Notification)
class NotificationAdmin(EmailSearchMixin, DatabaseRulesAdmin, LargeTableAdmin):
    form = NotificationForm
    email_search_path = "recipient"
    list_display = ("recipient", "kind", "created_at", "read_at", "delivered_channels")
    list_select_related = ("recipient",)
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter))
    search_fields = ("=recipient__email",)
    search_help_text = "Recipient's exact email."
    raw_id_fields = ("recipient", "household")
    ordering = ("-id",)


class AuditedTableFilter(admin.SimpleListFilter):
    """The audited tables, read from the triggers (a DISTINCT over the log would scan it)."""

    title = "table"
    parameter_name = "table_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT c.relname FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
                "WHERE p.proname = 'choregarden_audit' ORDER BY 1"
            )
            return [(name, name) for (name,) in cursor.fetchall()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        return queryset.filter(table_name=self.value()) if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(LargeTableAdmin):
    """Read-only: the rows are written by database triggers, never by hand."""

    list_display = ("occurred_at", "table_name", "row_key", "action", "actor")
    list_filter = (AuditedTableFilter, "action")
    search_fields = ("=row_key", "=actor")
    search_help_text = "Exact row key or actor."
    ordering = ("-id",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ServiceDailyStats)
class UsageAnalyticsAdmin(ReadOnlyAdmin):
    """The analytics page stands in for the rollup's changelist: charts, no rows to edit."""

    @requires("view")
    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        page = service_page(period(request.GET.get("days")))
        context = self._context(request, "Usage analytics", page=page, periods=PERIODS)
        return TemplateResponse(request, "admin/chores/analytics.html", context)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", view(self.changelist_view), name=name)]
