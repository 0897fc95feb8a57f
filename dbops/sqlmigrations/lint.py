"""Lint migration files: squawk (a PostgreSQL migration linter) plus the team guide's rules.

The guide's rules (docs/migrations.md, "Lint"):
- drop-column-without-deprecation: `DROP COLUMN t.c` needs an EARLIER migration that marks
  the column deprecated with `COMMENT ON COLUMN t.c IS 'DEPRECATED ...'`, so the release
  that stops using the column ships before the column goes.
- index-not-concurrent: `CREATE INDEX` on a table the same file did not create must be
  `CREATE INDEX CONCURRENTLY`, in a file whose .sql.conf says executeInTransaction=false.
- concurrently-in-transaction: CONCURRENTLY in a file that runs in a transaction (squawk's
  own rule for it only fires on an explicit BEGIN).
- non-transactional-multi-statement: a file run outside a transaction holds one statement
  (PostgreSQL runs a multi-statement string as one implicit transaction, where
  CONCURRENTLY fails, and a half-applied file cannot be re-run).
- no-rollback-instructions: a V file has a U file or says in a comment how to roll back.
- edited-applied-file / edited-committed-file: an applied (or already committed) V file
  must not change; callers pass the history rows and the committed checksums.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ObjectType
from pglast.parser import ParseError

from dbops.sqlmigrations.checksum import flyway_checksum
from dbops.sqlmigrations.exceptions import SqlMigrationError, line_at
from dbops.sqlmigrations.files import MigrationFile
from dbops.sqlmigrations.history import TYPE_SQL, HistoryRow
from dbops.sqlmigrations.validation import applied_versions

PG_VERSION = "15"
# Squawk rules this project turns off, and why (docs/migrations.md repeats this):
SQUAWK_EXCLUDED = {
    # Replaced by the guide's rule: dropping IS allowed after a deprecation step.
    "ban-drop-column": "replaced by drop-column-without-deprecation",
    # Replaced by index-not-concurrent, which also names the .sql.conf to write.
    "require-concurrent-index-creation": "replaced by index-not-concurrent",
    # Django's CharField is varchar(n) (the generator renders models as Django does) and
    # the schema documents its limits as varchar(n); widening one later is a metadata-only
    # change in PostgreSQL.
    "prefer-text-field": "the schema uses varchar(n) limits on purpose (Django CharField)",
    # They fire on every statement, including COMMENT ON a table created a line above;
    # files run one at a time under the advisory lock, and a file that alters a busy
    # table sets its own `SET lock_timeout` (docs/migrations.md).
    "require-lock-timeout": "noise on new tables; set lock_timeout where a busy table is altered",
    "require-statement-timeout": "noise on new tables; set it where a slow change is made",
    # smallint is chosen on purpose for small bounded values (effort points, weekdays),
    # each with a CHECK constraint; an int id column is still caught by prefer-bigint-over-int.
    "prefer-bigint-over-smallint": "smallint is used on purpose for small bounded values",
}
# Undo files exist to drop what their V file created.
SQUAWK_EXCLUDED_UNDO = {
    "ban-drop-table": "an undo file drops what its V file created",
    "ban-drop-function": "an undo file drops what its V file created",
}

_DEPRECATED = re.compile(r"\s*DEPRECATED\b", re.IGNORECASE)
_ROLLBACK = re.compile(r"roll\s*back|rollback|undo|revert", re.IGNORECASE)
_SYNTAX_RULE = "syntax-error"


class LintError(SqlMigrationError):
    """The linter itself could not run (squawk missing or crashing)."""


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


def squawk_binary() -> str:
    """Find squawk next to this Python (the venv) or on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.exists():
        return str(beside)
    found = shutil.which("squawk")
    if found:
        return found
    raise LintError(
        "squawk is not installed: run `pip install -r requirements-dev.txt` (squawk-cli)",
        path="squawk",
    )


