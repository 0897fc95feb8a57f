"""The engine's undocumented Django API lives in sqlmigrations.django_internals, for one
Django release: another release fails here, naming each internal the engine relies on."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import django
import pytest
from django.db import connection, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState, StateApps

from sqlmigrations import django_internals
from sqlmigrations.django_internals import SUPPORTED, USED

ROOT = Path(__file__).resolve().parents[2]
# The engine app, and the ops package that compares the engine's models with the database.
SCANNED = [ROOT / "sqlmigrations", ROOT / "dbops" / "drift"]
INTERNAL_MODULES = re.compile(
    r"^django\.(db\.migrations\.(autodetector|executor|graph|loader|questioner|recorder|"
    r"state|writer|exceptions|serializer|utils)|core\.management\.sql)$"
)
# The model _meta API is documented (docs/ref/models/meta.txt) despite its underscore.
DOCUMENTED_UNDERSCORE = {"_meta"}


def _resolve(dotted: str) -> Any:
    """Import the longest module prefix of `dotted`, then follow the attributes after it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i, name in enumerate(parts[cut:], start=cut):
            if hasattr(found, name):
                found = getattr(found, name)
            elif inspect.isclass(found) and re.search(
                rf"\bself\.{re.escape(name)}\s*=", inspect.getsource(found)
            ):
                found = f"instance attribute {name}"  # set in the class's methods
            else:
                raise AttributeError(f"{'.'.join(parts[:i])} has no attribute {name!r}")
        return found
    raise ImportError(dotted)


def test_django_is_the_release_the_internals_were_written_for() -> None:
    used = "\n".join(f"  - {name}: {why}" for name, why in USED.items())
    assert django.VERSION[:2] == SUPPORTED, (
        f"Django {django.get_version()} is installed, but sqlmigrations.django_internals "
        f"was written for Django {'.'.join(map(str, SUPPORTED))}. Check each undocumented "
        f"API it uses against the new release's source, then update SUPPORTED:\n{used}"
    )


@pytest.mark.parametrize("dotted", sorted(USED))
def test_each_internal_still_exists(dotted: str) -> None:
    _resolve(dotted)


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_private_functions_take_the_arguments_they_are_called_with() -> None:
    from django.db.migrations.executor import MigrationExecutor

    assert _params(MigrationExecutor._create_project_state) == [
        "self",
        "with_applied_migrations",
    ]
    assert _params(BaseDatabaseSchemaEditor._effective_default) == ["field"]
    assert _params(BaseDatabaseSchemaEditor._field_indexes_sql) == ["self", "model", "field"]
    assert _params(BaseDatabaseSchemaEditor._alter_column_comment_sql) == [
        "self",
        "model",
        "new_field",
        "new_type",
        "new_db_comment",
    ]


def test_an_unlisted_internal_fails_to_resolve() -> None:
    with pytest.raises(AttributeError, match="_no_such_thing"):
        _resolve("django.db.migrations.executor.MigrationExecutor._no_such_thing")


def _private_django_names() -> set[str]:
    """Return the underscore names Django's classes that the engine handles define."""
    classes = [
        BaseDatabaseSchemaEditor,
        BaseDatabaseWrapper,
        ProjectState,
        StateApps,
        *(
            _resolve(name)
            for name in USED
            if inspect.isclass(_resolve(name)) and name.count(".") >= 3
        ),
    ]
    names = {n for cls in classes for n in dir(cls) if n.startswith("_") and not n.endswith("__")}
    return names - DOCUMENTED_UNDERSCORE


def _engine_modules() -> list[Path]:
    found = [p for root in SCANNED for p in sorted(root.rglob("*.py"))]
    return [p for p in found if p.name != "django_internals.py"]


def test_nothing_else_reaches_into_django() -> None:
    private = _private_django_names()
    found: list[str] = []
    for path in _engine_modules():
        where = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if INTERNAL_MODULES.match(node.module):
                    found.append(f"{where}:{node.lineno}: imports {node.module}")
            elif isinstance(node, ast.Import):
                found += [
                    f"{where}:{node.lineno}: imports {alias.name}"
                    for alias in node.names
                    if INTERNAL_MODULES.match(alias.name)
                ]
            elif isinstance(node, ast.Attribute) and (
                node.attr == "__dict__" or node.attr in private
            ):
                found.append(f"{where}:{node.lineno}: uses .{node.attr}")
    assert found == [], (
        "Undocumented Django API outside sqlmigrations/django_internals.py (move it "
        "there and list it in USED):\n" + "\n".join(found)
    )


def test_the_rendered_apps_cache_is_what_state_apps_returns() -> None:
    state = ProjectState()
    assert django_internals.cached_apps(state) is None
    apps = state.apps
    assert django_internals.cached_apps(state) is apps
    django_internals.forget_cached_apps(state)
    assert django_internals.cached_apps(state) is None
    marker = object()
    django_internals.set_cached_apps(state, marker)
    assert state.apps is marker


def test_the_effective_default_is_the_database_value() -> None:
    assert django_internals.effective_default(models.IntegerField(default=3)) == 3
    assert django_internals.effective_default(models.CharField(null=True)) is None


@pytest.mark.django_db
def test_project_state_holds_the_applied_migrations_models() -> None:
    executor = django_internals.MigrationExecutor(connection)
    state = django_internals.project_state(executor)
    assert ("accounts", "userprofile") in state.models
    assert django_internals.cached_apps(state) is None  # nothing rendered yet


@pytest.mark.django_db
def test_the_recorder_statements_name_djangos_table() -> None:
    insert = django_internals.record_applied_sql(connection, "chores", "V3__x", "2026-01-01")
    delete = django_internals.record_unapplied_sql(connection, "chores", "V3__x")
    assert insert == (
        "INSERT INTO \"django_migrations\" (app, name, applied) VALUES ('chores', 'V3__x', "
        "'2026-01-01')"
    )
    assert delete == "DELETE FROM \"django_migrations\" WHERE app = 'chores' AND name = 'V3__x'"


@pytest.mark.django_db
def test_the_schema_editor_helpers_render_sql() -> None:
    from accounts.models import UserProfile

    field = models.CharField(max_length=10, db_index=True)
    field.set_attributes_from_name("nick")
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        comment = django_internals.alter_column_comment_sql(editor, UserProfile, field, "who")
        indexes = django_internals.field_indexes_sql(editor, UserProfile, field)
    assert comment[0].startswith("COMMENT ON COLUMN") and "nick" in comment[0]
    assert indexes and all(
        str(s).startswith("CREATE INDEX") and '"nick"' in str(s) for s in indexes
    )
    assert django_internals.in_atomic_block(connection)  # the test's own transaction
