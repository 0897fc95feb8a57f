"""Backups: pg_dump to a folder and to S3 (moto), list, prune, restore, verify, kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import psycopg
import pytest
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.test import override_settings
from moto import mock_aws
from storages.backends.s3 import S3Storage

from dbops.backups import BackupError
from dbops.backups.dump import create_backup
from dbops.backups.fingerprint import fingerprint
from dbops.backups.names import dump_name, parse, partial_name, this_host
from dbops.backups.prune import plan_prune
from dbops.backups.restore_plan import restore_backup
from dbops.backups.signing import sign
from dbops.backups.store import complete_backups, find_backup, open_read
from dbops.backups.toc import ArchiveFormatError, read_entries
from dbops.connections.config import ConnInfo, from_settings
from dbops.connections.pgtools import find_tool, server_major
from tests.dbops.backupkit import ENV, run, storages_with
from tests.helpers import REPO, create_pg_stat_statements


def test_names_belong_to_the_project_and_environment():
    name = dump_name("production", datetime(2026, 11, 26, 2, 14, 5, tzinfo=UTC))
    assert name == "choregarden-production-20261126T021405Z.dump"
    assert parse(name, "production").created == datetime(2026, 11, 26, 2, 14, 5, tzinfo=UTC)
    assert parse(name + ".partial", "production").is_partial
    partial = parse(partial_name(name, "db-host-2", 4242), "production")
    assert partial.name == name + ".db-host-2-4242.partial"
    assert (partial.is_partial, partial.dump, partial.created) == (True, name, parse(name).created)
    assert (partial.writer_host, partial.writer_pid) == ("db-host-2", 4242)
    assert parse(name + ".json", "production").is_manifest
    assert parse(name, "staging") is None
    assert parse("otherapp-production-20261126T021405Z.dump") is None
    assert parse("choregarden-production-20261126T021405Z.dump.bak") is None


def test_it_backs_up_to_a_folder_and_a_restore_loses_nothing(source, folder, scratch):
    backup = create_backup(source, folder, ENV)

    files = sorted(os.listdir(folder.location))
    assert files == [backup.name, backup.name + ".json"]
    assert backup.name.startswith("choregarden-test-") and backup.size > 0
    assert (Path(folder.location) / backup.name).read_bytes()[:5] == b"PGDMP"  # custom format
    assert [b.name for b in complete_backups(folder, ENV)] == [backup.name]

    result = restore_backup(folder, backup, source, scratch)

    assert result.how == "created"
    restored, original = fingerprint(source.on(scratch)), fingerprint(source)
    assert restored == original
    assert original["public.chore"].rows == 2000 and original["audit.event"].rows == 300


def test_it_backs_up_to_s3_and_restores_from_it(source, scratch, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(
            Bucket="cg-backups", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        s3.put_object(Bucket="cg-backups", Key="backups/unrelated.txt", Body=b"keep me")
        storage = S3Storage(
            bucket_name="cg-backups",
            region_name="eu-west-1",
            location="backups",
            default_acl=None,
            object_parameters={"ServerSideEncryption": "AES256"},
        )

        backup = create_backup(source, storage, ENV)

        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="cg-backups")["Contents"])
        assert keys == [
            f"backups/{backup.name}",
            f"backups/{backup.name}.json",
            "backups/unrelated.txt",
        ]
        head = s3.head_object(Bucket="cg-backups", Key=f"backups/{backup.name}")
        assert head["ContentLength"] == backup.size
        assert head["ServerSideEncryption"] == "AES256"
        assert [b.name for b in complete_backups(storage, ENV)] == [backup.name]

        restore_backup(storage, find_backup(storage, ENV, "latest"), source, scratch)

    assert fingerprint(source.on(scratch)) == fingerprint(source)


def test_list_and_prune_on_s3_touch_only_this_projects_objects(source, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    backups = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "cg-backups", "region_name": "us-east-1",
                    "location": "prod", "default_acl": None},
    }  # fmt: skip
    now = datetime.now(UTC)
    with mock_aws(), override_settings(STORAGES={"backups": backups}, BACKUP_ENV="production"):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cg-backups")
        foreign = ["prod/choregarden-staging-20200101T000000Z.dump", "prod/readme.txt",
                   "other/choregarden-production-20200101T000000Z.dump"]  # fmt: skip
        for key in foreign:
            s3.put_object(Bucket="cg-backups", Key=key, Body=b"not ours")
        from django.core.files.storage import storages

        storage = storages["backups"]
        old = create_backup(source, storage, "production", now=now - timedelta(days=8))
        new = create_backup(source, storage, "production", now=now - timedelta(hours=2))

        listed = json.loads(run("list", "--json"))
        assert [b["name"] for b in listed] == [new.name, old.name]
        pruned = json.loads(run("prune", "--keep-min", "1", "--json"))
        assert pruned["deleted"] == [old.name + ".json", old.name]  # the manifest first

        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="cg-backups")["Contents"])
    assert keys == sorted([*foreign, f"prod/{new.name}", f"prod/{new.name}.json"])


def test_prune_on_s3_removes_partials_whose_writer_on_this_host_is_gone(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    dump = dump_name(ENV, datetime.now(UTC) - timedelta(hours=1))
    names = {
        "dead here": partial_name(dump, this_host(), dead.pid),
        "alive here": partial_name(dump, this_host(), os.getpid()),
        "elsewhere": partial_name(dump, "another-host", dead.pid),
        "old style": dump + ".partial",
    }
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cg-backups")
        storage = S3Storage(bucket_name="cg-backups", region_name="us-east-1", location="b")
        for name in names.values():
            s3.put_object(Bucket="cg-backups", Key=f"b/{name}", Body=b"PGDMP partial")

        doomed = plan_prune(storage, ENV, 7, 1, datetime.now(UTC)).delete
        assert [o.name for o in doomed] == [names["dead here"]]

        doomed = plan_prune(storage, ENV, 7, 1, datetime.now(UTC) + timedelta(days=8)).delete
        assert sorted(o.name for o in doomed) == sorted(
            [names["dead here"], names["elsewhere"], names["old style"]]
        )  # past the retention; the live writer's partial stays even then


def test_prune_deletes_only_this_projects_old_backups(source, folder):
    now = datetime.now(UTC)
    old = create_backup(source, folder, ENV, now=now - timedelta(days=9))
    older = create_backup(source, folder, ENV, now=now - timedelta(days=30))
    new = create_backup(source, folder, ENV, now=now - timedelta(days=1))
    root = Path(folder.location)
    foreign = [
        "otherapp-test-20200101T000000Z.dump",
        "choregarden-staging-20200101T000000Z.dump",
        "choregarden-test-20200101T000000Z.dump.bak",
        "notes.txt",
    ]
    for name in foreign:
        (root / name).write_text("not ours")
    (root / "choregarden-test-20200101T000000Z.dump.partial").write_bytes(b"PGDMP half")

    plan = plan_prune(folder, ENV, 7, 1, now)
    assert [b.name for b in plan.kept] == [new.name]
    assert {o.name for o in plan.delete} == {
        old.name, old.name + ".json", older.name, older.name + ".json",
        "choregarden-test-20200101T000000Z.dump.partial",
    }  # fmt: skip

    out = call_prune(folder, "--keep-days", "7", "--keep-min", "1", "--dry-run")
    assert "Would delete" in out and (root / old.name).exists()

    call_prune(folder, "--keep-days", "7", "--keep-min", "1")

    assert sorted(os.listdir(root)) == sorted([*foreign, new.name, new.name + ".json"])


def test_prune_keeps_the_newest_backup_even_when_it_is_old(source, folder):
    now = datetime.now(UTC)
    create_backup(source, folder, ENV, now=now - timedelta(days=20))
    last = create_backup(source, folder, ENV, now=now - timedelta(days=10))

    call_prune(folder, "--keep-min", "1")  # BACKUP_RETENTION_DAYS = 7

    assert [b.name for b in complete_backups(folder, ENV)] == [last.name]


def call_prune(storage: FileSystemStorage, *args: str) -> str:
    from io import StringIO

    out = StringIO()
    with override_settings(
        STORAGES=storages_with(storage), BACKUP_ENV=ENV, BACKUP_RETENTION_DAYS=7
    ):
        call_command("backup", "prune", *args, stdout=out)
    return out.getvalue()


def test_a_damaged_backup_is_refused(source, folder, scratch):
    backup = create_backup(source, folder, ENV)
    path = Path(folder.location) / backup.name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(BackupError, match=r"pg_restore|does not match its manifest"):
        restore_backup(folder, backup, source, scratch)

    with psycopg.connect(**source) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [scratch]).fetchone()
    assert exists is None  # the database made for the failed restore is gone


# --- The command, on the project's (test) database ---------------------------------------


def test_command_creates_lists_restores_and_refuses_a_non_empty_target(
    project_db, settings_folder, scratch
):
    manifest = json.loads(run("create", "--json"))
    listed = json.loads(run("list", "--json"))
    assert [b["name"] for b in listed] == [manifest["name"]]
    assert listed[0]["size"] == manifest["size"] > 0
    assert manifest["name"] in run("list")

    assert "created" in run("restore", "latest", "--database", scratch)

    with pytest.raises(CommandError, match=rf"Database '{scratch}' is not empty.*--force"):
        run("restore", "latest", "--database", scratch)
    with pytest.raises(CommandError, match=r"'nope.dump' is not a backup name"):
        run("restore", "nope.dump", "--database", scratch)
    absent = "choregarden-test-20200101T000000Z.dump"
    with pytest.raises(CommandError, match=rf"No complete backup named '{absent}'"):
        run("restore", absent, "--database", scratch)

    assert "replaced" in run("restore", manifest["name"], "--database", scratch, "--force")
    assert fingerprint(project_db.on(scratch)) == fingerprint(project_db)


def test_verify_passes_then_detects_a_difference(project_db, settings_folder):
    run("create")

    report = run("verify")
    assert "public.backup_probe" in report and "Done!" in report

    with psycopg.connect(**project_db, autocommit=True) as conn:
        conn.execute("UPDATE backup_probe SET note = 'tampered' WHERE id = 7")
    with pytest.raises(CommandError, match=r"differs .* 1 table\(s\): public.backup_probe"):
        run("verify")

    with psycopg.connect(**project_db) as conn:
        leftovers = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            [f"{project_db.dbname}_verify_%"],
        ).fetchall()
    assert leftovers == []  # scratch databases are dropped, pass or fail


def test_restore_of_nothing_says_so(settings_folder, project_db, scratch):
    with pytest.raises(CommandError, match=r"no complete test backups.*backup create"):
        run("restore", "latest", "--database", scratch)


def kill_backup_once_it_writes(
    env: dict[str, str], folder: Path, *args: str, min_bytes: int
) -> Path:
    """Start `manage.py backup create`; kill -9 it (and pg_dump) once its .partial exists."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "backup", "create", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        for _ in range(1200):
            found = list(folder.glob("*.partial")) if folder.exists() else []
            if found and found[0].stat().st_size >= min_bytes:
                return found[0]
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        pytest.fail("the backup never started writing")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_backup_killed_midway_leaves_nothing_to_take(project_db, manage_env, tmp_path, scratch):
    with psycopg.connect(**project_db, autocommit=True) as conn:
        # ~2 MB that does not compress, so the throttled dump takes a minute.
        conn.execute(
            "CREATE TABLE backup_filler AS SELECT i, decode(md5(random()::text) || "
            "md5(random()::text), 'hex') AS noise FROM generate_series(1, 60000) i"
        )
    folder = tmp_path / "killed"
    env = dict(manage_env, BACKUP_DIR=str(folder), BACKUP_ENV=ENV)
    partial = kill_backup_once_it_writes(env, folder, "--max-rate", "32K", min_bytes=1)

    storage = FileSystemStorage(location=folder)
    assert complete_backups(storage, ENV) == []
    with pytest.raises(BackupError, match="no complete test backups"):
        find_backup(storage, ENV, "latest")
    with override_settings(STORAGES=storages_with(storage), BACKUP_ENV=ENV):
        assert "0 complete test backup(s)" in run("list")
        assert "interrupted" in run("list")
        with pytest.raises(CommandError, match="no complete test backups"):
            run("restore", "latest", "--database", scratch)
        with pytest.raises(CommandError, match=r"No complete backup named .*interrupted"):
            run("restore", partial.name, "--database", scratch)


