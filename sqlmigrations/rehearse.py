"""`migrate --rehearse`: apply the pending files to a restored copy and report what they did.

A deploy learns a file's cost when it runs on the live database. A rehearsal runs the
same `migrate` (the same checks, the same executor, the same lock waits) on a scratch
database restored from a backup, and reports for each file: how long it took, the locks
it held on tables and for about how long, whether it rewrote a table (its relfilenode
changed), the rows it touched, and migrate's large-table findings with the copy's sizes.
It fails (exit 1) when a file fails or holds a lock that stops writes longer than the
lock budget.

The restore lives in dbops (sqlmigrations may not import it): SQL_MIGRATIONS
["REHEARSAL_SOURCE"] names a context manager `source(backup_name, say)` that yields
{"NAME": scratch database, "BACKUP": what it was restored from} and removes the copy at
the end. With --from-snapshot it is called with `snapshot=` too (an RDS snapshot clone).
The copy is reached through a connection alias made for the run, removed afterwards: the
source's "SETTINGS" when it gives them (a copy on another server), else the migration
alias's settings with another NAME. "PLACE" names the copy in the report, and
"LEFT_BEHIND", set by the source when it could not remove the copy, fails the run.

How each measure is taken (docs/migrations.md, "Rehearse on a copy"):
- locks: a thread with its own connection reads pg_locks for the migrating backend every
  SAMPLE_S seconds; a lock's held time is from its first to its last sighting, so it is
  at least that long and may be up to one interval longer;
- rewrites: pg_class.relfilenode of every table before and after the file;
- rows: pg_stat_user_tables n_tup_ins + n_tup_upd + n_tup_del before and after the file,
  after pg_stat_force_next_flush() made the migrating backend publish its counts;
- duration: flyway_schema_history.execution_time of the copy.
"""

from __future__ import annotations

import copy
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils.module_loading import import_string

from sqlmigrations import engine, largetables
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.lockwait import parse_duration
from sqlmigrations.redact import redact
from sqlmigrations.wrappers import scripts_of

ALIAS = "sqlmigrations_rehearsal"
SAMPLE_S = 0.02
# Locks that stop other sessions' writes (ACCESS EXCLUSIVE also stops reads): the budget
# counts these. ROW EXCLUSIVE and weaker let the application go on.
BLOCKING = ("AccessExclusiveLock", "ExclusiveLock", "ShareRowExclusiveLock", "ShareLock")
# Refused with --rehearse: a rehearsal runs what a deploy runs, a plain `migrate`.
REFUSED = {
    "app_label": "an app label",
    "migration_name": "a migration name",
    "fake": "--fake",
    "fake_initial": "--fake-initial",
    "plan": "--plan",
    "run_syncdb": "--run-syncdb",
    "prune": "--prune",
    "check_unapplied": "--check",
    "terminate_blockers_older_than": "--terminate-blockers-older-than",
}
ONLY_WITH_REHEARSE = {
    "from_backup": "--from-backup",
    "from_snapshot": "--from-snapshot",
    "lock_budget": "--lock-budget",
    "json": "--json",
}

_USER_TABLES = (
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%%'"
)
_LOCKS = (
    "SELECT l.mode, n.nspname || '.' || c.relname FROM pg_catalog.pg_locks l "
    "JOIN pg_catalog.pg_class c ON c.oid = l.relation "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE l.pid = %s AND l.granted AND l.locktype = 'relation' "
    "AND c.relkind IN ('r', 'p', 'm') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%%'"
)


def refused_options(options: dict[str, Any]) -> str | None:
    """Name the migrate arguments that do not go with --rehearse (or need it), or None."""
    if options.get("rehearse"):
        given = [what for key, what in REFUSED.items() if options.get(key)]
        if given:
            return f"--rehearse runs a plain `migrate` on a copy: leave out {', '.join(given)}."
        return None
    given = [what for key, what in ONLY_WITH_REHEARSE.items() if options.get(key)]
    if given:
        return f"{', '.join(given)}: {'goes' if len(given) == 1 else 'go'} only with --rehearse."
    return None


def budget_ms(raw: str | None) -> int:
    """The lock budget in ms: --lock-budget, else SQL_MIGRATIONS['REHEARSAL_LOCK_BUDGET'].

    0 turns the check off. Raises ValueError naming the option or setting.
    """
    if raw is not None:
        return parse_duration(raw, what="--lock-budget")
    return parse_duration(
        str(engine.option("REHEARSAL_LOCK_BUDGET")),
        what="SQL_MIGRATIONS['REHEARSAL_LOCK_BUDGET']",
    )


