import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("chores", "V3__create_households_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V4__create_household_members_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="HouseholdMember",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "household",
                            models.ForeignKey(
                                db_comment="The household; deleting it removes its memberships.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="members",
                                to="chores.household",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                db_comment="The member's profile; deleting it removes the membership (refused for an owner until ownership moves).",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to="accounts.userprofile",
                            ),
                        ),
                        (
                            "role",
                            models.CharField(
                                choices=[
                                    ("owner", "Owner"),
                                    ("admin", "Admin"),
                                    ("member", "Member"),
                                    ("child", "Child"),
                                ],
                                db_comment="owner (exactly one per household), admin, member or child.",
                                db_default="member",
                                default="member",
                                max_length=10,
                            ),
                        ),
                        (
                            "joined_at",
                            models.DateTimeField(
                                db_comment="When the user joined the household.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "updated_at",
                            models.DateTimeField(
                                db_comment="When the row last changed; set by the household_members_set_updated_at trigger.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "household_members",
                        "db_table_comment": "Membership of a user in a household, with a role; one per user and household.",
                        "indexes": [
                            models.Index(fields=["user"], name="household_members_user_id")
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("household", "user"),
                                name="household_members_household_user_uniq",
                                violation_error_message="This user is already a member of the household.",
                            ),
                            models.UniqueConstraint(
                                fields=("id", "household"),
                                name="household_members_id_household_uniq",
                            ),
                            models.UniqueConstraint(
                                condition=models.Q(("role", "owner")),
                                fields=("household",),
                                name="household_members_one_owner",
                                violation_error_message="This household already has an owner: use transfer ownership instead.",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("role__in", ["owner", "admin", "member", "child"])
                                ),
                                name="household_members_role_valid",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
