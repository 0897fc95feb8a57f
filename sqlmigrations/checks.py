"""System checks of the SQL files and their Django wrappers (sqlmigrations.E002-E008, E010, E011).

They read file names and migration modules only, never the database or the files' contents,
so `manage.py check` stays fast with a thousand files.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

from sqlmigrations import engine
from sqlmigrations.lib import files
from sqlmigrations.lib.committed import is_committed
from sqlmigrations.lib.names import MigrationName, versioned_name
from sqlmigrations.lib.sequence import Recorded, sequence_problems
from sqlmigrations.lib.versions import Version
from sqlmigrations.wrapper_graph import graph_errors
from sqlmigrations.wrappers import Wrapper, disk_loader, find_wrappers, sql_apps

WRAPPER_HINT = (
    "Create {app}/migrations/{stem}.py in the app that owns its tables: "
    "class Migration(SQLFileMigration) with dependencies = [{previous}] and operations = "
    "[migrations.SeparateDatabaseAndState(database_operations=[RunSQLFile({script!r})], "
    "state_operations=[...the matching model operations...])] (see docs/generator-and-drift.md)."
)


def scan_names(location: Path) -> tuple[dict[str, MigrationName], list[Error]]:
    """Parse the name of every migration file under `location`; unparsable ones are errors."""
    names, bad = files.scan_names(location)
    errors = [
        _bad_name(err.path, [str(err)], "Rename the file as the message says.") for err in bad
    ]
    return names, errors


def undo_location_errors(names: dict[str, MigrationName]) -> list[Error]:
    """With SQL_MIGRATIONS["UNDO_LOCATION"]: U files there only, and only U files there.

    Flyway Community cannot parse a U file name: with validateMigrationNaming (flyway.toml)
    one in its location fails every Flyway run, and a V file in the undo folder never runs.
    """
    undo = engine.option("UNDO_LOCATION")
    if undo is None:
        return []
    location = Path(engine.option("LOCATION")).name
    errors = [
        _bad_name(
            rel,
            [f"an undo file in {location}/, where Flyway Community cannot parse its name"],
            f"move it to {undo.name}/ (SQL_MIGRATIONS['UNDO_LOCATION'])",
        )
        for rel, name in names.items()
        if name.kind == "U"
    ]
    undo_names, undo_errors = scan_names(undo)
    errors += undo_errors
    errors += [
        _bad_name(
            rel,
            [f"not an undo file, in {undo.name}/: Flyway does not read that folder"],
            f"move it to {location}/",
        )
        for rel, name in undo_names.items()
        if name.kind != "U"
    ]
    return errors


def _bad_name(rel: str, problems: list[str], fix: str) -> Error:
    message = "; ".join(p.removeprefix(f"{rel}: ") for p in problems)
    return Error(
        f"bad migration file name: {message}",
        hint=fix[:1].upper() + fix[1:].rstrip(".") + ".",
        obj=rel,
        id="sqlmigrations.E007",
    )


def sequence_errors(
    versioned: dict[str, MigrationName],
    still_wrapped: dict[str, MigrationName] | None = None,
    recorded: Recorded | None = None,
) -> list[Error]:
    """Report duplicate versions and, under the team's convention, bad names and gaps.

    `still_wrapped`: files that are gone but whose wrapper is left (E003).
    `recorded`: the history, when a database was given (None: judge by names and git).
    """
    errors: list[Error] = []
    by_version: dict[Version, list[str]] = defaultdict(list)
    for rel, name in versioned.items():
        assert name.version is not None
        by_version[name.version].append(rel)
    for version, scripts in sorted(by_version.items()):
        if len(scripts) > 1:
            errors.append(
                Error(
                    f"duplicate version {version} in {' and '.join(sorted(scripts))}: "
                    "each version must be used by exactly one V file.",
                    hint="Give all but one of them the next free version (rename the file "
                    "and its wrapper).",
                    obj=sorted(scripts)[-1],
                    id="sqlmigrations.E005",
                )
            )
    if not engine.option("CHECK_CONVENTION"):
        return errors
    # A deleted file whose wrapper is left holds its place: E003 asks to restore it.
    held = still_wrapped or {}
    location = Path(engine.option("LOCATION"))
    problems = sequence_problems(
        [*versioned.items(), *held.items()],
        recorded,
        committed=lambda script: is_committed(location / script),
    )
    convention: dict[str, list[str]] = defaultdict(list)
    for problem in problems:
        if problem.script in held:
            continue
        if problem.code == "convention":
            convention[problem.script].append(problem.message)
        elif problem.code == "gap":
            what = problem.message.removesuffix(f"; {problem.fix}")
            fix = problem.fix
            errors.append(
                Error(
                    f"{what}.",
                    hint=fix[:1].upper() + fix[1:] + ".",
                    obj=problem.script,
                    id="sqlmigrations.E006",
                )
            )
    for rel, messages in convention.items():
        errors.append(_bad_name(rel, messages[:-1], messages[-1]))
    return errors


def wrapper_errors(
    versioned: dict[str, MigrationName],
    wrappers: list[Wrapper],
    badly_named: set[str],
    after_gap: set[str] | None = None,
) -> list[Error]:
    """Report files without a wrapper, wrappers without a file, and a broken chain.

    `after_gap`: files E006 reports; what they should depend on is decided with the gap.
    """
    errors: list[Error] = []
    after_gap = after_gap or set()
    location = engine.option("LOCATION")
    wrapped: dict[str, list[Wrapper]] = defaultdict(list)
    for wrapper in wrappers:
        for script in wrapper.scripts:
            wrapped[script].append(wrapper)
            if script not in versioned:
                errors.append(
                    Error(
                        f"migration {wrapper.app_label}.{wrapper.name} runs {script}, which "
                        f"is not in {location}.",
                        hint=f"Restore migrations_sql/{script}, correct the name in "
                        f"RunSQLFile(...), or delete {wrapper.path} if the migration was "
                        "never applied anywhere.",
                        obj=wrapper.path,
                        id="sqlmigrations.E003",
                    )
                )
    for script, holders in sorted(wrapped.items()):
        if len(holders) > 1:
            errors.append(
                Error(
                    f"{script} is run by {len(holders)} migrations: "
                    f"{', '.join(str(w) for w in holders)}.",
                    hint="Keep exactly one wrapper per SQL file; delete the others.",
                    obj=script,
                    id="sqlmigrations.E008",
                )
            )
    # A wrapper whose file was deleted still holds its place in the chain (E003 asks to
    # restore the file): the next wrapper depending on it is right.
    chain = dict(versioned)
    for script in wrapped:
        name = versioned_name(script)
        if script not in chain and name is not None:
            chain[script] = name
    order = sorted(chain.items(), key=lambda item: (item[1].version, item[0]))
    previous: tuple[str, Wrapper | None] | None = None  # (script, its wrapper)
    for script, _name in order:
        holder = wrapped[script][0] if wrapped.get(script) else None
        if holder is None and script in badly_named:
            pass  # E007 asks for a rename first; the wrapper is named after the new name
        elif holder is None:
            prev_key = None
            if previous is not None:
                stem = previous[0].rsplit("/", 1)[-1].removesuffix(".sql")
                prev_key = previous[1].key if previous[1] else ("<app>", stem)
            errors.append(
                Error(
                    f"no Django migration runs {script}, so `migrate` never applies it.",
                    hint=WRAPPER_HINT.format(
                        app="<app>",
                        stem=script.rsplit("/", 1)[-1].removesuffix(".sql"),
                        previous=repr(prev_key) if prev_key else "",
                        script=script,
                    ),
                    obj=script,
                    id="sqlmigrations.E002",
                )
            )
        elif previous is not None and previous[1] is not None and script not in after_gap:
            before = previous[1]
            if before.key != holder.key and before.key not in holder.dependencies:
                errors.append(
                    Error(
                        f"migration {holder.app_label}.{holder.name} runs {script} but does "
                        "not depend on "
                        f"{before.app_label}.{before.name}, the wrapper of {previous[0]}: "
                        "the wrapper of V{n} must depend on the wrapper of V{n-1}.",
                        hint=f"Add {before.key!r} to the dependencies of {holder.path}.",
                        obj=holder.path,
                        id="sqlmigrations.E004",
                    )
                )
        previous = (script, holder)
    return errors


def read_history(databases: list[str] | None) -> Recorded | None:
    """Read the history of the first database given; None without one, or if unreadable.

    `migrate` gives the checks its database, so a version that `repair` marked deleted is
    judged as `validate` judges it; plain `check` gives none and reads nothing.
    """
    if not databases:
        return None
    try:
        with connections[databases[0]].cursor() as cursor:
            return Recorded.of(engine.history_for(cursor).rows())
    except (DatabaseError, ImproperlyConfigured):  # another check names what is wrong
        return None


@register("sqlmigrations")
def check_sql_migrations(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Check the SQL files' names and sequence and their wrappers (no database needed)."""
    names, errors = scan_names(Path(engine.option("LOCATION")))
    recorded = read_history(kwargs.get("databases"))
    errors.extend(undo_location_errors(names))
    versioned = {rel: n for rel, n in names.items() if n.kind == "V" and n.version is not None}
    loader = disk_loader()  # the files only: no graph, which broken dependencies break
    wrappers = find_wrappers(loader)
    orphans = {
        script: name
        for w in wrappers
        for script in w.scripts
        if script not in versioned and (name := versioned_name(script)) is not None
    }
    errors.extend(sequence_errors(versioned, orphans, recorded))
    badly_named = {str(e.obj) for e in errors if e.id == "sqlmigrations.E007"}
    after_gap = {str(e.obj) for e in errors if e.id == "sqlmigrations.E006"}
    errors.extend(wrapper_errors(versioned, wrappers, badly_named, after_gap))
    errors.extend(graph_errors(loader.disk_migrations, sql_apps(wrappers), wrappers))
    return errors
