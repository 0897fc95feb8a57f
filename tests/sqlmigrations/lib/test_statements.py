"""The statement splitter that locates a failing statement's line (no database needed)."""

from __future__ import annotations

from sqlmigrations.lib.exceptions import line_at
from sqlmigrations.lib.statements import split_statements

SQL = """-- head; not a statement
CREATE TABLE a (x text DEFAULT 'a;b', "we;ird" int);
/* c; /* nested; */ */ INSERT INTO a VALUES (E'it\\'s;', 1);
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN RETURN 1; END $fn$;
CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END;
END;
;;
SELECT 'it''s; fine' FROM a"""


def test_statements_end_only_at_top_level_semicolons() -> None:
    found = split_statements(SQL)
    assert [text.split()[0:2] for _, text in found] == [
        ["CREATE", "TABLE"],
        ["INSERT", "INTO"],
        ["CREATE", "FUNCTION"],
        ["CREATE", "FUNCTION"],
        ["SELECT", "'it''s;"],
    ]
    assert found[3][1].endswith("END")
    assert "E'it\\'s;', 1" in found[1][1]


def test_offsets_point_at_the_first_token_after_comments() -> None:
    lines = [line_at(SQL, offset) for offset, _ in split_statements(SQL)]
    assert lines == [2, 3, 4, 5, 10]


def test_empty_and_comment_only_input_has_no_statements() -> None:
    assert split_statements("") == []
    assert split_statements("-- nothing\n/* at all */\n;\n") == []
