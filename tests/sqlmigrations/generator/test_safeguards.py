"""makesqlmigration in a copy of the real project: what it writes is safe while the previous
release still runs, or it refuses, says why, and writes nothing.
"""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbops.connections.databases import drop_database
from tests.migrationfiles import app_leaf, newest_version
from tests.realproject import RealProject, copy_real_project

pytestmark = pytest.mark.slow

LATEST = app_leaf("accounts")  # the accounts app's newest migration, before the test's
NEXT = newest_version() + 1  # the version makesqlmigration gives the next file


@pytest.fixture(scope="module")
def migrated_database(tmp_path_factory: pytest.TempPathFactory, pg_server: Any) -> Iterator[str]:
    """The real project's database, migrated once; each test starts from a copy."""
    project = copy_real_project(tmp_path_factory.mktemp("migrated"), pg_server)
    migrated = project.manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    yield project.database
    drop_database(pg_server.conninfo(), project.database)


@pytest.fixture
def project(tmp_path: Path, pg_server: Any, migrated_database: str) -> Iterator[RealProject]:
    """A fresh copy of the project on a copy of the migrated database."""
    p = copy_real_project(tmp_path, pg_server, template=migrated_database)
    yield p
    drop_database(pg_server.conninfo(), p.database)


def edit_users(project: RealProject, *, fields: str = "", indexes: str = "") -> None:
    """Add fields (before deleted_at) or Meta.indexes to accounts.UserProfile."""
    path = project.root / "accounts" / "models.py"
    text = path.read_text()
    anchor = "    deleted_at = models.DateTimeField(\n"
    text = text.replace(anchor, fields + anchor, 1)
    anchor = '            models.Index(fields=["-created_at"], name="users_created_at"),\n'
    text = text.replace(anchor, anchor + indexes, 1)
    path.write_text(text)


