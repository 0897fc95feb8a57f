"""File names and versions must parse and compare exactly as Flyway's do."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmigrations.lib.exceptions import InvalidMigrationName, InvalidVersion
from sqlmigrations.lib.names import (
    MigrationName,
    convention_problems,
    is_candidate,
    parse_name,
)
from sqlmigrations.lib.versions import Version


def test_it_orders_versions_numerically_part_by_part() -> None:
    ordered = [Version(v) for v in ["1", "1.1", "1.2", "2", "10"]]
    shuffled = [ordered[i] for i in (3, 0, 4, 2, 1)]
    assert sorted(shuffled) == ordered
    assert Version("1.10") > Version("1.9")


def test_it_treats_underscore_as_dot_and_ignores_leading_zeros() -> None:
    assert Version("1_2") == Version("1.2")
    assert Version("05") == Version("5")
    assert hash(Version("05")) == hash(Version("5"))


def test_it_ignores_trailing_zero_parts_for_equality_and_hash() -> None:
    assert Version("1.0.0") == Version("1")
    assert hash(Version("1.0")) == hash(Version("1"))
    assert len({Version("1"), Version("1.0"), Version("1_0_0")}) == 1
    assert Version("1.0.1") > Version("1")


def test_it_handles_versions_larger_than_64_bits() -> None:
    assert Version("99999999999999999999") > Version("9999999999999999999")


def test_it_displays_the_version_as_flyway_stores_it() -> None:
    assert str(Version("1_2")) == "1.2"
    assert str(Version("05")) == "05"
    assert str(Version("1.0")) == "1.0"
    assert Version("1_2").raw == "1_2"


def test_it_keeps_versions_immutable_and_picklable() -> None:
    version = Version("3")
    with pytest.raises(AttributeError):
        version._raw = "4"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(version)) == version


@pytest.mark.parametrize("bad", ["", "1..2", "1.", ".1", "1a", "1 ", "latest", "current", "a"])
def test_it_rejects_versions_flyway_rejects_or_reserves(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        Version(bad)


def test_it_parses_a_versioned_name_with_flyway_description_rule() -> None:
    name = parse_name("V1_2__Add_users_table.sql")
    assert name == MigrationName(
        "V", Version("1.2"), "Add users table", "V1_2__Add_users_table.sql"
    )
    assert name.raw_description == "Add_users_table"


def test_it_splits_only_at_the_first_double_underscore() -> None:
    name = parse_name("V3__a__b.sql")
    assert name.version == Version("3")
    assert name.description == "a  b"


def test_it_parses_repeatable_and_undo_names() -> None:
    assert parse_name("R__refresh_views.sql") == MigrationName(
        "R", None, "refresh views", "R__refresh_views.sql"
    )
    undo = parse_name("U7__drop_x.sql")
    assert (undo.kind, undo.version, undo.description) == ("U", Version("7"), "drop x")


def test_it_accepts_what_flyway_accepts_without_a_description() -> None:
    # ResourceNameParser only insists on a version; "V1.sql" and "V1__.sql" are valid.
    assert parse_name("V1.sql").description == ""
    assert parse_name("V1__.sql").version == Version("1")


def test_it_matches_the_suffix_case_insensitively_like_flyway() -> None:
    assert is_candidate("V1__x.SQL")
    assert parse_name("V1__x.SQL").description == "x"


@pytest.mark.parametrize(
    "ignored",
    ["README.md", "V1__x.sql.conf", "v1__x.sql", "afterMigrate.sql", "V.sql", "notes.sql"],
)
def test_it_does_not_treat_other_files_as_migrations(ignored: str) -> None:
    assert not is_candidate(ignored)


def test_it_rejects_a_repeatable_with_a_version() -> None:
    with pytest.raises(InvalidMigrationName) as caught:
        parse_name("R1__views.sql", path="sub/R1__views.sql")
    assert str(caught.value).startswith("sub/R1__views.sql: a repeatable migration cannot")
    assert "R__views.sql" in str(caught.value)


def test_it_rejects_a_versioned_name_without_a_version() -> None:
    with pytest.raises(InvalidMigrationName) as caught:
        parse_name("V__init.sql")
    assert "must contain a version" in str(caught.value)
    assert "V{version}__{description}.sql" in str(caught.value)


@pytest.mark.parametrize("bad", ["V1_init.sql", "V1.a__x.sql", "Vx__y.sql", "V1 __x.sql"])
def test_it_rejects_an_unrecognisable_version(bad: str) -> None:
    with pytest.raises(InvalidMigrationName) as caught:
        parse_name(bad)
    message = str(caught.value)
    assert message.startswith(f"{bad}: could not recognise version number")
    assert "DOUBLE underscore" in message


def test_it_finds_no_convention_problems_in_a_good_name() -> None:
    assert convention_problems("V12__add_users.sql") == []
    assert convention_problems(parse_name("R__refresh_views_2.sql")) == []


def test_it_reports_dotted_underscored_or_zero_padded_versions() -> None:
    for bad in ["V1.1__x.sql", "V1_1__x.sql", "V05__x.sql", "V0__x.sql"]:
        problems = convention_problems(bad)
        assert any("plain positive integer" in p for p in problems), bad
        assert all(p.startswith(bad) for p in problems)


def test_it_reports_a_description_that_is_not_snake_case_with_the_fix() -> None:
    problems = convention_problems("V3__Add Users-Table.sql", path="sub/V3__Add Users-Table.sql")
    assert any("'add_users_table'" in p for p in problems)
    assert problems[-1] == "sub/V3__Add Users-Table.sql: rename it to V3__add_users_table.sql"


def test_it_reports_a_missing_description_and_an_uppercase_suffix() -> None:
    problems = convention_problems("V4.SQL")
    assert any("missing `__description`" in p for p in problems)
    assert any("lowercase '.sql'" in p for p in problems)


def test_it_reports_double_underscores_inside_a_description() -> None:
    assert convention_problems("V2__a__b.sql")[-1] == "V2__a__b.sql: rename it to V2__a_b.sql"


def test_a_suggested_version_is_never_one_another_file_or_row_has() -> None:
    problems = convention_problems(
        "V4_1__late_fix.sql", taken={Version(str(n)) for n in range(1, 12)}
    )
    assert problems[-1] == "V4_1__late_fix.sql: rename it to V12__late_fix.sql"
    # Its own version is not a collision: V05 is version 5, so V5 is the same migration.
    assert convention_problems("V05__x.sql", taken={Version("4")})[-1].endswith("to V5__x.sql")


VERSIONS = st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=3).map(
    lambda parts: "_".join(str(p) for p in parts)
)


@settings(max_examples=200, deadline=None)
@given(
    own=VERSIONS,
    others=st.sets(VERSIONS.map(Version), max_size=12),
    leading_zero=st.booleans(),
)
def test_rename_advice_is_a_good_name_no_other_version_has(
    own: str, others: set[Version], leading_zero: bool
) -> None:
    raw = ("0" if leading_zero else "") + own
    try:
        version = Version(raw)
    except InvalidVersion:
        return
    taken = others - {version}
    problems = convention_problems(f"V{raw}__late_fix.sql", taken=taken)
    if not problems:
        return  # already a plain integer
    suggested = parse_name(problems[-1].rsplit(" ", 1)[-1])
    assert suggested.version is not None
    assert suggested.version not in taken
    assert convention_problems(suggested) == []
