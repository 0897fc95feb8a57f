# Model state only: both models are unmanaged (managed=False), so this migration runs no
# SQL and is not part of the Flyway sequence. It keeps makemigrations and makesqlmigration
# from seeing a change; the schema drift check compares managed models only.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("dbops", "V1__create_migration_test_table")]

    operations = [
        migrations.CreateModel(
            name="FlywaySchemaHistory",
            fields=[
                ("installed_rank", models.IntegerField(primary_key=True, serialize=False)),
                ("version", models.CharField(blank=True, max_length=50, null=True)),
                ("description", models.CharField(max_length=200)),
                ("type", models.CharField(max_length=20)),
                ("script", models.CharField(max_length=1000)),
                ("checksum", models.IntegerField(blank=True, null=True)),
                ("installed_by", models.CharField(max_length=100)),
                ("installed_on", models.DateTimeField()),
                ("execution_time", models.IntegerField(help_text="Milliseconds.")),
                ("success", models.BooleanField()),
            ],
            options={
                "verbose_name": "migration history row",
                "verbose_name_plural": "migration history",
                "db_table": "flyway_schema_history",
                "ordering": ["-installed_rank"],
                "default_permissions": ("view",),
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="DatabaseHealth",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "database health",
                "verbose_name_plural": "database health",
                "db_table": "dbops_database_health_no_table",
                "default_permissions": ("view",),
                "managed": False,
            },
        ),
    ]
