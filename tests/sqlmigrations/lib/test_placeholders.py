"""Placeholders must be replaced as Flyway's PlaceholderReplacingReader replaces them."""

from __future__ import annotations

from datetime import datetime

import pytest

from sqlmigrations.lib.exceptions import PlaceholderError
from sqlmigrations.lib.placeholders import builtin_placeholders, substitute


def _builtins(**overrides: str | None) -> dict[str, str]:
    """Build built-ins with fixed values."""
    values: dict[str, str | None] = {
        "schema": "public",
        "user": "app",
        "database": "garden",
        "table": "flyway_schema_history",
        "filename": "V1__x.sql",
        "environment": "default",
    }
    values.update(overrides)
    return builtin_placeholders(
        **values,  # type: ignore[arg-type]
        working_directory="/srv/app",
        timestamp=datetime(2024, 1, 31, 9, 5, 7),
    )


def test_it_provides_flyways_builtin_placeholders() -> None:
    assert _builtins() == {
        "flyway:defaultSchema": "public",
        "flyway:user": "app",
        "flyway:database": "garden",
        "flyway:timestamp": "2024-01-31 09:05:07",
        "flyway:filename": "V1__x.sql",
        "flyway:workingDirectory": "/srv/app",
        "flyway:table": "flyway_schema_history",
        "flyway:environment": "default",
    }


def test_it_replaces_builtin_and_custom_placeholders() -> None:
    values = {**_builtins(), "owner": "gardener"}
    sql = "grant all on ${flyway:defaultSchema}.t to ${owner}; -- by ${flyway:user}\n"
    assert substitute(sql, values, path="V1__x.sql") == (
        "grant all on public.t to gardener; -- by app\n"
    )


def test_it_matches_placeholder_names_ignoring_case() -> None:
    values = {"Owner": "o", **_builtins()}
    assert substitute("${OWNER} ${flyway:defaultschema}", values, path="f") == "o public"


def test_it_replaces_inside_strings_and_comments_like_flyway() -> None:
    assert substitute("select '${a}'; /* ${a} */", {"a": "x"}, path="f") == "select 'x'; /* x */"


def test_it_removes_a_placeholder_whose_value_is_empty() -> None:
    assert substitute("a${e}b", {"e": ""}, path="f") == "ab"


def test_it_leaves_dollar_quotes_and_lone_dollars_alone() -> None:
    sql = "do $$ begin raise notice '$1 {x}'; end $$; select $"
    assert substitute(sql, {}, path="f") == sql


def test_it_does_not_start_a_placeholder_at_the_second_of_two_dollars() -> None:
    # Flyway hands out both characters read after a "$" unexamined.
    assert substitute("$${a}", {}, path="f") == "$${a}"
    assert substitute("$$${a}", {"a": "x"}, path="f") == "$$x"


def test_it_rejects_an_unknown_placeholder_with_file_and_line() -> None:
    with pytest.raises(PlaceholderError) as caught:
        substitute("select 1;\r\nselect ${missing};\n", {"other": "x"}, path="sub/V2__y.sql")
    message = str(caught.value)
    assert message.startswith("sub/V2__y.sql:2: no value provided for placeholder ${missing}")
    assert 'SQL_MIGRATIONS["PLACEHOLDERS"]' in message
    assert caught.value.line == 2


def test_it_explains_a_builtin_without_a_value() -> None:
    values = _builtins(database=None)
    assert "flyway:database" not in values
    with pytest.raises(PlaceholderError) as caught:
        substitute("\n\n-- ${flyway:database}", values, path="V1__x.sql")
    assert str(caught.value).startswith(
        "V1__x.sql:3: ${flyway:database}: this built-in has no value"
    )


def test_it_rejects_a_builtin_flyway_does_not_have() -> None:
    with pytest.raises(PlaceholderError, match="Flyway has no such built-in"):
        substitute("${flyway:schema}", _builtins(), path="f")


def test_it_rejects_a_placeholder_that_is_never_closed() -> None:
    with pytest.raises(PlaceholderError, match="never closed"):
        substitute("select 1;\nselect ${oops", {"oops": "x"}, path="f")
