"""How one file is applied (lib.executor.apply_file), and what a migrate run reports.

In process, on a throwaway database of the test server: each file in a transaction unless
its script config says not, one history row, the line of a failure, adoption and baseline.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sqlmigrations.applying import MigrateResult
from sqlmigrations.lib.executor import (
    Applied,
    ChecksumMismatch,
    MigrationFailed,
    apply_file,
    locate,
    undo_file,
)
from sqlmigrations.lib.files import MigrationFile, discover
from sqlmigrations.lib.history import TYPE_BASELINE, SchemaHistory
from sqlmigrations.lib.validation import applied_versions
from sqlmigrations.lib.versions import Version
from tests.conftest import PgServer


@contextmanager
def scratch_database(pg_server: PgServer, prefix: str) -> Iterator[str]:
    """Make a new empty database as the owner; drop it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(**pg_server.conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(**pg_server.conninfo(), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def conn(pg_server: PgServer) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a new, empty database."""
    with (
        scratch_database(pg_server, "apply") as name,
        psycopg.connect(**pg_server.conninfo(name), autocommit=True) as connection,
    ):
        yield connection


@pytest.fixture
def history(conn: psycopg.Connection[Any]) -> SchemaHistory:
    history = SchemaHistory(conn.cursor())
    history.ensure_table()
    return history


def files(tmp_path: Path, **texts: str) -> dict[str, MigrationFile]:
    """Write migration files (`V1__a_sql="..."` for V1__a.sql) and return them by script."""
    for key, text in texts.items():
        name = key.replace("_sql_conf", ".sql.conf").replace("_sql", ".sql")
        (tmp_path / name).write_text(text)
    return {mf.script: mf for mf in discover(tmp_path)}


def rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT version, script, checksum, success FROM flyway_schema_history"
        " ORDER BY installed_rank"
    ).fetchall()


def tables(conn: psycopg.Connection[Any]) -> set[str]:
    found = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in found} - {"flyway_schema_history"}


def test_a_transactional_file_runs_and_records_its_row(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    mf = files(tmp_path, V1__create_a_sql="CREATE TABLE a (id int)")["V1__create_a.sql"]

    applied = apply_file(conn.cursor(), history, mf, mf.read_text())

    assert applied.script == "V1__create_a.sql" and applied.version == "1"
    assert applied.outcome == "applied" and applied.seconds >= 0
    assert applied.as_json() == {
        "script": "V1__create_a.sql",
        "version": "1",
        "outcome": "applied",
        "ms": round(applied.seconds * 1000),
    }
    assert rows(conn) == [("1", "V1__create_a.sql", mf.checksum, True)]
    assert tables(conn) == {"a"}


def test_also_runs_in_the_files_query_string(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    mf = files(tmp_path, V1__create_a_sql="CREATE TABLE a (id int);")["V1__create_a.sql"]

    apply_file(conn.cursor(), history, mf, mf.read_text(), also="CREATE TABLE b (id int)")

    assert tables(conn) == {"a", "b"}


def test_a_failing_transactional_file_leaves_nothing_and_names_its_line(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    text = "CREATE TABLE a (id int);\n\nINSERT INTO nope VALUES (1);\n"
    mf = files(tmp_path, V1__broken_sql=text)["V1__broken.sql"]

    with pytest.raises(MigrationFailed) as caught:
        apply_file(conn.cursor(), history, mf, text, also="CREATE TABLE b (id int)")

    assert rows(conn) == [] and tables(conn) == set()
    located = locate(conn, caught.value)  # the server rolled the query string back
    assert str(located).startswith("V1__broken.sql:3: migration failed, line 3: ERROR:")
    assert 'relation "nope" does not exist' in str(located)
    assert "rolled back entirely and nothing was recorded" in str(located)
    assert tables(conn) == set()  # the replay was rolled back too


def test_a_non_transactional_file_goes_statement_by_statement(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    conn.execute("CREATE TABLE a (id int)")
    found = files(
        tmp_path,
        V1__index_a_sql="CREATE INDEX CONCURRENTLY a_id ON a (id);\n",
        V1__index_a_sql_conf="executeInTransaction=false\n",
    )
    mf = found["V1__index_a.sql"]

    applied = apply_file(conn.cursor(), history, mf, mf.read_text())

    assert applied.outcome == "applied"
    assert rows(conn) == [("1", "V1__index_a.sql", mf.checksum, True)]
    valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id'::regclass")
    assert valid.fetchall() == [(True,)]


def test_a_failing_non_transactional_file_keeps_what_ran_and_records_a_failed_row(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    text = "CREATE TABLE a (id int);\nINSERT INTO nope VALUES (1);\n"
    found = files(tmp_path, V1__half_sql=text, V1__half_sql_conf="executeInTransaction=false\n")
    mf = found["V1__half.sql"]

    with pytest.raises(MigrationFailed) as caught:
        apply_file(conn.cursor(), history, mf, text)

    assert caught.value.line == 2 and "line 2" in str(caught.value)
    assert "a failed row was recorded" in str(caught.value)
    assert tables(conn) == {"a"}
    assert rows(conn) == [("1", "V1__half.sql", mf.checksum, False)]


def test_a_file_the_history_holds_is_adopted_without_running(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    mf = files(tmp_path, V1__create_a_sql="CREATE TABLE a (id int)")["V1__create_a.sql"]
    history.insert(
        version="1",
        description="create a",
        type="SQL",
        script=mf.script,
        checksum=mf.checksum,
        execution_time=5,
        success=True,
    )
    existing = applied_versions(history.rows())[Version("1")]

    applied = apply_file(conn.cursor(), history, mf, mf.read_text(), existing=existing)

    assert applied.outcome == "adopted"
    assert tables(conn) == set() and len(rows(conn)) == 1


def test_an_edited_file_the_history_holds_is_refused(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    mf = files(tmp_path, V1__create_a_sql="CREATE TABLE a (id int)")["V1__create_a.sql"]
    history.insert(
        version="1",
        description="create a",
        type="SQL",
        script=mf.script,
        checksum=mf.checksum + 1,
        execution_time=5,
        success=True,
    )
    existing = applied_versions(history.rows())[Version("1")]

    with pytest.raises(ChecksumMismatch, match="restore the applied file"):
        apply_file(conn.cursor(), history, mf, mf.read_text(), existing=existing)
    assert tables(conn) == set()


def test_a_file_at_or_below_the_baseline_only_records(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    found = files(
        tmp_path, V1__create_a_sql="CREATE TABLE a (id int)", V2__create_b_sql="CREATE TABLE b ()"
    )
    history.insert(
        version="1",
        description="<< Flyway Baseline >>",
        type=TYPE_BASELINE,
        script="<< Flyway Baseline >>",
        checksum=None,
        execution_time=0,
        success=True,
    )
    floor = Version("1")
    cursor = conn.cursor()

    first = apply_file(cursor, history, found["V1__create_a.sql"], "x", baseline=floor)
    second = apply_file(
        cursor, history, found["V2__create_b.sql"], "CREATE TABLE b ()", baseline=floor
    )

    assert (first.outcome, second.outcome) == ("baselined", "applied")
    assert tables(conn) == {"b"}


def test_a_repeatable_is_recorded_with_its_effective_checksum(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    mf = files(tmp_path, R__view_sql="CREATE VIEW v AS SELECT 1 AS one")["R__view.sql"]

    applied = apply_file(conn.cursor(), history, mf, mf.read_text(), checksum=42)

    assert (applied.version, applied.outcome) == (None, "applied")
    assert rows(conn) == [(None, "R__view.sql", 42, True)]


def test_an_undo_file_runs_and_removes_its_row(
    tmp_path: Path, conn: psycopg.Connection[Any], history: SchemaHistory
) -> None:
    found = files(
        tmp_path, V1__create_a_sql="CREATE TABLE a (id int)", U1__create_a_sql="DROP TABLE a"
    )
    v_file, u_file = found["V1__create_a.sql"], found["U1__create_a.sql"]
    apply_file(conn.cursor(), history, v_file, v_file.read_text())

    undone = undo_file(conn.cursor(), history, v_file, u_file, u_file.read_text())

    assert (undone.script, undone.outcome) == ("V1__create_a.sql", "undone")
    assert rows(conn) == [] and tables(conn) == set()


class Wrapper:
    """A migration as the progress callback sees it."""

    def __init__(self, name: str, scripts: list[str] | None = None) -> None:
        self.app_label, self.name = "chores", name
        self.sql_scripts = scripts or []


def applied(script: str, version: str | None = "1") -> Applied:
    return Applied(script, version, "applied", 0.002)


def test_a_wrappers_files_count_once_django_reports_it_applied() -> None:
    result = MigrateResult()
    assert result.nothing_to_do

    result.migration_started()
    result.file_applied(applied("V1__a.sql"))
    assert result.files == []  # its transaction may still roll back
    result.migration_applied(Wrapper("V1__a", ["V1__a.sql"]))
    result.migration_started()
    result.file_applied(applied("V2__b.sql", "2"))  # then V2's wrapper fails
    result.migration_started()
    result.migration_applied(Wrapper("0001_initial"))
    result.repeatables.append(applied("R__v.sql", None))

    assert result.scripts == ["V1__a.sql", "R__v.sql"]
    assert result.django_migrations == ["chores.0001_initial"]
    assert not result.nothing_to_do
    assert result.as_json() == {
        "files": [{"script": "V1__a.sql", "version": "1", "outcome": "applied", "ms": 2}],
        "repeatables": [{"script": "R__v.sql", "version": None, "outcome": "applied", "ms": 2}],
        "django_migrations": ["chores.0001_initial"],
        "nothing_to_do": False,
    }


@pytest.fixture
def scratch_alias(
    pg_server: PgServer, django_db_setup: None, django_db_blocker: Any
) -> Iterator[str]:
    """A database alias, as the owner, on a new empty database; removed afterwards."""
    from django.db import connections

    with scratch_database(pg_server, "migrate") as name:
        alias = f"scratch_{name}"
        config = connections["default"].settings_dict
        connections.settings[alias] = {
            **config,
            "NAME": name,
            "USER": pg_server.user,
            "PASSWORD": pg_server.password,
            "OPTIONS": {k: v for k, v in config["OPTIONS"].items() if k != "pool"},
        }
        try:
            with django_db_blocker.unblock():
                yield alias
                connections[alias].close()
        finally:
            del connections[alias]
            del connections.settings[alias]


def run_migrate(alias: str) -> tuple[MigrateResult, str]:
    """Run the migrate command's body in process; return its result and its output."""
    import io

    from sqlmigrations.management.commands.migrate import Command

    out = io.StringIO()
    command = Command(stdout=out, stderr=out)
    parser = command.create_parser("manage.py", "migrate")
    command.handle(**vars(parser.parse_args(["--database", alias, "--no-input"])))
    return command.result, out.getvalue()


def test_migrate_returns_what_it_applied_then_that_nothing_was_to_do(
    scratch_alias: str,
) -> None:
    from sqlmigrations import engine

    first, out = run_migrate(scratch_alias)

    versions = [mf for mf in engine.load_files() if mf.kind == "V"]
    assert [a.script for a in first.files] == [mf.script for mf in versions]
    assert [a.version for a in first.files] == [str(mf.name.version) for mf in versions]
    assert {a.outcome for a in first.files} == {"applied"}
    assert all(a.seconds > 0 for a in first.files)
    assert "contenttypes.0001_initial" in first.django_migrations
    assert not any(name.startswith("chores.") for name in first.django_migrations)
    assert not first.nothing_to_do
    assert "Applying chores.V3__create_households_table... OK" in out

    second, out = run_migrate(scratch_alias)

    assert second.nothing_to_do and second.as_json()["nothing_to_do"]
    assert "No migrations to apply." in out