def child_pg_dump(parent: int) -> int | None:
    """The pid of the pg_dump that process `parent` started, if it runs."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, rest = stat.read_text().split(") ", 1)
        except OSError:
            continue
        if comm.endswith("(pg_dump") and int(rest.split()[1]) == parent:
            return int(stat.parent.name)
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_backup_create_takes_pg_dump_along_and_prune_removes_the_partial(
    project_db, manage_env, tmp_path, scratch
):
    with psycopg.connect(**project_db, autocommit=True) as conn:
        # ~20 MB that does not compress: pg_dump is still writing when it is caught.
        conn.execute(
            "CREATE TABLE backup_filler AS SELECT i, decode(md5(random()::text) || "
            "md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') AS noise"
            " FROM generate_series(1, 300000) i"
        )
    folder = tmp_path / "killed-9"
    env = dict(manage_env, BACKUP_DIR=str(folder), BACKUP_ENV=ENV)
    backup = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "backup", "create"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # only to clean up if pg_dump survives
    )
    try:
        pg_dump = None
        for _ in range(1200):
            partials = list(folder.glob("*.partial")) if folder.exists() else []
            pg_dump = child_pg_dump(backup.pid)
            if pg_dump and partials and partials[0].stat().st_size >= 256 * 1024:
                break
            assert backup.poll() is None, backup.stderr.read() if backup.stderr else ""
            time.sleep(0.02)
        else:
            pytest.fail("pg_dump never got midway")
        os.kill(pg_dump, signal.SIGSTOP)  # midway, whatever the machine's speed
        written = partials[0].stat().st_size

        os.kill(backup.pid, signal.SIGKILL)  # kill -9 of `backup create` alone
        backup.wait()

        deadline = time.monotonic() + 30
        while Path(f"/proc/{pg_dump}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pg_dump}").exists(), "pg_dump outlived `backup create`"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(backup.pid, signal.SIGKILL)

    storage = FileSystemStorage(location=folder)
    assert [p.name for p in folder.iterdir()] == [partials[0].name]
    assert partials[0].stat().st_size == written  # nobody writes it any more
    with override_settings(STORAGES=storages_with(storage), BACKUP_ENV=ENV):
        listing = run("list")
        assert "0 complete test backup(s)" in listing and "1 object(s) of interrupted" in listing
        with pytest.raises(CommandError, match="no complete test backups"):
            run("restore", "latest", "--database", scratch)

        pruned = json.loads(run("prune", "--json"))  # 7 days' retention; the partial is new

    assert pruned["deleted"] == [partials[0].name]
    assert list(folder.iterdir()) == []


def test_prune_keeps_the_partial_of_a_running_backup(project_db, settings_folder):
    with psycopg.connect(**project_db) as locker:
        locker.execute("LOCK TABLE backup_probe IN ACCESS EXCLUSIVE MODE")  # pg_dump waits
        writer = threading.Thread(target=run, args=("create",))
        writer.start()
        try:
            root = Path(settings_folder.location)
            deadline = time.monotonic() + 60  # a bound against hanging, not a timing test
            while time.monotonic() < deadline:
                partials = list(root.glob("*.partial")) if root.exists() else []
                if partials:
                    break
                time.sleep(0.02)
            assert partials, "the backup never started"
            assert re.fullmatch(
                rf"choregarden-test-\d{{8}}T\d{{6}}Z\.dump\.[a-z0-9-]+-{os.getpid()}\.partial",
                partials[0].name,
            )

            listing = run("list")
            assert f"1 backup(s) running ({partials[0].name})" in listing
            assert json.loads(run("prune", "--json"))["deleted"] == []
            assert partials[0].exists()
        finally:
            locker.rollback()
            writer.join()
    assert [b.name for b in complete_backups(settings_folder, ENV)] != []


def test_fingerprints_taken_in_the_dumps_snapshot_survive_concurrent_writes(
    project_db, settings_folder, capsys
):
    stop = threading.Event()

    def write_while_dumping() -> None:
        with psycopg.connect(**project_db, autocommit=True) as conn:
            n = 1000
            while not stop.is_set():
                conn.execute("INSERT INTO backup_probe VALUES (%s, 'during the dump')", [n])
                conn.execute("UPDATE backup_probe SET note = 'changed' WHERE id = %s", [n - 990])
                n += 1
                time.sleep(0.01)

    writer = threading.Thread(target=write_while_dumping)
    writer.start()
    try:
        manifest = json.loads(run("create", "--fingerprint", "--max-rate", "256K", "--json"))
    finally:
        stop.set()
        writer.join()
    assert "pg_dump:" not in capsys.readouterr().err  # no progress unless asked (not a tty)

    assert manifest["tables"]["public.backup_probe"]["rows"] >= 500
    report = run("verify")
    assert "as of the backup" in report and "Done!" in report
    with pytest.raises(CommandError, match=r"as it is now .*public.backup_probe"):
        run("verify", "--live")  # the writer changed the table after the snapshot


def test_verify_detects_a_restore_that_differs_from_the_manifest(project_db, settings_folder):
    manifest = json.loads(run("create", "--fingerprint", "--json"))
    path = Path(settings_folder.location) / (manifest["name"] + ".json")
    data = json.loads(path.read_text())
    data["tables"]["public.backup_probe"]["rows"] += 1
    # Signed again: this is about the fingerprints, not about a forged manifest.
    data = sign(data, settings.BACKUP_SIGNING_KEY.encode())
    path.write_text(json.dumps(data))

    with pytest.raises(CommandError, match=r"do not trust this backup"):
        run("verify", "--json")


def test_progress_on_request(project_db, settings_folder, scratch, capsys):
    run("create", "--progress")
    assert re.search(r"pg_dump: [\d.]+ (B|KiB|MiB), [\d.]+ (B|KiB|MiB)/s", capsys.readouterr().err)

    run("restore", "latest", "--database", scratch, "--progress")
    err = capsys.readouterr().err
    assert "pg_restore:" in err and "(100%)" in err


def test_it_logs_in_with_the_owner_secret_from_secrets_manager(source, folder, monkeypatch):
    from dbops.connections import secrets as db_secrets

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    db_secrets.reset()
    with mock_aws():
        boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
            Name="prod/owner",
            SecretString=json.dumps(
                {"username": source.user, "password": source.password, "host": source.host,
                 "port": source.port, "dbname": source.dbname, "engine": "postgres"}
            ),
        )  # fmt: skip
        owner = {
            "ENGINE": "dbops.db.backends.postgresql",
            "NAME": "",
            "USER": "",
            "PASSWORD": "",
            "HOST": "",
            "PORT": "",
            "OPTIONS": {"sslmode": source.sslmode, "sslrootcert": source.sslrootcert},
            "SECRET": {"ID": "prod/owner", "REGION": "eu-west-1", "SETTING": "X"},
        }
        target = from_settings(owner)
    db_secrets.reset()

    fields = ("host", "port", "user", "password", "dbname", "sslmode", "sslrootcert")
    assert [getattr(target, f) for f in fields] == [getattr(source, f) for f in fields]
    assert create_backup(target, folder, ENV).size > 0


CATALOG = {
    "relations": """SELECT n.nspname, c.relname, c.relkind FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2""",
    # A CHECK's text is re-parsed on restore (`x IN (...)` on varchar deparses differently,
    # meaning the same), so CHECKs are compared by name and column, the rest by definition.
    "constraints": """SELECT conrelid::regclass::text, conname, contype,
            (SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_attribute
             WHERE attrelid = conrelid AND attnum = ANY (conkey)),
            CASE WHEN contype = 'c' THEN '' ELSE pg_get_constraintdef(oid) END
        FROM pg_constraint c WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "triggers": """SELECT tgrelid::regclass::text, tgname FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2""",
    "functions": """SELECT proname, md5(prosrc) FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "comments": """SELECT objoid::regclass::text, objsubid, description FROM pg_description d
        JOIN pg_class c ON c.oid = d.objoid
        WHERE d.classoid = 'pg_class'::regclass AND c.relnamespace = 'public'::regnamespace
        ORDER BY 1, 2""",
    "sequences": "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1",
    "grants": """SELECT table_name, grantee, privilege_type FROM information_schema.table_privileges
        WHERE table_schema = 'public' ORDER BY 1, 2, 3""",
}


def catalog(target: ConnInfo) -> dict[str, list[tuple]]:
    with psycopg.connect(**target) as conn:
        return {key: conn.execute(query).fetchall() for key, query in CATALOG.items()}


def test_a_restore_of_a_verified_backup_loses_nothing(project_db, settings_folder, scratch):
    with psycopg.connect(**project_db, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE backup_probe_seq; SELECT setval('backup_probe_seq', 41)")
    try:
        run("create")
        assert "Done!" in run("verify")

        run("restore", "latest", "--database", scratch)

        restored = project_db.on(scratch)
        assert fingerprint(restored) == fingerprint(project_db)
        before, after = catalog(project_db), catalog(restored)
        assert after == before
        assert len(before["relations"]) > 20 and before["constraints"] and before["grants"]
        assert ("backup_probe_seq", 41) in after["sequences"]
    finally:
        with psycopg.connect(**project_db, autocommit=True) as conn:
            conn.execute("DROP SEQUENCE IF EXISTS backup_probe_seq")


def test_a_backup_killed_while_pg_dump_writes_its_file_leaves_nothing_to_take(
    project_db, manage_env, tmp_path
):
    # Without --max-rate, pg_dump writes the .partial file itself; hold it on a lock so
    # that the kill lands while the file is open and incomplete.
    folder = tmp_path / "killed-direct"
    env = dict(manage_env, BACKUP_DIR=str(folder), BACKUP_ENV=ENV)
    with psycopg.connect(**project_db) as locker:
        locker.execute("LOCK TABLE backup_probe IN ACCESS EXCLUSIVE MODE")
        kill_backup_once_it_writes(env, folder, min_bytes=0)

    storage = FileSystemStorage(location=folder)
    assert [p.name.endswith(".partial") for p in folder.iterdir()] == [True]
    assert complete_backups(storage, ENV) == []
    with override_settings(STORAGES=storages_with(storage), BACKUP_ENV=ENV):
        assert "0 complete test backup(s)" in run("list")
        with pytest.raises(CommandError, match="no complete test backups"):
            run("verify")


def test_bad_input_gets_a_clear_error(project_db, settings_folder, monkeypatch):
    with pytest.raises(CommandError, match=r"argument --max-rate: 'fast' is not a rate"):
        run("create", "--max-rate", "fast")
    with override_settings(BACKUP_ENV="Prod Env"), pytest.raises(CommandError, match="BACKUP_ENV"):
        run("list")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = {"BACKEND": "storages.backends.s3.S3Storage",
          "OPTIONS": {"bucket_name": "no-such-bucket", "region_name": "eu-west-1"}}  # fmt: skip
    with (
        mock_aws(),
        override_settings(STORAGES={"backups": s3}),
        pytest.raises(CommandError, match=r"storage refused: .*NoSuchBucket.*BACKUP_BUCKET"),
    ):
        run("create")
    assert complete_backups(settings_folder, ENV) == []


def test_extensions_only_a_superuser_may_create_are_left_out_of_a_restore(
    pg_server, source, folder, scratch
):
    if pg_server.cluster is None:
        pytest.skip("needs the local cluster's superuser (TEST_DATABASE_URL is set)")
    create_pg_stat_statements(pg_server.cluster.conninfo("superuser", source.dbname))
    backup = create_backup(source, folder, ENV)

    result = restore_backup(folder, backup, source, scratch)

    assert result.skipped_extensions == {"pg_stat_statements"}
    assert fingerprint(source.on(scratch)) == fingerprint(source)


def test_the_toc_reader_reads_what_pg_restore_lists(source, folder):
    backup = create_backup(source, folder, ENV)
    path = Path(folder.location) / backup.name
    pg_restore = find_tool("pg_restore", server_major(source))
    listing = subprocess.run(
        [str(pg_restore), "--list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    # `215; 1259 16390 TABLE public chore owner`: the entry's number and its kind's first word
    listed = dict(line.split(" ")[0:4:3] for line in listing.splitlines() if line[:1].isdigit())

    entries = read_entries(open_read(folder, backup.name))

    read = {f"{e.dump_id};": e.desc.split()[0] for e in entries}
    assert {k: v for k, v in read.items() if k in listed} == listed
    assert {v for k, v in read.items() if k not in listed} <= {
        "ENCODING",
        "STDSTRINGS",
        "SEARCHPATH",
        "DATABASE",
    }
    chore = next(e for e in entries if e.desc == "TABLE" and e.tag == "chore")
    data = next(e for e in entries if e.desc == "TABLE DATA" and e.tag == "chore")
    assert chore.namespace == "public" and data.deps == (chore.dump_id,)
    with pytest.raises(ArchiveFormatError, match="no PGDMP header"):
        read_entries([b"PK\x03\x04 a zip file"])
    with pytest.raises(ArchiveFormatError, match="ends inside"):
        read_entries([path.read_bytes()[:300]])


def test_privileges_on_a_left_out_extensions_objects_are_left_out_too(
    pg_server, source, folder, scratch
):
    if pg_server.cluster is None:
        pytest.skip("needs the local cluster's superuser (TEST_DATABASE_URL is set)")
    # What earlier releases' provisioning left on a development cluster: the dump carries
    # these grants (ACL entries of objects that the archive does not create).
    create_pg_stat_statements(
        pg_server.cluster.conninfo("superuser", source.dbname), grant_all_to=pg_server.app_user
    )
    backup = create_backup(source, folder, ENV)

    result = restore_backup(folder, backup, source, scratch)

    assert result.skipped_extensions == {"pg_stat_statements"}
    assert sorted(result.left_out) == [
        "ACL public TABLE pg_stat_statements",
        "ACL public TABLE pg_stat_statements_info",
        "COMMENT EXTENSION pg_stat_statements",
        "EXTENSION pg_stat_statements",
    ]
    assert fingerprint(source.on(scratch)) == fingerprint(source)
    with psycopg.connect(**pg_server.conninfo(scratch, role="app")) as conn:
        assert conn.execute("SELECT count(*) FROM chore").fetchone() == (2000,)


def test_a_dump_that_fails_midway_leaves_nothing_on_s3(source, monkeypatch):
    from dbops.backups import dump

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    real_pump = dump.pump

    def interrupted_pump(pipe, out, progress, max_rate):
        out.write(pipe.read1(64 * 1024))  # some bytes are on their way to S3...
        raise KeyboardInterrupt  # ...when the operator presses Ctrl-C

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cg-backups")
        storage = S3Storage(bucket_name="cg-backups", region_name="us-east-1", location="b")
        monkeypatch.setattr(dump, "pump", interrupted_pump)
        with pytest.raises(KeyboardInterrupt):
            create_backup(source, storage, ENV)
        monkeypatch.setattr(dump, "pump", real_pump)

        assert s3.list_objects_v2(Bucket="cg-backups").get("Contents", []) == []
        assert complete_backups(storage, ENV) == []
        good = create_backup(source, storage, ENV)  # and the next run works
        assert [b.name for b in complete_backups(storage, ENV)] == [good.name]


def test_settings_send_backups_to_s3_when_a_bucket_is_set(manage_env):
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.STORAGES['backups'], default=str))"
    )
    env = dict(
        manage_env,
        DJANGO_SETTINGS_MODULE="choregarden.settings",
        BACKUP_BUCKET="cg-prod-backups",
        BACKUP_PREFIX="/db/",
        BACKUP_REGION="eu-west-1",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    backups = json.loads(out.stdout)
    assert backups["BACKEND"] == "storages.backends.s3.S3Storage"
    assert backups["OPTIONS"]["bucket_name"] == "cg-prod-backups"
    assert backups["OPTIONS"]["location"] == "db"
    assert backups["OPTIONS"]["region_name"] == "eu-west-1"
    assert backups["OPTIONS"]["object_parameters"] == {"ServerSideEncryption": "AES256"}
