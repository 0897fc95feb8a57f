"""lint(): the team guide's rules and squawk's findings, in-process, file by file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from sqlmigrations.lib.files import MigrationFile, discover
from sqlmigrations.lib.flywayconf import FlywayConfig
from sqlmigrations.lib.history import TYPE_SQL, HistoryRow
from sqlmigrations.lib.lint import Finding, edited_files, flyway_lock, lint
from sqlmigrations.lib.placeholders import builtin_placeholders

A = "-- V1: table a. Rollback: DROP TABLE a.\nCREATE TABLE a (id bigint PRIMARY KEY);\n"
NO_LOCK = FlywayConfig(Path("flyway.toml"), transactional_lock=False)


def write(folder: Path, files: dict[str, str]) -> list[MigrationFile]:
    for name, text in files.items():
        (folder / name).write_text(text)
    return discover(folder)


def run_lint(
    folder: Path,
    files: dict[str, str],
    *,
    only: list[str] | None = None,
    placeholders: dict[str, str] | None = None,
    rows: list[HistoryRow] | None = None,
    committed: dict[str, int] | None = None,
) -> list[Finding]:
    found = write(folder, files)
    targets = [mf for mf in found if only is None or mf.script in only]
    # The values lint uses without a database: user and database "lint".
    values: dict[str, str | None] = dict(
        builtin_placeholders(
            schema="public",
            user="lint",
            database="lint",
            table="flyway_schema_history",
            filename="",
        )
    )
    values.update(placeholders or {})
    return lint(found, targets, values=values, flyway=NO_LOCK, rows=rows, committed=committed)


def where(findings: list[Finding]) -> set[tuple[str, int, str]]:
    return {(f.script, f.line, f.rule) for f in findings}


def test_clean_files_with_placeholders_replaced_have_no_findings(tmp_path: Path) -> None:
    files = {"V1__create_a.sql": A + "GRANT SELECT ON a TO ${app_role};\n"}
    assert run_lint(tmp_path, files, placeholders={"app_role": "choregarden"}) == []


def test_sql_postgresql_cannot_parse_is_a_syntax_error_at_its_line(tmp_path: Path) -> None:
    findings = run_lint(tmp_path, {"V1__create_a.sql": A + "SELEC 1;\n"})
    assert where(findings) == {("V1__create_a.sql", 3, "syntax-error")}


def test_a_missing_placeholder_makes_the_file_unreadable(tmp_path: Path) -> None:
    findings = run_lint(tmp_path, {"V1__create_a.sql": A + "GRANT SELECT ON a TO ${nobody};\n"})
    assert where(findings) == {("V1__create_a.sql", 3, "unreadable")}
    assert "nobody" in findings[0].message


def test_a_dropped_column_needs_an_earlier_deprecation(tmp_path: Path) -> None:
    created = A.replace("PRIMARY KEY", "PRIMARY KEY, note text")
    drop = "-- Rollback: none\n\nALTER TABLE a DROP COLUMN note;\n"
    findings = run_lint(tmp_path, {"V1__create_a.sql": created, "V2__drop_note.sql": drop})
    assert where(findings) == {("V2__drop_note.sql", 3, "drop-column-without-deprecation")}
    assert findings[0].message == "drops column a.note without a deprecation step"

    deprecate = (
        "-- Rollback: COMMENT ON COLUMN a.note IS NULL\n"
        "COMMENT ON COLUMN a.note IS 'DEPRECATED: unused since 2.3, dropped in V3';\n"
    )
    (tmp_path / "V2__drop_note.sql").unlink()
    files = {"V2__deprecate_note.sql": deprecate, "V3__drop_note.sql": drop}
    assert run_lint(tmp_path, files) == []


def test_a_deprecation_in_the_same_or_a_later_file_does_not_count(tmp_path: Path) -> None:
    created = A.replace("PRIMARY KEY", "PRIMARY KEY, note text")
    same = (
        "-- Rollback: none\nCOMMENT ON COLUMN a.note IS 'DEPRECATED';\n"
        "ALTER TABLE a DROP COLUMN note;\n"
    )
    findings = run_lint(tmp_path, {"V1__create_a.sql": created, "V2__drop_note.sql": same})
    assert where(findings) == {("V2__drop_note.sql", 3, "drop-column-without-deprecation")}


def test_an_index_on_an_existing_table_must_be_concurrent_outside_a_transaction(
    tmp_path: Path,
) -> None:
    files = {
        "V1__create_a.sql": A + "CREATE INDEX a_id ON a (id);\n",  # a table of the same file
        "V2__index_a.sql": "-- Rollback: DROP INDEX a_id2\nCREATE INDEX a_id2 ON a (id);\n",
        "V3__index_a.sql": "-- Rollback: DROP INDEX a_id3\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_id3 ON a (id);\n",
    }
    findings = run_lint(tmp_path, files)
    assert where(findings) == {
        ("V2__index_a.sql", 2, "index-not-concurrent"),
        ("V3__index_a.sql", 2, "concurrently-in-transaction"),
    }
    hint = next(f.help for f in findings if f.script == "V3__index_a.sql")
    assert "executeInTransaction=false" in hint and "V3__index_a.sql.conf" in hint

    (tmp_path / "V2__index_a.sql").unlink()
    (tmp_path / "V3__index_a.sql.conf").write_text("executeInTransaction=false\n")
    assert run_lint(tmp_path, {"V2__note.sql": "-- Rollback: nothing to undo\nSELECT 1;\n"}) == []


def test_a_file_outside_a_transaction_holds_one_statement(tmp_path: Path) -> None:
    (tmp_path / "V2__index_a.sql.conf").write_text("executeInTransaction=false\n")
    files = {
        "V1__create_a.sql": A,
        "V2__index_a.sql": "-- Rollback: DROP INDEX a_x, a_y\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_x ON a (id);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_y ON a (id);\n",
    }
    findings = run_lint(tmp_path, files, only=["V2__index_a.sql"])
    assert where(findings) == {("V2__index_a.sql", 3, "non-transactional-multi-statement")}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"V1__create_a.sql": "CREATE TABLE a (id bigint PRIMARY KEY);\n"}, True),
        ({"V1__create_a.sql": "/* revert: DROP TABLE a */ CREATE TABLE a (id int);\n"}, False),
        (
            {
                "V1__create_a.sql": "CREATE TABLE a (id bigint PRIMARY KEY);\n",
                "U1__create_a.sql": "DROP TABLE a;\n",
            },
            False,
        ),
        ({"R__view.sql": "CREATE OR REPLACE VIEW v AS SELECT 1 AS one;\n"}, False),
    ],
    ids=["nothing", "comment", "undo-file", "repeatable"],
)
def test_a_versioned_file_says_how_to_roll_it_back(
    tmp_path: Path, files: dict[str, str], expected: bool
) -> None:
    findings = run_lint(tmp_path, files)
    assert (("V1__create_a.sql", 1, "no-rollback-instructions") in where(findings)) is expected


def test_squawk_findings_come_back_at_file_and_line(tmp_path: Path) -> None:
    files = {
        "V1__create_a.sql": A,
        "V2__add_required.sql": "-- Rollback: ALTER TABLE a DROP COLUMN owner\n\n"
        "ALTER TABLE a ADD COLUMN owner bigint NOT NULL;\n",
    }
    findings = run_lint(tmp_path, files)
    assert where(findings) == {("V2__add_required.sql", 3, "adding-required-field")}
    assert findings[0].source == "squawk"


def test_squawk_lints_the_rendered_copy_of_a_file_with_placeholders(tmp_path: Path) -> None:
    files = {
        "V1__create_a.sql": A,
        "V2__add_required.sql": "-- Rollback: ALTER TABLE a DROP COLUMN owner\n"
        "ALTER TABLE ${table} ADD COLUMN owner bigint NOT NULL;\n",
    }
    findings = run_lint(tmp_path, files, placeholders={"table": "a"})
    assert where(findings) == {("V2__add_required.sql", 2, "adding-required-field")}


def test_edits_of_applied_and_committed_files_are_named(tmp_path: Path) -> None:
    v1, v2 = write(tmp_path, {"V1__create_a.sql": A, "V2__create_b.sql": A.replace(" a", " b")})
    applied = HistoryRow(
        1, "1", "create a", TYPE_SQL, v1.script, v1.checksum + 1, "owner",
        datetime(2026, 3, 4, 5, 6), 1, True,
    )  # fmt: skip
    findings = edited_files([v1, v2], [applied], {v2.script: v2.checksum + 1})
    assert [str(f) for f in findings] == [
        f"V1__create_a.sql:1: edited-applied-file: differs from the version applied on "
        f"2026-03-04 05:06 (checksum {v1.checksum} on disk, {v1.checksum + 1} applied) "
        "(revert the edit and put the change in a new migration)",
        "V2__create_b.sql:1: edited-committed-file: differs from the committed version at "
        "the base ref; a committed migration may already have run somewhere (revert the edit "
        "and put the change in a new migration)",
    ]
    assert edited_files([v1, v2], [], {v1.script: v1.checksum, v2.script: v2.checksum}) == []


def test_a_file_outside_a_transaction_needs_flyways_lock_outside_one_too(tmp_path: Path) -> None:
    (tmp_path / "V1__index.sql.conf").write_text("executeInTransaction=false\n")
    files = write(tmp_path, {"V1__index.sql": "SELECT 1;\n", "V2__plain.sql": "SELECT 2;\n"})

    assert flyway_lock(files, NO_LOCK) == []
    (missing,) = flyway_lock(files, None)
    assert (missing.script, missing.rule) == ("V1__index.sql", "flyway-transactional-lock")
    assert "the project has no flyway.toml" in missing.message
    (locked,) = flyway_lock(files, FlywayConfig(tmp_path / "flyway.conf", True))
    assert locked.help == "set `flyway.postgresql.transactional.lock=false` in flyway.conf"
