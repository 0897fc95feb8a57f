# Model state only: the model is unmanaged (managed=False), so this migration runs no SQL
# and is not part of the Flyway sequence; the engine creates the table itself. It keeps
# makemigrations and makesqlmigration from seeing a change.
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

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
    ]
