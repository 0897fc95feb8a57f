"""Rollback at deploy (issue 18): `{"action": "rollback"}` and `rollback_on_failure`.

Each invocation runs the real handler in a process of its own with moto's Secrets Manager
and the real test PostgreSQL (tests/sqlmigrations/test_deploy.py); the project's files
and wrappers are a throwaway SQL project (tests/sqlproject.py), all in the app "dbops".
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

from tests.blocking import wait_until_blocked, wait_until_gone
from tests.realproject import RealProject, real_project  # noqa: F401 - the fixture
from tests.sqlmigrations.test_deploy import _child, handler_env, owner_secret, run_handlers
from tests.sqlproject import SqlProject

MIGRATE = {"action": "migrate"}
SAFE_MIGRATE = {"action": "migrate", "rollback_on_failure": True}
IRREVERSIBLE = (
    "DO $$ BEGIN RAISE EXCEPTION 'V3__create_c.sql has no generated undo: edit "
    "U3__create_c.sql (see its header)'; END $$;\n"
)


def invoke(project: SqlProject, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the handler once per event, in order, in one fresh process."""
    project.sync_wrappers()
    [summaries] = run_handlers(handler_env(project), owner_secret(project), events=list(events))
    return summaries


def tables(project: SqlProject) -> set[str]:
    rows = project.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows} & set("abcdef")


def flyway_versions(project: SqlProject) -> list[str]:
    return [r[1] for r in project.history() if r[3] == "SQL"]


def django_rows(project: SqlProject) -> list[str]:
    rows = project.query("SELECT name FROM django_migrations WHERE app = 'dbops' ORDER BY id")
    return [r[0] for r in rows]


def state(project: SqlProject) -> tuple[Any, ...]:
    return (project.history(), django_rows(project), tables(project))


def add(project: SqlProject, n: int, *, undo: str | None = "drop", sql: str = "") -> None:
    table = "abcdef"[n - 1]
    project.write(f"V{n}__create_{table}.sql", sql or f"CREATE TABLE {table} (id int);\n")
    if undo is not None:
        text = f"DROP TABLE {table};\n" if undo == "drop" else undo
        project.write(f"U{n}__create_{table}.sql", text)


def test_rollback_undoes_the_files_above_the_version_newest_first(sqlproject: SqlProject) -> None:
    for n in range(1, 5):
        add(sqlproject, n)
    to_2 = {"action": "rollback", "to_version": 2, "release_floor": "2"}
    migrated, planned, rolled, again = invoke(
        sqlproject, MIGRATE, {**to_2, "dry_run": True}, to_2, to_2
    )

    assert migrated["status"] == "ok", migrated
    assert migrated["started_from"] is None and migrated["schema_version"] == "4"
    assert planned["status"] == "ok", planned
    assert planned["would_undo"] == ["V4__create_d.sql", "V3__create_c.sql"]
    assert planned["undone"] == []
    assert rolled["status"] == "rolled_back", rolled
    assert rolled["undone"] == ["V4__create_d.sql", "V3__create_c.sql"]
    assert rolled["schema_version"] == "2"
    assert rolled["errors"] == [] and rolled["left_applied"] == []
    assert again["status"] == "rolled_back" and again["undone"] == [], again
    assert flyway_versions(sqlproject) == ["1", "2"]
    assert django_rows(sqlproject) == ["V1__create_a", "V2__create_b"]
    assert tables(sqlproject) == {"a", "b"}


def test_rollback_is_refused_naming_every_file_and_changes_nothing(
    sqlproject: SqlProject,
) -> None:
    add(sqlproject, 1)
    add(sqlproject, 2, undo=None)  # no undo file
    add(sqlproject, 3, undo=IRREVERSIBLE)  # marked irreversible by makesqlmigration
    add(sqlproject, 4)
    [migrated] = invoke(sqlproject, MIGRATE)
    assert migrated["status"] == "ok", migrated
    before = state(sqlproject)

    through, below_floor, unknown, below_irreversible = invoke(
        sqlproject,
        {"action": "rollback", "to_version": "1", "release_floor": "1"},
        {"action": "rollback", "to_version": "3", "release_floor": "3.5"},
        {"action": "rollback", "to_version": 7, "release_floor": 1},
        {"action": "rollback", "to_version": "2", "release_floor": "2"},
    )

    for summary in (through, below_floor, unknown, below_irreversible):
        assert summary["status"] == "refused", summary
        assert summary["undone"] == []
        [error] = summary["errors"]
        assert error.startswith("rollback refused, nothing was undone: "), error
    [error] = through["errors"]
    assert "V2__create_b.sql has no undo file" in error and "U2__create_b.sql" in error
    assert "U3__create_c.sql is marked irreversible" in error
    assert "V4__create_d" not in error  # it has a good undo file
    assert "below release_floor 3.5" in below_floor["errors"][0]
    assert "to_version 7 is not an applied version (applied: 1, 2, 3, 4)" in unknown["errors"][0]
    assert "U3__create_c.sql is marked irreversible" in below_irreversible["errors"][0]
    assert "V2__create_b" not in below_irreversible["errors"][0]
    assert state(sqlproject) == before


