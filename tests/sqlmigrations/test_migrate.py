"""`manage.py migrate` forwards with SQL migration files, against real PostgreSQL (issue 3).

Every test builds a throwaway project (tests/sqlproject.py): SQL files, a wrapper per file,
a fresh database, and the real `manage.py` in a subprocess, as a developer runs it. Order
and history, failures, adoption, non-transactional files, the lock, nothing pending, and
one round trip per file; going backwards is in test_migrate_backwards.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from sqlmigrations.lib.checksum import flyway_checksum
from tests.helpers import REPO, run_manage
from tests.sqlproject import SqlProject

FLYWAY_LOCK_KEY = 77433833903597  # what Flyway takes for "public"."flyway_schema_history"


def migrate(project: SqlProject, *args: str) -> subprocess.CompletedProcess[str]:
    return project.manage("migrate", "--no-input", *args)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"expected a failure, got:\n{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def tables(project: SqlProject) -> set[str]:
    rows = project.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in rows}


def django_rows(project: SqlProject) -> list[str]:
    """The wrappers Django recorded as applied, in the order it recorded them."""
    rows = project.query("SELECT name FROM django_migrations WHERE app = 'dbops' ORDER BY id")
    return [r[0] for r in rows]


# --- order and history -------------------------------------------------------------------


def test_applies_files_in_order_and_records_flyway_rows(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int REFERENCES a);\n")
    sqlproject.write("V3__seed_a.sql", "INSERT INTO a VALUES (1);\r\nINSERT INTO a VALUES (2);")
    ok(migrate(sqlproject))

    rows = sqlproject.history()
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (1, "1", "create a", "SQL", "V1__create_a.sql"),
        (2, "2", "create b", "SQL", "V2__create_b.sql"),
        (3, "3", "seed a", "SQL", "V3__seed_a.sql"),
    ]
    for row in rows:
        data = (sqlproject.sql_dir / row[4]).read_bytes()
        assert row[5] == flyway_checksum(data, path=row[4])
        assert row[6] == sqlproject.server.user  # installed_by: the migrating role
        assert row[7] >= 0  # execution_time in ms
        assert row[8] is True
    assert sqlproject.query("SELECT count(*) FROM a") == [(2,)]
    applied = sqlproject.query("SELECT name FROM django_migrations WHERE app = 'dbops'")
    assert {r[0] for r in applied} == {"V1__create_a", "V2__create_b", "V3__seed_a"}


def test_versions_compare_numerically_part_by_part(sqlproject: SqlProject) -> None:
    sqlproject.convention = False  # dotted versions break the team's convention, not Flyway's
    sqlproject.write("V10__ten.sql", "INSERT INTO seen VALUES ('10');")
    sqlproject.write("V2__two.sql", "INSERT INTO seen VALUES ('2');")
    sqlproject.write("V1_2__one_two.sql", "INSERT INTO seen VALUES ('1.2');")
    sqlproject.write("V1.1__one_one.sql", "INSERT INTO seen VALUES ('1.1');")
    sqlproject.write("V1__one.sql", "CREATE TABLE seen (n text, at serial);")
    ok(migrate(sqlproject))
    assert [r[0] for r in sqlproject.query("SELECT n FROM seen ORDER BY at")] == [
        "1.1",
        "1.2",
        "2",
        "10",
    ]
    assert [r[1] for r in sqlproject.history()] == ["1", "1.1", "1.2", "2", "10"]


def test_second_run_applies_nothing(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);")
    ok(migrate(sqlproject))
    before = sqlproject.history()
    second = ok(migrate(sqlproject))
    assert "No migrations to apply" in second.stdout
    assert sqlproject.history() == before


def test_plan_and_showmigrations_work_as_in_django(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);")
    plan = ok(migrate(sqlproject, "--plan"))
    assert "Run V1__create_a.sql" in plan.stdout and "Run V2__create_b.sql" in plan.stdout
    assert "IRREVERSIBLE" not in plan.stdout
    assert "a" not in tables(sqlproject)  # --plan changes nothing

    ok(migrate(sqlproject, "dbops", "V1__create_a"))
    shown = ok(sqlproject.manage("showmigrations", "dbops")).stdout
    assert "[X] V1__create_a" in shown
    assert "[ ] V2__create_b" in shown
    assert tables(sqlproject) >= {"a"} and "b" not in tables(sqlproject)


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        # PostgreSQL gives the failing statement's position in the file's query string.
        (
            "CREATE TABLE b (id int);\n-- a comment\nINSERT INTO b VALUES ('not a number');\n",
            "invalid input syntax for type integer",
        ),
        # A runtime error has no position: the rolled-back file is replayed to find its line.
        (
            "CREATE TABLE b (id int PRIMARY KEY);\nINSERT INTO b VALUES (7);\n"
            "INSERT INTO b VALUES (7);\n",
            "duplicate key",
        ),
    ],
    ids=["position", "replayed"],
)
def test_a_failing_file_leaves_no_row_names_its_line_and_a_rerun_applies_the_fix(
    sqlproject: SqlProject, broken: str, message: str
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__create_b.sql", broken)
    sqlproject.write("V3__create_c.sql", "CREATE TABLE c (id int);\n")
    err = failed(migrate(sqlproject))
    assert "V2__create_b.sql" in err
    assert "line 3" in err
    assert message in err
    assert "rolled back" in err

    assert "a" in tables(sqlproject)
    assert not {"b", "c"} & tables(sqlproject)  # V2's first statement was rolled back too
    assert [r[1] for r in sqlproject.history()] == ["1"]  # nothing recorded for V2
    assert django_rows(sqlproject) == ["V1__create_a"]  # in either history

    sqlproject.write(
        "V2__create_b.sql", "CREATE TABLE b (id int);\n-- a comment\nINSERT INTO b VALUES (7);\n"
    )
    ok(migrate(sqlproject))
    assert [r[1] for r in sqlproject.history()] == ["1", "2", "3"]
    assert django_rows(sqlproject) == ["V1__create_a", "V2__create_b", "V3__create_c"]
    assert sqlproject.query("SELECT id FROM b") == [(7,)]


def test_edited_applied_file_stops_the_run_before_anything_is_applied(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    ok(migrate(sqlproject))
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id bigint);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    err = failed(migrate(sqlproject))
    assert "V1__create_a.sql" in err
    assert "edited since it was applied" in err
    assert "nothing was applied" in err
    assert "b" not in tables(sqlproject)
    assert len(sqlproject.history()) == 1


def test_missing_applied_file_is_named(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    ok(migrate(sqlproject))
    sqlproject.remove("V1__create_a.sql")
    sqlproject.write("V3__create_c.sql", "CREATE TABLE c (id int);\n")
    err = failed(migrate(sqlproject))
    assert "V1__create_a.sql" in err and "not on disk" in err
    assert "c" not in tables(sqlproject)


def test_duplicate_versions_are_named(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    sqlproject.write("V02__create_c.sql", "CREATE TABLE c (id int);\n")
    err = failed(migrate(sqlproject))
    assert "V2__create_b.sql" in err and "V02__create_c.sql" in err
    assert not {"a", "b", "c"} & tables(sqlproject)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("V2__CreateB.sql", "snake_case"),
        ("V2_1__create_b.sql", "integer"),
        ("V3__create_b.sql", "v2 is missing"),
    ],
)
def test_names_breaking_the_convention_are_named(
    sqlproject: SqlProject, name: str, expected: str
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write(name, "CREATE TABLE b (id int);\n")
    err = failed(migrate(sqlproject))
    assert name in err
    assert expected in err.lower()
    assert not {"a", "b"} & tables(sqlproject)


def test_invalid_version_is_named(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2x__create_b.sql", "CREATE TABLE b (id int);\n")
    err = failed(migrate(sqlproject))
    assert "V2x__create_b.sql" in err
    assert "a" not in tables(sqlproject)


def test_file_that_is_not_utf8_is_named(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", b"CREATE TABLE a (note text DEFAULT '\xe9');\n")
    err = failed(migrate(sqlproject))
    assert "V1__create_a.sql" in err
    assert "UTF-8" in err


# --- adoption of a Flyway-written history --------------------------------------------------

FLYWAY_DDL = """
CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "public"."flyway_schema_history"
    ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");