def tree(project: RealProject) -> dict[str, bytes]:
    """Every file of the copy with its content (bytecode aside)."""
    return {
        str(p.relative_to(project.root)): p.read_bytes()
        for p in sorted(project.root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def new_files(before: dict[str, bytes], project: RealProject) -> list[str]:
    after = tree(project)
    return sorted(k for k in after if k not in before or after[k] != before[k])


def manage_in_terminal(project: RealProject, *args: str) -> subprocess.CompletedProcess[str]:
    """Run manage.py with a terminal on stdin that already holds the answer "y"."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, b"y\n")
        return project.manage(*args, stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)


def renamed_nickname(project: RealProject) -> None:
    """Add users.nickname and migrate, then rename the field to handle in the model."""
    edit_users(project, fields=NICKNAME)
    made = project.manage("makesqlmigration", "accounts", "add_nickname_to_users")
    assert made.returncode == 0, made.stderr
    assert project.manage("migrate", "--no-input").returncode == 0
    models = project.root / "accounts" / "models.py"
    models.write_text(models.read_text().replace("    nickname = ", "    handle = "))


def sql(project: RealProject, name: str) -> str:
    return (project.sql_dir / name).read_text()


def undo(project: RealProject, name: str) -> str:
    return (project.root / "migrations_undo" / name).read_text()


KARMA = (
    "    karma = models.BigIntegerField(\n"
    '        default=0, db_comment="Points earned for completed chores."\n'
    "    )\n"
)
NICKNAME = (
    "    nickname = models.CharField(\n"
    '        max_length=40, null=True, blank=True, db_comment="Short name shown in menus."\n'
    "    )\n"
)


def test_a_default_stays_so_the_running_release_can_still_insert(project: RealProject) -> None:
    p = project
    edit_users(p, fields=KARMA)

    made = p.manage("makesqlmigration", "accounts", "add_karma_to_users")

    assert made.returncode == 0, made.stderr
    text = sql(p, f"V{NEXT}__add_karma_to_users.sql")
    assert 'ADD COLUMN "karma" bigint DEFAULT 0 NOT NULL;' in text
    assert "DROP DEFAULT" not in text
    assert "-- Keeps DEFAULT 0 on users.karma" in text
    assert "a later release may drop it" in text
    assert 'COMMENT ON COLUMN "users"."karma" IS' in text
    assert 'DROP COLUMN "karma"' in undo(p, f"U{NEXT}__add_karma_to_users.sql")
    migrated = p.manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr

    # The previous release does not know the column: its insert must still succeed.
    p.query("INSERT INTO users (cognito_sub, email) VALUES ('sub-old', 'old@example.com')")

    assert p.query("SELECT karma FROM users WHERE cognito_sub = 'sub-old'") == [(0,)]
    assert p.manage("schemadrift", "accounts").returncode == 0
    clean = p.manage("makemigrations", "--check", "--dry-run")
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_an_index_on_an_existing_table_is_built_concurrently_in_its_own_file(
    project: RealProject,
) -> None:
    p = project
    edit_users(
        p, indexes='            models.Index(fields=["last_seen_at"], name="users_last_seen_at"),\n'
    )

    made = p.manage("makesqlmigration", "accounts", "index_users_last_seen_at")

    assert made.returncode == 0, made.stderr
    stem = f"{NEXT}__index_users_last_seen_at"
    text = sql(p, f"V{stem}.sql")
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_last_seen_at" ON "users"' in text
    assert text.count(";") == 1
    assert sql(p, f"V{stem}.sql.conf") == "executeInTransaction=false\n"
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "users_last_seen_at";' in undo(p, f"U{stem}.sql")
    assert undo(p, f"U{stem}.sql.conf") == "executeInTransaction=false\n"
    lint = p.manage("sqlmigrations", "lint", "--no-git")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    migrated = p.manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_last_seen_at'::regclass"
    assert p.query(valid) == [(True,)]

    back = p.manage("migrate", "accounts", LATEST, "--no-input")

    assert back.returncode == 0, back.stderr
    assert p.query("SELECT to_regclass('users_last_seen_at')") == [(None,)]


def test_an_indexed_new_column_gets_the_column_first_then_each_index_alone(
    project: RealProject,
) -> None:
    p = project
    edit_users(p, fields=NICKNAME.replace("blank=True,", "blank=True, db_index=True,"))

    made = p.manage("makesqlmigration", "accounts", "add_nickname_to_users")

    assert made.returncode == 0, made.stderr
    column = sql(p, f"V{NEXT}__add_nickname_to_users.sql")
    assert 'ADD COLUMN "nickname" varchar(40) NULL' in column
    assert "CREATE INDEX" not in column
    indexes = sorted(p.sql_dir.glob(f"V{NEXT + 1}__*.sql")) + sorted(
        p.sql_dir.glob(f"V{NEXT + 2}__*.sql")
    )
    assert len(indexes) == 2  # the index and Django's varchar_pattern_ops twin
    for path in indexes:
        text = path.read_text()
        assert text.count("CREATE INDEX CONCURRENTLY IF NOT EXISTS") == 1
        assert Path(f"{path}.conf").read_text() == "executeInTransaction=false\n"
    lint = p.manage("sqlmigrations", "lint", "--no-git")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    migrated = p.manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    assert p.manage("schemadrift", "accounts").returncode == 0
    clean = p.manage("makemigrations", "--check", "--dry-run")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    back = p.manage("migrate", "accounts", LATEST, "--no-input")
    assert back.returncode == 0, back.stderr
    assert (
        p.query(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'users' AND column_name = 'nickname'"
        )
        == []
    )


def test_a_rename_is_refused_with_or_without_a_terminal(project: RealProject) -> None:
    p = project
    renamed_nickname(p)
    before = tree(p)

    piped = p.manage("makesqlmigration", "accounts", "rename_nickname_to_handle")
    in_terminal = manage_in_terminal(p, "makesqlmigration", "accounts", "rename_nickname_to_handle")

    for result in (piped, in_terminal):
        assert result.returncode == 1, result.stdout + result.stderr
        assert "renamed" not in result.stdout  # no question was asked
        assert "field nickname removed and handle added" in result.stderr
        assert "a probable rename" in result.stderr
        assert "backfill" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("CommandError: ")
        assert "nothing was written" in result.stderr
        assert "Done!" not in result.stdout
    assert new_files(before, p) == []


def test_allow_unsafe_writes_the_refused_change_with_a_warning_and_an_undo(
    project: RealProject,
) -> None:
    p = project
    renamed_nickname(p)

    made = p.manage("makesqlmigration", "accounts", "replace_nickname", "--allow-unsafe")

    assert made.returncode == 0, made.stderr
    text = sql(p, f"V{NEXT + 1}__replace_nickname.sql")
    assert "-- UNSAFE (written with --allow-unsafe): accounts.UserProfile: field nickname" in text
    assert 'DROP COLUMN "nickname"' in text
    assert "Warning: accounts.UserProfile: field nickname removed" in made.stderr
    assert "drop-column-without-deprecation" in made.stderr  # lint's finding, kept
    assert 'ADD COLUMN "nickname"' in undo(p, f"U{NEXT + 1}__replace_nickname.sql")


REFUSED = {
    "no-db-comment": (
        "    karma = models.BigIntegerField(default=0)\n",
        [
            "accounts.UserProfile.karma: no db_comment: every new column gets a COMMENT ON",
            'add db_comment="<what the column holds>" to the field',
            "CommandError: refused: 1 problem with the model changes of app 'accounts'",
        ],
    ),
    "lint-finding": (
        KARMA.replace("BigIntegerField", "IntegerField"),
        [
            f"V{NEXT}__add_karma_to_users.sql:11: prefer-bigint-over-int",
            "CommandError: lint found 1 problem in the generated files",
        ],
    ),
    "not-null-without-default": (
        '    karma = models.CharField(max_length=5, db_comment="A code.")\n',
        [
            "accounts.UserProfile.karma: NOT NULL without a default on an existing table",
            "add it with null=True, backfill it, then make it NOT NULL in a later release",
        ],
    ),
}


@pytest.mark.parametrize(("fields", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_change_says_why_and_writes_nothing(
    project: RealProject, fields: str, expected: list[str]
) -> None:
    p = project
    edit_users(p, fields=fields)
    before = tree(p)

    made = p.manage("makesqlmigration", "accounts", "add_karma_to_users")

    assert made.returncode == 1
    for text in expected:
        assert text in made.stderr
    last = made.stderr.strip().splitlines()[-1]
    assert last.startswith("CommandError: ")
    assert "nothing was written" in last
    assert new_files(before, p) == []


def test_a_write_that_fails_halfway_leaves_nothing(project: RealProject) -> None:
    p = project
    edit_users(p, fields=KARMA)
    # The undo file's path leads nowhere: writing it fails after the V file was written.
    (p.root / "migrations_undo" / f"U{NEXT}__add_karma_to_users.sql").symlink_to(
        p.root / "no-such-folder" / "undo.sql"
    )
    before = tree(p)

    made = p.manage("makesqlmigration", "accounts", "add_karma_to_users")

    assert made.returncode == 1
    last = made.stderr.strip().splitlines()[-1]
    assert last.startswith("CommandError: could not write ")
    assert last.endswith("; nothing was written")
    assert new_files(before, p) == []
    assert not (p.sql_dir / f"V{NEXT}__add_karma_to_users.sql").exists()


def test_an_index_dropped_from_an_existing_table_goes_concurrently(project: RealProject) -> None:
    p = project
    models = p.root / "accounts" / "models.py"
    index = '            models.Index(fields=["-created_at"], name="users_created_at"),\n'
    models.write_text(models.read_text().replace(index, ""))

    made = p.manage("makesqlmigration", "accounts", "drop_users_created_at")

    assert made.returncode == 0, made.stderr
    stem = f"{NEXT}__drop_users_created_at"
    assert sql(p, f"V{stem}.sql").endswith(
        '\nDROP INDEX CONCURRENTLY IF EXISTS "users_created_at";\n'
    )
    assert sql(p, f"V{stem}.sql.conf") == "executeInTransaction=false\n"
    assert undo(p, f"U{stem}.sql").endswith(
        '\nCREATE INDEX CONCURRENTLY IF NOT EXISTS "users_created_at" ON "users" '
        '("created_at" DESC);\n'
    )
    assert p.manage("migrate", "--no-input").returncode == 0
    assert p.query("SELECT to_regclass('users_created_at')") == [(None,)]
    back = p.manage("migrate", "accounts", LATEST, "--no-input")
    assert back.returncode == 0, back.stderr
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_created_at'::regclass"
    assert p.query(valid) == [(True,)]
