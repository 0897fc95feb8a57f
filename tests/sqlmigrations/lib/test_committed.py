"""committed_checksums() and is_committed(): the migration files as git has them at a base."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sqlmigrations.lib.committed import GitBaseError, committed_checksums, is_committed
from sqlmigrations.lib.files import discover

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def git(folder: Path, *args: str) -> str:
    done = subprocess.run([*GIT, *args], cwd=folder, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git checkout on `main` whose first commit holds V1 and V2 in migrations_sql/."""
    sql = tmp_path / "migrations_sql"
    sql.mkdir()
    git(tmp_path, "init", "-q", "-b", "main")
    (sql / "V1__create_a.sql").write_text("CREATE TABLE a (id int);\n")
    (sql / "V2__create_b.sql").write_text("CREATE TABLE b (id int);\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    return sql


def test_on_main_the_base_is_head_and_edits_since_show(repo: Path) -> None:
    before = {mf.script: mf.checksum for mf in discover(repo)}
    (repo / "V2__create_b.sql").write_text("CREATE TABLE b (id bigint);\n")
    (repo / "V3__create_c.sql").write_text("CREATE TABLE c (id int);\n")  # not committed

    commit, checksums = committed_checksums(repo, discover(repo))

    assert commit == git(repo, "rev-parse", "HEAD")
    assert checksums == before  # the committed copies: V2 as it was, no V3
    assert checksums["V2__create_b.sql"] != discover(repo)[1].checksum


def test_on_a_branch_the_base_is_where_it_left_main(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "feature")
    (repo / "V3__create_c.sql").write_text("CREATE TABLE c (id int);\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "V3 on the branch")

    commit, checksums = committed_checksums(repo, discover(repo))

    assert commit == base
    assert sorted(checksums) == ["V1__create_a.sql", "V2__create_b.sql"]


def test_an_explicit_base_is_used_and_an_unknown_one_refused(repo: Path) -> None:
    commit, checksums = committed_checksums(repo, discover(repo), base="HEAD")
    assert commit == git(repo, "rev-parse", "HEAD") and len(checksums) == 2

    with pytest.raises(GitBaseError, match="unknown git ref 'nope'; pass an existing --base"):
        committed_checksums(repo, discover(repo), base="nope")


def test_outside_git_nothing_is_committed_and_a_base_is_refused(tmp_path: Path) -> None:
    (tmp_path / "V1__create_a.sql").write_text("CREATE TABLE a (id int);\n")

    assert committed_checksums(tmp_path, discover(tmp_path)) == (None, {})
    assert is_committed(tmp_path / "V1__create_a.sql") is None
    with pytest.raises(GitBaseError, match="not a git checkout"):
        committed_checksums(tmp_path, discover(tmp_path), base="main")


def test_is_committed_tells_a_committed_file_from_a_new_one(repo: Path) -> None:
    (repo / "V3__create_c.sql").write_text("CREATE TABLE c (id int);\n")

    assert is_committed(repo / "V1__create_a.sql") is True
    assert is_committed(repo / "V3__create_c.sql") is False
