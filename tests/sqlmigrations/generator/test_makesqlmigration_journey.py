"""The database guide's workflow in a fresh clone: makesqlmigration for each app in turn."""

from __future__ import annotations

import ast

import pytest

from tests.migrationfiles import app_leaf, newest_file, newest_version
from tests.realproject import RealProject, real_project  # noqa: F401

NEXT = newest_version() + 1  # the first version the test makes
LEAVES = {app: app_leaf(app) for app in ("chores", "accounts", "dbops")}
# The wrapper of the project's newest file, which the first new wrapper follows.
PREVIOUS = next(
    (app, name) for app, name in LEAVES.items() if name == newest_file().removesuffix(".sql")
)

NICKNAME = (
    "    timezone = models.CharField(",
    "    nickname = models.CharField(\n"
    '        max_length=40, null=True, blank=True, db_comment="Short name shown in menus."\n'
    "    )\n"
    "    timezone = models.CharField(",
)


def wrapper_of(project: RealProject, app: str, stem: str) -> tuple[set[tuple[str, str]], bool]:
    """Return a wrapper's dependencies and whether it says `initial = True`."""
    tree = ast.parse((project.root / app / "migrations" / f"{stem}.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    values = {
        t.id: ast.literal_eval(stmt.value)
        for stmt in cls.body
        if isinstance(stmt, ast.Assign)
        for t in stmt.targets
        if isinstance(t, ast.Name) and t.id in ("dependencies", "initial")
    }
    return {tuple(d) for d in values["dependencies"]}, bool(values.get("initial", False))


def make_and_migrate(project: RealProject, app: str, name: str, *extra: str) -> None:
    """Run makesqlmigration, then migrate, check and makemigrations --check: all clean."""
    made = project.manage("makesqlmigration", app, name, *extra)
    assert made.returncode == 0, made.stderr
    version = int(made.stdout.split("Done! Wrote V", 1)[1].split("__", 1)[0])
    if "--empty" in extra:
        sql = project.sql_dir / f"V{version}__{name}.sql"
        sql.write_text(sql.read_text() + f"CREATE TABLE fault_{version} (id bigint);\n")
    checked = project.manage("check")
    assert checked.returncode == 0, checked.stderr
    migrated = project.manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    assert f"Applying {app}.V{version}__{name}... OK" in migrated.stdout
    clean = project.manage("makemigrations", "--check", "--dry-run")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "No changes detected" in clean.stdout


@pytest.mark.slow
def test_each_app_in_turn_migrates_with_one_leaf_per_app(real_project: RealProject) -> None:  # noqa: F811
    p = real_project
    first = p.manage("migrate", "--no-input")
    assert first.returncode == 0, first.stderr

    make_and_migrate(p, "chores", "add_fault_table", "--empty")
    make_and_migrate(p, "accounts", "add_account_fault", "--empty")
    make_and_migrate(p, "dbops", "add_ops_fault", "--empty")
    make_and_migrate(p, "chores", "add_second_fault", "--empty")
    models = p.root / "chores" / "models" / "households.py"
    models.write_text(models.read_text().replace(*NICKNAME))
    make_and_migrate(p, "chores", "add_nickname_to_households")

    # D1: each wrapper depends on the previous version's wrapper and on its app's latest
    # migration, and none but an app's first is initial.
    n = NEXT
    fault, account, ops, second, nickname = (
        f"V{n}__add_fault_table",
        f"V{n + 1}__add_account_fault",
        f"V{n + 2}__add_ops_fault",
        f"V{n + 3}__add_second_fault",
        f"V{n + 4}__add_nickname_to_households",
    )
    assert wrapper_of(p, "chores", fault) == ({PREVIOUS, ("chores", LEAVES["chores"])}, False)
    assert wrapper_of(p, "accounts", account) == (
        {("chores", fault), ("accounts", LEAVES["accounts"])},
        False,
    )
    assert wrapper_of(p, "dbops", ops) == (
        {("accounts", account), ("dbops", LEAVES["dbops"])},
        False,
    )
    assert wrapper_of(p, "chores", second) == ({("dbops", ops), ("chores", fault)}, False)
    assert ("chores", second) in wrapper_of(p, "chores", nickname)[0]
    assert p.query(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'households' AND column_name = 'nickname'"
    ) == [("nickname",)]
    versions = [r[0] for r in p.query("SELECT version FROM flyway_schema_history")]
    assert versions[-5:] == [str(v) for v in range(n, n + 5)]
    rollback = (p.sql_dir / f"{second}.sql").read_text()
    assert f"`manage.py migrate chores {fault}` runs it" in rollback

    # The undo files go to migrations_undo/, out of the folder Flyway reads, and migrating
    # back runs them from there.
    assert not list(p.sql_dir.glob("U*"))
    undo = p.root / "migrations_undo" / f"U{n + 4}__add_nickname_to_households.sql"
    assert 'DROP COLUMN "nickname"' in undo.read_text()
    back = p.manage("migrate", "chores", second, "--no-input")
    assert back.returncode == 0, back.stderr
    assert (
        p.query(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'households' AND column_name = 'nickname'"
        )
        == []
    )
    assert [r[0] for r in p.query("SELECT version FROM flyway_schema_history")][-1] == str(n + 3)
