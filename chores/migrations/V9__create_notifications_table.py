import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("chores", "V8__create_completions_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V9__create_notifications_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="Notification",
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
                            "recipient",
                            models.ForeignKey(
                                db_comment="The user notified; deleting the profile deletes their notifications.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="notifications",
                                to="accounts.userprofile",
                            ),
                        ),
                        (
                            "household",
                            models.ForeignKey(
                                blank=True,
                                db_comment="The household it is about, if any.",
                                db_index=False,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="notifications",
                                to="chores.household",
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("assignment_assigned", "Assignment Assigned"),
                                    ("assignment_due", "Assignment Due"),
                                    ("assignment_overdue", "Assignment Overdue"),
                                    ("completion_recorded", "Completion Recorded"),
                                    ("household_invite", "Household Invite"),
                                    ("household_role_changed", "Household Role Changed"),
                                    ("system", "System"),
                                ],
                                db_comment="What happened: assignment_assigned, assignment_due, assignment_overdue, completion_recorded, household_invite, household_role_changed or system.",
                                max_length=30,
                            ),
                        ),
                        (
                            "payload",
                            models.JSONField(
                                blank=True,
                                db_comment="Kind-specific data as a JSON object (ids, titles, due time) for rendering the message.",
                                db_default={},
                                default=dict,
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_comment="When the notification was created.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "read_at",
                            models.DateTimeField(
                                blank=True,
                                db_comment="When the user read it; NULL while unread.",
                                null=True,
                            ),
                        ),
                        (
                            "delivered_channels",
                            django.contrib.postgres.fields.ArrayField(
                                base_field=models.CharField(
                                    choices=[
                                        ("email", "email"),
                                        ("push", "push"),
                                        ("sms", "sms"),
                                        ("in_app", "in_app"),
                                    ],
                                    max_length=10,
                                ),
                                blank=True,
                                db_comment="Channels it was delivered through so far: email, push, sms, in_app.",
                                db_default=[],
                                default=list,
                                size=None,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "notifications",
                        "db_table_comment": "Messages to a user about their chores and households.",
                        "indexes": [
                            models.Index(
                                fields=["recipient", "-created_at"],
                                name="notifications_recipient_time",
                            ),
                            models.Index(
                                condition=models.Q(("read_at__isnull", True)),
                                fields=["recipient", "-created_at"],
                                name="notifications_unread",
                            ),
                            models.Index(
                                condition=models.Q(("household__isnull", False)),
                                fields=["household"],
                                name="notifications_household_id",
                            ),
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    (
                                        "kind__in",
                                        (
                                            "assignment_assigned",
                                            "assignment_due",
                                            "assignment_overdue",
                                            "completion_recorded",
                                            "household_invite",
                                            "household_role_changed",
                                            "system",
                                        ),
                                    )
                                ),
                                name="notifications_kind_valid",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    (
                                        "delivered_channels__contained_by",
                                        ["email", "push", "sms", "in_app"],
                                    )
                                ),
                                name="notifications_channels_valid",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("read_at__isnull", True),
                                    ("read_at__gte", models.F("created_at")),
                                    _connector="OR",
                                ),
                                name="notifications_read_after_created",
                                violation_error_message="A notification cannot be read before it was created.",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
