"""Flyway's info states and repair plan, over files on disk and history rows in memory."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import pytest

from sqlmigrations.lib.files import MigrationFile, discover
from sqlmigrations.lib.history import HistoryRow
from sqlmigrations.lib.info import State, ascii_table, current_version, migration_infos
from sqlmigrations.lib.repair import plan_repair
from sqlmigrations.lib.versions import Version


@pytest.fixture
def make(tmp_path: Path):
    def files(*names: str) -> list[MigrationFile]:
        for name in names:
            (tmp_path / name).write_text(f"-- {name}\nSELECT 1;\n")
        return discover(tmp_path)

    return files


_rank = itertools.count(1)


def row(
    version: str | None,
    script: str,
    checksum: int | None = 0,
    *,
    type: str = "SQL",
    success: bool = True,
    rank: int | None = None,
    description: str | None = None,
) -> HistoryRow:
    desc = (
        description if description is not None else script.split("__", 1)[-1][:-4].replace("_", " ")
    )
    return HistoryRow(
        rank or next(_rank), version, desc, type, script, checksum, "flyway",
        datetime(2026, 1, 2, 3, 4, 5), 7, success,
    )  # fmt: skip


def states(files: list[MigrationFile], rows: list[HistoryRow], **kw) -> list[tuple[str, str]]:
    return [(i.script, i.state.value) for i in migration_infos(files, rows, **kw)]


def applied(mf: MigrationFile, rank: int, **kw) -> HistoryRow:
    return row(
        str(mf.name.version) if mf.name.version else None, mf.script, mf.checksum, rank=rank, **kw
    )


def test_pending_success_and_above_target(make) -> None:
    v1, v2, v3 = make("V1__a.sql", "V2__b.sql", "V3__c.sql")
    assert states([v1, v2, v3], [applied(v1, 1)], target=Version("2")) == [
        ("V1__a.sql", "Success"),
        ("V2__b.sql", "Pending"),
        ("V3__c.sql", "Above Target"),
    ]


def test_out_of_order_and_ignored(make) -> None:
    v1, v2, v3 = make("V1__a.sql", "V2__b.sql", "V3__c.sql")
    rows = [applied(v1, 1), applied(v3, 2)]
    assert states([v1, v2, v3], rows) == [
        ("V1__a.sql", "Success"),
        ("V3__c.sql", "Success"),
        ("V2__b.sql", "Ignored"),
    ]
    assert states([v1, v2, v3], rows, out_of_order=True)[-1] == ("V2__b.sql", "Pending")
    rows.append(applied(v2, 3))  # applied with outOfOrder after V3
    assert states([v1, v2, v3], rows)[-1] == ("V2__b.sql", "Out of Order")


def test_missing_and_failed_missing_and_future(make) -> None:
    (v3,) = make("V3__c.sql")
    rows = [
        row("1", "V1__a.sql", rank=1),
        row("2", "V2__b.sql", rank=2, success=False),
        row("3", v3.script, v3.checksum, rank=3),
        row("4", "V4__d.sql", rank=4, success=False),
        row("5", "V5__e.sql", rank=5),
    ]
    assert states([v3], rows) == [
        ("V1__a.sql", "Missing"),
        ("V2__b.sql", "Failed (Missing)"),
        ("V3__c.sql", "Success"),
        ("V4__d.sql", "Failed (Future)"),
        ("V5__e.sql", "Future"),
    ]


def test_deleted_and_undone_rows(make) -> None:
    v1, v2, _u2 = make("V1__a.sql", "V2__b.sql", "U2__b.sql")
    rows = [
        row("1", "V1__gone.sql", rank=1),
        applied(v1, 2, description="a"),
        applied(v2, 3),
        row("1", "V1__gone.sql", rank=4, type="DELETE"),
        row("2", "U2__b.sql", rank=5, type="UNDO_SQL"),
    ]
    infos = migration_infos([v1, v2, _u2], rows)
    # A DELETE row marks the latest earlier row of its version; UNDO rows are not listed.
    assert [(i.script, i.state.value, i.undoable) for i in infos] == [
        ("V1__gone.sql", "Success", "No"),
        ("V1__a.sql", "Deleted", ""),
        ("V2__b.sql", "Undone", ""),
        ("V2__b.sql", "Pending", "Yes"),
    ]


def test_baseline_states(make) -> None:
    v1, v2, v3 = make("V1__a.sql", "V2__b.sql", "V3__c.sql")
    rows = [row("2", "<< Flyway Baseline >>", None, type="BASELINE", rank=1)]
    infos = migration_infos([v1, v2, v3], rows)
    assert [(i.script, i.state.value, i.category) for i in infos] == [
        ("V1__a.sql", "Below Baseline", "Versioned"),
        ("V2__b.sql", "Ignored (Baseline)", "Versioned"),
        ("<< Flyway Baseline >>", "Baseline", "Baseline"),
        ("V3__c.sql", "Pending", "Versioned"),
    ]
    assert current_version(infos) == Version("2")


def test_repeatable_success_outdated_superseded_and_missing(make) -> None:
    (r,) = make("R__view.sql")
    rows = [
        row(None, r.script, 111, rank=1),
        row(None, r.script, r.checksum, rank=2),
        row(None, "R__gone.sql", 5, rank=3),
    ]
    assert states([r], rows) == [
        ("R__view.sql", "Superseded"),
        ("R__view.sql", "Success"),
        ("R__gone.sql", "Missing"),
    ]
    rows.append(row(None, r.script, 222, rank=4))
    assert states([r], rows)[1:] == [
        ("R__view.sql", "Superseded"),
        ("R__gone.sql", "Missing"),
        ("R__view.sql", "Outdated"),
        ("R__view.sql", "Pending"),
    ]


def test_checksum_mismatch_is_reported_but_state_stays_success(make) -> None:
    (v1,) = make("V1__a.sql")
    (info,) = migration_infos([v1], [row("1", v1.script, v1.checksum + 1, rank=1)])
    assert info.state is State.SUCCESS and info.checksum_matches is False


def test_repair_plan_in_flyways_order(make) -> None:
    v1, v3 = make("V1__a.sql", "V3__c.sql")
    rows = [
        row("1", v1.script, v1.checksum + 1, rank=1, description="old name"),
        row("2", "V2__b.sql", 9, rank=2),
        row("3", v3.script, v3.checksum, rank=3),
        row("4", "V4__d.sql", 4, rank=4, success=False),
        row("9", "V9__future.sql", 9, rank=5),
    ]
    plan = plan_repair([v1, v3], rows)
    assert [(a.action, a.row.installed_rank) for a in plan] == [
        ("remove-failed", 4),
        ("mark-deleted", 2),
        ("realign", 1),
    ]  # the future V9 stays, as with Flyway's default ignoreMigrationPatterns
    assert str(plan[2]).endswith(
        f"realigned with the file: checksum {v1.checksum + 1} -> {v1.checksum}, "
        "description 'old name' -> 'a'"
    )


def test_ascii_table_matches_flyways_layout() -> None:
    assert ascii_table(["A", "Long"], [["xyz", "1"]], "none") == (
        "+-----+------+\n| A   | Long |\n+-----+------+\n| xyz | 1    |\n+-----+------+"
    )
    assert ascii_table(["A", "B"], [], "No migrations found").splitlines()[3] == (
        "| No migrations found |"
    )
