"""`schemadrift`: models against the migrated database, in a throwaway project."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dbops.drift.compare import same_default
from tests.appproject import (  # noqa: F401
    AppProject,
    app_project,
    create_app_project,
    drop_app_project,
)

MODELS = """
class Household(models.Model):
    name = models.CharField(max_length=100, db_comment="Shown to members.")

    class Meta:
        db_table = "households"
        db_table_comment = "People sharing chores."


class Task(models.Model):
    household = models.ForeignKey(Household, on_delete=models.CASCADE, db_comment="Owner.")
    title = models.CharField(max_length=200, db_comment="What to do.")
    points = models.PositiveSmallIntegerField(db_default=1, db_comment="Effort.")
    done = models.BooleanField(default=False, db_comment="Whether it is done.")
    tags = models.ManyToManyField("Tag")

    class Meta:
        db_table = "tasks"
        db_table_comment = "Chores."
        indexes = [models.Index(fields=["household", "done"], name="tasks_open_idx")]
        constraints = [
            models.UniqueConstraint(fields=["household", "title"], name="tasks_title_uniq"),
            models.CheckConstraint(condition=models.Q(points__lte=100), name="tasks_points_max"),
        ]


class Tag(models.Model):
    label = models.SlugField(unique=True, db_comment="Short name.")

    class Meta:
        db_table = "tags"
        db_table_comment = "Labels for tasks."
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, pg_server: Any) -> Iterator[AppProject]:
    """One project with MODELS generated and migrated; tests get copies of its database."""
    project = create_app_project(tmp_path_factory.mktemp("drift"), pg_server)
    assert project.manage("migrate", "--no-input").returncode == 0
    project.models(MODELS)
    generated = project.manage("makesqlmigration", "shop", "create_tasks")
    assert generated.returncode == 0, generated.stderr
    migrated = project.manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    yield project
    drop_app_project(project)


@pytest.fixture
def migrated(template: AppProject) -> Iterator[AppProject]:
    project = template.clone_database()
    yield project
    drop_app_project(project)


def drift_json(project: AppProject) -> tuple[int, dict]:
    result = project.manage("schemadrift", "--json")
    return result.returncode, json.loads(result.stdout)


def test_it_finds_no_drift_after_migrate(migrated: AppProject) -> None:
    result = migrated.manage("schemadrift")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No drift: the models of base, shop match the database." in result.stdout
    code, payload = drift_json(migrated)
    assert code == 0
    assert payload == {
        "apps": ["base", "shop"],
        "drift": False,
        "unapplied_migrations": [],
        "warnings": [],
        "accepted": [],
        "differences": [],
    }


def test_database_only_extras_are_not_drift(migrated: AppProject) -> None:
    migrated.execute(
        """
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN NEW.title := trim(NEW.title); RETURN NEW; END $$;
        CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION touch();
        COMMENT ON COLUMN tasks.id IS 'Row id.';
        COMMENT ON TABLE tasks_tags IS 'Which tags a task has.';
        CREATE INDEX tasks_open_partial ON tasks (household_id) WHERE NOT done;
        ALTER TABLE tasks ADD CONSTRAINT tasks_title_not_blank CHECK (title <> '');
        ALTER TABLE tasks ALTER COLUMN done SET DEFAULT false;
        CREATE TABLE audit_log (id bigint PRIMARY KEY);
        """
    )

    result = migrated.manage("schemadrift")

    assert result.returncode == 0, result.stdout + result.stderr


def test_objects_django_names_are_matched_by_definition(migrated: AppProject) -> None:
    # A hand-written migration may spell `unique=True` as a unique index of its own name.
    (name,) = migrated.query(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'tags'::regclass AND contype = 'u'"
    )[0]
    migrated.execute(
        f'ALTER TABLE tags DROP CONSTRAINT "{name}"; '
        "CREATE UNIQUE INDEX tags_label_key ON tags (label);"
    )

    assert migrated.manage("schemadrift").returncode == 0


