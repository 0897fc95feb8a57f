import django.core.validators
import django.db.models.deletion
import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("chores", "V7__create_assignments_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V8__create_completions_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="Completion",
                    fields=[
                        (
                            "id",
                            models.BigIntegerField(
                                db_comment="Surrogate key from completions_id_seq; with completed_at, the primary key.",
                                db_default=models.Func(
                                    models.Value("completions_id_seq"),
                                    function="nextval",
                                    output_field=models.BigIntegerField(),
                                ),
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "household",
                            models.ForeignKey(
                                db_comment="The household; deleting it deletes its history.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="completions",
                                to="chores.household",
                            ),
                        ),
                        (
                            "member",
                            models.ForeignKey(
                                blank=True,
                                db_comment="Who did it (a member of the household); NULL once the membership is removed (the points stay with the household).",
                                db_constraint=False,
                                db_index=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="completions",
                                to="chores.householdmember",
                            ),
                        ),
                        (
                            "task",
                            models.ForeignKey(
                                blank=True,
                                db_comment="The task done (of the same household); NULL once the task is deleted.",
                                db_constraint=False,
                                db_index=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="completions",
                                to="chores.task",
                            ),
                        ),
                        (
                            "assignment",
                            models.ForeignKey(
                                blank=True,
                                db_comment="The assignment fulfilled, if any; NULL for ad-hoc work or once it is deleted.",
                                db_index=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="completions",
                                to="chores.assignment",
                            ),
                        ),
                        (
                            "completed_at",
                            models.DateTimeField(
                                db_comment="When the chore was done; the partition key.",
                                db_default=django.db.models.functions.datetime.Now(),
                                default=django.utils.timezone.now,
                            ),
                        ),
                        (
                            "points",
                            models.SmallIntegerField(
                                db_comment="Points earned, 0 to 1000 (usually the task's effort points).",
                                validators=[
                                    django.core.validators.MinValueValidator(0),
                                    django.core.validators.MaxValueValidator(1000),
                                ],
                            ),
                        ),
                        (
                            "note",
                            models.TextField(
                                blank=True,
                                db_comment="Optional note from the member, at most 1000 characters.",
                                db_default="",
                                default="",
                                max_length=1000,
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_comment="When the row was recorded (may be later than completed_at).",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "completions",
                        "db_table_comment": "History of chores done, partitioned by month of completed_at; primary key (id, completed_at).",
                        "indexes": [
                            models.Index(
                                fields=["household", "completed_at"],
                                include=("member", "points"),
                                name="completions_household_month",
                            ),
                            models.Index(
                                fields=["member", "completed_at"], name="completions_member_time"
                            ),
                            models.Index(
                                condition=models.Q(("task__isnull", False)),
                                fields=["task"],
                                name="completions_task_id",
                            ),
                            models.Index(
                                condition=models.Q(("assignment__isnull", False)),
                                fields=["assignment"],
                                name="completions_assignment_id",
                            ),
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("points__gte", 0), ("points__lte", 1000)),
                                name="completions_points_range",
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
