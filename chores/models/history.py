"""Completions, notifications and the audit log (V8, V9, V10): the high-volume history."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils import timezone

from accounts.models import UserProfile
from accounts.validators import NOTIFICATION_CHANNELS
from chores.models.households import Household, HouseholdMember
from chores.models.tasks import Assignment, Task


class Completion(models.Model):
    """A chore done. The table is partitioned by month: its real primary key is
    (id, completed_at); Django keys rows by id alone (docs/schema-decisions.md)."""

    # The table's key is (id, completed_at); PostgreSQL 15 has no identity columns on
    # partitioned tables, so id comes from completions_id_seq and RETURNING reads it back.
    id = models.BigIntegerField(
        primary_key=True,
        editable=False,
        db_default=models.Func(
            models.Value("completions_id_seq"),
            function="nextval",
            output_field=models.BigIntegerField(),
        ),
        db_comment="Surrogate key from completions_id_seq; with completed_at, the primary key.",
    )
    household = models.ForeignKey(
        Household,
        on_delete=models.CASCADE,
        related_name="completions",
        db_index=False,
        db_comment="The household; deleting it deletes its history.",
    )
    # member and task are checked by composite foreign keys with household_id in V8
    # (completions_member_household_fkey, completions_task_household_fkey), which Django
    # cannot declare; clean() says the same for forms.
    member = models.ForeignKey(
        HouseholdMember,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="completions",
        db_constraint=False,
        db_index=False,
        db_comment=(
            "Who did it (a member of the household); NULL once the membership is removed "
            "(the points stay with the household)."
        ),
    )
    task = models.ForeignKey(
        Task,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="completions",
        db_constraint=False,
        db_index=False,
        db_comment="The task done (of the same household); NULL once the task is deleted.",
    )
    assignment = models.ForeignKey(
        Assignment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="completions",
        db_index=False,
        db_comment=(
            "The assignment fulfilled, if any; NULL for ad-hoc work or once it is deleted."
        ),
    )
    completed_at = models.DateTimeField(
        default=timezone.now,
        db_default=Now(),
        db_comment="When the chore was done; the partition key.",
    )
    points = models.SmallIntegerField(
        validators=[MinValueValidator(0), MaxValueValidator(1000)],
        db_comment="Points earned, 0 to 1000 (usually the task's effort points).",
    )
    note = models.TextField(
        blank=True,
        default="",
        db_default="",
        max_length=1000,
        db_comment="Optional note from the member, at most 1000 characters.",
    )
    created_at = models.DateTimeField(
        db_default=Now(),
        editable=False,
        db_comment="When the row was recorded (may be later than completed_at).",
    )

    class Meta:
        db_table = "completions"
        db_table_comment = (
            "History of chores done, partitioned by month of completed_at; primary key "
            "(id, completed_at)."
        )
        constraints = [
            models.CheckConstraint(
                condition=Q(points__gte=0, points__lte=1000), name="completions_points_range"
            ),
        ]
        indexes = [
            models.Index(
                fields=["household", "completed_at"],
                include=["member", "points"],
                name="completions_household_month",
            ),
            models.Index(fields=["member", "completed_at"], name="completions_member_time"),
            models.Index(
                fields=["task"], condition=Q(task__isnull=False), name="completions_task_id"
            ),
            models.Index(
                fields=["assignment"],
                condition=Q(assignment__isnull=False),
                name="completions_assignment_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.points} points on {self.completed_at:%Y-%m-%d}"

    def clean(self) -> None:
        super().clean()
        errors = {}
        if self.member is not None and self.household_id != self.member.household_id:
            errors["member"] = "The member must belong to the household."
        if self.task is not None and self.household_id != self.task.household_id:
            errors["task"] = "The task must belong to the household."
        if errors:
            raise ValidationError(errors)


NOTIFICATION_KINDS = (
    "assignment_assigned",
    "assignment_due",
    "assignment_overdue",
    "completion_recorded",
    "household_invite",
    "household_role_changed",
    "system",
)


class Notification(models.Model):
    class Kind(models.TextChoices):
        ASSIGNMENT_ASSIGNED = "assignment_assigned"
        ASSIGNMENT_DUE = "assignment_due"
        ASSIGNMENT_OVERDUE = "assignment_overdue"
        COMPLETION_RECORDED = "completion_recorded"
        HOUSEHOLD_INVITE = "household_invite"
        HOUSEHOLD_ROLE_CHANGED = "household_role_changed"
        SYSTEM = "system"

    recipient = models.ForeignKey(
        UserProfile,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
        db_comment="The user notified; deleting the profile deletes their notifications.",
    )
    household = models.ForeignKey(
        Household,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        db_index=False,
        db_comment="The household it is about, if any.",
    )
    kind = models.CharField(
        max_length=30,
        choices=Kind,
        db_comment=(
            "What happened: assignment_assigned, assignment_due, assignment_overdue, "
            "completion_recorded, household_invite, household_role_changed or system."
        ),
    )
    payload = models.JSONField(
        default=dict,
        db_default={},
        blank=True,
        db_comment=(
            "Kind-specific data as a JSON object (ids, titles, due time) for rendering the message."
        ),
    )
    created_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the notification was created."
    )
    read_at = models.DateTimeField(
        null=True, blank=True, db_comment="When the user read it; NULL while unread."
    )
    delivered_channels = ArrayField(
        models.CharField(max_length=10, choices=[(c, c) for c in NOTIFICATION_CHANNELS]),
        default=list,
        db_default=[],
        blank=True,
        db_comment="Channels it was delivered through so far: email, push, sms, in_app.",
    )

    class Meta:
        db_table = "notifications"
        db_table_comment = "Messages to a user about their chores and households."
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=NOTIFICATION_KINDS), name="notifications_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(delivered_channels__contained_by=list(NOTIFICATION_CHANNELS)),
                name="notifications_channels_valid",
            ),
            models.CheckConstraint(
                condition=Q(read_at__isnull=True) | Q(read_at__gte=F("created_at")),
                name="notifications_read_after_created",
                violation_error_message="A notification cannot be read before it was created.",
            ),
        ]
        indexes = [
            models.Index(fields=["recipient", "-created_at"], name="notifications_recipient_time"),
            models.Index(
                fields=["recipient", "-created_at"],
                condition=Q(read_at__isnull=True),
                name="notifications_unread",
            ),
            models.Index(
                fields=["household"],
                condition=Q(household__isnull=False),
                name="notifications_household_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.recipient}"

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.payload, dict):
            raise ValidationError({"payload": "The payload must be a JSON object."})


class AuditLog(models.Model):
    """Written only by the choregarden_audit() triggers; the application role reads it."""

    class Action(models.TextChoices):
        INSERT = "INSERT"
        UPDATE = "UPDATE"
        DELETE = "DELETE"

    table_name = models.CharField(max_length=63, db_comment="Table of the changed row.")
    row_key = models.CharField(
        max_length=64, db_comment="Primary key (id) of the changed row, as text."
    )
    action = models.CharField(max_length=6, choices=Action, db_comment="INSERT, UPDATE or DELETE.")
    changes = models.JSONField(
        db_comment=(
            'Changed columns: {"column": {"old": value, "new": value}}; old is null for '
            "INSERT, new is null for DELETE; updated_at and last_seen_at are left out."
        )
    )
    actor = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        db_comment=(
            "Who made the change, from the transaction's choregarden.actor setting (e.g. "
            "user:<uuid>, staff:<name>); NULL if not set."
        ),
    )
    txid = models.BigIntegerField(
        db_default=models.Func(function="txid_current", output_field=models.BigIntegerField()),
        db_comment="Transaction id: rows with the same txid were one change.",
    )
    occurred_at = models.DateTimeField(
        db_default=Now(), db_comment="Transaction time of the change."
    )

    class Meta:
        db_table = "audit_log"
        db_table_comment = (
            "Change history of the application tables, written by the choregarden_audit() "
            "triggers; read-only for the application."
        )
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["INSERT", "UPDATE", "DELETE"]),
                name="audit_log_action_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["table_name", "row_key", "occurred_at"], name="audit_log_row"),
            BrinIndex(fields=["occurred_at"], name="audit_log_occurred_at"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.table_name} {self.row_key}"
