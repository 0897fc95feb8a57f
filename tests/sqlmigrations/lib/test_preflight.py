"""The roles pending files name, found with PostgreSQL's parser and looked up in pg_roles."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmigrations.lib.files import discover
from sqlmigrations.lib.preflight import missing_roles, role_references

SQL = """-- V1: rôles et privilèges, ñ → ü (the parser counts bytes).
CREATE TABLE t (id int);
GRANT SELECT ON t TO PUBLIC, CURRENT_USER, ${app_role};
CREATE ROLE made_here;
GRANT SELECT ON t TO made_here;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "Reporting";
GRANT made_before TO ${app_role};
"""


@pytest.mark.django_db
def test_it_names_each_missing_role_once_with_its_line_and_placeholder(tmp_path: Path) -> None:
    (tmp_path / "V1__roles.sql").write_text(SQL)
    (tmp_path / "V2__more.sql").write_text("GRANT SELECT ON t TO made_here, ${app_role};\n")
    files = discover(tmp_path)
    values = {"app_role": "ghost"}
    rendered = [(mf, mf.render(values)) for mf in files]

    with connection.cursor() as cursor:
        missing = missing_roles(cursor, rendered, values)
        cursor.execute("SELECT current_user")
        (user,) = cursor.fetchone()

    assert [(r.role, r.script, r.line, r.placeholder) for r in missing] == [
        ("ghost", "V1__roles.sql", 3, "${app_role}"),
        ("Reporting", "V1__roles.sql", 6, None),
        ("made_before", "V1__roles.sql", 7, None),
    ]
    assert user not in {r.role for r in missing}


@pytest.mark.django_db
def test_existing_roles_and_files_without_grants_pass(tmp_path: Path) -> None:
    (tmp_path / "V1__table.sql").write_text("CREATE TABLE t (id int);\n")
    (tmp_path / "V2__grant.sql").write_text("GRANT SELECT ON t TO ${app_role};\n")
    files = discover(tmp_path)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (user,) = cursor.fetchone()
        values = {"app_role": user}
        assert missing_roles(cursor, [(mf, mf.render(values)) for mf in files], values) == []


@settings(max_examples=60, deadline=None, derandomize=False, print_blob=True)
@given(
    comments=st.lists(
        st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12), max_size=4
    ),
    role=st.text(
        st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"'),
        min_size=1,
        max_size=20,
    )
    .filter(lambda r: len(r.encode()) < 64)
    # PostgreSQL's grammar: "public" is PUBLIC, not a role, and "none" is reserved (a
    # syntax error, which running the file reports): neither is a role to look for.
    .filter(lambda r: r not in ("public", "none")),
)
def test_each_role_is_found_on_its_line_whatever_comes_before(
    tmp_path_factory: pytest.TempPathFactory, comments: list[str], role: str
) -> None:
    folder = tmp_path_factory.mktemp("roles")
    head = "".join(f"-- {c}\n" for c in comments)
    sql = f'{head}GRANT SELECT ON t TO "{role}", "{role}x";\nCREATE ROLE "{role}y";\n'
    (folder / "V1__grant.sql").write_text(sql, encoding="utf-8")
    (mf,) = discover(folder)

    found = role_references(mf, mf.render({}), {})

    line = len(comments) + 1
    assert [(r.role, r.line) for r in found if not isinstance(r, str)] == [
        (role, line),
        (role + "x", line),
    ]
    assert [r for r in found if isinstance(r, str)] == [role + "y"]
