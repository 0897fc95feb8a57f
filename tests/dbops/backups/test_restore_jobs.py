"""`backup restore` with pg_restore -j into a database made for the restore, and the one
transaction kept where the target is restored in place."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import boto3
import psycopg
import pytest
from django.test import override_settings
from moto import mock_aws
from psycopg import sql
from storages.backends.s3 import S3Storage

from dbops.backups import BackupError, targets
from dbops.backups import restore as restore_mod
from dbops.backups.dump import create_backup
from dbops.backups.fingerprint import fingerprint
from dbops.backups.restore import MAX_JOBS, restore_jobs
from dbops.backups.restore_plan import restore_backup
from dbops.connections import pgtools
from tests.dbops.backupkit import ENV, run


@pytest.fixture
def pg_restore_argv(monkeypatch) -> list[list[str]]:
    """The argv of every pg_restore restore run (not --list), the real tool still runs."""
    seen: list[list[str]] = []
    real = pgtools.popen

    def spy(argv, info, **kwargs):
        if Path(argv[0]).name == "pg_restore" and "--list" not in argv:
            seen.append(list(argv))
        return real(argv, info, **kwargs)

    monkeypatch.setattr(restore_mod.pgtools, "popen", spy)
    return seen


def test_restore_into_a_new_database_runs_pg_restore_jobs(
    project_db, settings_folder, scratch, pg_restore_argv, caplog
):
    run("create", "--fingerprint")
    caplog.set_level(logging.DEBUG, logger="dbops.backups.restore")
    with override_settings(BACKUP_RESTORE_JOBS=3):
        out = json.loads(run("restore", "latest", "--database", scratch, "--json"))

    assert out["jobs"] == 3 and out["target"] == "created"
    assert "verify" in out["steps"]  # the fingerprints were compared before the rename
    [argv] = pg_restore_argv
    assert "--jobs=3" in argv and "--single-transaction" not in argv
    assert argv[-1] == str(Path(settings_folder.location) / out["backup"])  # read in place
    assert any("pg_restore --jobs=3" in r.getMessage() for r in caplog.records)
    restored = fingerprint(project_db.on(scratch))
    assert restored == fingerprint(project_db)
    assert restored["public.backup_probe"].rows == 500


def test_an_empty_existing_target_keeps_the_one_transaction(
    project_db, settings_folder, scratch, pg_restore_argv
):
    run("create")
    with psycopg.connect(**project_db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    with override_settings(BACKUP_RESTORE_JOBS=3):
        dry = json.loads(run("restore", "latest", "--database", scratch, "--dry-run", "--json"))
        out = json.loads(run("restore", "latest", "--database", scratch, "--json"))

    assert dry["target"] == out["target"] == "empty"
    assert out["jobs"] == 1
    [argv] = pg_restore_argv
    assert "--single-transaction" in argv and not any(a.startswith("--jobs") for a in argv)
    assert fingerprint(project_db.on(scratch)) == fingerprint(project_db)


def test_jobs_1_streams_in_one_transaction(source, folder, scratch, pg_restore_argv):
    backup = create_backup(source, folder, ENV)
    with override_settings(BACKUP_RESTORE_JOBS=1):
        result = restore_backup(folder, backup, source, scratch)
    assert result.jobs == 1
    [argv] = pg_restore_argv
    assert "--single-transaction" in argv
    assert fingerprint(source.on(scratch)) == fingerprint(source)


def test_the_default_comes_from_the_cpu_count(monkeypatch):
    monkeypatch.setattr(restore_mod.os, "cpu_count", lambda: 2)
    assert restore_jobs() == 2
    monkeypatch.setattr(restore_mod.os, "cpu_count", lambda: 64)
    assert restore_jobs() == MAX_JOBS
    with override_settings(BACKUP_RESTORE_JOBS=12):
        assert restore_jobs() == 12


def test_a_changed_dump_is_refused_before_pg_restore_reads_it(
    source, folder, scratch, pg_restore_argv
):
    backup = create_backup(source, folder, ENV)
    path = Path(folder.location) / backup.name
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with (
        override_settings(BACKUP_RESTORE_JOBS=2),
        pytest.raises(BackupError, match="does not match its manifest"),
    ):
        restore_backup(folder, backup, source, scratch)
    assert pg_restore_argv == []
    assert not targets.inspect(source, scratch).exists


def test_s3_downloads_to_a_private_folder_then_restores_in_parallel(
    source, scratch, monkeypatch, pg_restore_argv, tmp_path
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(restore_mod.tempfile, "tempdir", None)  # read TMPDIR again
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="cg-backups")
        storage = S3Storage(bucket_name="cg-backups", region_name="us-east-1", location="b")
        backup = create_backup(source, storage, ENV)
        with override_settings(BACKUP_RESTORE_JOBS=2):
            result = restore_backup(storage, backup, source, scratch)
    monkeypatch.undo()
    assert result.jobs == 2
    [argv] = pg_restore_argv
    assert "--jobs=2" in argv and argv[-1].startswith(str(tmp_path))
    assert not Path(argv[-1]).exists()  # the download is gone
    assert fingerprint(source.on(scratch)) == fingerprint(source)


def test_without_room_for_the_download_it_streams_instead(
    source, scratch, monkeypatch, pg_restore_argv
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(restore_mod, "DISK_MARGIN", 1 << 60)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="cg-backups")
        storage = S3Storage(bucket_name="cg-backups", region_name="us-east-1", location="b")
        backup = create_backup(source, storage, ENV)
        with override_settings(BACKUP_RESTORE_JOBS=2):
            result = restore_backup(storage, backup, source, scratch)
    assert result.jobs == 1 and "too few for a" in result.note
    [argv] = pg_restore_argv
    assert "--single-transaction" in argv
    assert fingerprint(source.on(scratch)) == fingerprint(source)


def test_a_failing_parallel_restore_drops_the_new_database(source, folder, scratch):
    backup = create_backup(source, folder, ENV)
    path = Path(folder.location) / backup.name
    data = bytearray(path.read_bytes())
    middle = len(data) * 3 // 4  # in the table data, past the table of contents
    data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    # A manifest that describes the broken bytes: pg_restore itself must fail.
    broken = dataclasses.replace(backup, sha256=hashlib.sha256(data).hexdigest())
    with (
        override_settings(BACKUP_RESTORE_JOBS=2),
        pytest.raises(BackupError, match=r"pg_restore --jobs of .* failed .*dropped again"),
    ):
        restore_backup(folder, broken, source, scratch)
    assert not targets.inspect(source, scratch).exists