@dataclass
class Held:
    """One lock (mode, table) of one file, as the sampling saw it."""

    mode: str
    table: str
    first: float
    last: float

    @property
    def seconds(self) -> float:
        return self.last - self.first

    @property
    def blocking(self) -> bool:
        return self.mode in BLOCKING


NOT_RUN = "not run"  # FileReport.migration of a file a refusal stopped before it ran


@dataclass
class FileReport:
    """What one applied migration did on the copy."""

    migration: str  # app_label.name
    scripts: list[str]
    seconds: float | None = None  # execution_time of the history, else the wall time
    locks: list[Held] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    error: str | None = None
    over_budget: list[Held] = field(default_factory=list)
    started: float = 0.0

    @property
    def name(self) -> str:
        return ", ".join(self.scripts) or self.migration

    def as_json(self) -> dict[str, Any]:
        return {
            "migration": self.migration,
            "scripts": self.scripts,
            "seconds": self.seconds,
            "locks": [
                {"mode": h.mode, "table": h.table, "held_seconds": round(h.seconds, 3)}
                for h in self.locks
            ],
            "rewritten": self.rewritten,
            "rows_touched": self.rows,
            "lint": self.findings,
            "error": self.error,
            "over_budget": [f"{h.mode} on {h.table}" for h in self.over_budget],
        }


class LockMonitor(threading.Thread):
    """Sample the migrating backend's table locks and give each to the file running."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rehearsal-locks", daemon=True)
        self.pid = pid
        self.current: tuple[int, FileReport | None] = (0, None)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def switch(self, report: FileReport | None) -> None:
        self.current = (self.current[0] + 1, report)

    def run(self) -> None:
        # Its own connection: Django's connections are per thread.
        try:
            with connections[ALIAS].cursor() as cursor:
                while not self.stop.is_set():
                    generation, report = self.current
                    cursor.execute(_LOCKS, [self.pid])
                    rows = cursor.fetchall()
                    now = time.monotonic()
                    # A file that ended during the query: its sample may show the next one's.
                    if report is not None and self.current[0] == generation:
                        _record(report, rows, now)
                    self.stop.wait(SAMPLE_S)
        except Exception as err:  # noqa: BLE001 - reported by the main thread
            self.error = err
        finally:
            connections[ALIAS].close()


def bookkeeping() -> set[str]:
    """The engine's own tables (its history, Django's): every file writes a row to each."""
    return {f"{engine.option('SCHEMA')}.{engine.option('TABLE')}", "public.django_migrations"}


def _record(report: FileReport, rows: list[tuple[str, str]], now: float) -> None:
    seen = {(h.mode, h.table): h for h in report.locks}
    skip = bookkeeping()
    for mode, table in rows:
        if table in skip:
            continue
        held = seen.get((mode, table))
        if held is None:
            report.locks.append(Held(mode, table, now, now))
        else:
            held.last = now


@contextmanager
def scratch_alias(base_alias: str, scratch: dict[str, Any]) -> Iterator[str]:
    """A connection alias to the copy; removed after.

    The source's SETTINGS when it gave them, else the migration alias's with another NAME.
    """
    if scratch.get("SETTINGS"):
        settings_dict = copy.deepcopy(scratch["SETTINGS"])
    else:
        settings_dict = copy.deepcopy(connections.settings[base_alias])
        settings_dict["NAME"] = scratch["NAME"]
    connections.settings[ALIAS] = settings_dict
    try:
        yield ALIAS
    finally:
        if hasattr(connections._connections, ALIAS):
            connections[ALIAS].close()
            del connections[ALIAS]
        connections.settings.pop(ALIAS, None)


def pending_files(alias: str) -> list[str]:
    """The files `migrate` would apply on this database: versioned, then repeatables."""
    with connections[alias].cursor() as cursor:
        run = engine.snapshot(cursor)
    files = engine.load_files()
    pending = [mf.script for mf in files if mf.kind == "V" and mf.name.version not in run.applied]
    return pending + [mf.script for mf, _ in engine.pending_repeatables(run.rows, run.placeholders)]


def _tables(cursor: Any) -> dict[int, tuple[str, int, int]]:
    """oid -> (schema.table, relfilenode, rows inserted+updated+deleted so far)."""
    cursor.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    cursor.execute(
        "SELECT c.oid, n.nspname || '.' || c.relname, c.relfilenode, "
        "COALESCE(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0) "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid "
        "WHERE c.relkind IN ('r', 'm') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_toast%%'"
    )
    return {oid: (name, node, rows) for oid, name, node, rows in cursor.fetchall()}


class Rehearsal:
    """One rehearsal on the scratch alias: the hooks `migrate` calls around each migration."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.reports: list[FileReport] = []
        self.before: dict[int, tuple[str, int, int]] = {}
        self.monitor: LockMonitor | None = None
        self.running: FileReport | None = None

    def hook(self, action: str, migration: Any) -> None:
        """migrate's progress callback: measure around each migration it applies."""
        if action == "apply_start":
            report = FileReport(f"{migration.app_label}.{migration.name}", scripts_of(migration))
            with connections[self.alias].cursor() as cursor:
                self.before = _tables(cursor)
            report.started = time.monotonic()
            self.reports.append(report)
            self.running = report
            if self.monitor is not None:
                self.monitor.switch(report)
        elif action == "apply_success" and self.running is not None:
            report, self.running = self.running, None
            report.seconds = time.monotonic() - report.started
            if self.monitor is not None:
                self.monitor.switch(None)
            with connections[self.alias].cursor() as cursor:
                # This backend's counts reach pg_stat_* when it next goes idle: make that
                # now (PostgreSQL 15+), then read them on the next statement.
                cursor.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
                after = _tables(cursor)
            skip = bookkeeping()
            for oid, (table, node, rows) in after.items():
                if table in skip:
                    continue
                old = self.before.get(oid)
                if old is not None and old[1] != node:
                    report.rewritten.append(table)
                touched = rows - (old[2] if old else 0)
                if touched > 0:
                    report.rows[table] = touched


