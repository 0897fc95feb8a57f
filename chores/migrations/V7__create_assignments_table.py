import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("chores", "V6__create_tasks_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V7__create_assignments_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="Assignment",
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
                            "task",
                            models.ForeignKey(
                                db_comment="The task; deleting it deletes its assignments.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="assignments",
                                to="chores.task",
                            ),
                        ),
                        (
                            "household",
                            models.ForeignKey(
                                db_comment="The task's household (kept equal by a composite foreign key), for per-household queries.",
                                db_constraint=False,
                                db_index=False,
                                editable=False,
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                related_name="+",
                                to="chores.household",
                            ),
                        ),
                        (
                            "assignee",
                            models.ForeignKey(
                                blank=True,
                                db_comment="The member who should do it (same household); NULL when unassigned or the member left.",
                                db_index=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="assignments",
                                to="chores.householdmember",
                            ),
                        ),
                        (
                            "due_at",
                            models.DateTimeField(
                                db_comment="When it is due; with task_id it identifies the occurrence."
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("open", "Open"),
                                    ("done", "Done"),
                                    ("skipped", "Skipped"),
                                    ("missed", "Missed"),
                                    ("cancelled", "Cancelled"),
                                ],
                                db_comment="open, done, skipped, missed or cancelled; changes only along the allowed transitions.",
                                db_default="open",
                                default="open",
                                max_length=10,
                            ),
                        ),
                        (
                            "status_changed_at",
                            models.DateTimeField(
                                db_comment="When status last changed; set by the assignments_check_status trigger.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_comment="When the assignment was created.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "updated_at",
                            models.DateTimeField(
                                db_comment="When the row last changed; set by the assignments_set_updated_at trigger.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "assignments",
                        "db_table_comment": "One occurrence of a task, given to a member and due at a moment; unique per task and due time.",
                        "indexes": [
                            models.Index(
                                fields=["assignee", "due_at"], name="assignments_assignee_due"
                            ),
                            models.Index(
                                condition=models.Q(("status", "open")),
                                fields=["household", "due_at"],
                                name="assignments_household_open_due",
                            ),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("task", "due_at"),
                                name="assignments_task_due_uniq",
                                violation_error_message="This task already has an assignment due at that time.",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    (
                                        "status__in",
                                        ["open", "done", "skipped", "missed", "cancelled"],
                                    )
                                ),
                                name="assignments_status_valid",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
