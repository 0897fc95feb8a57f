"""`manage.py migrate <app> <earlier>`: the backward plan is checked before the first undo.

Each test builds a throwaway project (tests/sqlproject.py) and runs the real `manage.py`
in a subprocess; the kill tests kill it with SIGKILL while an undo file waits on a lock
(tests/blocking.py).
"""

from __future__ import annotations

import subprocess

from sqlmigrations.generator.rendering import irreversible_statement
from tests.blocking import kill_while_blocked
from tests.sqlproject import SqlProject


def migrate(project: SqlProject, *args: str) -> subprocess.CompletedProcess[str]:
    return project.manage("migrate", "--no-input", *args)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def tables(project: SqlProject) -> set[str]:
    rows = project.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows}


def flyway_versions(project: SqlProject) -> list[str]:
    return [r[1] for r in project.history() if r[3] == "SQL"]


def django_rows(project: SqlProject) -> list[str]:
    rows = project.query("SELECT name FROM django_migrations WHERE app = 'dbops' ORDER BY name")
    return [r[0] for r in rows]


def four_files(project: SqlProject, *, undo: tuple[int, ...]) -> None:
    for n, table in enumerate("abcd", start=1):
        project.write(f"V{n}__create_{table}.sql", f"CREATE TABLE {table} (id int);\n")
        if n in undo:
            project.write(f"U{n}__create_{table}.sql", f"DROP TABLE {table};\n")


def test_a_file_without_undo_refuses_the_whole_plan_before_anything_is_undone(
    sqlproject: SqlProject,
) -> None:
    four_files(sqlproject, undo=(3,))
    ok(migrate(sqlproject))
    before = sqlproject.history()

    result = migrate(sqlproject, "dbops", "V1__create_a")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message  # one line, naming every file
    assert "V4__create_d.sql" in message and "U4__create_d.sql" in message
    assert "V2__create_b.sql" in message and "U2__create_b.sql" in message
    assert "V3__create_c" not in message  # it has its undo file
    assert "nothing was undone" in message
    assert "dbops.V4__create_d" in message  # the furthest back this database can go
    assert sqlproject.history() == before
    assert tables(sqlproject) >= {"a", "b", "c", "d"}
    assert django_rows(sqlproject) == [
        "V1__create_a",
        "V2__create_b",
        "V3__create_c",
        "V4__create_d",
    ]


def test_plan_says_the_run_would_be_refused_naming_the_same_files(sqlproject: SqlProject) -> None:
    four_files(sqlproject, undo=(3,))
    ok(migrate(sqlproject))

    plan = ok(migrate(sqlproject, "dbops", "V1__create_a", "--plan")).stdout
    run = migrate(sqlproject, "dbops", "V1__create_a")

    assert "IRREVERSIBLE: V4__create_d.sql has no undo file" in plan
    assert "IRREVERSIBLE: V2__create_b.sql has no undo file" in plan
    refused = [line for line in plan.splitlines() if "nothing would be undone: " in line]
    assert len(refused) == 1, plan
    # The plan's last line is the refusal the real run prints.
    assert refused[0].split("nothing would be undone: ", 1)[1] in run.stderr


def test_an_undo_file_marked_irreversible_refuses_the_plan_before_anything_is_undone(
    sqlproject: SqlProject,
) -> None:
    """makesqlmigration writes a U file that raises when it cannot generate the reverse:
    found before the first undo, as a missing file is, not after V4's undo ran."""
    four_files(sqlproject, undo=(2, 3, 4))
    sqlproject.write(
        "U2__create_b.sql", irreversible_statement("V2__create_b.sql", "U2__create_b.sql")
    )
    ok(migrate(sqlproject))
    before = sqlproject.history()

    plan = ok(migrate(sqlproject, "dbops", "V1__create_a", "--plan")).stdout
    result = migrate(sqlproject, "dbops", "V1__create_a")

    marked = "its undo file U2__create_b.sql is marked irreversible"
    assert f"IRREVERSIBLE: V2__create_b.sql {marked}" in plan
    assert result.returncode == 1, result.stdout + result.stderr
    assert marked in result.stderr and "nothing was undone" in result.stderr
    assert sqlproject.history() == before
    assert tables(sqlproject) >= {"a", "b", "c", "d"}


def test_plan_lists_the_undo_files_the_backward_run_runs_in_the_same_order(
    sqlproject: SqlProject,
) -> None:
    four_files(sqlproject, undo=(2, 3, 4))
    ok(migrate(sqlproject))

    plan = ok(migrate(sqlproject, "dbops", "V1__create_a", "--plan")).stdout
    planned = [
        line.split("Run ", 1)[1].split(" ", 1)[0] for line in plan.splitlines() if "Run U" in line
    ]
    run = ok(migrate(sqlproject, "dbops", "V1__create_a")).stdout
    unapplied = [
        line.split("Unapplying dbops.", 1)[1].split("...", 1)[0]
        for line in run.splitlines()
        if "Unapplying" in line
    ]

    assert planned == ["U4__create_d.sql", "U3__create_c.sql", "U2__create_b.sql"]
    assert unapplied == ["V4__create_d", "V3__create_c", "V2__create_b"]
    assert flyway_versions(sqlproject) == ["1"]
    assert django_rows(sqlproject) == ["V1__create_a"]
    assert tables(sqlproject) & {"b", "c", "d"} == set()


