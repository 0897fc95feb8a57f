"""Run squawk (a PostgreSQL migration linter, the squawk-cli wheel) over migration files.

Each file is linted as it runs: placeholders replaced, inside a transaction unless its
.sql.conf says executeInTransaction=false, against PostgreSQL 15, with this project's
rule choices below.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from sqlmigrations.lib import processes
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile

PG_VERSION = "15"
SQUAWK_DISTRIBUTION = "squawk-cli"
SQUAWK_VERSION = "2.70.0"  # requirements-tools.txt pins the same
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


class SquawkError(SqlMigrationError):
    """squawk is missing or could not lint the files."""


@dataclass(frozen=True)
class Report:
    """One squawk finding, mapped back to the migration file (lines from 1)."""

    script: str
    line: int
    column: int
    rule: str
    message: str
    help: str


def squawk_binary() -> str:
    """Return the squawk program of the squawk-cli wheel installed with this Python.

    Only that one, at the pinned version: the rule choices above are written for it, and a
    `squawk` found elsewhere on PATH may be any version (or another program).
    """
    install = (
        f"run `make venv` (it installs requirements-tools.txt) or `{sys.executable} -m pip "
        f"install -r requirements-tools.txt` (squawk-cli=={SQUAWK_VERSION})"
    )
    try:
        dist = metadata.distribution(SQUAWK_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise SquawkError(
            f"squawk is not installed in this Python environment: {install}", path="squawk"
        ) from None
    if dist.version != SQUAWK_VERSION:
        raise SquawkError(
            f"squawk-cli {dist.version} is installed, but this project pins {SQUAWK_VERSION} "
            f"(its rule choices are written for it): {install}",
            path="squawk",
        )
    for entry in dist.files or ():
        if entry.name in ("squawk", "squawk.exe"):
            program = Path(str(dist.locate_file(entry))).resolve()
            if program.is_file():
                return str(program)
    raise SquawkError(
        f"squawk-cli {dist.version} is installed without its squawk program: {install}",
        path="squawk",
    )


def run_squawk(files: list[MigrationFile], rendered: Mapping[str, str]) -> list[Report]:
    """Run squawk once per group of settings; map its findings back to file:line.

    Files with placeholders (or a BOM, or another encoding) are linted as rendered copies.
    """
    groups: dict[tuple[bool, bool], list[MigrationFile]] = {}
    for mf in files:
        key = (mf.config.execute_in_transaction, mf.kind == "U")
        groups.setdefault(key, []).append(mf)
    findings: list[Report] = []
    with tempfile.TemporaryDirectory(prefix="sqllint-") as tmp:
        for (in_transaction, undo), group in groups.items():
            paths: dict[str, str] = {}
            for i, mf in enumerate(group):
                text = rendered[mf.script]
                if mf.path.read_bytes() == text.encode("utf-8"):
                    paths[str(mf.path)] = mf.script  # nothing replaced: lint the file itself
                    continue
                copy = Path(tmp) / f"{in_transaction:d}{undo:d}-{i}-{mf.path.name}"
                copy.write_text(text, encoding="utf-8")
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


def _squawk_findings(args: list[str], paths: dict[str, str], cwd: str) -> list[Report]:
    result = processes.run([*args, *paths], capture_output=True, text=True, cwd=cwd, check=False)
    try:
        reports = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        reports = None
    if result.returncode not in (0, 1) or not isinstance(reports, list):
        raise SquawkError(
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
            Report(
                script,
                int(report.get("line", 0)) + 1,  # squawk counts lines and columns from 0
                int(report.get("column", 0)) + 1,
                rule,
                report.get("message", ""),
                hint,
            )
        )
    return findings
