"""Fixtures of the backup tests: databases to back up and restore into, a storage folder."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.core.files.storage import FileSystemStorage
from django.test import override_settings
from psycopg import sql

from dbops.connections.config import ConnInfo
from dbops.connections.databases import drop_database
from tests.dbops.backupkit import ENV, storages_with, target_for

SEED = """
CREATE TABLE chore (id bigint PRIMARY KEY, title text NOT NULL, due timestamptz,
                    points numeric(6, 2), tags text[], payload jsonb);
INSERT INTO chore
SELECT i, 'chore ' || i, timestamptz '2026-01-01' + i * interval '1 hour', i / 7.0,
       ARRAY['a', 'b' || i], jsonb_build_object('n', i, 'odd', i % 2 = 1)
FROM generate_series(1, 2000) AS i;
CREATE TABLE empty_table (id int);
CREATE SCHEMA audit;
CREATE TABLE audit.event (id bigserial PRIMARY KEY, what text);
INSERT INTO audit.event (what) SELECT md5(i::text) FROM generate_series(1, 300) AS i;
"""


@pytest.fixture
def source(pg_server) -> Iterator[ConnInfo]:
    """A fresh database with a few tables and rows, dropped afterwards."""
    admin = target_for(pg_server, pg_server.dbname)
    name = f"bk_src_{secrets.token_hex(4)}"
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = admin.on(name)
    with psycopg.connect(**target, autocommit=True) as conn:
        conn.execute(SEED)
    yield target
    drop_database(admin, name)


@pytest.fixture
def scratch(pg_server) -> Iterator[str]:
    """A database name for restores; dropped afterwards if it was made."""
    name = f"bk_dst_{secrets.token_hex(4)}"
    yield name
    drop_database(target_for(pg_server, pg_server.dbname), name)


@pytest.fixture
def folder(tmp_path: Path) -> FileSystemStorage:
    return FileSystemStorage(location=tmp_path / "backups")


@pytest.fixture
def project_db(pg_server, db) -> Iterator[ConnInfo]:
    """The migrated test database, with a table of ours in it (committed, then dropped)."""
    from django.conf import settings

    target = target_for(pg_server, settings.DATABASES["default"]["NAME"])
    assert target.dbname.startswith("test_")
    with psycopg.connect(**target, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE backup_probe (id int PRIMARY KEY, note text);"
            "INSERT INTO backup_probe SELECT i, md5(i::text) FROM generate_series(1, 500) i"
        )
    yield target
    with psycopg.connect(**target, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS backup_probe, backup_filler")


@pytest.fixture
def settings_folder(folder):
    with override_settings(STORAGES=storages_with(folder), BACKUP_ENV=ENV):
        yield folder