def lint(
    files: list[MigrationFile],
    targets: list[MigrationFile],
    *,
    values: Mapping[str, Any],
    rows: list[HistoryRow] | None = None,
    committed: Mapping[str, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Finding]:
    """Lint `targets` (a subset of `files`, which the deprecation rule looks back through).

    `rows`: the history, to catch edited applied files; `committed`: script -> checksum of
    the V files at the git base ref, to catch edited committed ones.
    """
    rendered: dict[str, str] = {}
    findings: list[Finding] = []
    for mf in files:
        try:
            rendered[mf.script] = mf.render(values)
        except SqlMigrationError as err:
            if mf in targets:
                findings.append(Finding(mf.script, err.line or 1, "unreadable", err.detail))
    if progress:
        progress(f"squawk: {len(targets)} files")
    findings += run_squawk([mf for mf in targets if mf.script in rendered], rendered)
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
        findings += _file_rules(mf, files, rendered[mf.script])
    findings += edited_files(targets, rows or [], committed or {})
    findings.sort(key=lambda f: (f.script, f.line, f.rule))
    return findings


def run_squawk(files: list[MigrationFile], rendered: Mapping[str, str]) -> list[Finding]:
    """Run squawk once per group of settings over rendered copies; map back to file:line."""
    groups: dict[tuple[bool, bool], list[MigrationFile]] = {}
    for mf in files:
        key = (mf.config.execute_in_transaction, mf.kind == "U")
        groups.setdefault(key, []).append(mf)
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="sqllint-") as tmp:
        for (in_transaction, undo), group in groups.items():
            paths: dict[str, str] = {}
            for i, mf in enumerate(group):
                # The name is kept (squawk reads nothing from it); a folder per file
                # keeps sub-folder files apart.
                copy = Path(tmp) / f"{in_transaction:d}{undo:d}-{i}" / mf.path.name
                copy.parent.mkdir()
                copy.write_text(rendered[mf.script], encoding="utf-8")
                paths[str(copy)] = mf.script
            excluded = sorted({*SQUAWK_EXCLUDED, *(SQUAWK_EXCLUDED_UNDO if undo else {})})
            args = [
                squawk_binary(),
                "--reporter=json",
                f"--pg-version={PG_VERSION}",
                f"--exclude={','.join(excluded)}",
            ]
            if in_transaction:
                args.append("--assume-in-transaction")
            findings += _squawk_findings(args, paths, tmp)
    return findings


def _squawk_findings(args: list[str], paths: dict[str, str], cwd: str) -> list[Finding]:
    result = subprocess.run([*args, *paths], capture_output=True, text=True, cwd=cwd, check=False)
    try:
        reports = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        reports = None
    if result.returncode not in (0, 1) or not isinstance(reports, list):
        raise LintError(
            f"squawk failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[:500]}",
            path=args[0],
        )
    findings = []
    for report in reports:
        script = paths.get(report.get("file", ""), report.get("file", "?"))
        rule = report.get("rule_name") or "squawk"
        hint = report.get("help") or ""
        findings.append(
            Finding(
                script,
                int(report.get("line", 0)) + 1,  # squawk counts lines from 0
                rule,
                report.get("message", ""),
                hint,
                "squawk",
                int(report["column"]) + 1 if "column" in report else None,
            )
        )
    return findings


def _parse(text: str) -> list[tuple[int, Any]] | Finding:
    """Return (offset, statement node) pairs, or a finding for what PostgreSQL cannot parse."""
    try:
        return [(_first_token(text, rs.stmt_location or 0), rs.stmt) for rs in parse_sql(text)]
    except ParseError as err:
        where = err.location if isinstance(err.location, int) else 0
        return Finding("", line_at(text, where), _SYNTAX_RULE, str(err.args[0]))


def _first_token(text: str, offset: int) -> int:
    """Skip the whitespace and comments libpg_query may count into a statement."""
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
                "PostgreSQL runs them as one implicit transaction (CONCURRENTLY fails there) "
                "and a half-applied file cannot be re-run: put one statement per file",
            )
        )
    return findings


def _file_rules(mf: MigrationFile, files: list[MigrationFile], text: str) -> list[Finding]:
    if mf.kind != "V":
        return []
    has_undo = any(f.kind == "U" and f.name.version == mf.name.version for f in files)
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


def committed_checksums(
    directory: Path, targets: Iterable[MigrationFile], base: str | None = None
) -> tuple[str | None, dict[str, int]]:
    """Return the base commit and the Flyway checksum of each target V file committed there.

    `base` defaults to the merge base of HEAD with origin/main or main (on main itself:
    HEAD, so uncommitted edits of committed files show). Outside git: (None, {}).
    """
    git = shutil.which("git")
    if git is None or _git(git, directory, "rev-parse", "--git-dir") is None:
        if base is not None:
            raise LintError("not a git checkout, so --base cannot be used", path=str(directory))
        return None, {}
    commit = None
    if base is not None:
        commit = _git(git, directory, "rev-parse", "--verify", f"{base}^{{commit}}")
        if commit is None:
            raise LintError(f"unknown git ref {base!r}; pass an existing --base", path="--base")
    else:
        for ref in ("origin/main", "main", "origin/master", "master"):
            commit = _git(git, directory, "merge-base", ref, "HEAD")
            if commit:
                break
        commit = commit or _git(git, directory, "rev-parse", "--verify", "HEAD^{commit}")
        if commit is None:
            return None, {}
    listing = _git(git, directory, "ls-tree", "-r", "-z", commit, "--", ".") or ""
    blobs: dict[str, str] = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, rel = entry.partition("\t")
        blobs[rel] = meta.split()[2]
    result: dict[str, int] = {}
    for mf in targets:
        blob = blobs.get(mf.script) if mf.kind == "V" else None
        if blob is None:
            continue
        data = subprocess.run(
            [git, "cat-file", "blob", blob], cwd=directory, capture_output=True, check=True
        ).stdout
        try:
            result[mf.script] = flyway_checksum(data, path=mf.script)
        except SqlMigrationError:
            continue  # the committed copy was unreadable; the current one is what counts
    return commit, result


def _git(git: str, directory: Path, *args: str) -> str | None:
    done = subprocess.run([git, *args], cwd=directory, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None
