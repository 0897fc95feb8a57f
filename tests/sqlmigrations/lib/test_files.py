"""Discovery must find, configure, order and checksum migrations as Flyway does."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlmigrations.lib.checksum import flyway_checksum, text_checksum
from sqlmigrations.lib.exceptions import (
    DuplicateRepeatable,
    DuplicateVersion,
    InvalidEncoding,
    InvalidMigrationName,
    ScriptConfigError,
    SqlMigrationError,
)
from sqlmigrations.lib.files import discover
from sqlmigrations.lib.scriptconfig import ScriptConfig, parse_script_config


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (relative path -> content) under `root`."""
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        target.write_bytes(data)
    return root


def test_it_orders_versions_numerically_then_undos_then_repeatables(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "V10__ten.sql": "",
            "V2__two.sql": "",
            "V1_1__one_one.sql": "",
            "U2__undo_two.sql": "",
            "V1__one.sql": "",
            "R__b_view.sql": "",
            "R__a_view.sql": "",
        },
    )
    scripts = [f.script for f in discover(tmp_path)]
    assert scripts == [
        "V1__one.sql",
        "V1_1__one_one.sql",
        "V2__two.sql",
        "U2__undo_two.sql",
        "V10__ten.sql",
        "R__a_view.sql",
        "R__b_view.sql",
    ]


def test_it_recurses_into_subfolders_but_skips_hidden_ones(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {"2024/V2__b.sql": "", "V1__a.sql": "", ".git/V3__c.sql": "", "..data/V4__d.sql": ""},
    )
    assert [f.script for f in discover(tmp_path)] == ["V1__a.sql", "2024/V2__b.sql"]


def test_it_ignores_files_that_are_not_migrations(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "README.md": "x",
            "V1__a.sql": "",
            "V1__a.sql.conf": "",
            "afterMigrate.sql": "",
            "v2__b.sql": "",
        },
    )
    assert [f.script for f in discover(tmp_path)] == ["V1__a.sql"]


def test_it_records_the_raw_checksum_and_reads_text_without_bom(tmp_path: Path) -> None:
    _tree(tmp_path, {"V1__a.sql": b"\xef\xbb\xbfselect 1;\r\n"})
    (migration,) = discover(tmp_path)
    assert migration.checksum == flyway_checksum(b"select 1;\n", path="x")
    assert migration.read_text() == "select 1;\r\n"
    assert migration.path == tmp_path.resolve() / "V1__a.sql"
    assert migration.config == ScriptConfig()


def test_it_rejects_duplicate_versions_naming_both_files(tmp_path: Path) -> None:
    _tree(tmp_path, {"V5__a.sql": "", "sub/V05__b.sql": ""})
    with pytest.raises(DuplicateVersion) as caught:
        discover(tmp_path)
    message = str(caught.value)
    assert "V5__a.sql" in message and "sub/V05__b.sql" in message
    assert "version 5" in message


def test_it_rejects_versions_equal_except_for_trailing_zeros(tmp_path: Path) -> None:
    _tree(tmp_path, {"V1__a.sql": "", "V1_0__b.sql": ""})
    with pytest.raises(DuplicateVersion):
        discover(tmp_path)


def test_it_allows_an_undo_with_the_same_version_as_its_migration(tmp_path: Path) -> None:
    _tree(tmp_path, {"V5__a.sql": "", "U5__a.sql": ""})
    assert [f.kind for f in discover(tmp_path)] == ["V", "U"]


def test_it_rejects_repeatables_with_the_same_description(tmp_path: Path) -> None:
    _tree(tmp_path, {"R__views.sql": "", "other/R__views.sql": ""})
    with pytest.raises(DuplicateRepeatable, match=r"other/R__views\.sql"):
        discover(tmp_path)


def test_it_rejects_a_badly_named_migration_unless_lenient(tmp_path: Path) -> None:
    _tree(tmp_path, {"V1__a.sql": "", "sub/V2_b.sql": ""})
    with pytest.raises(InvalidMigrationName, match=r"^sub/V2_b\.sql: could not recognise"):
        discover(tmp_path)
    assert [f.script for f in discover(tmp_path, strict=False)] == ["V1__a.sql"]


def test_it_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SqlMigrationError, match="migrations directory not found"):
        discover(tmp_path / "nope")


def test_it_rejects_invalid_utf8_naming_the_relative_path(tmp_path: Path) -> None:
    _tree(tmp_path, {"sub/V1__a.sql": b"select '\xff';"})
    with pytest.raises(InvalidEncoding, match=r"^sub/V1__a\.sql:1: not valid utf-8"):
        discover(tmp_path)


