# The history model moved to the sqlmigrations app. State only: the model is unmanaged, so
# no SQL touches flyway_schema_history. Its content type moves with it, so the view
# permission keeps its id and every group and user that holds it keeps it (as Django's docs
# advise when a model changes apps).
from __future__ import annotations

from typing import Any

from django.db import migrations

MODEL = "flywayschemahistory"


def move_content_type(apps: Any, schema_editor: Any, source: str, target: str) -> None:
    """Relabel the model's content type from `source` to `target`, if only `source` has one."""
    content_types = apps.get_model("contenttypes", "ContentType").objects.using(
        schema_editor.connection.alias
    )
    if content_types.filter(app_label=target, model=MODEL).exists():
        return  # already there (a fresh database gets it from post_migrate)
    content_types.filter(app_label=source, model=MODEL).update(app_label=target)


def forwards(apps: Any, schema_editor: Any) -> None:
    move_content_type(apps, schema_editor, "dbops", "sqlmigrations")


def backwards(apps: Any, schema_editor: Any) -> None:
    move_content_type(apps, schema_editor, "sqlmigrations", "dbops")


class Migration(migrations.Migration):
    dependencies = [
        ("dbops", "admin_models_state"),
        ("sqlmigrations", "history_model_state"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="FlywaySchemaHistory")],
        ),
        migrations.RunPython(forwards, backwards),
    ]