def _execution_times(alias: str) -> dict[str, float]:
    """script -> seconds, from the copy's history (the newest row of each script)."""
    connection = connections[alias]
    table = ".".join(
        connection.ops.quote_name(part)
        for part in (engine.option("SCHEMA"), engine.option("TABLE"))
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT script, execution_time FROM {table} WHERE success ORDER BY installed_rank"
        )
        return {script: ms / 1000 for script, ms in cursor.fetchall()}


def _findings(alias: str) -> dict[str, list[str]]:
    """migrate's large-table findings of the pending files, with the copy's sizes."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        run = engine.snapshot(cursor)
    found, _ = largetables.lint_findings(
        connection, engine.load_files(), run.placeholders, set(run.applied)
    )
    by_script: dict[str, list[str]] = {}
    for finding in found:
        by_script.setdefault(finding.script, []).append(str(finding))
    return by_script


def rehearse(command: BaseCommand, options: dict[str, Any]) -> None:
    """Run the rehearsal for the migrate command `command`; raise CommandError to fail."""
    try:
        budget = budget_ms(options.get("lock_budget"))
    except ValueError as err:
        raise CommandError(f"{err}; nothing was rehearsed.", returncode=2) from err
    as_json = bool(options.get("json"))
    out = command.stderr if as_json else command.stdout

    def say(message: str) -> None:
        out.write(message)
        out.flush()

    live = options["database"]
    if not pending_files(live):
        if as_json:
            command.stdout.write('{"pending": [], "ok": true}')
        else:
            say("No pending migration files: nothing to rehearse.")
        return
    source_path = engine.option("REHEARSAL_SOURCE")
    if not source_path:
        raise CommandError(
            "SQL_MIGRATIONS['REHEARSAL_SOURCE'] is not set: name the context manager that "
            "restores a backup into a scratch database (docs/migrations.md, "
            '"Rehearse on a copy").'
        )
    try:
        source: Callable[..., Any] = import_string(source_path)
    except ImportError as err:
        raise CommandError(
            f"SQL_MIGRATIONS['REHEARSAL_SOURCE']={source_path!r} cannot be imported: {err}; "
            "fix the setting."
        ) from err
    backup_name = options.get("from_backup") or "latest"
    snapshot = options.get("from_snapshot")
    extra = {"snapshot": snapshot} if snapshot else {}
    try:
        with source(backup_name, say, **extra) as scratch, scratch_alias(live, scratch) as alias:
            reports, failure, pending = _run(command, alias, options)
    except KeyboardInterrupt:
        # The source removed the copy on the way out (Ctrl-C, or SIGTERM made one).
        raise CommandError(
            "The rehearsal was interrupted: its copy was removed, nothing was reported."
        ) from None
    _report(command, scratch, reports, pending, budget, as_json)
    over = [(r, h) for r in reports for h in r.over_budget]
    if failure is not None:
        raise CommandError(failure)
    if scratch.get("LEFT_BEHIND"):
        raise CommandError(str(scratch["LEFT_BEHIND"]))
    if over:
        report, held = over[0]
        raise CommandError(
            f"{report.name} held {held.mode} on {held.table} for {held.seconds:.2f}s, over "
            f"the lock budget of {budget / 1000:g}s (--lock-budget, "
            "SQL_MIGRATIONS['REHEARSAL_LOCK_BUDGET']): writes to it would wait that long in "
            'a deploy. Make the file lock less (docs/migrations.md, "Large tables").'
        )


def _run(
    command: BaseCommand, alias: str, options: dict[str, Any]
) -> tuple[list[FileReport], str | None, list[str]]:
    """Apply the pending files on the copy; return the reports, the failure and the files."""
    connection = connections[alias]
    connection.ensure_connection()
    pending = pending_files(alias)
    if not pending:
        return [], None, []
    findings = _findings(alias)
    rehearsal = Rehearsal(alias)
    monitor = rehearsal.monitor = LockMonitor(connection.connection.info.backend_pid)
    inner = type(command)()
    inner.progress_hook = rehearsal.hook  # type: ignore[attr-defined]
    captured = io.StringIO()
    failure: str | None = None
    monitor.start()
    try:
        call_command(
            inner,
            database=alias,
            interactive=False,
            verbosity=options.get("verbosity", 1),
            wait_for_blockers=options.get("wait_for_blockers"),
            skip_checks=False,
            stdout=captured,
            stderr=captured,
        )
    except (CommandError, SqlMigrationError) as err:
        where = f"at {rehearsal.running.name}" if rehearsal.running else "before the first file ran"
        if rehearsal.running is not None:
            rehearsal.running.error = redact(str(err))
        failure = f"The rehearsal failed {where}: {redact(str(err))}"
    finally:
        monitor.stop.set()
        monitor.join()
    if monitor.error is not None:
        command.stderr.write(f"The lock sampling stopped: {redact(str(monitor.error))}")
    times = _execution_times(alias)
    for report in rehearsal.reports:
        recorded = [times[s] for s in report.scripts if s in times]
        if recorded and report.error is None:
            report.seconds = sum(recorded)
        for script in report.scripts:
            report.findings += findings.get(script, [])
    # A refusal before the first file: show its findings all the same.
    if not rehearsal.reports and findings:
        for script, found in findings.items():
            rehearsal.reports.append(FileReport(NOT_RUN, [script], findings=found))
    return rehearsal.reports, failure, pending


def _report(
    command: BaseCommand,
    scratch: dict[str, Any],
    reports: list[FileReport],
    pending: list[str],
    budget: int,
    as_json: bool,
) -> None:
    for report in reports:
        if budget > 0:
            report.over_budget = [
                h for h in report.locks if h.blocking and h.seconds * 1000 > budget
            ]
    if as_json:
        import json

        command.stdout.write(
            json.dumps(
                {
                    "backup": scratch["BACKUP"],
                    "scratch_database": scratch["NAME"],
                    "copy": scratch.get("PLACE") or f"scratch database {scratch['NAME']}",
                    "pending": pending,
                    "lock_budget_seconds": budget / 1000,
                    "sample_seconds": SAMPLE_S,
                    "files": [r.as_json() for r in reports],
                    "ok": all(r.error is None and not r.over_budget for r in reports)
                    and not scratch.get("LEFT_BEHIND"),
                },
                indent=2,
            )
        )
        return
    write = command.stdout.write
    place = scratch.get("PLACE") or scratch["NAME"]
    write(
        f"Rehearsal on {place} (restored from {scratch['BACKUP']}): {len(pending)} pending file(s)."
    )
    if not pending:
        write("  The copy has every file applied already: nothing to rehearse.")
    for report in reports:
        if report.migration == NOT_RUN:  # refused before the first file ran
            write(f"  {report.name}: NOT RUN (refused before the first file)")
        else:
            took = f"{report.seconds:.3f}s" if report.seconds is not None else "-"
            state = "FAILED" if report.error else "OK"
            write(f"  {report.name} ({report.migration}): {state}, {took}")
            write(f"    rewrote: {', '.join(report.rewritten) or 'no table'}")
            rows = ", ".join(f"{t} {n}" for t, n in sorted(report.rows.items()))
            write(f"    rows touched: {rows or 'none'}")
        for held in report.locks:
            mark = "  OVER BUDGET" if held in report.over_budget else ""
            took = f"~{held.seconds:.2f}s" if held.seconds else f"< {SAMPLE_S:g}s (seen once)"
            write(f"    lock: {held.mode} on {held.table}, held {took}{mark}")
        for finding in report.findings:
            write(f"    lint: {finding}")
        if report.error:
            write(f"    error: {report.error}")
    write(
        f"Locks are sampled every {SAMPLE_S * 1000:g} ms: a held time is approximate (it "
        "may be up to one interval longer). "
        + ("The copy is removed" if not scratch.get("LEFT_BEHIND") else "The copy is LEFT BEHIND")
        + "; the live database was not touched."
    )
