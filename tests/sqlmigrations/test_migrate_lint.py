"""`migrate` refuses dangerous operations on large tables before anything runs (issue 19).

Each test builds a throwaway project (tests/sqlproject.py) whose V1 makes a table `big`
(5,000 rows, filled with generate_series) and a table `small` (10 rows). The threshold
is lowered to 1,000 rows in a settings module of the test, rather than filling millions
of rows: what is tested is that the size is read from the live catalog and compared.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pglast import parse_sql

from sqlmigrations.lib.acknowledgements import BadAcknowledgement
from sqlmigrations.lib.dangerous import RULES, acknowledgements, classify, needs_rewrite
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import discover
from sqlmigrations.lib.livecatalog import parse_size
from tests import forkserver
from tests.sqlproject import SqlProject

V1 = """-- Rollback: DROP TABLE big, small.
CREATE TABLE small (id bigint PRIMARY KEY, title text);
INSERT INTO small SELECT i, 'row ' || i FROM generate_series(1, 10) AS i;
CREATE TABLE big (
    id bigint PRIMARY KEY,
    title text,
    code varchar(10),
    n int,
    ref_id bigint
) WITH (autovacuum_enabled = false);  -- never analyzed unless a test says so
INSERT INTO big SELECT i, 'row ' || i, 'c', i, 1 FROM generate_series(1, 5000) AS i;
"""

# rule, SQL on the table {t}: each one dangerous on a large table.
DANGEROUS = [
    ("table-rewrite", "ALTER TABLE {t} ALTER COLUMN n TYPE bigint;"),
    ("table-rewrite", "ALTER TABLE {t} ADD COLUMN u float8 DEFAULT random();"),
    ("table-rewrite", "ALTER TABLE {t} ADD COLUMN s bigserial;"),
    ("set-not-null", "ALTER TABLE {t} ALTER COLUMN title SET NOT NULL;"),
    (
        "constraint-not-valid",
        "ALTER TABLE {t} ADD CONSTRAINT {t}_ref FOREIGN KEY (ref_id) REFERENCES small (id);",
    ),
    ("constraint-not-valid", "ALTER TABLE {t} ADD CONSTRAINT {t}_n CHECK (n > 0);"),
    ("index-not-concurrent", "CREATE INDEX {t}_n_idx ON {t} (n);"),
    ("constraint-without-index", "ALTER TABLE {t} ADD CONSTRAINT {t}_n_key UNIQUE (n);"),
]
ROLLBACK = "-- Rollback: by hand.\n"


def migrate(project: SqlProject, *args: str) -> subprocess.CompletedProcess[str]:
    """Run migrate with the threshold at 1,000 rows (and 1GB, which no table here reaches)."""
    return manage(project, "migrate", "--no-input", *args)


def manage(project: SqlProject, *args: str, size: str = "1GB") -> subprocess.CompletedProcess[str]:
    project.sync_wrappers()
    module = f"{project.package}_limits"
    (project.root / f"{module}.py").write_text(
        f"from {project.package}_settings import *  # noqa: F403\n\n"
        "SQL_MIGRATIONS = {**SQL_MIGRATIONS, "
        f'"LARGE_TABLE_ROWS": 1000, "LARGE_TABLE_SIZE": {size!r}}}\n'
    )
    env = {**project.env(), "DJANGO_SETTINGS_MODULE": module}
    return forkserver.run_manage(*args, env=env, cwd=project.root)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def versions(project: SqlProject) -> list[str]:
    return [row[1] for row in project.history()]


@pytest.fixture
def project(sqlproject: SqlProject) -> SqlProject:
    sqlproject.write("V1__tables.sql", V1)
    ok(migrate(sqlproject))
    return sqlproject


@pytest.mark.parametrize(("rule", "sql"), DANGEROUS)
def test_a_dangerous_operation_on_a_large_table_stops_migrate_before_anything_runs(
    project: SqlProject, rule: str, sql: str
) -> None:
    project.write("V2__harmless.sql", ROLLBACK + "CREATE TABLE other (id int);\n")
    project.write("V3__danger.sql", ROLLBACK + "\n" + sql.format(t="big") + "\n")
    err = refused(migrate(project))

    assert f"V3__danger.sql:3: {rule}: " in err
    # Never analyzed (reltuples is -1): counted, up to the threshold.
    assert "on table big (more than 1,000 rows, " in err
    does, recipe = RULES[rule]
    assert does in err and recipe in err
    assert "nothing was applied" in err
    # The whole pending set is checked first: not even V2 ran.
    assert versions(project) == ["1"]
    assert not project.query("SELECT to_regclass('other')")[0][0]


@pytest.mark.parametrize("target", [("dbops",), ("dbops", "V3__later")])
def test_migrate_with_an_app_label_checks_its_files_too(
    project: SqlProject, target: tuple[str, ...]
) -> None:
    # `migrate <app> [<name>]` goes through Django's own migrate: the same check runs first.
    project.write("V2__idx.sql", ROLLBACK + "CREATE INDEX big_n_idx ON big (n);\n")
    project.write("V3__later.sql", ROLLBACK + "SELECT 1;\n")
    err = refused(migrate(project, *target))
    assert "V2__idx.sql:2: index-not-concurrent" in err
    assert versions(project) == ["1"]
    # Back to V1 is not checked (nothing forward runs).
    ok(migrate(project, "dbops", "V1__tables"))


def test_the_guide_and_squawk_findings_on_pending_files_are_warnings(project: SqlProject) -> None:
    # No rollback instructions (the guide's rule) and a 32-bit integer (squawk's).
    project.write("V2__bare.sql", "CREATE TABLE bare (n int);\n")
    result = migrate(project)
    ok(result)
    assert "lint warning: V2__bare.sql:1: no-rollback-instructions" in result.stdout
    assert "lint warning: V2__bare.sql:1: prefer-bigint-over-int" in result.stdout
    # Only the files about to run: V1 (applied, also without a primary key) is not linted.
    assert "V1__tables.sql" not in result.stdout
    assert versions(project) == ["1", "2"]
    # Nothing pending: nothing linted.
    assert "lint warning" not in migrate(project).stdout


def test_the_same_operations_on_a_small_table_are_applied(project: SqlProject) -> None:
    body = "\n".join(sql.format(t="small") for _, sql in DANGEROUS)
    project.query("ALTER TABLE small ADD COLUMN n int, ADD COLUMN ref_id bigint")
    project.query("UPDATE small SET n = id, ref_id = 1")
    project.write("V2__small.sql", ROLLBACK + body + "\n")
    ok(migrate(project))
    assert versions(project) == ["1", "2"]


def test_the_safe_recipes_on_a_large_table_are_applied(project: SqlProject) -> None:
    project.write(
        "V2__safe.sql",
        ROLLBACK
        + "ALTER TABLE big ALTER COLUMN code TYPE varchar(20);\n"
        + "ALTER TABLE big ALTER COLUMN title TYPE text;\n"
        + "ALTER TABLE big ADD COLUMN flag boolean NOT NULL DEFAULT false;\n"
        + "ALTER TABLE big ADD COLUMN seen timestamptz DEFAULT now();\n"
        + "ALTER TABLE big ADD CONSTRAINT big_ref FOREIGN KEY (ref_id) REFERENCES small (id) "
        "NOT VALID;\n"
        + "ALTER TABLE big VALIDATE CONSTRAINT big_ref;\n"
        + "ALTER TABLE big ADD CONSTRAINT big_title_nn CHECK (title IS NOT NULL) NOT VALID;\n"
        + "ALTER TABLE big VALIDATE CONSTRAINT big_title_nn;\n"
        + "ALTER TABLE big ALTER COLUMN title SET NOT NULL;\n",
    )
    ok(migrate(project))
    assert versions(project) == ["1", "2"]


def test_set_not_null_passes_on_a_valid_check_already_in_the_catalog(project: SqlProject) -> None:
    project.query("ALTER TABLE big ADD CONSTRAINT big_n_nn CHECK (n IS NOT NULL)")
    project.query("ALTER TABLE big ADD CONSTRAINT big_t_nn CHECK (title IS NOT NULL) NOT VALID")
    project.write("V2__n.sql", ROLLBACK + "ALTER TABLE big ALTER COLUMN n SET NOT NULL;\n")
    project.write("V3__t.sql", ROLLBACK + "ALTER TABLE big ALTER COLUMN title SET NOT NULL;\n")
    err = refused(migrate(project))
    # The valid CHECK on n lets V2 through; the NOT VALID one on title does not.
    assert "V3__t.sql:2: set-not-null" in err and "V2__n.sql" not in err


def test_the_not_null_recipe_over_three_pending_files_goes_in_one_run(project: SqlProject) -> None:
    # CHECK NOT VALID, VALIDATE, SET NOT NULL: one file each, one deploy. V4 runs after V3
    # has committed, so the check sees V3's validated CHECK as migrate will.
    project.write(
        "V2__check.sql",
        ROLLBACK + "ALTER TABLE big ADD CONSTRAINT big_t_nn CHECK (title IS NOT NULL) NOT VALID;\n",
    )
    project.write("V3__validate.sql", ROLLBACK + "ALTER TABLE big VALIDATE CONSTRAINT big_t_nn;\n")
    project.write(
        "V4__not_null.sql", ROLLBACK + "ALTER TABLE big ALTER COLUMN title SET NOT NULL;\n"
    )
    lint = manage(project, "sqlmigrations", "lint", "--no-git")
    assert "set-not-null" not in lint.stdout + lint.stderr
    ok(migrate(project))
    assert versions(project) == ["1", "2", "3", "4"]


def test_a_check_left_not_valid_by_the_earlier_file_still_stops_set_not_null(
    project: SqlProject,
) -> None:
    project.write(
        "V2__check.sql",
        ROLLBACK + "ALTER TABLE big ADD CONSTRAINT big_t_nn CHECK (title IS NOT NULL) NOT VALID;\n",
    )
    project.write(
        "V3__not_null.sql", ROLLBACK + "ALTER TABLE big ALTER COLUMN title SET NOT NULL;\n"
    )
    err = refused(migrate(project))
    assert "V3__not_null.sql:2: set-not-null" in err
    assert versions(project) == ["1"]


def test_an_acknowledged_operation_is_applied_and_shown(project: SqlProject) -> None:
    project.query("ANALYZE big")
    project.write(
        "V2__ack.sql",
        ROLLBACK
        + '-- choregarden:allow table-rewrite reason="off-hours window agreed"\n'
        + "ALTER TABLE big ALTER COLUMN n TYPE bigint;\n",
    )
    out = ok(migrate(project))
    assert "Acknowledged table-rewrite at V2__ack.sql:3: off-hours window agreed" in out
    assert project.query(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'big' AND column_name = 'n'"
    ) == [("bigint",)]


def test_an_acknowledgement_covers_its_rule_only(project: SqlProject) -> None:
    project.query("ANALYZE big")
    project.write(
        "V2__ack.sql",
        ROLLBACK
        + '-- choregarden:allow table-rewrite reason="off-hours"\n'
        + "CREATE INDEX big_n_idx ON big (n);\n",
    )
    err = refused(migrate(project))
    assert "V2__ack.sql:3: index-not-concurrent" in err
    assert "on table big (~5,000 rows" in err  # analyzed: pg_class.reltuples


def test_an_unknown_rule_in_an_acknowledgement_is_an_error_at_its_line(
    project: SqlProject,
) -> None:
    project.write(
        "V2__typo.sql",
        ROLLBACK + '-- choregarden:allow table-rewrites reason="x"\nSELECT 1;\n',
    )
    err = refused(migrate(project))
    assert "V2__typo.sql:2: unknown rule 'table-rewrites'" in err
    assert versions(project) == ["1"]


def test_dropping_a_column_a_model_reads_is_refused_naming_the_model(
    project: SqlProject,
) -> None:
    project.query("CREATE TABLE tasks (id bigint PRIMARY KEY, title text, legacy text)")
    project.write("V2__drop.sql", ROLLBACK + "ALTER TABLE tasks DROP COLUMN title;\n")
    err = refused(migrate(project))
    assert "V2__drop.sql:2: drop-column-in-use: DROP COLUMN title on table tasks" in err
    assert "chores.Task.title reads tasks.title" in err
    assert "expand/contract" in err
    assert versions(project) == ["1"]


def test_dropping_a_column_no_model_reads_is_applied(project: SqlProject) -> None:
    project.query("CREATE TABLE tasks (id bigint PRIMARY KEY, title text, legacy text)")
    project.write("V2__drop.sql", ROLLBACK + "ALTER TABLE tasks DROP COLUMN legacy;\n")
    ok(migrate(project))
    assert versions(project) == ["1", "2"]


@pytest.mark.parametrize(
    "sql",
    ["ALTER TABLE small RENAME COLUMN title TO name;", "ALTER TABLE small RENAME TO little;"],
)
def test_a_rename_is_refused_with_the_recipe_whatever_the_size(
    project: SqlProject, sql: str
) -> None:
    project.write("V2__rename.sql", ROLLBACK + sql + "\n")
    err = refused(migrate(project))
    assert "V2__rename.sql:2: rename: RENAME" in err
    assert "expand/contract over two releases" in err
    assert 'docs/migrations.md, "Rename a column"' in err
    assert versions(project) == ["1"]


def test_the_rename_recipe_of_the_docs_runs_through_migrate(project: SqlProject) -> None:
    """docs/migrations.md, "Rename a column": small.title becomes small.name."""
    project.write("V2__add_name.sql", ROLLBACK + "ALTER TABLE small ADD COLUMN name text;\n")
    ok(migrate(project))
    project.query("UPDATE small SET name = title WHERE id BETWEEN 1 AND 10000 AND name IS NULL")
    project.write(
        "V3__deprecate_title.sql",
        ROLLBACK + "COMMENT ON COLUMN small.title IS 'DEPRECATED: renamed to name';\n",
    )
    ok(migrate(project))
    project.write("V4__drop_title.sql", ROLLBACK + "ALTER TABLE small DROP COLUMN title;\n")
    ok(migrate(project))
    assert project.query("SELECT name FROM small WHERE id = 3") == [("row 3",)]
    lint = manage(project, "sqlmigrations", "lint", "--no-git", "--no-db")
    assert "drop-column-without-deprecation" not in lint.stdout


def test_a_size_threshold_that_is_not_a_size_is_refused_naming_the_setting(
    project: SqlProject,
) -> None:
    project.write("V2__idx.sql", ROLLBACK + "CREATE INDEX big_n_idx ON big (n);\n")
    err = refused(manage(project, "migrate", "--no-input", size="lots"))
    assert "SQL_MIGRATIONS['LARGE_TABLE_SIZE']: 'lots' is not a size" in err
    assert versions(project) == ["1"]


def test_a_table_the_file_creates_is_not_checked(project: SqlProject) -> None:
    project.write(
        "V2__new.sql",
        ROLLBACK
        + "CREATE TABLE fresh (id int, n int);\n"
        + "CREATE INDEX fresh_n ON fresh (n);\n"
        + "ALTER TABLE fresh RENAME COLUMN n TO m;\n",
    )
    ok(migrate(project))


def test_lint_shows_the_same_finding_with_the_size(project: SqlProject) -> None:
    path = project.write("V2__idx.sql", ROLLBACK + "CREATE INDEX big_n_idx ON big (n);\n")
    result = manage(project, "sqlmigrations", "lint", "--no-git", str(path))
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if "index-not-concurrent" in x)
    assert line.startswith("V2__idx.sql:2: index-not-concurrent: ")
    assert "on table big (more than 1,000 rows" in line
    # Without a database: the guide's own finding, and no size.
    result = manage(project, "sqlmigrations", "lint", "--no-git", "--no-db", str(path))
    assert "V2__idx.sql:2: index-not-concurrent: CREATE INDEX on existing table big" in (
        result.stdout
    )
    assert "no database to read the sizes from" in result.stderr


# --- the acknowledgement parser and the pure helpers ---------------------------------------

RULE = st.sampled_from(sorted(RULES))
REASON = st.text(
    st.characters(blacklist_characters='"\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029'), min_size=1
).filter(str.strip)
SQL_LINE = st.text(st.characters(blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))


@given(st.lists(st.tuples(RULE, REASON), max_size=5), st.lists(SQL_LINE, max_size=5))
def test_acknowledgements_are_read_back_with_their_rule_reason_and_line(
    acks: list[tuple[str, str]], other: list[str]
) -> None:
    other = [line for line in other if "choregarden:" not in line]
    lines = other + [f'-- choregarden:allow {rule} reason="{reason}"' for rule, reason in acks]
    found = acknowledgements("\n".join(lines), "V1__x.sql")
    first: dict[str, tuple[str, int]] = {}
    for n, (rule, reason) in enumerate(acks, len(other) + 1):
        first.setdefault(rule, (reason.strip(), n))
    assert {rule: (a.reason, a.line) for rule, a in found.items()} == first


@given(st.text(st.characters(whitelist_categories=("Ll", "Pd")), min_size=1), REASON)
def test_an_unknown_rule_or_a_missing_reason_is_refused_at_its_line(rule: str, reason: str) -> None:
    text = f'SELECT 1;\n-- choregarden:allow {rule} reason="{reason}"\n'
    if rule in RULES:
        assert acknowledgements(text, "V1__x.sql")[rule].line == 2
        text = f"SELECT 1;\n-- choregarden:allow {rule}\n"
    with pytest.raises(BadAcknowledgement) as caught:
        acknowledgements(text, "V1__x.sql")
    assert caught.value.path == "V1__x.sql" and caught.value.line == 2


def test_sizes_read_as_postgresql_writes_them() -> None:
    assert parse_size("64MB", "s") == 64 * 1024**2
    assert parse_size("512kB", "s") == 512 * 1024
    assert parse_size(1000, "s") == 1000
    with pytest.raises(SqlMigrationError, match=r"^s: 'lots' is not a size"):
        parse_size("lots", "s")


def test_type_changes_postgresql_makes_in_the_catalog_only() -> None:
    varchar, numeric = 1043, 1700
    assert not needs_rewrite(varchar, 10 + 4, varchar, [20])
    assert needs_rewrite(varchar, 20 + 4, varchar, [10])
    assert not needs_rewrite(varchar, 10 + 4, varchar, [])
    assert not needs_rewrite(numeric, ((10 << 16) | 2) + 4, numeric, [12, 2])
    assert needs_rewrite(numeric, ((10 << 16) | 2) + 4, numeric, [12, 3])
    assert needs_rewrite(23, -1, 20, [])  # int4 -> int8
    assert not needs_rewrite(1042, 5 + 4, 1042, [5])  # char(5), unchanged
    assert needs_rewrite(1042, 5 + 4, 1042, [6])


def test_a_file_under_the_project_migrations_has_no_dangerous_operation() -> None:
    """The project's own files only create: migrate on a fresh or demo database passes."""
    folder = Path(__file__).resolve().parents[2] / "migrations_sql"
    values = {"app_role": "choregarden", "flyway:user": "owner", "flyway:database": "db"}
    files = discover(folder)
    assert files
    for mf in files:
        text = mf.render(values)
        assert parse_sql(text), mf.script  # parsed, so classify saw its statements
        ops = classify(mf, text, None, {("tasks", "title"): "chores.Task.title"})
        assert ops == [], mf.script