def test_it_reports_every_hand_made_change(migrated: AppProject) -> None:
    migrated.execute(
        """
        ALTER TABLE tasks ALTER COLUMN title TYPE varchar(100);
        ALTER TABLE tasks ALTER COLUMN done DROP NOT NULL;
        ALTER TABLE tasks ALTER COLUMN points SET DEFAULT 2;
        ALTER TABLE tasks ADD COLUMN legacy_flag integer;
        ALTER TABLE households DROP COLUMN name;
        DROP INDEX tasks_open_idx;
        ALTER TABLE tasks DROP CONSTRAINT tasks_points_max;
        ALTER INDEX tasks_title_uniq RENAME TO tasks_title_unique;
        """
    )
    (fk,) = migrated.query(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'tasks'::regclass AND contype = 'f'"
    )[0]
    migrated.execute(f'ALTER TABLE tasks DROP CONSTRAINT "{fk}"')

    result = migrated.manage("schemadrift")

    assert result.returncode == 1
    out = result.stdout
    assert (
        "tasks.title: type (model: character varying(200); database: character varying(100))"
    ) in out
    assert "tasks.done: nullability (model: NOT NULL; database: NULL)" in out
    assert "tasks.points: default (model: 1; database: 2)" in out
    assert "tasks.legacy_flag: extra column (model: -; database: integer NULL)" in out
    assert "households.name: missing column (model: character varying(100) NOT NULL" in out
    assert "tasks.index tasks_open_idx: missing index (model: tasks_open_idx USING btree " in out
    assert "tasks.check tasks_points_max: missing check constraint (model: CHECK " in out
    assert (
        "tasks.unique constraint tasks_title_uniq: unique constraint name "
        "(model: tasks_title_uniq; database: tasks_title_unique)"
    ) in out
    assert "tasks.household_id: missing foreign key (model: (household_id) REFERENCES" in out
    assert "schema drift: 9 difference(s)" in result.stderr

    code, payload = drift_json(migrated)
    assert code == 1
    assert payload["drift"] is True
    assert {
        "table": "tasks",
        "object": "title",
        "aspect": "type",
        "model": "character varying(200)",
        "database": "character varying(100)",
    } in payload["differences"]
    assert len(payload["differences"]) == 9


def test_known_differences_can_be_accepted_in_settings(migrated: AppProject) -> None:
    migrated.execute("ALTER TABLE tasks ADD COLUMN legacy_flag integer")
    settings_file = migrated.root / f"{migrated.module}.py"
    original = settings_file.read_text()
    settings_file.write_text(original + 'SCHEMADRIFT_IGNORE = ["tasks.legacy_*: extra column"]\n')
    try:
        result = migrated.manage("schemadrift")
        code, payload = drift_json(migrated)
    finally:
        settings_file.write_text(original)  # the project folder is shared by the module's tests

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(1 accepted by SCHEMADRIFT_IGNORE: tasks.legacy_flag: extra column)" in result.stdout
    assert code == 0
    assert payload["accepted"][0]["object"] == "legacy_flag"


def test_it_reports_a_missing_table_and_unapplied_migrations(app_project: AppProject) -> None:  # noqa: F811
    assert app_project.manage("migrate", "--no-input").returncode == 0
    app_project.models(MODELS)
    assert app_project.manage("makesqlmigration", "shop", "create_tasks").returncode == 0
    app_project.execute("DROP TABLE probe")

    result = app_project.manage("schemadrift")

    assert result.returncode == 1
    assert ("1 migration(s) not applied yet (shop.V2__create_tasks)") in result.stderr
    assert "households: missing table (model: table; database: -)" in result.stdout
    assert "tasks: missing table" in result.stdout
    assert "probe: missing table" in result.stdout


def test_it_refuses_an_unknown_app(migrated: AppProject) -> None:
    result = migrated.manage("schemadrift", "nosuchapp")

    assert result.returncode == 1
    assert "nosuchapp" in result.stderr


@pytest.mark.parametrize(
    ("model", "database", "same"),
    [
        ("'{}'::character varying(10)[]", "'{}'::character varying[]", True),
        ("'x'::character varying(20)", "'x'::character varying", True),
        ("0.00::numeric(8,2)", "0.00::numeric", True),
        ("statement_timestamp()", "now()", True),
        ("CURRENT_TIMESTAMP", "now()", True),
        ("1", "2", False),
        ("'a'::character varying", "'b'::character varying", False),
        ("1", None, False),
    ],
)
def test_defaults_are_compared_by_meaning(model: str, database: str | None, same: bool) -> None:
    assert same_default(model, database) is same


def test_a_declaration_django_cannot_create_is_a_warning(migrated: AppProject) -> None:
    broken = 'models.Index(models.Func(models.F("title"), function="no_such_fn"), name="tasks_x")'
    migrated.models(MODELS.replace('name="tasks_open_idx")]', f'name="tasks_open_idx"), {broken}]'))
    try:
        result = migrated.manage("schemadrift")
    finally:
        migrated.models(MODELS)  # the project folder is shared by the module's tests

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning: tasks: tasks_x: Django's schema editor cannot create" in result.stderr
    assert "function no_such_fn(character varying) does not exist" in result.stderr