def test_an_undo_file_outside_a_transaction_for_a_transactional_file_is_refused(
    sqlproject: SqlProject,
) -> None:
    # Django undoes a wrapper in the mode of its V file: U2 would fail inside a
    # transaction, after U3 had already committed.
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__index_a.sql", "CREATE INDEX a_id ON a (id);\n")
    sqlproject.write("U2__index_a.sql", "DROP INDEX CONCURRENTLY a_id;\n")
    sqlproject.write("U2__index_a.sql.conf", "executeInTransaction=false\n")
    sqlproject.write("V3__create_c.sql", "CREATE TABLE c (id int);\n")
    sqlproject.write("U3__create_c.sql", "DROP TABLE c;\n")
    ok(migrate(sqlproject))

    result = migrate(sqlproject, "dbops", "V1__create_a")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "U2__index_a.sql" in result.stderr and "executeInTransaction" in result.stderr
    assert "nothing was undone" in result.stderr
    assert flyway_versions(sqlproject) == ["1", "2", "3"]
    assert "c" in tables(sqlproject)


def test_a_failing_undo_file_says_its_migration_stays_applied(sqlproject: SqlProject) -> None:
    four_files(sqlproject, undo=(2, 3, 4))
    sqlproject.write("U3__create_c.sql", "DROP TABLE c;\nDROP TABLE no_such_table;\n")
    ok(migrate(sqlproject))

    result = migrate(sqlproject, "dbops", "V1__create_a")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "U3__create_c.sql:2: migration failed, line 2" in result.stderr
    assert "its migration stays applied in both histories" in result.stderr
    assert "failed row" not in result.stderr and "nothing was recorded" not in result.stderr
    assert flyway_versions(sqlproject) == ["1", "2", "3"]  # U4 ran; U3 rolled back
    assert django_rows(sqlproject) == ["V1__create_a", "V2__create_b", "V3__create_c"]
    assert "c" in tables(sqlproject)


# --- killed midway ------------------------------------------------------------------------


def test_killed_during_an_undo_file_keeps_history_and_schema_together_then_rerun_goes_on(
    sqlproject: SqlProject,
) -> None:
    four_files(sqlproject, undo=(2, 3, 4))
    ok(migrate(sqlproject))
    with sqlproject.connect() as blocker:
        blocker.autocommit = False
        blocker.execute("LOCK TABLE b IN ACCESS SHARE MODE")  # U2's DROP TABLE b waits
        kill_while_blocked(sqlproject, blocker, "migrate", "--no-input", "dbops", "V1__create_a")

    # U4 and U3 finished before the kill; U2 never committed.
    assert flyway_versions(sqlproject) == ["1", "2"]
    assert django_rows(sqlproject) == ["V1__create_a", "V2__create_b"]
    assert tables(sqlproject) & {"a", "b", "c", "d"} == {"a", "b"}

    ok(migrate(sqlproject, "dbops", "V1__create_a"))
    assert flyway_versions(sqlproject) == ["1"]
    assert django_rows(sqlproject) == ["V1__create_a"]
    assert "b" not in tables(sqlproject)


def test_killed_during_the_undo_of_a_non_transactional_file_loses_no_record(
    sqlproject: SqlProject,
) -> None:
    # V2 runs outside a transaction, so Django opens none around its undo: the undo file
    # and both history rows must still commit together.
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__index_a.sql", "CREATE INDEX CONCURRENTLY a_id ON a (id);\n")
    sqlproject.write("V2__index_a.sql.conf", "executeInTransaction=false\n")
    sqlproject.write("U2__index_a.sql", "DROP INDEX a_id;\n")
    ok(migrate(sqlproject))
    with sqlproject.connect() as blocker:
        blocker.autocommit = False
        blocker.execute("SELECT 1 FROM flyway_schema_history WHERE version = '2' FOR UPDATE")
        kill_while_blocked(sqlproject, blocker, "migrate", "--no-input", "dbops", "V1__create_a")

    indexes = {r[0] for r in sqlproject.query("SELECT indexname FROM pg_indexes")}
    undone = "a_id" not in indexes
    assert flyway_versions(sqlproject) == (["1"] if undone else ["1", "2"])
    assert django_rows(sqlproject) == (
        ["V1__create_a"] if undone else ["V1__create_a", "V2__index_a"]
    )

    rerun = ok(migrate(sqlproject, "dbops", "V1__create_a"))
    assert "a_id" not in {r[0] for r in sqlproject.query("SELECT indexname FROM pg_indexes")}
    assert flyway_versions(sqlproject) == ["1"], rerun.stdout
    assert django_rows(sqlproject) == ["V1__create_a"]


# --- one step back -----------------------------------------------------------------------


def test_migrating_backwards_runs_the_undo_file_and_removes_the_row(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    sqlproject.write("U2__create_b.sql", "DROP TABLE b;\n")
    ok(migrate(sqlproject))
    plan = ok(migrate(sqlproject, "dbops", "V1__create_a", "--plan")).stdout
    assert "Run U2__create_b.sql (undo of V2__create_b.sql)" in plan
    ok(migrate(sqlproject, "dbops", "V1__create_a"))
    assert "b" not in tables(sqlproject)
    assert [r[1] for r in sqlproject.history()] == ["1"]

    ok(migrate(sqlproject))  # and forwards again
    assert "b" in tables(sqlproject)
    assert [r[1] for r in sqlproject.history()] == ["1", "2"]


def test_without_an_undo_file_the_wrapper_is_irreversible(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    ok(migrate(sqlproject))
    plan = ok(migrate(sqlproject, "dbops", "V1__create_a", "--plan")).stdout
    assert "IRREVERSIBLE: V2__create_b.sql has no undo file" in plan
    result = migrate(sqlproject, "dbops", "V1__create_a")
    assert result.returncode != 0
    assert "U2__create_b.sql" in result.stderr
    assert "b" in tables(sqlproject)
    assert [r[1] for r in sqlproject.history()] == ["1", "2"]
