import django.db.models.functions.datetime
from django.db import migrations, models

import accounts.validators
import chores.validators
from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("accounts", "V2__create_users_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V3__create_households_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="Household",
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
                            "name",
                            models.CharField(
                                db_comment='Name shown to members, e.g. "The Millers".',
                                max_length=100,
                                validators=[chores.validators.validate_not_blank],
                            ),
                        ),
                        (
                            "timezone",
                            models.CharField(
                                db_comment='IANA time zone of the household: what "today" and "this week" mean for its chores.',
                                db_default="UTC",
                                default="UTC",
                                max_length=64,
                                validators=[accounts.validators.validate_timezone],
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_comment="When the household was created.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "updated_at",
                            models.DateTimeField(
                                db_comment="When the row last changed; set by the households_set_updated_at trigger.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "households",
                        "db_table_comment": "A group of people sharing chores (a family, a flat share).",
                    },
                ),
            ],
        ),
    ]
