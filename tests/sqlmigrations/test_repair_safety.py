"""`sqlmigrations repair`: its dry run says what it then does, and a kill -9 midway loses
nothing (real PostgreSQL, real manage.py; tests/blocking.py for the kill)."""

from __future__ import annotations

import json
from typing import Any

from tests.blocking import kill_while_blocked
from tests.sqlproject import SqlProject

A = "-- V1. Rollback: DROP TABLE a.\nCREATE TABLE a (id int);\n"
B = "-- V2. Rollback: DROP TABLE b.\nCREATE TABLE b (id int);\n"
C = "-- V3. Rollback: DROP TABLE c.\nCREATE TABLE c (id int);\n"
BROKEN = "CREATE INDEX CONCURRENTLY d_id ON no_such_table (id);\n"


def repair(project: SqlProject, *args: str) -> tuple[int, Any]:
    result = project.manage("sqlmigrations", "repair", "--json", *args)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def something_to_repair(project: SqlProject) -> None:
    """A history with one change of each kind: a failed row, a missing file, an edited
    file and a file back after being marked deleted."""
    project.convention = False  # the deleted V2 leaves a gap
    for name, sql in (("V1__create_a.sql", A), ("V2__create_b.sql", B), ("V3__create_c.sql", C)):
        project.write(name, sql)
    assert project.manage("migrate", "--no-input").returncode == 0
    project.write("V4__index_d.sql", BROKEN)
    project.write("V4__index_d.sql.conf", "executeInTransaction=false\n")
    assert project.manage("migrate", "--no-input").returncode == 1  # a failed row
    # V3 was marked deleted while its file was away (the row repair writes), and is back.
    project.query(
        "INSERT INTO flyway_schema_history SELECT 5, version, description, 'DELETE', script,"
        " checksum, installed_by, now(), 0, true FROM flyway_schema_history WHERE version = '3'"
    )
    project.remove("V4__index_d.sql")
    project.remove("V4__index_d.sql.conf")
    project.remove("V2__create_b.sql")  # missing
    project.write("V1__create_a.sql", A.replace("V1.", "V1, the a table."))  # edited


def test_the_dry_run_lists_exactly_the_changes_repair_then_makes(sqlproject: SqlProject) -> None:
    something_to_repair(sqlproject)
    before = sqlproject.history()

    dry_code, dry = repair(sqlproject, "--dry-run")
    assert sqlproject.history() == before
    code, done = repair(sqlproject)

    assert (dry_code, code) == (0, 0)
    assert dry["dryRun"] is True and done["dryRun"] is False
    assert [a["action"] for a in dry["actions"]] == [
        "remove-failed",
        "mark-deleted",
        "realign",
        "unmark-deleted",
    ]
    assert dry["actions"] == done["actions"]
    # Each change the dry run announced is in the history, and nothing else changed.
    ranks = {r[0]: r for r in sqlproject.history()}
    by_action = {a["action"]: a for a in done["actions"]}
    assert by_action["remove-failed"]["installedRank"] not in ranks
    assert by_action["unmark-deleted"]["installedRank"] not in ranks
    assert ranks[1][5] != before[0][5]  # realigned checksum
    assert [r[3] for r in sqlproject.history()].count("DELETE") == 1  # V2's mark
    assert repair(sqlproject, "--dry-run")[1]["actions"] == []


def test_a_repair_killed_midway_changes_nothing_and_the_next_one_does_it_all(
    sqlproject: SqlProject,
) -> None:
    something_to_repair(sqlproject)
    before = sqlproject.history()
    with sqlproject.connect() as blocker:
        blocker.autocommit = False
        # Repair deletes the failed row first, then waits here to realign V1's row.
        blocker.execute("SELECT 1 FROM flyway_schema_history WHERE installed_rank = 1 FOR UPDATE")
        kill_while_blocked(sqlproject, blocker, "sqlmigrations", "repair")

    assert sqlproject.history() == before
    code, done = repair(sqlproject)
    assert code == 0 and len(done["actions"]) == 4
    assert repair(sqlproject, "--dry-run")[1]["actions"] == []
    assert sqlproject.manage("sqlmigrations", "validate").returncode == 0
