import django.core.validators
import django.db.models.deletion
import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models

import chores.validators
from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("chores", "V5__create_task_templates_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V6__create_tasks_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="Task",
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
                                db_comment="The household; deleting it deletes its tasks.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="tasks",
                                to="chores.household",
                            ),
                        ),
                        (
                            "template",
                            models.ForeignKey(
                                blank=True,
                                db_comment="Template the task was made from, if any; NULL when the template is deleted.",
                                db_index=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="tasks",
                                to="chores.tasktemplate",
                            ),
                        ),
                        (
                            "title",
                            models.CharField(
                                db_comment="Short name shown in lists.",
                                max_length=200,
                                validators=[chores.validators.validate_not_blank],
                            ),
                        ),
                        (
                            "description",
                            models.TextField(
                                blank=True,
                                db_comment="How to do the chore.",
                                db_default="",
                                default="",
                            ),
                        ),
                        (
                            "effort_points",
                            models.SmallIntegerField(
                                db_comment="Points earned by completing it, 1 to 100.",
                                db_default=1,
                                default=1,
                                validators=[
                                    django.core.validators.MinValueValidator(1),
                                    django.core.validators.MaxValueValidator(100),
                                ],
                            ),
                        ),
                        (
                            "recurrence",
                            models.CharField(
                                blank=True,
                                db_comment="RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=MO,TH), validated with dateutil; NULL for a one-off chore.",
                                max_length=500,
                                null=True,
                                validators=[chores.validators.validate_rrule],
                            ),
                        ),
                        (
                            "starts_on",
                            models.DateField(
                                db_comment="First day of the recurrence (its DTSTART date, household time zone), or the due day of a one-off chore.",
                                default=django.utils.timezone.localdate,
                            ),
                        ),
                        (
                            "due_time",
                            models.TimeField(
                                blank=True,
                                db_comment="Time of day occurrences are due (household time zone); NULL means end of day.",
                                null=True,
                            ),
                        ),
                        (
                            "archived_at",
                            models.DateTimeField(
                                blank=True,
                                db_comment="When the task was archived (no new assignments); NULL while active.",
                                null=True,
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_comment="When the task was created.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "updated_at",
                            models.DateTimeField(
                                db_comment="When the row last changed; set by the tasks_set_updated_at trigger.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "tasks",
                        "db_table_comment": "A household's chores, one-off or recurring.",
                        "indexes": [
                            models.Index(fields=["household"], name="tasks_household_id"),
                            models.Index(
                                condition=models.Q(("template__isnull", False)),
                                fields=["template"],
                                name="tasks_template_id",
                            ),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("id", "household"), name="tasks_id_household_uniq"
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("effort_points__gte", 1), ("effort_points__lte", 100)
                                ),
                                name="tasks_effort_points_range",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