"""


def flyway_ran(project: SqlProject, *names: str, checksum_offset: int = 0) -> None:
    """Do what the Flyway CLI does for these files: run them and write its history rows."""
    with project.connect() as conn:
        conn.execute(FLYWAY_DDL)
        for rank, name in enumerate(names, start=1):
            path = project.sql_dir / name
            conn.execute(path.read_text())
            version, description = name.removeprefix("V").removesuffix(".sql").split("__")
            conn.execute(
                "INSERT INTO flyway_schema_history VALUES (%s, %s, %s, 'SQL', %s, %s, "
                "'flyway', now(), 5, true)",
                [
                    rank,
                    version,
                    description.replace("_", " "),
                    name,
                    flyway_checksum(path.read_bytes(), path=name) + checksum_offset,
                ],
            )


def test_adopts_a_flyway_written_history_without_running_sql_again(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    flyway_ran(sqlproject, "V1__create_a.sql", "V2__create_b.sql")
    sqlproject.write("V3__create_c.sql", "CREATE TABLE c (id int);\n")

    result = ok(migrate(sqlproject))
    assert sqlproject.query("SELECT count(*) FROM a") == [(1,)]  # V1 did not run twice
    # It says what it did: only Django's row for V1 and V2, the SQL of V3.
    assert (
        "  Adopting dbops.V1__create_a (already in flyway_schema_history, applied by flyway: "
        "recorded for Django, no SQL run)... OK"
    ) in result.stdout
    assert "Applying dbops.V1__create_a" not in result.stdout
    assert "  Applying dbops.V3__create_c... OK" in result.stdout
    rows = sqlproject.history()
    assert [(r[1], r[6]) for r in rows] == [
        ("1", "flyway"),
        ("2", "flyway"),
        ("3", sqlproject.server.user),
    ]
    applied = sqlproject.query("SELECT name FROM django_migrations WHERE app = 'dbops'")
    assert {r[0] for r in applied} == {"V1__create_a", "V2__create_b", "V3__create_c"}


def test_django_rows_out_of_order_are_an_error_not_a_traceback(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    ok(migrate(sqlproject))
    sqlproject.query("DELETE FROM django_migrations WHERE name = 'V1__create_a'")

    err = failed(migrate(sqlproject))

    assert "Migration dbops.V2__create_b is applied before its dependency dbops.V1__create_a" in err
    assert "compare `manage.py showmigrations` with `manage.py sqlmigrations info`" in err


def test_refuses_to_adopt_a_history_whose_checksum_differs(empty_sqlproject: SqlProject) -> None:
    empty_sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    flyway_ran(empty_sqlproject, "V1__create_a.sql", checksum_offset=1)
    err = failed(migrate(empty_sqlproject))
    assert "V1__create_a.sql" in err
    assert "checksum" in err or "edited since it was applied" in err
    assert "django_migrations" not in tables(empty_sqlproject)  # refused before anything ran


# --- non-transactional files, placeholders, repeatables ----------------------------------


def test_non_transactional_file_creates_index_concurrently(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n")
    sqlproject.write("V2__index_a.sql", "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n")
    sqlproject.write("V2__index_a.sql.conf", "executeInTransaction=false\n")
    ok(migrate(sqlproject))
    assert sqlproject.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id_idx'::regclass"
    ) == [(True,)]
    assert [r[1] for r in sqlproject.history()] == ["1", "2"]


def test_non_transactional_statements_run_one_by_one(sqlproject: SqlProject) -> None:
    # One query string would be one implicit transaction, where CONCURRENTLY fails.
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int, n int);\n")
    sqlproject.write(
        "V2__index_a.sql",
        "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n"
        "-- and a second one; semicolons in 'strings; like this' do not split\n"
        "CREATE INDEX CONCURRENTLY a_n_idx ON a (n) WHERE n <> length('x;y');\n",
    )
    sqlproject.write("V2__index_a.sql.conf", "executeInTransaction=false\n")
    sqlproject.write(
        "U2__index_a.sql", "DROP INDEX CONCURRENTLY a_id_idx;\nDROP INDEX CONCURRENTLY a_n_idx;\n"
    )
    sqlproject.write("U2__index_a.sql.conf", "executeInTransaction=false\n")
    ok(migrate(sqlproject))
    assert sqlproject.query(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'a'::regclass AND indisvalid"
    ) == [(2,)]
    ok(migrate(sqlproject, "dbops", "V1__create_a"))
    assert sqlproject.query("SELECT count(*) FROM pg_index WHERE indrelid = 'a'::regclass") == [
        (0,)
    ]


def test_transactional_concurrent_index_fails_with_a_hint(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__index_a.sql", "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n")
    err = failed(migrate(sqlproject))
    assert "V2__index_a.sql" in err
    assert "cannot run inside a transaction block" in err
    assert [r[1] for r in sqlproject.history()] == ["1"]


def test_failed_non_transactional_file_records_a_failed_row(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write(
        "V2__index_a.sql",
        "CREATE INDEX CONCURRENTLY a_id_idx ON a (id);\n"
        "CREATE INDEX CONCURRENTLY x ON nope (id);\n",
    )
    sqlproject.write("V2__index_a.sql.conf", "executeInTransaction=false\n")
    err = failed(migrate(sqlproject))
    assert "V2__index_a.sql" in err and "repair" in err
    assert "line 2" in err and 'relation "nope" does not exist' in err
    # Statements before the failure stay applied (there is no transaction to roll back).
    assert sqlproject.query("SELECT to_regclass('a_id_idx') IS NOT NULL") == [(True,)]
    rows = sqlproject.history()
    assert [(r[1], r[8]) for r in rows] == [("1", True), ("2", False)]
    # Flyway's rule: a failed row blocks the next run until it is repaired.
    err = failed(migrate(sqlproject))
    assert "failed" in err and "V2__index_a.sql" in err


def test_a_missing_role_is_found_before_anything_runs(sqlproject: SqlProject) -> None:
    # V3 grants to the role a placeholder names; the cluster has no such role. Without the
    # check V1 and V2 committed and V3 stopped the run halfway.
    sqlproject.placeholders = {"app_role": "nobody_here"}
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("V2__create_b.sql", "CREATE TABLE b (id int);\n")
    sqlproject.write(
        "V3__grant_reads.sql",
        "-- V3: reads for the app.\nGRANT SELECT ON a TO PUBLIC;\n"
        "GRANT SELECT ON a, b TO ${app_role};\n",
    )

    err = failed(migrate(sqlproject))

    assert (
        "V3__grant_reads.sql:3: 1 role named by pending migrations does not exist in this "
        "cluster, so nothing was applied:"
    ) in err
    assert (
        '  - V3__grant_reads.sql, line 3: role "nobody_here" through the placeholder '
        "${app_role} (SQL_MIGRATIONS['PLACEHOLDERS'])"
    ) in err
    assert "`manage.py dbroles provision` creates the application role" in err
    assert not {"a", "b"} & tables(sqlproject)
    assert sqlproject.history() == []


def test_placeholders_are_replaced(sqlproject: SqlProject) -> None:
    sqlproject.placeholders = {"owner_note": "kept by ops"}
    sqlproject.write(
        "V1__create_a.sql",
        "CREATE TABLE ${flyway:defaultSchema}.a (note text DEFAULT '${owner_note}');\n"
        "COMMENT ON TABLE a IS 'history in ${flyway:table}, by ${flyway:user}';\n",
    )
    ok(migrate(sqlproject))
    assert sqlproject.query(
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'a'"
    ) == [("'kept by ops'::text",)]
    assert sqlproject.query("SELECT obj_description('a'::regclass)") == [
        (f"history in flyway_schema_history, by {sqlproject.server.user}",)
    ]


def test_unknown_placeholder_names_file_and_line(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n\nSELECT '${nope}';\n")
    err = failed(migrate(sqlproject))
    assert "V1__create_a.sql" in err
    assert "nope" in err
    assert "3" in err
    assert "a" not in tables(sqlproject)


def test_repeatables_run_after_versioned_and_again_when_changed(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.write("R__a_view.sql", "CREATE OR REPLACE VIEW a_view AS SELECT id FROM a;\n")
    ok(migrate(sqlproject))
    rows = sqlproject.history()
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("1", "create a", "V1__create_a.sql"),
        (None, "a view", "R__a_view.sql"),
    ]

    ok(migrate(sqlproject))
    assert len(sqlproject.history()) == 2  # unchanged: not run again

    sqlproject.write(
        "R__a_view.sql", "CREATE OR REPLACE VIEW a_view AS SELECT id, id * 2 AS twice FROM a;\n"
    )
    ok(migrate(sqlproject))
    rows = sqlproject.history()
    assert [r[4] for r in rows] == ["V1__create_a.sql", "R__a_view.sql", "R__a_view.sql"]
    assert rows[1][5] != rows[2][5]
    assert sqlproject.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'a_view' "
        "ORDER BY ordinal_position"
    ) == [("id",), ("twice",)]


# --- concurrency and the lock ------------------------------------------------------------


def test_four_concurrent_migrators_apply_each_file_once(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_log.sql", "CREATE TABLE log (version int);\n")
    for n in range(2, 16):
        sqlproject.write(
            f"V{n}__step_{n}.sql",
            f"CREATE TABLE t{n} (id int);\nINSERT INTO log VALUES ({n});\nSELECT pg_sleep(0.02);\n",
        )
    sqlproject.sync_wrappers()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: sqlproject.manage("migrate", sync=False), range(4)))
    for result in results:
        ok(result)
    assert (
        sqlproject.query("SELECT version, count(*) FROM log GROUP BY 1 HAVING count(*) > 1") == []
    )
    assert sqlproject.query("SELECT count(*) FROM log") == [(14,)]
    assert [r[1] for r in sqlproject.history()] == [str(n) for n in range(1, 16)]


def test_waits_for_a_flyway_run_holding_the_lock(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.sync_wrappers()
    with sqlproject.connect() as holder:
        # Flyway takes a transaction-level lock on the same key for its whole run.
        holder.autocommit = False
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [FLYWAY_LOCK_KEY])
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "migrate", "--no-input"],
            cwd=sqlproject.root,
            env=sqlproject.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "waiting" in first.lower()
        assert "a" not in tables(sqlproject)
        holder.rollback()  # Flyway finished: the lock is released
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "a" in tables(sqlproject)


def test_wrong_password_names_the_setting_and_hides_the_password(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.sync_wrappers()
    env = sqlproject.env()
    secret = "not-the-password-42"
    env["DATABASE_URL"] = (
        sqlproject.server.url(sqlproject.database).replace(
            sqlproject.server.password.replace("/", "%2F"), secret
        )
        if sqlproject.server.password
        else env["DATABASE_URL"]
    )
    result = run_manage("migrate", "--no-input", env=env, cwd=sqlproject.root)
    assert result.returncode != 0
    assert secret not in result.stdout + result.stderr
    assert "password authentication failed" in result.stderr
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_host_is_a_clear_error(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int);\n")
    sqlproject.sync_wrappers()
    env = {**sqlproject.env(), "DATABASE_URL": "postgres://u:pw-hidden-9@127.0.0.1:1/nowhere"}
    result = run_manage("migrate", "--no-input", env=env, cwd=sqlproject.root)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot connect to the database u@127.0.0.1:1/nowhere (DATABASE_URL)" in result.stderr
    assert "Connection refused" in result.stderr
    assert "pw-hidden-9" not in result.stdout + result.stderr


# --- nothing pending: no Django migration state rendered ------------------------------


def test_nothing_pending_says_so_and_still_sends_post_migrate(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    ok(migrate(sqlproject))
    # post_migrate receivers (contenttypes, auth) repair what is missing on every run.
    sqlproject.query(
        "DELETE FROM auth_permission WHERE content_type_id IN (SELECT id FROM"
        " django_content_type WHERE app_label = 'auth' AND model = 'group')"
    )
    sqlproject.query("DELETE FROM django_content_type WHERE app_label = 'auth' AND model = 'group'")

    out = ok(migrate(sqlproject)).stdout

    applied = out.split("Apply all migrations: ")[1].split("\n")[0].split(", ")
    assert {"auth", "contenttypes", "dbops"} <= set(applied)
    assert out.rstrip().endswith("No migrations to apply.")
    assert sqlproject.query(
        "SELECT codename FROM auth_permission JOIN django_content_type ct"
        " ON ct.id = content_type_id WHERE ct.app_label = 'auth' AND ct.model = 'group'"
        " ORDER BY codename"
    ) == [("add_group",), ("change_group",), ("delete_group",), ("view_group",)]


def test_nothing_pending_still_applies_a_changed_repeatable(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    sqlproject.write("R__a_view.sql", "CREATE OR REPLACE VIEW a_view AS SELECT id FROM a;\n")
    ok(migrate(sqlproject))
    sqlproject.write(
        "R__a_view.sql", "CREATE OR REPLACE VIEW a_view AS SELECT id, 1 AS one FROM a;\n"
    )

    out = ok(migrate(sqlproject)).stdout

    assert "No migrations to apply." in out
    assert "Applying repeatable R__a_view.sql... OK" in out
    assert sqlproject.query("SELECT one FROM a_view") == []


def test_a_pending_django_migration_is_applied_by_django(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    ok(migrate(sqlproject))
    sqlproject.query("DROP TABLE django_session")
    sqlproject.query("DELETE FROM django_migrations WHERE app = 'sessions'")

    out = ok(migrate(sqlproject)).stdout

    assert "Applying sessions.0001_initial... OK" in out
    assert sqlproject.query("SELECT count(*) FROM django_session") == [(0,)]


# --- one round trip per file: the file, its flyway row and its Django row -------------

# Runs `migrate` in a process of its own, watching every query through Django's
# instrumentation API and what pre_migrate/post_migrate receivers are given.
PROBE = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from django.db import connections
from django.db.models.signals import post_migrate, pre_migrate
from sqlmigrations.engine import migration_alias

connection = connections[migration_alias()]  # the alias migrate runs on

queries, seen = [], {}

def watch(execute, sql, params, many, context):
    queries.append(sql)
    return execute(sql, params, many, context)

def receiver(name):
    def receive(sender, apps, **kwargs):
        if sender.label != "contenttypes":
            return
        try:
            apps.get_model("contenttypes", "ContentType")
            seen[name] = "ContentType"
        except LookupError:
            seen[name] = "none"
    return receive

pre_migrate.connect(receiver("pre"), weak=False)
post_migrate.connect(receiver("post"), weak=False)
with connection.execute_wrapper(watch):
    call_command("migrate", "--no-input", verbosity=0)
json.dump({"queries": queries, "seen": seen}, sys.stdout)
"""


