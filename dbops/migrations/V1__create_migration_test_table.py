import django.db.models.functions.datetime
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    initial = True
    dependencies = []
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V1__create_migration_test_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="MigrationTest",
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
                                db_comment="What wrote the row (e.g. a deploy check).",
                                max_length=100,
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_comment="When the row was written.",
                                db_default=django.db.models.functions.datetime.Now(),
                            ),
                        ),
                    ],
                    options={
                        "db_table": "migration_test",
                        "db_table_comment": "Probe for the migration system: proves migrations run on this database.",
                    },
                ),
            ],
        ),
    ]
