"""Task templates, tasks and their assignments (V5, V6, V7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower, Now
from django.utils import timezone

from chores.models.households import Household, HouseholdMember
from chores.validators import validate_not_blank, validate_recurrence_start, validate_rrule

EFFORT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(100)]


class RecurrenceMixin(models.Model):
    """Validate the RRULE on every save, not only in forms: the database checks its shape,
    dateutil whether it means anything."""

    recurrence: str | None

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.recurrence:
            validate_rrule(self.recurrence)
        super().save(*args, **kwargs)


class TaskTemplate(RecurrenceMixin, models.Model):
    household = models.ForeignKey(
        Household,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="task_templates",
        db_index=False,
        db_comment="Owning household; NULL for a global template offered to every household.",
    )
    title = models.CharField(
        max_length=200,
        validators=[validate_not_blank],
        db_comment=(
            "Short name, unique case-insensitively among the global templates or within a "
            "household."
        ),
    )
    description = models.TextField(
        blank=True, default="", db_default="", db_comment="How to do the chore."
    )
    effort_points = models.SmallIntegerField(
        default=1,
        db_default=1,
        validators=EFFORT_VALIDATORS,
        db_comment="Suggested points for the chore, 1 to 100.",
    )
    recurrence = models.CharField(
        max_length=500,
        null=True,
        blank=True,
        validators=[validate_rrule],
        db_comment=(
            "Suggested RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=SA); NULL for one-off chores."
        ),
    )
    created_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the template was created."
    )
    updated_at = models.DateTimeField(
        db_default=Now(),
        editable=False,
        db_comment="When the row last changed; set by the task_templates_set_updated_at trigger.",
    )

    class Meta:
        db_table = "task_templates"
        db_table_comment = "Reusable chore definitions: global (no household) or a household's own."
        constraints = [
            models.UniqueConstraint(
                Lower("title"),
                condition=Q(household__isnull=True),
                name="task_templates_global_title_uniq",
                violation_error_message="A global template with this title already exists.",
            ),
            models.UniqueConstraint(
                F("household"),
                Lower("title"),
                condition=Q(household__isnull=False),
                name="task_templates_household_title_uniq",
                violation_error_message="This household already has a template with this title.",
            ),
            models.CheckConstraint(
                condition=Q(effort_points__gte=1, effort_points__lte=100),
                name="task_templates_effort_points_range",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Task(RecurrenceMixin, models.Model):
    household = models.ForeignKey(
        Household,
        on_delete=models.CASCADE,
        related_name="tasks",
        db_index=False,
        db_comment="The household; deleting it deletes its tasks.",
    )
    template = models.ForeignKey(
        TaskTemplate,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
        db_index=False,
        db_comment="Template the task was made from, if any; NULL when the template is deleted.",
    )
    title = models.CharField(
        max_length=200, validators=[validate_not_blank], db_comment="Short name shown in lists."
    )
    description = models.TextField(
        blank=True, default="", db_default="", db_comment="How to do the chore."
    )
    effort_points = models.SmallIntegerField(
        default=1,
        db_default=1,
        validators=EFFORT_VALIDATORS,
        db_comment="Points earned by completing it, 1 to 100.",
    )
    recurrence = models.CharField(
        max_length=500,
        null=True,
        blank=True,
        validators=[validate_rrule],
        db_comment=(
            "RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=MO,TH), validated with dateutil; NULL for "
            "a one-off chore."
        ),
    )
    starts_on = models.DateField(
        default=timezone.localdate,
        db_comment=(
            "First day of the recurrence (its DTSTART date, household time zone), or the due "
            "day of a one-off chore."
        ),
    )
    due_time = models.TimeField(
        null=True,
        blank=True,
        db_comment="Time of day occurrences are due (household time zone); NULL means end of day.",
    )
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        db_comment="When the task was archived (no new assignments); NULL while active.",
    )
    created_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the task was created."
    )
    updated_at = models.DateTimeField(
        db_default=Now(),
        editable=False,
        db_comment="When the row last changed; set by the tasks_set_updated_at trigger.",
    )

    class Meta:
        db_table = "tasks"
        db_table_comment = "A household's chores, one-off or recurring."
        constraints = [
            models.UniqueConstraint(fields=["id", "household"], name="tasks_id_household_uniq"),
            models.CheckConstraint(
                condition=Q(effort_points__gte=1, effort_points__lte=100),
                name="tasks_effort_points_range",
            ),
        ]
        indexes = [
            models.Index(fields=["household"], name="tasks_household_id"),
            models.Index(
                fields=["template"], condition=Q(template__isnull=False), name="tasks_template_id"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def clean(self) -> None:
        super().clean()
        errors: dict[str, list[str]] = {}
        template = self.template if self.template_id else None
        if template is not None and template.household_id not in (None, self.household_id):
            errors["template"] = ["Use a global template or one of this household's own."]
        if self.recurrence and self.starts_on and self.household_id:
            try:
                validate_recurrence_start(
                    self.recurrence, self.starts_on, self.due_time, self.household.timezone
                )
            except ValidationError as err:
                errors["recurrence"] = err.messages
        if errors:
            raise ValidationError(errors)


class Assignment(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        DONE = "done"
        SKIPPED = "skipped"
        MISSED = "missed"
        CANCELLED = "cancelled"

    # The same table as the assignments_check_status trigger (V7).
    TRANSITIONS: dict[str, frozenset[str]] = {
        "open": frozenset({"done", "skipped", "missed", "cancelled"}),
        "missed": frozenset({"done", "open"}),
        "done": frozenset({"open"}),
        "skipped": frozenset({"open"}),
        "cancelled": frozenset(),
    }

    task = models.ForeignKey(
        Task,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_index=False,
        db_comment="The task; deleting it deletes its assignments.",
    )
    # Kept equal to task.household by the composite foreign key assignments_task_household_fkey
    # (task_id, household_id) -> tasks (id, household_id), which Django cannot declare.
    household = models.ForeignKey(
        Household,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
        editable=False,
        db_comment=(
            "The task's household (kept equal by a composite foreign key), for per-household "
            "queries."
        ),
    )
    assignee = models.ForeignKey(
        HouseholdMember,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assignments",
        db_index=False,
        db_comment=(
            "The member who should do it (same household); NULL when unassigned or the member left."
        ),
    )
    due_at = models.DateTimeField(
        db_comment="When it is due; with task_id it identifies the occurrence."
    )
    status = models.CharField(
        max_length=10,
        choices=Status,
        default=Status.OPEN,
        db_default=Status.OPEN,
        db_comment=(
            "open, done, skipped, missed or cancelled; changes only along the allowed transitions."
        ),
    )
    status_changed_at = models.DateTimeField(
        db_default=Now(),
        editable=False,
        db_comment="When status last changed; set by the assignments_check_status trigger.",
    )
    created_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the assignment was created."
    )
    updated_at = models.DateTimeField(
        db_default=Now(),
        editable=False,
        db_comment="When the row last changed; set by the assignments_set_updated_at trigger.",
    )

    class Meta:
        db_table = "assignments"
        db_table_comment = (
            "One occurrence of a task, given to a member and due at a moment; unique per task "
            "and due time."
        )
        constraints = [
            models.UniqueConstraint(
                fields=["task", "due_at"],
                name="assignments_task_due_uniq",
                violation_error_message="This task already has an assignment due at that time.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "done", "skipped", "missed", "cancelled"]),
                name="assignments_status_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["assignee", "due_at"], name="assignments_assignee_due"),
            models.Index(
                fields=["household", "due_at"],
                condition=Q(status="open"),
                name="assignments_household_open_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task} due {self.due_local():%Y-%m-%d %H:%M %Z}"

    def due_local(self) -> datetime:
        """The due time on the household's clock (tzinfo is the household's zone)."""
        return self.due_at.astimezone(self.household.zone if self.household_id else UTC)

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Assignment:
        assignment = super().from_db(db, field_names, values)
        assignment._loaded_status = assignment.__dict__.get("status")
        return assignment

    def clean_fields(self, exclude: Any = None) -> None:
        if self.task_id is not None:  # household follows the task (composite foreign key)
            self.household_id = self.task.household_id
        super().clean_fields(exclude)

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        before = getattr(self, "_loaded_status", None)
        if before and self.status != before and self.status not in self.TRANSITIONS[before]:
            allowed = ", ".join(sorted(self.TRANSITIONS[before])) or "none (it is final)"
            errors["status"] = f"Status cannot change from {before} to {self.status}: {allowed}."
        task = self.task if self.task_id else None
        assignee = self.assignee
        if task is not None and assignee is not None and assignee.household_id != task.household_id:
            errors["assignee"] = "The assignee must be a member of the task's household."
        if errors:
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.task_id is not None:
            self.household_id = self.task.household_id
        super().save(*args, **kwargs)
        self._loaded_status = self.status