def test_it_applies_the_script_config_file(tmp_path: Path) -> None:
    conf = "# comment\n! also a comment\nexecuteInTransaction = FALSE\r\nencoding=ISO-8859-1\n"
    _tree(tmp_path, {"V1__a.sql": "select 'caf\u00e9';".encode("latin-1"), "V1__a.sql.conf": conf})
    (migration,) = discover(tmp_path)
    assert migration.config.execute_in_transaction is False
    assert migration.config.encoding == "ISO-8859-1"
    assert migration.config.explicit == {"executeInTransaction", "encoding"}
    assert migration.read_text() == "select 'caf\u00e9';"
    assert migration.checksum == flyway_checksum("select 'caf\u00e9';".encode(), path="x")


def test_it_rejects_an_unknown_script_config_key_with_line(tmp_path: Path) -> None:
    with pytest.raises(ScriptConfigError) as caught:
        parse_script_config("encoding=UTF-8\nexecuteintransaction=false\n", path="V1__a.sql.conf")
    assert str(caught.value).startswith("V1__a.sql.conf:2: unknown script config key")
    assert "write executeInTransaction" in str(caught.value)


@pytest.mark.parametrize(
    "text", ["executeInTransaction=yes", "executeInTransaction", "encoding=nope"]
)
def test_it_rejects_a_bad_script_config_value(text: str) -> None:
    with pytest.raises(ScriptConfigError, match=r"^x\.sql\.conf:1: "):
        parse_script_config(text, path="x.sql.conf")


def test_it_rejects_shouldexecute_as_unsupported() -> None:
    with pytest.raises(ScriptConfigError, match="not supported"):
        parse_script_config("shouldExecute=true", path="x.sql.conf")


def test_it_checksums_repeatables_after_placeholder_replacement(tmp_path: Path) -> None:
    _tree(tmp_path, {"R__v.sql": "create view ${s}.v as select '${flyway:filename}';\n"})
    (repeatable,) = discover(tmp_path)
    replaced = "create view app.v as select 'R__v.sql';\n"
    assert repeatable.render({"s": "app"}) == replaced
    assert repeatable.effective_checksum({"s": "app"}) == text_checksum(replaced)
    assert repeatable.effective_checksum(None) == repeatable.checksum


def test_it_checksums_versioned_migrations_on_the_raw_file(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "V1__a.sql": "select '${s}';",
            "R__b.sql": "x",
            "R__b.sql.conf": "placeholderReplacement=false",
        },
    )
    versioned, repeatable = discover(tmp_path)
    assert versioned.effective_checksum({"s": "x"}) == versioned.checksum
    assert repeatable.effective_checksum({"s": "x"}) == repeatable.checksum


def test_it_discovers_1000_files_across_folders_in_version_order(tmp_path: Path) -> None:
    # Speed is measured in bench/migrate_bench.py, not asserted here (noisy machines).
    body = "create table t (id bigint primary key, name text not null);\n" * 20
    _tree(tmp_path, {f"batch{n % 10}/V{n}__create_table_{n}.sql": body for n in range(1, 1001)})
    found = discover(tmp_path)
    assert len(found) == 1000
    assert [f.name.version.raw for f in found] == [str(n) for n in range(1, 1001)]  # type: ignore[union-attr]


def test_it_reads_undo_files_from_their_own_folder(tmp_path: Path) -> None:
    location, undo = tmp_path / "migrations_sql", tmp_path / "migrations_undo"
    location.mkdir()
    undo.mkdir()
    (location / "V1__a.sql").write_text("CREATE TABLE a (id int);\n")
    (location / "V2__b.sql").write_text("CREATE INDEX CONCURRENTLY b ON a (id);\n")
    (location / "V2__b.sql.conf").write_text("executeInTransaction=false\n")
    (undo / "U2__b.sql").write_text("DROP INDEX CONCURRENTLY b;\n")
    (undo / "U2__b.sql.conf").write_text("executeInTransaction=false\n")
    (undo / "U1__a.sql").write_text("DROP TABLE a;\n")

    files = discover(location, undo_directory=undo)

    assert [(f.script, f.path.parent.name) for f in files] == [
        ("V1__a.sql", "migrations_sql"),
        ("U1__a.sql", "migrations_undo"),
        ("V2__b.sql", "migrations_sql"),
        ("U2__b.sql", "migrations_undo"),
    ]
    assert files[3].config.execute_in_transaction is False
    # A project that has no undo folder yet has no undo files.
    assert len(discover(location, undo_directory=tmp_path / "nowhere")) == 2