def test_a_failed_run_with_rollback_on_failure_ends_where_it_started(
    sqlproject: SqlProject,
) -> None:
    add(sqlproject, 1)
    add(sqlproject, 2)
    [first] = invoke(sqlproject, MIGRATE)
    assert first["status"] == "ok", first
    add(sqlproject, 3)
    add(sqlproject, 4)
    add(sqlproject, 5, sql="CREATE TABLE e (id int);\nSELEC 1;\n")

    [summary] = invoke(sqlproject, SAFE_MIGRATE)

    assert summary["status"] == "failed_rolled_back", summary
    assert summary["applied"] == ["V3__create_c.sql", "V4__create_d.sql"]
    assert summary["undone"] == ["V4__create_d.sql", "V3__create_c.sql"]
    assert summary["left_applied"] == []
    assert summary["started_from"] == "2" and summary["schema_version"] == "2"
    [forward] = summary["errors"]
    assert "V5__create_e.sql" in forward and "line 2" in forward
    assert flyway_versions(sqlproject) == ["1", "2"]
    assert django_rows(sqlproject) == ["V1__create_a", "V2__create_b"]
    assert tables(sqlproject) == {"a", "b"}


def test_a_failing_undo_file_stops_the_rollback_and_both_errors_are_reported(
    sqlproject: SqlProject,
) -> None:
    add(sqlproject, 1)
    [first] = invoke(sqlproject, MIGRATE)
    assert first["status"] == "ok", first
    add(sqlproject, 2, undo="DROP TABLE b;\nDROP TABLE no_such_table;\n")
    add(sqlproject, 3)
    add(sqlproject, 4, sql="SELEC 1;\n")

    [summary] = invoke(sqlproject, SAFE_MIGRATE)

    assert summary["status"] == "failed_rollback_incomplete", summary
    assert summary["applied"] == ["V2__create_b.sql", "V3__create_c.sql"]
    assert summary["undone"] == ["V3__create_c.sql"]
    assert summary["left_applied"] == ["V2__create_b.sql"]
    forward, backward = summary["errors"]
    assert "V4__create_d.sql" in forward
    assert backward.startswith("undoing V2__create_b.sql: ")
    assert "U2__create_b.sql:2" in backward and "no_such_table" in backward
    assert summary["started_from"] == "1" and summary["schema_version"] == "2"
    # U2 was rolled back whole: its migration stays applied in both histories.
    assert flyway_versions(sqlproject) == ["1", "2"]
    assert django_rows(sqlproject) == ["V1__create_a", "V2__create_b"]
    assert tables(sqlproject) == {"a", "b"}

    # docs/deploy.md, "When a rollback stops": fix the undo file, roll back to started_from.
    add(sqlproject, 2)
    back = {"action": "rollback", "to_version": "1", "release_floor": summary["started_from"]}
    [rolled] = invoke(sqlproject, back)
    assert rolled["status"] == "rolled_back", rolled
    assert rolled["undone"] == ["V2__create_b.sql"]
    assert flyway_versions(sqlproject) == ["1"]
    assert django_rows(sqlproject) == ["V1__create_a"]
    assert tables(sqlproject) == {"a"}


def test_rollback_on_failure_is_refused_before_anything_runs_when_a_file_cannot_be_undone(
    sqlproject: SqlProject,
) -> None:
    add(sqlproject, 1, undo=None)  # applied already: not this run's to undo
    [first] = invoke(sqlproject, MIGRATE)
    assert first["status"] == "ok", first
    add(sqlproject, 2, undo=None)
    add(sqlproject, 3, undo=IRREVERSIBLE)
    add(sqlproject, 4)
    before = state(sqlproject)

    [summary] = invoke(sqlproject, SAFE_MIGRATE)

    assert summary["status"] == "refused", summary
    assert summary["applied"] == []
    [error] = summary["errors"]
    assert error.startswith("rollback_on_failure refused, nothing was applied: ")
    assert "V2__create_b.sql has no undo file" in error
    assert "U3__create_c.sql is marked irreversible" in error
    assert "V1__create_a" not in error and "V4__create_d" not in error
    assert summary["pending"] == 3
    assert summary["schema_version"] == "1"
    assert state(sqlproject) == before


def test_a_failing_undo_file_in_a_rollback_stops_there(sqlproject: SqlProject) -> None:
    add(sqlproject, 1)
    add(sqlproject, 2)
    add(sqlproject, 3, undo="DROP TABLE c;\nSELECT 1/0;\n")
    add(sqlproject, 4)

    migrated, rolled = invoke(
        sqlproject, MIGRATE, {"action": "rollback", "to_version": "1", "release_floor": "1"}
    )

    assert migrated["status"] == "ok", migrated
    assert rolled["status"] == "failed", rolled
    assert rolled["undone"] == ["V4__create_d.sql"]
    assert rolled["left_applied"] == ["V3__create_c.sql", "V2__create_b.sql"]
    [error] = rolled["errors"]
    assert error.startswith("undoing V3__create_c.sql: ") and "division by zero" in error
    assert rolled["schema_version"] == "3"
    assert flyway_versions(sqlproject) == ["1", "2", "3"]
    assert django_rows(sqlproject) == ["V1__create_a", "V2__create_b", "V3__create_c"]
    assert tables(sqlproject) == {"a", "b", "c"}


