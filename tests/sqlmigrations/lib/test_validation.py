"""validate(): the team's convention on top of Flyway's rules (no database needed)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlmigrations.lib.files import discover
from sqlmigrations.lib.history import TYPE_DELETE, TYPE_SQL, HistoryRow
from sqlmigrations.lib.validation import validate


def row(rank: int, version: str, script: str, checksum: int, kind: str = TYPE_SQL) -> HistoryRow:
    return HistoryRow(
        rank,
        version,
        script.split("__")[1][:-4].replace("_", " "),
        kind,
        script,
        checksum,
        "owner",
        datetime(2026, 1, 1),
        1,
        True,
    )


def test_a_gap_is_a_problem_unless_the_history_marks_the_version_deleted(tmp_path: Path) -> None:
    (tmp_path / "V1__create_a.sql").write_text("CREATE TABLE a (id int);\n")
    (tmp_path / "V3__create_c.sql").write_text("CREATE TABLE c (id int);\n")
    files = discover(tmp_path)
    v1 = files[0]
    applied = [row(1, "1", v1.script, v1.checksum)]
    problems = validate(files, applied)
    assert [(p.code, p.script) for p in problems] == [("gap", "V3__create_c.sql")]
    assert "V2 is missing" in str(problems[0])

    # `sqlmigrations repair` marked V2 deleted after its file was removed on purpose.
    repaired = [
        *applied,
        row(2, "2", "V2__create_b.sql", 7),
        row(3, "2", "V2__create_b.sql", 7, kind=TYPE_DELETE),
    ]
    assert validate(files, repaired) == []


def test_a_deleted_applied_file_is_asked_back_and_the_next_one_keeps_its_name(
    tmp_path: Path,
) -> None:
    for n, name in ((4, "create_d"), (6, "create_f")):
        (tmp_path / f"V{n}__{name}.sql").write_text(f"CREATE TABLE t{n} (id int);\n")
    files = discover(tmp_path)
    v4, v6 = files
    history = [
        row(4, "4", v4.script, v4.checksum),
        row(5, "5", "V5__create_e.sql", 55),  # applied, then its file was deleted
        row(6, "6", v6.script, v6.checksum),
    ]

    problems = validate(files, history)

    assert [(p.code, p.script) for p in problems] == [("missing", "V5__create_e.sql")]
    assert "restore the file from version control" in problems[0].message
    assert "rename" not in str(problems).lower()


def test_a_gap_before_an_applied_file_never_asks_to_rename_it(tmp_path: Path) -> None:
    for n, name in ((4, "create_d"), (6, "create_f")):
        (tmp_path / f"V{n}__{name}.sql").write_text(f"CREATE TABLE t{n} (id int);\n")
    files = discover(tmp_path)
    v4, v6 = files
    # V5 ran elsewhere, or its row was removed by hand: no history of it here.
    history = [row(4, "4", v4.script, v4.checksum), row(6, "6", v6.script, v6.checksum)]

    problems = validate(files, history)

    assert [(p.code, p.script) for p in problems] == [("gap", "V6__create_f.sql")]
    assert "V6__create_f.sql is already applied, so it keeps its version" in problems[0].message
    assert "restore the deleted V5 file" in problems[0].message
    assert "rename" not in problems[0].message


def test_convention_messages_name_the_file_once(tmp_path: Path) -> None:
    (tmp_path / "V1__Create_A.sql").write_text("CREATE TABLE a (id int);\n")
    problems = validate(discover(tmp_path), [])
    assert problems, "a CamelCase description breaks the convention"
    for problem in problems:
        assert str(problem).count("V1__Create_A.sql") == 1 or "rename it to" in str(problem)
        assert not str(problem).startswith("V1__Create_A.sql: V1__Create_A.sql")


def test_rename_advice_skips_versions_the_history_holds(tmp_path: Path) -> None:
    (tmp_path / "V1__create_a.sql").write_text("CREATE TABLE a (id int);\n")
    (tmp_path / "V2_1__late_fix.sql").write_text("SELECT 1;\n")
    files = discover(tmp_path)
    history = [
        row(1, "1", files[0].script, files[0].checksum),
        row(2, "2", "V2__create_b.sql", 7),  # applied, then removed on purpose
        row(3, "2", "V2__create_b.sql", 7, kind=TYPE_DELETE),
    ]

    problems = validate(files, history)

    messages = [str(p) for p in problems if p.script == "V2_1__late_fix.sql"]
    assert "V2_1__late_fix.sql: rename it to V3__late_fix.sql" in messages
    assert not any("V2__late_fix" in m for m in messages)


def test_an_applied_file_is_never_asked_to_be_renamed(tmp_path: Path) -> None:
    (tmp_path / "V1__create_a.sql").write_text("CREATE TABLE a (id int);\n")
    (tmp_path / "V1_5__Late_Fix.sql").write_text("SELECT 1;\n")
    files = discover(tmp_path)
    history = [row(1, "1", f.script, f.checksum) for f in files[:1]]
    history.append(row(2, "1.5", files[1].script, files[1].checksum))

    assert validate(files, history) == []  # applied under that name: it keeps it
    assert [p.code for p in validate(files, history[:1])] == ["convention"] * 3
