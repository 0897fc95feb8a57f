"""Households and their members (V3, V4): exactly one owner per household."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Now

from accounts.models import UserProfile
from accounts.validators import validate_timezone
from chores.validators import validate_not_blank


class HouseholdManager(models.Manager["Household"]):
    @transaction.atomic
    def create_with_owner(self, owner: UserProfile, **fields: Any) -> Household:
        """Create a household and its owner membership in one transaction (V4 requires it)."""
        household = self.create(**fields)
        household.members.create(user=owner, role=HouseholdMember.Role.OWNER)
        return household


class Household(models.Model):
    name = models.CharField(
        max_length=100,
        validators=[validate_not_blank],
        db_comment='Name shown to members, e.g. "The Millers".',
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        db_default="UTC",
        validators=[validate_timezone],
        db_comment=(
            'IANA time zone of the household: what "today" and "this week" mean for its chores.'
        ),
    )
    created_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the household was created."
    )
    updated_at = models.DateTimeField(
        db_default=Now(),
        editable=False,
        db_comment="When the row last changed; set by the households_set_updated_at trigger.",
    )

    objects = HouseholdManager()

    class Meta:
        db_table = "households"
        db_table_comment = "A group of people sharing chores (a family, a flat share)."

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        """The household's time zone; UTC if the stored name is not a known zone."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    @transaction.atomic
    def transfer_ownership(self, to: HouseholdMember) -> None:
        """Make `to` the owner and the current owner an admin (demote first: V4's index)."""
        if to.household_id != self.pk:
            raise ValidationError("The new owner must be a member of this household.")
        self.members.filter(role=HouseholdMember.Role.OWNER).exclude(pk=to.pk).update(
            role=HouseholdMember.Role.ADMIN
        )
        to.role = HouseholdMember.Role.OWNER
        to.save(update_fields=["role"])


class HouseholdMember(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"
        CHILD = "child"

    household = models.ForeignKey(
        Household,
        on_delete=models.CASCADE,
        related_name="members",
        db_index=False,
        db_comment="The household; deleting it removes its memberships.",
    )
    user = models.ForeignKey(
        UserProfile,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
        db_comment=(
            "The member's profile; deleting it removes the membership (refused for an owner "
            "until ownership moves)."
        ),
    )
    role = models.CharField(
        max_length=10,
        choices=Role,
        default=Role.MEMBER,
        db_default=Role.MEMBER,
        db_comment="owner (exactly one per household), admin, member or child.",
    )
    joined_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the user joined the household."
    )
    updated_at = models.DateTimeField(
        db_default=Now(),
        editable=False,
        db_comment=(
            "When the row last changed; set by the household_members_set_updated_at trigger."
        ),
    )

    class Meta:
        db_table = "household_members"
        db_table_comment = (
            "Membership of a user in a household, with a role; one per user and household."
        )
        constraints = [
            models.UniqueConstraint(
                fields=["household", "user"],
                name="household_members_household_user_uniq",
                violation_error_message="This user is already a member of the household.",
            ),
            models.UniqueConstraint(
                fields=["id", "household"], name="household_members_id_household_uniq"
            ),
            models.UniqueConstraint(
                fields=["household"],
                condition=Q(role="owner"),
                name="household_members_one_owner",
                violation_error_message=(
                    "This household already has an owner: use transfer ownership instead."
                ),
            ),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "admin", "member", "child"]),
                name="household_members_role_valid",
            ),
        ]
        indexes = [models.Index(fields=["user"], name="household_members_user_id")]

    def __str__(self) -> str:
        return f"{self.user} in {self.household} ({self.role})"

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> HouseholdMember:
        member = super().from_db(db, field_names, values)
        member._loaded_role = member.__dict__.get("role")
        return member

    def clean(self) -> None:
        super().clean()
        was_owner = getattr(self, "_loaded_role", None) == self.Role.OWNER
        if was_owner and self.role != self.Role.OWNER:
            raise ValidationError(
                {
                    "role": "The owner cannot be demoted: make another member the owner "
                    "first (transfer ownership)."
                }
            )
