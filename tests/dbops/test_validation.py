"""validate(): the team's convention on top of Flyway's rules (no database needed)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dbops.sqlmigrations.files import discover
from dbops.sqlmigrations.history import TYPE_DELETE, TYPE_SQL, HistoryRow
from dbops.sqlmigrations.validation import validate


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


def test_convention_messages_name_the_file_once(tmp_path: Path) -> None:
    (tmp_path / "V1__Create_A.sql").write_text("CREATE TABLE a (id int);\n")
    problems = validate(discover(tmp_path), [])
    assert problems, "a CamelCase description breaks the convention"
    for problem in problems:
        assert str(problem).count("V1__Create_A.sql") == 1 or "rename it to" in str(problem)
        assert not str(problem).startswith("V1__Create_A.sql: V1__Create_A.sql")