def probe(project: SqlProject) -> dict[str, object]:
    project.sync_wrappers()
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=project.root,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_each_file_and_both_of_its_rows_go_in_one_query(sqlproject: SqlProject) -> None:
    files = {
        "V1__create_a.sql": "CREATE TABLE a (id int PRIMARY KEY);\n",
        "V2__seed_a.sql": "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\n",
        "V3__create_b.sql": "CREATE TABLE b (a_id int REFERENCES a);\n",
    }
    for name, text in files.items():
        sqlproject.write(name, text)

    queries: list[str] = probe(sqlproject)["queries"]  # type: ignore[assignment]

    for name, text in files.items():
        carrying = [q for q in queries if text.strip() in q]
        assert len(carrying) == 1, (name, carrying)
        (query,) = carrying
        assert "INSERT INTO" in query and name in query  # its flyway_schema_history row
        assert '"django_migrations"' in query and name.removesuffix(".sql") in query
        # Nothing else records the wrapper: Django's recorder is not called for it.
        others = [q for q in queries if q is not query and name.removesuffix(".sql") in q]
        assert others == []
    assert sqlproject.query("SELECT count(*) FROM b") == [(0,)]
    assert sqlproject.query(
        "SELECT name FROM django_migrations WHERE app = 'dbops' ORDER BY id"
    ) == [("V1__create_a",), ("V2__seed_a",), ("V3__create_b",)]
    assert [row[1] for row in sqlproject.history()] == ["1", "2", "3"]