def test_a_failed_file_outside_a_transaction_is_not_buried_under_a_rollback(
    sqlproject: SqlProject,
) -> None:
    # What ran of V3 stays, with a failed history row: undoing V2 under it would leave
    # a database no file describes, so nothing is undone and the summary says what to do.
    add(sqlproject, 1)
    [first] = invoke(sqlproject, MIGRATE)
    assert first["status"] == "ok", first
    add(sqlproject, 2)
    add(sqlproject, 3, sql="CREATE TABLE c (id int);\nSELEC 1;\n")
    sqlproject.write("V3__create_c.sql.conf", "executeInTransaction=false\n")

    [summary] = invoke(sqlproject, SAFE_MIGRATE)

    assert summary["status"] == "failed_rollback_incomplete", summary
    assert summary["undone"] == [] and summary["left_applied"] == ["V2__create_b.sql"]
    forward, refused = summary["errors"]
    assert "V3__create_c.sql" in forward and "outside a transaction" in forward
    assert refused.startswith("not rolled back: V3__create_c.sql ran outside a transaction")
    assert "sqlmigrations repair" in refused
    assert [(r[1], r[8]) for r in sqlproject.history()] == [
        ("1", True),
        ("2", True),
        ("3", False),
    ]
    assert tables(sqlproject) == {"a", "b", "c"}


def test_a_rollback_killed_midway_leaves_history_and_schema_agreeing_then_goes_on(
    sqlproject: SqlProject,
) -> None:
    for n in range(1, 5):
        add(sqlproject, n)
    [migrated] = invoke(sqlproject, MIGRATE)
    assert migrated["status"] == "ok", migrated
    to_1 = {"action": "rollback", "to_version": "1", "release_floor": "1"}
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    env, secret = handler_env(sqlproject), owner_secret(sqlproject)
    with sqlproject.connect() as blocker:
        blocker.autocommit = False
        blocker.execute("LOCK TABLE b IN ACCESS SHARE MODE")  # U2's DROP TABLE b waits
        proc = ctx.Process(target=_child, args=(queue, env, secret, [to_1], None))
        proc.start()
        try:
            backend = wait_until_blocked(sqlproject, blocker.info.backend_pid)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.join(timeout=60)
        assert proc.exitcode == -signal.SIGKILL
        blocker.rollback()  # the orphaned backend goes on, then finds its client gone
        wait_until_gone(sqlproject, backend)

    # U4 and U3 committed with their rows; U2 either committed whole or not at all.
    versions = flyway_versions(sqlproject)
    assert versions in (["1", "2"], ["1"])
    assert django_rows(sqlproject) == [f"V{v}__create_{'abcd'[int(v) - 1]}" for v in versions]
    assert tables(sqlproject) == {"abcd"[int(v) - 1] for v in versions}

    [again] = invoke(sqlproject, to_1)
    assert again["status"] == "rolled_back", again
    assert again["undone"] == (["V2__create_b.sql"] if versions == ["1", "2"] else [])
    assert flyway_versions(sqlproject) == ["1"]
    assert django_rows(sqlproject) == ["V1__create_a"]
    assert tables(sqlproject) == {"a"}


def test_the_projects_own_files_roll_back_across_apps_and_forward_again(
    real_project: RealProject,  # noqa: F811
) -> None:
    # The wrappers are spread over accounts, chores and dbops, each depending on the one
    # before: each undo goes back through its own app only.
    env, secret = handler_env(real_project), owner_secret(real_project)  # type: ignore[arg-type]
    events = [
        MIGRATE,
        {"action": "rollback", "to_version": "9", "release_floor": "9", "dry_run": True},
        {"action": "rollback", "to_version": "1", "release_floor": "1"},
    ]
    [[migrated, planned, rolled]] = run_handlers(env, secret, events=events)

    assert migrated["status"] == "ok", migrated
    newest = migrated["schema_version"]
    assert [s.split("__")[0] for s in planned["would_undo"]] == [
        f"V{n}" for n in range(int(newest), 9, -1)
    ]
    assert rolled["status"] == "rolled_back", rolled
    assert [s.split("__")[0] for s in rolled["undone"]] == [
        f"V{n}" for n in range(int(newest), 1, -1)
    ]
    assert rolled["schema_version"] == "1"
    wrappers = real_project.query(
        "SELECT app, name FROM django_migrations WHERE name LIKE 'V%%' ORDER BY id"
    )
    assert wrappers == [("dbops", "V1__create_migration_test_table")]
    assert real_project.query("SELECT to_regclass('households'), to_regclass('users')") == [
        (None, None)
    ]
    [[again]] = run_handlers(env, secret, events=[MIGRATE])
    assert again["status"] == "ok", again
    assert again["schema_version"] == newest
    assert again["started_from"] == "1"
