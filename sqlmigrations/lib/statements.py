"""Split a migration file into statements, to find the line of a failing one.

A file runs in one `execute()` (one round trip, as psql would send it), and PostgreSQL
reports a character position only for parse and some semantic errors. For the others
(constraint violations, missing objects, bad casts at run time) the engine replays the
file statement by statement inside a transaction that is rolled back, and reports where
the statement that fails the same way begins. The splitter knows what PostgreSQL's lexer
needs to find statement ends: quoted strings and identifiers, E'' escapes, dollar
quoting, line and nested block comments, and `BEGIN ATOMIC ... END` function bodies.
"""

from __future__ import annotations

import re

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")


def split_statements(sql: str) -> list[tuple[int, str]]:
    """Return (offset of the first token, text) for each statement of `sql`."""
    statements: list[tuple[int, str]] = []
    i, n = 0, len(sql)
    start: int | None = None  # offset of the current statement's first token
    atomic_depth = 0
    previous_word = ""
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
            continue
        if start is None:
            if ch == ";":
                i += 1
                continue
            start = i
        if ch == ";" and atomic_depth == 0:
            statements.append((start, sql[start:i]))
            start, previous_word = None, ""
            i += 1
            continue
        if ch == "'":
            backslashes = i > 0 and sql[i - 1] in "eE" and not _is_word_char(sql, i - 2)
            i = _skip_quoted(sql, i, "'", backslashes)
            continue
        if ch == '"':
            i = _skip_quoted(sql, i, '"', False)
            continue
        if ch == "$":
            match = _DOLLAR.match(sql, i)
            if match and not _is_word_char(sql, i - 1):
                end = sql.find(match.group(0), match.end())
                i = n if end < 0 else end + len(match.group(0))
                continue
        word = _WORD.match(sql, i) if not _is_word_char(sql, i - 1) else None
        if word:
            upper = word.group(0).upper()
            if (upper == "ATOMIC" and previous_word == "BEGIN") or (
                upper == "CASE" and atomic_depth
            ):
                atomic_depth += 1
            elif upper == "END" and atomic_depth:
                atomic_depth -= 1
            previous_word = upper
            i = word.end()
            continue
        i += 1
    if start is not None and sql[start:].strip():
        statements.append((start, sql[start:].rstrip()))
    return statements


def first_token(text: str, offset: int) -> int:
    """Return the offset of the first token at or after `offset`, past whitespace and comments.

    libpg_query counts the whitespace and comments before a statement into it.
    """
    while offset < len(text):
        if text[offset].isspace():
            offset += 1
        elif text.startswith("--", offset):
            end = text.find("\n", offset)
            offset = len(text) if end < 0 else end + 1
        elif text.startswith("/*", offset):
            end = text.find("*/", offset)
            offset = len(text) if end < 0 else end + 2
        else:
            break
    return offset


def _is_word_char(sql: str, index: int) -> bool:
    return index >= 0 and (sql[index].isalnum() or sql[index] in "_$")


def _skip_block_comment(sql: str, i: int) -> int:
    depth, i = 0, i
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _skip_quoted(sql: str, i: int, quote: str, backslashes: bool) -> int:
    i += 1
    while i < len(sql):
        ch = sql[i]
        if backslashes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    return i