def test_receivers_get_the_models_before_and_after_the_run(empty_sqlproject: SqlProject) -> None:
    empty_sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")

    seen = probe(empty_sqlproject)["seen"]

    # On an empty database contenttypes is not migrated yet before the run, and is after.
    assert seen == {"pre": "none", "post": "ContentType"}
    assert empty_sqlproject.query(
        "SELECT count(*) > 0 FROM django_content_type WHERE app_label = 'contenttypes'"
    ) == [(True,)]


def test_files_with_awkward_endings_are_applied_and_recorded(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__no_final_semicolon.sql", "CREATE TABLE a (id int PRIMARY KEY)")
    sqlproject.write(
        "V2__ends_in_a_comment.sql", "INSERT INTO a VALUES (1);\n-- no newline after this"
    )
    sqlproject.write(
        "V3__percent_and_quotes.sql",
        "CREATE TABLE b (pattern text DEFAULT 'it''s 100% %s');\nINSERT INTO b DEFAULT VALUES;\n",
    )
    result = sqlproject.manage("migrate", "--no-input")
    assert result.returncode == 0, result.stderr

    rows = sqlproject.query(
        "SELECT version, success, execution_time >= 0 FROM flyway_schema_history"
        " ORDER BY installed_rank"
    )
    assert rows == [("1", True, True), ("2", True, True), ("3", True, True)]
    assert sqlproject.query("SELECT id FROM a") == [(1,)]
    assert sqlproject.query("SELECT pattern FROM b") == [("it's 100% %s",)]
