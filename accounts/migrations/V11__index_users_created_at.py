from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [
        ("accounts", "V2__create_users_table"),
        ("chores", "V10__create_audit_log_table"),
    ]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V11__index_users_created_at.sql")],
            state_operations=[
                migrations.AddIndex(
                    model_name="userprofile",
                    index=models.Index(fields=["-created_at"], name="users_created_at"),
                ),
            ],
        ),
    ]
