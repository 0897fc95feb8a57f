"""Lint migration files: squawk (sqlmigrations.lib.squawk) plus the team guide's rules.

The guide's rules (docs/migrations.md, "Lint"):
- drop-column-without-deprecation: `DROP COLUMN t.c` needs an EARLIER migration that marks
  the column deprecated with `COMMENT ON COLUMN t.c IS 'DEPRECATED ...'`, so the release
  that stops using the column ships before the column goes.
- index-not-concurrent: `CREATE INDEX` on a table the same file did not create must be
  `CREATE INDEX CONCURRENTLY`, in a file whose .sql.conf says executeInTransaction=false.
- concurrently-in-transaction: CONCURRENTLY in a file that runs in a transaction (squawk's
  own rule for it only fires on an explicit BEGIN).
- non-transactional-multi-statement: "use transactions for multi-statement migrations":
  a file run outside a transaction holds one statement, since one that stops halfway
  leaves its first statements applied and a failed row to repair.
- no-rollback-instructions: a V file has a U file or says in a comment how to roll back.
- edited-applied-file / edited-committed-file: an applied (or already committed) V file
  must not change; callers pass the history rows and the committed checksums.
- flyway-transactional-lock: a file run outside a transaction needs the project's Flyway
  configuration to say `postgresql.transactional.lock=false`, or Flyway 10+ (which takes
  its lock inside a transaction) waits on the file forever.

operation_findings() adds what `migrate` refuses (sqlmigrations.lib.dangerous: rewrites
and long locks of large tables, columns the models read, renames), as findings of source
"migrate", with the table sizes when the caller has a database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ObjectType
from pglast.parser import ParseError

from sqlmigrations.lib import dangerous
from sqlmigrations.lib.acknowledgements import BadAcknowledgement
from sqlmigrations.lib.exceptions import SqlMigrationError, line_at
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.flywayconf import TOML, FlywayConfig
from sqlmigrations.lib.history import TYPE_SQL, HistoryRow
from sqlmigrations.lib.livecatalog import Catalog, Limits
from sqlmigrations.lib.squawk import run_squawk
from sqlmigrations.lib.statements import first_token
from sqlmigrations.lib.validation import applied_versions

_DEPRECATED = re.compile(r"\s*DEPRECATED\b", re.IGNORECASE)
_ROLLBACK = re.compile(r"roll\s*back|rollback|undo|revert", re.IGNORECASE)
_SYNTAX_RULE = "syntax-error"


@dataclass(frozen=True)
class Finding:
    """One lint finding at file:line."""

    script: str
    line: int
    rule: str
    message: str
    help: str = ""
    source: str = "guide"  # guide or squawk
    column: int | None = None

    def __str__(self) -> str:
        hint = f" ({self.help})" if self.help else ""
        return f"{self.script}:{self.line}: {self.rule}: {self.message}{hint}"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.script,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "source": self.source,
            "message": self.message,
            "help": self.help,
        }


def lint(
    files: list[MigrationFile],
    targets: list[MigrationFile],
    *,
    values: Mapping[str, Any],
    flyway: FlywayConfig | None,
    rows: list[HistoryRow] | None = None,
    committed: Mapping[str, int] | None = None,
    progress: Callable[[str], None] | None = None,
    squawk: bool = True,
) -> list[Finding]:
    """Lint `targets` (a subset of `files`, which the deprecation rule looks back through).

    `rows`: the history, to catch edited applied files; `committed`: script -> checksum of
    the V files at the git base ref, to catch edited committed ones; `flyway`: the
    project's Flyway configuration (None when it has none); `squawk`: False leaves squawk
    out (migrate, where it may not be installed).
    """
    rendered: dict[str, str] = {}
    findings: list[Finding] = []
    wanted = {mf.script for mf in targets}
    undone = {f.name.version for f in files if f.kind == "U"}
    for mf in files:
        try:
            rendered[mf.script] = mf.render(values)
        except SqlMigrationError as err:
            if mf.script in wanted:
                findings.append(Finding(mf.script, err.line or 1, "unreadable", err.detail))
    if progress and squawk:
        progress(f"squawk: {len(targets)} files")
    readable = [mf for mf in targets if mf.script in rendered]
    reports = run_squawk(readable, rendered) if squawk else []
    findings += [
        Finding(r.script, r.line, r.rule, r.message, r.help, "squawk", r.column) for r in reports
    ]
    broken = {f.script for f in findings if f.rule in (_SYNTAX_RULE, "unreadable")}
    parsed = {s: _parse(text) for s, text in rendered.items() if s not in broken}
    deprecated = _deprecations(files, parsed)
    for n, mf in enumerate(targets, 1):
        if progress and n % 100 == 0:
            progress(f"guide rules: {n}/{len(targets)} files")
        if mf.script in broken:
            continue
        statements = parsed.get(mf.script)
        if isinstance(statements, Finding):
            findings.append(replace(statements, script=mf.script))
            continue
        if statements is not None:
            findings += _statement_rules(mf, statements, rendered[mf.script], deprecated)
        findings += _file_rules(mf, mf.name.version in undone, rendered[mf.script])
    findings += edited_files(targets, rows or [], committed or {})
    findings += flyway_lock(targets, flyway)
    findings.sort(key=lambda f: (f.script, f.line, f.rule))
    return findings


def flyway_lock(targets: Iterable[MigrationFile], flyway: FlywayConfig | None) -> list[Finding]:
    """Report files run outside a transaction that Flyway 10+ would wait on forever."""
    if flyway is not None and not flyway.transactional_lock:
        return []
    where = (
        f"{flyway.path.name} leaves postgresql.transactional.lock at true"
        if flyway is not None
        else f"the project has no {TOML}"
    )
    fix = (
        flyway.fix
        if flyway is not None
        else f"add {TOML} at the project root with `transactional.lock = false` under "
        '[flyway.postgresql] (docs/migrations.md, "The Flyway CLI")'
    )
    return [
        Finding(
            mf.script,
            1,
            "flyway-transactional-lock",
            f"runs outside a transaction, and {where}: Flyway 10+ then holds its lock in an "
            "open transaction, which this file waits on forever under `flyway migrate`",
            fix,
        )
        for mf in targets
        if mf.kind in ("V", "R") and not mf.config.execute_in_transaction
    ]


def _parse(text: str) -> list[tuple[int, Any]] | Finding:
    """Return (offset, statement node) pairs, or a finding for what PostgreSQL cannot parse."""
    try:
        return [(first_token(text, rs.stmt_location or 0), rs.stmt) for rs in parse_sql(text)]
    except ParseError as err:
        where = err.location if isinstance(err.location, int) else 0
        return Finding("", line_at(text, where), _SYNTAX_RULE, str(err.args[0]))


def _deprecations(
    files: list[MigrationFile], parsed: Mapping[str, Any]
) -> dict[tuple[str, str], MigrationFile]:
    """Map (table, column) to the first V file that marks the column deprecated."""
    marks: dict[tuple[str, str], MigrationFile] = {}
    for mf in files:
        statements = parsed.get(mf.script)
        if mf.kind != "V" or not isinstance(statements, list):
            continue
        for _, stmt in statements:
            if (
                isinstance(stmt, ast.CommentStmt)
                and stmt.objtype == ObjectType.OBJECT_COLUMN
                and stmt.comment
                and _DEPRECATED.match(stmt.comment)
            ):
                names = [n.sval for n in stmt.object]
                marks.setdefault((names[-2], names[-1]), mf)
    return marks


def _statement_rules(
    mf: MigrationFile,
    statements: list[tuple[int, Any]],
    text: str,
    deprecated: Mapping[tuple[str, str], MigrationFile],
) -> list[Finding]:
    findings: list[Finding] = []
    if mf.kind == "U":
        return findings
    created = {s.relation.relname for _, s in statements if isinstance(s, ast.CreateStmt)}
    created |= {s.into.rel.relname for _, s in statements if isinstance(s, ast.CreateTableAsStmt)}
    for offset, stmt in statements:
        line = line_at(text, offset)
        if isinstance(stmt, ast.AlterTableStmt) and stmt.relation is not None:
            table = stmt.relation.relname
            for cmd in stmt.cmds or ():
                if cmd.subtype != AlterTableType.AT_DropColumn:
                    continue
                mark = deprecated.get((table, cmd.name))
                if (
                    mark is None
                    or mf.name.version is None
                    or not (mark.name.version is not None and mark.name.version < mf.name.version)
                ):
                    findings.append(
                        Finding(
                            mf.script,
                            line,
                            "drop-column-without-deprecation",
                            f"drops column {table}.{cmd.name} without a deprecation step",
                            "first ship a migration with `COMMENT ON COLUMN "
                            f"{table}.{cmd.name} IS 'DEPRECATED: <why, what replaces it>'` and "
                            "the release that stops using the column; drop it in a later one",
                        )
                    )
        elif (
            isinstance(stmt, ast.IndexStmt)
            and not stmt.concurrent
            and stmt.relation.relname not in created
        ):
            findings.append(
                Finding(
                    mf.script,
                    line,
                    "index-not-concurrent",
                    f"CREATE INDEX on existing table {stmt.relation.relname} locks it "
                    "against writes while the index builds",
                    "use CREATE INDEX CONCURRENTLY, alone in its own file, with "
                    f"`executeInTransaction=false` in {mf.script}.conf",
                )
            )
    if mf.config.execute_in_transaction:
        for offset, stmt in statements:
            if getattr(stmt, "concurrent", False):
                findings.append(
                    Finding(
                        mf.script,
                        line_at(text, offset),
                        "concurrently-in-transaction",
                        "CONCURRENTLY cannot run inside a transaction, and this file runs in one",
                        f"add `executeInTransaction=false` to {mf.script}.conf",
                    )
                )
    elif len(statements) > 1:
        findings.append(
            Finding(
                mf.script,
                line_at(text, statements[1][0]),
                "non-transactional-multi-statement",
                f"a file run outside a transaction holds {len(statements)} statements",
                "the guide wants multi-statement migrations in a transaction: if one "
                "statement fails, the ones before it stay applied; put each in its own file",
            )
        )
    return findings


def _file_rules(mf: MigrationFile, has_undo: bool, text: str) -> list[Finding]:
    if mf.kind != "V":
        return []
    comments = re.findall(r"--[^\n]*|/\*.*?\*/", text, re.DOTALL)
    if has_undo or any(_ROLLBACK.search(c) for c in comments):
        return []
    return [
        Finding(
            mf.script,
            1,
            "no-rollback-instructions",
            "no undo file and no comment saying how to roll this migration back",
            f"add U{mf.name.version}__{mf.name.raw_description}.sql, or a `-- Rollback: ...` "
            "comment at the top",
        )
    ]


def edited_files(
    targets: Iterable[MigrationFile], rows: list[HistoryRow], committed: Mapping[str, int]
) -> list[Finding]:
    """Report V files that differ from what the database ran or what was committed."""
    applied = applied_versions(rows)
    findings: list[Finding] = []
    for mf in targets:
        if mf.kind != "V":
            continue
        row = applied.get(mf.name.version)  # type: ignore[arg-type]
        if row is not None and row.type == TYPE_SQL and row.checksum != mf.checksum:
            findings.append(
                Finding(
                    mf.script,
                    1,
                    "edited-applied-file",
                    f"differs from the version applied on {row.installed_on:%Y-%m-%d %H:%M} "
                    f"(checksum {mf.checksum} on disk, {row.checksum} applied)",
                    "revert the edit and put the change in a new migration",
                )
            )
        elif mf.script in committed and committed[mf.script] != mf.checksum:
            findings.append(
                Finding(
                    mf.script,
                    1,
                    "edited-committed-file",
                    "differs from the committed version at the base ref; a committed "
                    "migration may already have run somewhere",
                    "revert the edit and put the change in a new migration",
                )
            )
    return findings


def operation_findings(
    files: Iterable[tuple[MigrationFile, str]],
    model_columns: Mapping[tuple[str, str], str],
    catalog: Catalog | None,
    limits: Limits | None = None,
) -> list[Finding]:
    """Report what `migrate` refuses (sqlmigrations.lib.dangerous) as lint findings.

    `files`: the files with their rendered SQL. With a catalog and limits, the sized rules
    count on large tables only, with their sizes; without, only the rules that need no
    database. A malformed acknowledgement is a finding at its line.
    """
    findings: list[Finding] = []
    readable: list[tuple[MigrationFile, str, Mapping[str, Any]]] = []
    for mf, text in files:
        try:
            readable.append((mf, text, dangerous.acknowledgements(text, mf.script)))
        except BadAcknowledgement as err:
            findings.append(Finding(mf.script, err.line or 1, "bad-acknowledgement", err.detail))
    if catalog is not None and limits is not None:
        # As migrate checks them: in order, each file seeing what the earlier ones did.
        pairs = [(mf, text) for mf, text, _ in readable]
        refused, _ = dangerous.dangerous_operations(catalog, pairs, model_columns, limits)
    else:
        run = dangerous.run_state()
        refused = [
            op
            for mf, text, acks in readable
            for op in dangerous.classify(mf, text, None, model_columns, run)
            if op.rule not in dangerous.SIZED and op.rule not in acks
        ]
    for op in refused:
        recipe = dangerous.RULES[op.rule][1]
        findings.append(Finding(op.script, op.line, op.rule, op.problem(), recipe, "migrate"))
    return findings


def merge_operation_findings(findings: list[Finding], extra: list[Finding]) -> list[Finding]:
    """Add migrate's findings; the guide's finding of the same rule and line gives way."""
    seen = {(f.script, f.line, f.rule) for f in extra}
    kept = [f for f in findings if (f.script, f.line, f.rule) not in seen]
    return sorted(kept + extra, key=lambda f: (f.script, f.line, f.rule))
