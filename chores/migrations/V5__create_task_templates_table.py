import django.core.validators
import django.db.models.deletion
import django.db.models.functions.datetime
import django.db.models.functions.text
from django.db import migrations, models

import chores.validators
from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("chores", "V4__create_household_members_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V5__create_task_templates_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="TaskTemplate",
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
                                blank=True,
                                db_comment="Owning household; NULL for a global template offered to every household.",
                                db_index=False,
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="task_templates",
                                to="chores.household",
                            ),
                        ),
                        (
                            "title",
                            models.CharField(
                                db_comment="Short name, unique case-insensitively among the global templates or within a household.",
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
                                db_comment="Suggested points for the chore, 1 to 100.",
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
                                db_comment="Suggested RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=SA); NULL for one-off chores.",
                                max_length=500,
                                null=True,
                                validators=[chores.validators.validate_rrule],
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_comment="When the template was created.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "updated_at",
                            models.DateTimeField(
                                db_comment="When the row last changed; set by the task_templates_set_updated_at trigger.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "task_templates",
                        "db_table_comment": "Reusable chore definitions: global (no household) or a household's own.",
                        "constraints": [
                            models.UniqueConstraint(
                                django.db.models.functions.text.Lower("title"),
                                condition=models.Q(("household__isnull", True)),
                                name="task_templates_global_title_uniq",
                                violation_error_message="A global template with this title already exists.",
                            ),
                            models.UniqueConstraint(
                                models.F("household"),
                                django.db.models.functions.text.Lower("title"),
                                condition=models.Q(("household__isnull", False)),
                                name="task_templates_household_title_uniq",
                                violation_error_message="This household already has a template with this title.",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("effort_points__gte", 1), ("effort_points__lte", 100)
                                ),
                                name="task_templates_effort_points_range",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
