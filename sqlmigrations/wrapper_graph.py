"""System checks of the migration graph of the apps that hold SQL wrappers (E010, E011).

Django's `migrate` refuses an app with two leaves ("Conflicting migrations detected"), and
`check` said nothing about it. These checks read the migration modules only, as Django's
loader does without a database (a squashed migration stands in for the ones it replaces),
so a graph too broken to build is still explained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.checks import Error

from sqlmigrations.lib.names import versioned_name
from sqlmigrations.lib.versions import Version
from sqlmigrations.wrappers import Wrapper, migration_file

Key = tuple[str, str]


def migration_path(key: Key, migration: Any) -> str:
    """Return a migration's .py file, relative to BASE_DIR where possible."""
    return migration_file(type(migration).__module__, key)


def app_leaves(migrations: Mapping[Key, Any], app: str) -> list[Key] | None:
    """Return the app's migrations that no other migration of the app comes after.

    None when one of them depends on a migration of the app that is not on disk: a
    deleted migration, which the file checks (E003, E006) or Django's loader name.
    """
    replaced = {tuple(r) for m in migrations.values() for r in (m.replaces or ())}
    nodes = {k for k in migrations if k[0] == app and k not in replaced}
    stands_in = {tuple(r): k for k, m in migrations.items() for r in (m.replaces or ())}
    has_child: set[Key] = set()
    for key in nodes:
        migration = migrations[key]
        for dep in migration.dependencies:
            parent: Key = stands_in.get(tuple(dep), tuple(dep))  # type: ignore[arg-type]
            if parent[0] != app or parent[1] in ("__first__", "__latest__"):
                continue
            if parent not in nodes:
                return None
            if parent != key:
                has_child.add(parent)
        for later in migration.run_before:
            if tuple(later) in nodes:
                has_child.add(key)
    return sorted(nodes - has_child)


def graph_errors(
    migrations: Mapping[Key, Any], apps: Iterable[str], wrappers: list[Wrapper]
) -> list[Error]:
    """Report apps with two latest migrations and `initial = True` on a later wrapper."""
    versions: dict[Key, Version] = {}
    for wrapper in wrappers:
        for script in wrapper.scripts:
            name = versioned_name(script)
            if name is not None and name.version is not None:
                versions.setdefault(wrapper.key, name.version)
    errors: list[Error] = []
    for app in sorted(set(apps)):
        leaves = app_leaves(migrations, app)
        if leaves is not None and len(leaves) > 1:
            errors.append(_two_leaves(app, leaves, migrations, versions))
        errors += _late_initials(app, migrations, versions)
    return errors


def _two_leaves(
    app: str, leaves: list[Key], migrations: Mapping[Key, Any], versions: Mapping[Key, Version]
) -> Error:
    wrapped = [k for k in leaves if k in versions]
    names = ", ".join(k[1] for k in leaves)
    message = (
        f"app {app!r} has {len(leaves)} latest migrations ({names}): `migrate` refuses it "
        '("Conflicting migrations detected"), and so does the next makesqlmigration.'
    )
    if not wrapped:
        hint = f"Run `manage.py makemigrations --merge {app}`."
        return Error(message, hint=hint, obj=app, id="sqlmigrations.E010")
    newest = max(wrapped, key=lambda k: versions[k])
    others = [k for k in leaves if k != newest]
    path = migration_path(newest, migrations[newest])
    hint = (
        f"Add {', '.join(repr(k) for k in others)} to the dependencies of {path}"
        + (" and remove its `initial = True`" if migrations[newest].initial else "")
        + ": the newest wrapper comes after the app's other migrations."
    )
    return Error(message, hint=hint, obj=path, id="sqlmigrations.E010")


def _late_initials(
    app: str, migrations: Mapping[Key, Any], versions: Mapping[Key, Version]
) -> list[Error]:
    """Report wrappers that say initial = True but are not their app's first migration."""
    errors: list[Error] = []
    ours = sorted((k for k in versions if k[0] == app), key=lambda k: versions[k])
    for key in ours:
        migration = migrations.get(key)
        if migration is None or migration.initial is not True:
            continue
        same_app = [tuple(d) for d in migration.dependencies if d[0] == app]
        if key == ours[0] and not same_app:
            continue
        earlier = same_app[0] if same_app else ours[0]
        path = migration_path(key, migration)
        errors.append(
            Error(
                f"{app}.{key[1]} says `initial = True` but is not the app's first migration "
                f"({app}.{earlier[1]} comes before it): `migrate --fake-initial` would record "
                "it without running its SQL on a database where its tables exist.",
                hint=f"Remove `initial = True` from {path}.",
                obj=path,
                id="sqlmigrations.E011",
            )
        )
    return errors
