"""flyway.toml: a plain `flyway migrate` in this repository runs what `manage.py migrate` runs.

No Flyway distribution is available to the tests: these check the file against the
settings and against Flyway's own rules (docs of flyway.locations, flyway.placeholders,
flyway.validateMigrationNaming and flyway.postgresql.transactional.lock).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from django.conf import settings

from sqlmigrations.lib.files import discover
from sqlmigrations.lib.flywayconf import FlywayConfigError, load_flyway_config
from sqlmigrations.lib.lint import flyway_lock
from tests.helpers import REPO
from tests.realproject import RealProject, real_project  # noqa: F401

# Flyway Community's prefixes (ResourceNameParser): versioned and repeatable; U is Teams.
COMMUNITY_PREFIXES = ("V", "R")


def flyway_toml() -> dict:
    return tomllib.loads((REPO / "flyway.toml").read_text())["flyway"]


def test_it_points_flyway_at_the_migrations_folder_with_the_same_settings() -> None:
    config = flyway_toml()
    options = settings.SQL_MIGRATIONS
    location = Path(options["LOCATION"]).relative_to(settings.BASE_DIR).as_posix()

    assert config["locations"] == [f"filesystem:{location}"]
    assert config["placeholders"] == options["PLACEHOLDERS"]
    assert config["table"] == options["TABLE"]
    assert config["defaultSchema"] == options["SCHEMA"]
    assert config["postgresql"]["transactional"]["lock"] is False
    assert config["validateMigrationNaming"] is True


def test_every_file_flyway_scans_has_a_name_flyway_community_accepts() -> None:
    # validateMigrationNaming fails on any *.sql Flyway Community cannot parse, and it
    # scans its locations recursively: no U file may be in there.
    location = REPO / flyway_toml()["locations"][0].removeprefix("filesystem:")
    scanned = [p for p in location.rglob("*") if p.is_file() and p.name.endswith(".sql")]

    assert scanned
    assert [p.name for p in scanned if not p.name.startswith(COMMUNITY_PREFIXES)] == []
    undo = Path(settings.SQL_MIGRATIONS["UNDO_LOCATION"])
    assert not undo.resolve().is_relative_to(location.resolve())
    assert {f.kind for f in discover(undo)} == {"U"}


def test_the_project_config_turns_the_transactional_lock_off() -> None:
    config = load_flyway_config(REPO)

    assert config is not None and config.path == REPO / "flyway.toml"
    assert config.transactional_lock is False


def non_transactional(tmp_path: Path) -> list:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "V1__a.sql").write_text("CREATE TABLE a (id int);\n")
    (tmp_path / "sql" / "V2__index_a.sql").write_text("CREATE INDEX CONCURRENTLY i ON a (id);\n")
    (tmp_path / "sql" / "V2__index_a.sql.conf").write_text("executeInTransaction=false\n")
    return discover(tmp_path / "sql")


@pytest.mark.parametrize(
    ("name", "text", "finding"),
    [
        (None, None, "the project has no flyway.toml"),
        ("flyway.toml", "[flyway]\n", "flyway.toml leaves postgresql.transactional.lock at true"),
        (
            "flyway.toml",
            '[flyway.postgresql]\n"transactional.lock" = true\n',
            "flyway.toml leaves postgresql.transactional.lock at true",
        ),
        ("flyway.conf", "flyway.locations=filesystem:sql\n", "flyway.conf leaves"),
        ("flyway.toml", "[flyway.postgresql]\ntransactional.lock = false\n", None),
        ("flyway.toml", '[flyway.postgresql]\n"transactional.lock" = false\n', None),
        ("flyway.conf", "flyway.postgresql.transactional.lock=false\n", None),
    ],
)
def test_lint_says_a_non_transactional_file_needs_the_lock_off(
    tmp_path: Path, name: str | None, text: str | None, finding: str | None
) -> None:
    if name:
        (tmp_path / name).write_text(text or "")
    files = non_transactional(tmp_path)

    findings = flyway_lock(files, load_flyway_config(tmp_path))

    if finding is None:
        assert findings == []
    else:
        assert [(f.script, f.rule) for f in findings] == [
            ("V2__index_a.sql", "flyway-transactional-lock")
        ]
        assert finding in findings[0].message
        assert "waits on forever under `flyway migrate`" in findings[0].message


def test_a_broken_flyway_toml_is_named(tmp_path: Path) -> None:
    (tmp_path / "flyway.toml").write_text("[flyway.postgresql]\ntransactional.lock = maybe\n")
    with pytest.raises(FlywayConfigError, match=r"^flyway\.toml: not valid TOML"):
        load_flyway_config(tmp_path)


def test_lint_of_the_project_reports_the_lock_once_it_is_removed(real_project: RealProject) -> None:  # noqa: F811
    p = real_project
    config = p.root / "flyway.toml"
    assert p.manage("sqlmigrations", "lint", "--no-db", "--no-git").returncode == 0

    config.write_text(config.read_text().replace("transactional.lock = false", ""))
    result = p.manage("sqlmigrations", "lint", "--no-db", "--no-git")

    assert result.returncode == 1
    assert (
        "V11__index_users_created_at.sql:1: flyway-transactional-lock: runs outside a "
        "transaction, and flyway.toml leaves postgresql.transactional.lock at true"
    ) in result.stdout
    assert "set `transactional.lock = false` under [flyway.postgresql] in flyway.toml" in (
        result.stdout
    )
