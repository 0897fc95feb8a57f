"""`manage.py sqlmigrations info|validate|repair|baseline|lint` against real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from sqlmigrations.lib.checksum import flyway_checksum
from tests.helpers import run_manage
from tests.sqlproject import SqlProject

A = "-- V1: table a. Rollback: DROP TABLE a.\nCREATE TABLE a (id bigint PRIMARY KEY);\n"
B = "-- V2: table b. Rollback: DROP TABLE b.\nCREATE TABLE b (id bigint PRIMARY KEY);\n"
C = "-- V3: table c. Rollback: DROP TABLE c.\nCREATE TABLE c (id bigint PRIMARY KEY);\n"


def checksum(project: SqlProject, name: str) -> int:
    return flyway_checksum((project.sql_dir / name).read_bytes(), path=name)


def insert_row(
    project: SqlProject,
    rank: int,
    version: str | None,
    description: str,
    script: str,
    checksum: int | None,
    *,
    type: str = "SQL",
    success: bool = True,
) -> None:
    """Write a history row as the Flyway CLI would (user flyway, 12 ms)."""
    project.query(
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script,"
        " checksum, installed_by, execution_time, success)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'flyway', 12, %s)",
        [rank, version, description, type, script, checksum, success],
    )


def flyway_history(project: SqlProject) -> None:
    """Create an empty flyway_schema_history the way Flyway's PostgreSQL DDL does."""
    project.query(
        'CREATE TABLE flyway_schema_history ("installed_rank" INT NOT NULL,'
        ' "version" VARCHAR(50), "description" VARCHAR(200) NOT NULL,'
        ' "type" VARCHAR(20) NOT NULL, "script" VARCHAR(1000) NOT NULL, "checksum" INTEGER,'
        ' "installed_by" VARCHAR(100) NOT NULL,'
        ' "installed_on" TIMESTAMP NOT NULL DEFAULT now(),'
        ' "execution_time" INTEGER NOT NULL, "success" BOOLEAN NOT NULL);'
        " ALTER TABLE flyway_schema_history ADD CONSTRAINT flyway_schema_history_pk"
        " PRIMARY KEY (installed_rank)"
    )


