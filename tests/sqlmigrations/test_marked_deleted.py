"""A file removed and marked deleted by `repair`: validate, check and migrate agree on it,
and when it comes back it is un-marked, never run again (real PostgreSQL, real manage.py)."""

from __future__ import annotations

import subprocess

from tests.sqlproject import SqlProject

FILES = {
    "V1__create_a.sql": "-- V1. Rollback: DROP TABLE a.\nCREATE TABLE a (id int);\n",
    "V2__create_b.sql": "-- V2. Rollback: DROP TABLE b.\nCREATE TABLE b (id int);\n",
    "V3__create_c.sql": "-- V3. Rollback: DROP TABLE c.\nCREATE TABLE c (id int);\n",
}


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stderr


def marked_deleted(project: SqlProject) -> None:
    """Apply V1-V3, remove V2's file (and wrapper), and let repair mark it deleted."""
    for name, sql in FILES.items():
        project.write(name, sql)
    ok(project.manage("migrate", "--no-input"))
    project.remove("V2__create_b.sql")
    assert "marked as deleted" in ok(project.manage("sqlmigrations", "repair")).stdout


def test_validate_check_and_migrate_agree_on_a_file_marked_deleted(
    sqlproject: SqlProject,
) -> None:
    marked_deleted(sqlproject)

    validated = sqlproject.manage("sqlmigrations", "validate")
    checked = sqlproject.manage("check", "--database", "default")
    migrated = sqlproject.manage("migrate", "--no-input")

    assert "no problems" in ok(validated).stdout
    assert "sqlmigrations.E006" not in checked.stderr
    ok(checked)
    assert "No migrations to apply" in ok(migrated).stdout


def test_a_restored_file_is_un_marked_by_repair_and_never_run_again(
    sqlproject: SqlProject,
) -> None:
    marked_deleted(sqlproject)
    sqlproject.query("INSERT INTO b VALUES (7)")
    sqlproject.write("V2__create_b.sql", FILES["V2__create_b.sql"])

    validated = refused(sqlproject.manage("sqlmigrations", "validate"))
    migrated = refused(sqlproject.manage("migrate", "--no-input"))

    for message in (validated, migrated):
        assert "V2__create_b.sql: the history marks version 2 deleted" in message
        assert "run `manage.py sqlmigrations repair` to un-mark it" in message
        assert "version above" not in message and "rename" not in message.lower()
    dry = ok(sqlproject.manage("sqlmigrations", "repair", "--dry-run")).stdout
    real = ok(sqlproject.manage("sqlmigrations", "repair")).stdout
    assert "Would repair: V2__create_b.sql (version 2, installed_rank 4): the file is back" in dry
    assert dry.replace("Would repair", "Repaired").splitlines()[0] == real.splitlines()[0]
    assert "1 restored files un-marked" in real
    assert [(r[1], r[3]) for r in sqlproject.history()] == [
        ("1", "SQL"),
        ("2", "SQL"),
        ("3", "SQL"),
    ]
    ok(sqlproject.manage("sqlmigrations", "validate"))
    assert "No migrations to apply" in ok(sqlproject.manage("migrate", "--no-input")).stdout
    assert sqlproject.query("SELECT id FROM b") == [(7,)]  # its SQL did not run again


def test_repair_refuses_to_un_mark_a_restored_file_whose_objects_are_gone(
    sqlproject: SqlProject,
) -> None:
    marked_deleted(sqlproject)
    sqlproject.query("DROP TABLE b")  # as the DELETE row's advice said
    sqlproject.write("V2__create_b.sql", FILES["V2__create_b.sql"])
    before = sqlproject.history()

    message = refused(sqlproject.manage("sqlmigrations", "repair"))

    assert "nothing was repaired" in message
    assert "V2__create_b.sql (version 2, marked deleted at installed_rank 4) is back" in message
    assert "table b (V2__create_b.sql:2)" in message
    assert sqlproject.history() == before


def test_a_restored_file_with_other_content_is_asked_for_the_applied_text(
    sqlproject: SqlProject,
) -> None:
    marked_deleted(sqlproject)
    sqlproject.write("V2__create_b.sql", FILES["V2__create_b.sql"] + "-- edited\n")

    message = refused(sqlproject.manage("sqlmigrations", "validate"))

    assert "with other content" in message and "restore the text that was applied" in message
    assert "Nothing to repair" in ok(sqlproject.manage("sqlmigrations", "repair")).stdout
