"""Inside one `migrate` run, the executor reuses the migrations its system checks read."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sqlmigrations.django_internals import ReusingLoader
from sqlmigrations.wrappers import disk_loader, one_disk_load, shared_disk_loader


def read_by_executor() -> ReusingLoader:
    """Read the migrations as migrate's executor does (SQLMigrationExecutor.__init__)."""
    return ReusingLoader(None, shared_disk_loader())


def test_the_executor_takes_the_migrations_the_checks_read() -> None:
    with one_disk_load():
        read = disk_loader()
        assert disk_loader() is read
        loader = read_by_executor()

    assert loader.disk_migrations.keys() == read.disk_migrations.keys()
    assert all(loader.disk_migrations[key] is m for key, m in read.disk_migrations.items())
    assert loader.migrated_apps == read.migrated_apps
    assert loader.unmigrated_apps == read.unmigrated_apps


def test_outside_a_run_every_loader_reads_the_disk() -> None:
    read = disk_loader()

    assert disk_loader() is not read
    loader = read_by_executor()
    assert loader.disk_migrations.keys() == read.disk_migrations.keys()
    assert all(loader.disk_migrations[key] is not m for key, m in read.disk_migrations.items())


@override_settings(MIGRATION_MODULES={"chores": "chores.no_such_migrations"})
def test_a_missing_migrations_module_still_fails_the_executor_as_in_django() -> None:
    with one_disk_load():
        assert "chores" in disk_loader().unmigrated_apps  # the checks' reading goes on

        with pytest.raises(ModuleNotFoundError, match=r"chores\.no_such_migrations"):
            read_by_executor()
