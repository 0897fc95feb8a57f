"""A failed CREATE INDEX CONCURRENTLY: info names the invalid index, repair and migrate
refuse to go on past it and say which index to drop (real PostgreSQL, real manage.py)."""

from __future__ import annotations

import json

from tests.sqlproject import SqlProject

USERS = "-- V1: users. Rollback: DROP TABLE users.\nCREATE TABLE users (nickname text);\n"
INDEX = (
    "-- V2: one nickname each. Rollback: DROP INDEX users_nickname.\n"
    "CREATE UNIQUE INDEX CONCURRENTLY {guard}users_nickname ON users (nickname);\n"
)
DROP = "DROP INDEX CONCURRENTLY IF EXISTS public.users_nickname;"


def index_state(project: SqlProject) -> list[tuple[bool, bool]]:
    return project.query(
        "SELECT i.indisvalid, i.indisready FROM pg_index i"
        " WHERE i.indexrelid = to_regclass('users_nickname')"
    )


def failed_build(project: SqlProject) -> None:
    """Apply V1, add a duplicate, and let V2's unique index fail halfway."""
    project.write("V1__create_users.sql", USERS)
    assert project.manage("migrate", "--no-input").returncode == 0
    project.query("INSERT INTO users VALUES ('ann'), ('ann')")
    project.write("V2__index_nickname.sql", INDEX.format(guard=""))
    project.write("V2__index_nickname.sql.conf", "executeInTransaction=false\n")
    result = project.manage("migrate", "--no-input")
    assert result.returncode == 1 and "a failed row was recorded" in result.stderr
    assert index_state(project) == [(False, False)]


def test_info_names_the_invalid_index_and_the_file_that_made_it(sqlproject: SqlProject) -> None:
    failed_build(sqlproject)

    table = sqlproject.manage("sqlmigrations", "info")
    as_json = json.loads(sqlproject.manage("sqlmigrations", "info", "--json").stdout)

    assert table.returncode == 0, table.stderr
    assert (
        "Invalid index public.users_nickname on users (indisvalid = false, indisready = false),"
        " created by V2__index_nickname.sql" in table.stdout
    )
    assert DROP in table.stdout
    (index,) = as_json["invalidIndexes"]
    assert (index["name"], index["script"], index["valid"]) == (
        "users_nickname",
        "V2__index_nickname.sql",
        False,
    )
    assert index["drop"] == DROP


def test_repair_and_its_dry_run_refuse_to_remove_the_row_until_the_index_is_dropped(
    sqlproject: SqlProject,
) -> None:
    failed_build(sqlproject)
    before = sqlproject.history()

    dry = sqlproject.manage("sqlmigrations", "repair", "--dry-run")
    real = sqlproject.manage("sqlmigrations", "repair")

    for result in (dry, real):
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "nothing was repaired" in result.stderr
        assert "left the invalid index public.users_nickname" in result.stderr
        assert DROP in result.stderr
    assert dry.stderr == real.stderr
    assert sqlproject.history() == before

    # Following the advice: drop the index, fix the data, repair, migrate.
    sqlproject.query(DROP)
    sqlproject.query("DELETE FROM users WHERE ctid <> (SELECT min(ctid) FROM users)")
    repaired = sqlproject.manage("sqlmigrations", "repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "removed the failed row" in repaired.stdout
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    assert index_state(sqlproject) == [(True, True)]


def test_migrate_refuses_a_file_whose_index_name_an_invalid_index_holds(
    sqlproject: SqlProject,
) -> None:
    failed_build(sqlproject)
    # The failed row removed without looking (as `flyway repair` does), the data and the
    # file fixed with IF NOT EXISTS: the rerun would skip the invalid index and say OK.
    sqlproject.query("DELETE FROM flyway_schema_history WHERE NOT success")
    sqlproject.query("DELETE FROM users WHERE ctid <> (SELECT min(ctid) FROM users)")
    sqlproject.write("V2__index_nickname.sql", INDEX.format(guard="IF NOT EXISTS "))

    result = sqlproject.manage("migrate", "--no-input")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "V2__index_nickname.sql: creates an index that is already in the database" in (
        result.stderr
    )
    assert DROP in result.stderr and "nothing of this file ran" in result.stderr
    assert [r[1] for r in sqlproject.history()] == ["1"]

    sqlproject.query(DROP)
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    assert index_state(sqlproject) == [(True, True)]