def run_json(project: SqlProject, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    result = project.manage("sqlmigrations", *args, "--json")
    assert result.stdout, result.stderr
    return result, json.loads(result.stdout)


def states(project: SqlProject) -> dict[str, str]:
    result, data = run_json(project, "info")
    assert result.returncode == 0, result.stderr
    return {m["script"]: m["state"] for m in data["migrations"]}


# -- info --------------------------------------------------------------------------------


def test_info_on_a_database_without_history_shows_everything_pending(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("R__refresh_view.sql", "SELECT 1;\n")
    result = sqlproject.manage("sqlmigrations", "info")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Schema version: << Empty Schema >>"
    assert lines[2] == (
        "| Category   | Version | Description  | Type | Installed On | State   | Undoable |"
    )
    assert (
        "| Versioned  | 1       | create a     | SQL  |              | Pending | No       |"
        in lines
    )
    assert (
        "| Repeatable |         | refresh view | SQL  |              | Pending |          |"
        in lines
    )
    # Read-only: info never creates the history table.
    assert sqlproject.query("SELECT to_regclass('flyway_schema_history')") == [(None,)]


def test_info_reports_flyway_states_for_a_flyway_written_history(sqlproject: SqlProject) -> None:
    for name, sql in {
        "V1__create_a.sql": A,
        "V3__create_c.sql": C,
        "V4__create_d.sql": "CREATE TABLE d (id bigint);\n",
        "V5__create_e.sql": "CREATE TABLE e (id bigint);\n",
        "U5__create_e.sql": "DROP TABLE e;\n",
        "R__refresh_view.sql": "SELECT 2;\n",
        "R__new_view.sql": "SELECT 3;\n",
    }.items():
        sqlproject.write(name, sql)
    flyway_history(sqlproject)
    ok = {n: checksum(sqlproject, n) for n in ("V1__create_a.sql", "V5__create_e.sql")}
    insert_row(sqlproject, 1, "1", "create a", "V1__create_a.sql", ok["V1__create_a.sql"])
    insert_row(sqlproject, 2, "2", "create b", "V2__create_b.sql", 22)  # file gone
    insert_row(sqlproject, 3, "3", "create c", "V3__create_c.sql", 33, success=False)
    insert_row(sqlproject, 4, "5", "create e", "V5__create_e.sql", ok["V5__create_e.sql"])
    insert_row(sqlproject, 5, "9", "from the future", "V9__from_the_future.sql", 99)
    insert_row(sqlproject, 6, None, "refresh view", "R__refresh_view.sql", 1234)  # edited since

    result, data = run_json(sqlproject, "info")
    assert result.returncode == 0, result.stderr
    assert data["schemaVersion"] == "9"
    # Flyway's order: applied rows by installed_rank, then pending versioned, repeatables.
    assert [(m["script"], m["state"]) for m in data["migrations"]] == [
        ("V1__create_a.sql", "Success"),
        ("V2__create_b.sql", "Missing"),
        ("V3__create_c.sql", "Failed"),
        ("V5__create_e.sql", "Success"),
        ("V9__from_the_future.sql", "Future"),
        ("R__refresh_view.sql", "Outdated"),  # the old run...
        ("V4__create_d.sql", "Ignored"),  # below the latest applied version: would never run
        ("R__new_view.sql", "Pending"),
        ("R__refresh_view.sql", "Pending"),  # ...and the edited file, to run again
    ]
    by_script = {m["script"]: m for m in data["migrations"]}
    assert by_script["V5__create_e.sql"]["undoable"] == "Yes"
    assert by_script["V1__create_a.sql"]["undoable"] == "No"
    assert by_script["V1__create_a.sql"]["installedBy"] == "flyway"
    assert by_script["V1__create_a.sql"]["category"] == "Versioned"

    table = sqlproject.manage("sqlmigrations", "info").stdout
    assert "| Versioned  | 3       | create c        | SQL  |" in table
    assert "| Failed (Missing)" not in table and "| Failed " in table


# -- validate ----------------------------------------------------------------------------


def test_validate_lists_every_problem_at_once_with_file_names(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("V2__create_b.sql", B)
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    sqlproject.write("V1__create_a.sql", A + "-- an edit\n")  # edited after it ran
    sqlproject.remove("V2__create_b.sql")  # applied, then deleted
    sqlproject.write("V3__create_c.sql", C)
    sqlproject.write("V5__Create_E.sql", "CREATE TABLE e (id bigint);\n")  # gap + bad name
    insert_row(sqlproject, 10, "4", "create d", "V4__create_d.sql", 4, success=False)
    sqlproject.write("V6_create_f.sql", "CREATE TABLE f (id bigint);\n")  # Flyway can't parse it
    sqlproject.write("R1__refresh.sql", "SELECT 1;\n")  # nor this

    result = sqlproject.manage("sqlmigrations", "validate", sync=False)
    assert result.returncode == 1
    assert "Validation failed: " in result.stderr
    for expected in (
        "V1__create_a.sql: edited since it was applied",
        "V2__create_b.sql: version 2 was applied but V2__create_b.sql is not on disk",
        "V4__create_d.sql: the history records a failed run of version 4",
        "V5__Create_E.sql: version 5 follows V3__create_c.sql but V4 is missing",
        "description 'Create_E' must be snake_case",
        "V6_create_f.sql: could not recognise version number '6_create_f'",
        "R1__refresh.sql: a repeatable migration cannot have a version",
    ):
        assert expected in result.stderr

    result, data = run_json(sqlproject, "validate")
    assert result.returncode == 1
    assert data["valid"] is False
    assert {(p["code"], p["file"]) for p in data["problems"]} >= {
        ("edited", "V1__create_a.sql"),
        ("missing", "V2__create_b.sql"),
        ("failed", "V4__create_d.sql"),
        ("gap", "V5__Create_E.sql"),
    }


def test_validate_passes_a_clean_project(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", A)
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    result = sqlproject.manage("sqlmigrations", "validate")
    assert result.returncode == 0, result.stderr
    assert "Successfully validated 1 migrations (as `info` lists them)" in result.stdout


def test_validate_counts_what_info_lists(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("U1__create_a.sql", "DROP TABLE a;\n")
    sqlproject.write("V2__create_b.sql", B)
    sqlproject.write("U2__create_b.sql", "DROP TABLE b;\n")
    sqlproject.write("R__refresh_view.sql", "SELECT 1;\n")
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    sqlproject.write("V3__create_c.sql", C)  # pending

    validated = sqlproject.manage("sqlmigrations", "validate")
    info = sqlproject.manage("sqlmigrations", "info")
    _, as_json = run_json(sqlproject, "validate")

    assert validated.returncode == 0, validated.stderr
    assert "Successfully validated 4 migrations" in validated.stdout
    assert info.stdout.splitlines()[-1] == "4 migrations, 1 pending."
    assert as_json["migrations"] == 4


# -- repair ------------------------------------------------------------------------------


def test_repair_realigns_removes_failed_rows_and_marks_missing_files_deleted(
    sqlproject: SqlProject,
) -> None:
    sqlproject.convention = False  # a deleted V2 leaves a gap, which the convention forbids
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("V2__create_b.sql", B)
    sqlproject.write("V3__create_c.sql", C)
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    sqlproject.write("V1__create_a.sql", A.replace("table a.", "the a table."))  # on purpose
    sqlproject.remove("V2__create_b.sql")
    insert_row(sqlproject, 4, "4", "create d", "V4__create_d.sql", 4, success=False)
    v2 = sqlproject.query("SELECT checksum FROM flyway_schema_history WHERE version = '2'")[0][0]
    before = sqlproject.history()

    dry = sqlproject.manage("sqlmigrations", "repair", "--dry-run", sync=False)
    assert dry.returncode == 0, dry.stderr
    assert "Would repair: V4__create_d.sql (version 4, installed_rank 4): removed" in dry.stdout
    assert sqlproject.history() == before

    result = sqlproject.manage("sqlmigrations", "repair", sync=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Repaired: V4__create_d.sql (version 4, installed_rank 4): removed the failed row" in out
    assert "Repaired: V2__create_b.sql (version 2, installed_rank 2): file is missing" in out
    assert "Repaired: V1__create_a.sql (version 1, installed_rank 1): realigned" in out
    assert "1 failed rows removed, 1 missing migrations marked deleted, 1 rows realigned" in out

    rows = sqlproject.history()
    assert rows[0][5] == checksum(sqlproject, "V1__create_a.sql")
    assert [r[0] for r in rows] == [1, 2, 3, 4]  # the failed row is gone, a DELETE row added
    owner = sqlproject.server.user
    # JdbcTableSchemaHistory.delete(): the row's values, type DELETE, execution_time 0.
    assert rows[3] == (4, "2", "create b", "DELETE", "V2__create_b.sql", v2, owner, 0, True)
    assert sqlproject.manage("sqlmigrations", "validate", sync=False).returncode == 0
    assert states(sqlproject)["V2__create_b.sql"] == "Deleted"
    again = sqlproject.manage("sqlmigrations", "repair", sync=False)
    assert "Nothing to repair" in again.stdout


# -- baseline ----------------------------------------------------------------------------


def test_baseline_then_migrate_records_versions_up_to_it_without_running_them(
    sqlproject: SqlProject,
) -> None:
    # Made before migrations: the schema is at version 2.
    sqlproject.query("CREATE TABLE a (id bigint PRIMARY KEY)")
    sqlproject.query("CREATE TABLE b (id bigint PRIMARY KEY); INSERT INTO b VALUES (7)")
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("V2__create_b.sql", B)
    sqlproject.write("V3__create_c.sql", C)

    result = sqlproject.manage("sqlmigrations", "baseline", "--version", "2")
    assert result.returncode == 0, result.stderr
    assert "Baselined" in result.stdout and "version 2" in result.stdout
    assert sqlproject.history() == [
        (1, "2", "<< Flyway Baseline >>", "BASELINE", "<< Flyway Baseline >>", None,
         sqlproject.server.user, 0, True)
    ]  # fmt: skip
    assert states(sqlproject) == {
        "V1__create_a.sql": "Below Baseline",
        "V2__create_b.sql": "Ignored (Baseline)",
        "<< Flyway Baseline >>": "Baseline",
        "V3__create_c.sql": "Pending",
    }

    result = sqlproject.manage("migrate", "--no-input")
    assert result.returncode == 0, result.stderr
    assert (
        "  Adopting dbops.V2__create_b (below the baseline: recorded for Django, no SQL run)"
    ) in result.stdout
    assert "  Applying dbops.V3__create_c... OK" in result.stdout
    tables = {r[0] for r in sqlproject.query("SELECT tablename FROM pg_tables")}
    assert "c" in tables
    assert sqlproject.query("SELECT id FROM b") == [(7,)]  # V2 was recorded, not run
    assert [r[1] for r in sqlproject.history()] == ["2", "3"]
    recorded = sqlproject.query(
        "SELECT name FROM django_migrations WHERE app = 'dbops' ORDER BY id"
    )
    assert [r[0] for r in recorded] == ["V1__create_a", "V2__create_b", "V3__create_c"]
    assert sqlproject.manage("sqlmigrations", "validate").returncode == 0
    # The same baseline again is a no-op, as in Flyway.
    again = sqlproject.manage("sqlmigrations", "baseline", "--version", "2")
    assert again.returncode == 0 and "Already baselined" in again.stdout


def test_baseline_is_refused_on_a_history_with_rows(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", A)
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    before = sqlproject.history()
    result = sqlproject.manage("sqlmigrations", "baseline", "--version", "5")
    assert result.returncode == 1
    assert "the history already holds 1 row (latest: V1__create_a.sql" in result.stderr
    assert "run `manage.py migrate` instead" in result.stderr
    assert sqlproject.history() == before


def test_baseline_of_an_empty_database_is_refused_naming_what_is_absent(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("V2__create_b.sql", B)
    sqlproject.write("V3__create_c.sql", C)

    result = sqlproject.manage("sqlmigrations", "baseline", "--version", "2")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "version 2 is not this database's schema" in message
    assert "table a (V1__create_a.sql:2)" in message and "table b (V2__create_b.sql:2)" in message
    assert "table c" not in message  # above the baseline: migrate creates it
    assert "run `manage.py migrate` to create the schema" in message
    assert sqlproject.query("SELECT to_regclass('flyway_schema_history')") == [(None,)]
    assert sqlproject.manage("migrate", "--no-input").returncode == 0  # as the refusal says


def test_baseline_above_the_schema_is_refused_naming_the_objects_it_lacks(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("V2__create_b.sql", B)
    sqlproject.write("V3__create_c.sql", C)
    sqlproject.query("CREATE TABLE a (id bigint PRIMARY KEY)")

    result = sqlproject.manage("sqlmigrations", "baseline", "--version", "2")

    assert result.returncode == 1
    assert "1 of the 2 objects that the files up to version 2 create is absent" in result.stderr
    assert "table b (V2__create_b.sql:2)" in result.stderr and "table a " not in result.stderr
    assert "baseline at the version this schema is really at" in result.stderr
    assert sqlproject.manage("sqlmigrations", "baseline", "--version", "1").returncode == 0


def test_baseline_expects_what_the_files_leave_not_what_a_later_file_drops(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", A + "CREATE INDEX a_id ON a (id);\n")
    sqlproject.write("V2__create_b.sql", B)
    sqlproject.write(
        "V3__drop_b.sql", "-- Rollback: V2.\nDROP TABLE b;\nALTER TABLE a RENAME TO aa;\n"
    )
    sqlproject.query("CREATE TABLE aa (id bigint PRIMARY KEY); CREATE INDEX a_id ON aa (id)")

    result = sqlproject.manage("sqlmigrations", "baseline", "--version", "3")

    assert result.returncode == 0, result.stderr
    assert [r[3] for r in sqlproject.history()] == ["BASELINE"]


def test_migrate_failing_on_the_first_file_above_a_baseline_says_the_baseline_may_be_wrong(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write(
        "V2__add_note.sql", "-- Rollback: drop it.\nALTER TABLE a ADD COLUMN note text;\n"
    )
    sqlproject.write("V3__fill_note.sql", "-- Rollback: none.\nUPDATE a SET note = 'x';\n")
    sqlproject.query("CREATE TABLE a (id bigint PRIMARY KEY)")  # at version 1, not 2
    assert sqlproject.manage("sqlmigrations", "baseline", "--version", "2").returncode == 0

    result = sqlproject.manage("migrate", "--no-input")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert 'column "note" of relation "a" does not exist' in result.stderr
    assert "This database was baselined at version 2" in result.stderr
    assert "V3__fill_note.sql is the first file above it" in result.stderr


# -- lint (the rules themselves: tests/sqlmigrations/lib/test_lint.py) ----------------------


def lint(project: SqlProject, *args: str) -> subprocess.CompletedProcess[str]:
    return project.manage("sqlmigrations", "lint", "--no-git", *args)


def test_lint_passes_clean_files_with_placeholders_replaced(sqlproject: SqlProject) -> None:
    sqlproject.placeholders = {"app_role": "choregarden"}
    sqlproject.write("V1__create_a.sql", A + "GRANT SELECT ON a TO ${app_role};\n")
    result = lint(sqlproject)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Linted 1 files: no findings." in result.stdout
    sqlproject.write("V1__create_a.sql", A + "GRANT SELECT ON a TO ${app_role};\nSELEC 1;\n")
    result = lint(sqlproject)
    assert result.returncode == 1
    assert result.stdout.startswith("V1__create_a.sql:4: syntax-error:")


def test_lint_reports_squawk_findings_at_file_and_line(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write(
        "V2__add_required.sql",
        "-- Rollback: ALTER TABLE a DROP COLUMN owner\n\n"
        "ALTER TABLE a ADD COLUMN owner bigint NOT NULL;\n",
    )
    result = lint(sqlproject)
    assert result.returncode == 1
    assert "V2__add_required.sql:3: adding-required-field:" in result.stdout
    assert "lint: 1 findings in 2 files" in result.stderr


def test_lint_flags_edits_of_applied_and_committed_files(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", A)
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    sqlproject.write("V1__create_a.sql", A + "COMMENT ON TABLE a IS 'edited';\n")
    result = lint(sqlproject)
    assert result.returncode == 1
    assert "V1__create_a.sql:1: edited-applied-file: differs from the version applied" in (
        result.stdout
    )

    # Git: a committed V file edited since the base ref, with no database to ask.
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    sqlproject.write("V1__create_a.sql", A)
    sqlproject.write("V2__create_b.sql", B)
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=sqlproject.root, check=True)
    subprocess.run([*git, "add", "migrations_sql"], cwd=sqlproject.root, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=sqlproject.root, check=True)
    sqlproject.write("V2__create_b.sql", B + "COMMENT ON TABLE b IS 'edited';\n")
    sqlproject.write("V3__create_c.sql", C)  # new, uncommitted: fine
    result = sqlproject.manage("sqlmigrations", "lint", "--no-db", "--progress")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "V2__create_b.sql:1: edited-committed-file: differs from the committed version at "
        "the base ref; a committed migration may already have run somewhere (revert the edit "
        "and put the change in a new migration)"
    ]
    assert "lint: squawk: 3 files" in result.stderr


def test_lint_wants_rollback_instructions_and_one_statement_outside_transactions(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id bigint PRIMARY KEY);\n")
    sqlproject.write(
        "V2__index_a.sql",
        "-- Rollback: DROP INDEX a_x, a_y\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_x ON a (id);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_y ON a (id);\n",
    )
    sqlproject.write("V2__index_a.sql.conf", "executeInTransaction=false\n")
    result, data = run_json(
        sqlproject, "lint", "--no-git", str(sqlproject.sql_dir / "V2__index_a.sql")
    )
    assert {(f["file"], f["line"], f["rule"]) for f in data["findings"]} == {
        ("V2__index_a.sql", 3, "non-transactional-multi-statement")
    }
    result = lint(sqlproject)
    assert "V1__create_a.sql:1: no-rollback-instructions" in result.stdout
    bad = lint(sqlproject, "elsewhere.sql")
    assert bad.returncode == 1 and "elsewhere.sql: not a migration file" in bad.stderr


# -- roles -------------------------------------------------------------------------------


def test_info_reads_with_the_app_role_and_repair_uses_the_owner(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", A)
    assert sqlproject.manage("migrate", "--no-input").returncode == 0
    app = sqlproject.server.app_user
    sqlproject.query(f'GRANT SELECT ON flyway_schema_history TO "{app}"')  # as roles.py does
    insert_row(sqlproject, 2, "2", "create b", "V2__create_b.sql", 2, success=False)
    env = sqlproject.env()
    env["DATABASE_URL"] = sqlproject.server.url(sqlproject.database, role="app")

    result = run_manage("sqlmigrations", "info", env=env)
    assert result.returncode == 0, result.stderr
    assert "| Versioned | 2       | create b    | SQL  |" in result.stdout

    refused = run_manage("sqlmigrations", "repair", env=env)
    assert refused.returncode == 1
    assert f"repair failed as database user '{app}'" in refused.stderr
    assert "MIGRATION_DATABASE_URL" in refused.stderr
    assert len(sqlproject.history()) == 2

    env["MIGRATION_DATABASE_URL"] = sqlproject.server.url(sqlproject.database)
    result = run_manage("sqlmigrations", "repair", env=env)
    assert result.returncode == 0, result.stderr
    assert [r[1] for r in sqlproject.history()] == ["1"]
