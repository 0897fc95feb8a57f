"""Copies of backups in a second region (S3 through moto, two buckets in two regions) or a
second folder: copy after create, checksums read back, list --replica, verify and the
dbhealth check on a missing or corrupt copy, replicate, prune on both sides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import boto3
import pytest
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError, call_command
from django.test import override_settings
from moto import mock_aws
from storages.backends.s3 import S3Storage

from dbops.backups import replica as replica_mod
from dbops.backups.dump import create_backup
from dbops.backups.prune import PruneRefused, execute_prune, plan_prune
from dbops.backups.replica import check_copy, replicate
from dbops.health import CRITICAL, INFO, OK, WARNING
from dbops.health import backups as health_backups
from dbops.health.backups import check_backup_replica
from tests.dbops.backupkit import ENV, run
from tests.helpers import REPO

PRIMARY_REGION, REPLICA_REGION = "eu-west-1", "eu-central-1"


def folder_storages(primary: Path, replica: Path) -> dict:
    from django.conf import settings

    return {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(primary)},
        },
        "backups_replica": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(replica)},
        },
    }


def s3_storages(replica_bucket: str = "cg-replica") -> dict:
    from django.conf import settings

    def s3(bucket: str, region: str) -> dict:
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": bucket, "region_name": region, "location": "backups",
                        "default_acl": None,
                        "object_parameters": {"ServerSideEncryption": "AES256"}},
        }  # fmt: skip

    return {
        **settings.STORAGES,
        "backups": s3("cg-backups", PRIMARY_REGION),
        "backups_replica": s3(replica_bucket, REPLICA_REGION),
    }


@pytest.fixture
def two_folders(tmp_path: Path, project_db):
    primary, copies = tmp_path / "primary", tmp_path / "replica"
    with override_settings(STORAGES=folder_storages(primary, copies), BACKUP_ENV=ENV):
        yield FileSystemStorage(location=primary), FileSystemStorage(location=copies)


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        for bucket, region in (("cg-backups", PRIMARY_REGION), ("cg-replica", REPLICA_REGION)):
            boto3.client("s3", region_name=region).create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
        yield boto3.client("s3", region_name=REPLICA_REGION)


def s3_pair() -> tuple[S3Storage, S3Storage]:
    def make(bucket: str, region: str) -> S3Storage:
        return S3Storage(
            bucket_name=bucket,
            region_name=region,
            location="backups",
            default_acl=None,
            object_parameters={"ServerSideEncryption": "AES256"},
        )

    return make("cg-backups", PRIMARY_REGION), make("cg-replica", REPLICA_REGION)


def listed(*args: str) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(run("list", "--replica", "--json", *args))}


def test_create_copies_to_the_replica_folder_and_list_shows_both_sides(two_folders):
    primary, copies = two_folders

    made = json.loads(run("create", "--json"))

    name = made["name"]
    assert made["replica"]["status"] == "ok" and made["replica"]["checked_by"] == "read"
    assert sorted(p.name for p in Path(copies.location).iterdir()) == [name, name + ".json"]
    for suffix in ("", ".json"):
        assert (Path(copies.location) / (name + suffix)).read_bytes() == (
            Path(primary.location) / (name + suffix)
        ).read_bytes()
    assert listed()[name] == {
        "name": name,
        "size": made["size"],
        "primary": "ok",
        "replica": "ok",
        "replica_detail": f"{name} in {copies.location} matches its manifest",
        "replica_checked_by": "read",
    }
    text = run("list", "--replica")
    assert "PRIMARY  REPLICA" in text and f"{name}" in text and " ok       ok" in text


def test_a_corrupt_or_missing_copy_fails_verify_and_the_health_check_and_replicate_repairs(
    two_folders,
):
    _, copies = two_folders
    name = json.loads(run("create", "--json"))["name"]
    assert check_backup_replica(None).status == OK
    dump = Path(copies.location) / name
    good = dump.read_bytes()
    dump.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size, one bit flipped

    assert listed()[name]["replica"] == "corrupt"
    with pytest.raises(CommandError) as err:
        run("verify")
    message = str(err.value)
    assert f"Backup {name} restores correctly, but its copy in the replica is corrupt" in message
    assert f"the sha256 of {name} in {copies.location} does not match" in message
    assert f"`python manage.py backup replicate {name}`" in message
    assert check_backup_replica(None).status == CRITICAL
    out = StringIO()
    call_command("dbhealth", "--check", "backup_replica", "--json", stdout=out)
    [checked] = json.loads(out.getvalue())["checks"]
    assert (checked["name"], checked["status"]) == ("backup_replica", CRITICAL)
    assert "copy is corrupt" in checked["summary"]

    out = json.loads(run("replicate", name, "--json"))
    assert [c["status"] for c in out["copied"]] == ["ok"]
    assert dump.read_bytes() == good
    assert "Its copy in the replica" in run("verify")

    dump.unlink()
    assert listed()[name]["replica"] == "missing"
    with pytest.raises(CommandError, match=rf"is missing: {name} is missing in "):
        run("verify")
    created = datetime.strptime(name.split("-")[-1], "%Y%m%dT%H%M%SZ.dump").replace(tzinfo=UTC)
    assert check_backup_replica(None, now=created + timedelta(minutes=5)).status == WARNING
    late = check_backup_replica(None, now=created + timedelta(hours=2))
    assert late.status == CRITICAL and "backup replicate" in late.hint

    assert "1 backup(s) copied" in run("replicate", "--all-missing")
    assert listed()[name]["replica"] == "ok"
    assert "0 backup(s) copied" in run("replicate", "--all-missing")


def test_the_health_check_hashes_a_folder_copy_again_only_when_it_changed(two_folders, monkeypatch):
    _, copies = two_folders
    name = json.loads(run("create", "--json"))["name"]
    first = check_backup_replica(None)
    assert first.status == OK and first.summary.endswith("matches its manifest.")
    dump = Path(copies.location) / name
    stat = dump.stat()
    good = dump.read_bytes()
    # Bit rot that keeps the size and the modification time: not seen within the hour...
    dump.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    os.utime(dump, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cached = check_backup_replica(None)
    assert cached.status == OK and "and is unchanged since" in cached.summary
    # ...`backup verify` always reads the copy...
    with pytest.raises(CommandError, match="its copy in the replica is corrupt"):
        run("verify")
    # ...and the check reads it again after RECHECK_SECONDS, or once the file changed.
    monkeypatch.setattr(health_backups, "RECHECK_SECONDS", 0)
    assert check_backup_replica(None).status == CRITICAL
    monkeypatch.undo()
    dump.write_bytes(good)
    assert check_backup_replica(None).status == OK
    dump.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    # A later modification time (set: a coarse clock could give the same one).
    os.utime(dump, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert check_backup_replica(None).status == CRITICAL


def test_health_check_is_info_without_a_replica(settings_folder):
    result = check_backup_replica(None)
    assert result.status == INFO and "No backup replica is configured" in result.summary
    with pytest.raises(CommandError, match="No backup replica is configured: set BACKUP_REPLICA"):
        run("list", "--replica")
    with pytest.raises(CommandError, match="No backup replica is configured"):
        run("replicate", "latest")


def test_s3_copy_is_server_side_with_a_sha256_that_s3_computed(source, aws):
    primary, copies = s3_pair()
    backup = create_backup(source, primary, ENV)

    state = replicate(primary, copies, backup)

    assert (state.status, state.checked_by) == ("ok", "s3 checksum")
    head = aws.head_object(
        Bucket="cg-replica", Key=f"backups/{backup.name}", ChecksumMode="ENABLED"
    )
    assert head["ContentLength"] == backup.size and head["ServerSideEncryption"] == "AES256"
    assert "ChecksumSHA256" in head
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket="cg-replica")["Contents"]]
    assert sorted(keys) == [f"backups/{backup.name}", f"backups/{backup.name}.json"]

    # Overwritten by someone else: no SHA256 of S3's any more, read through, mismatch.
    aws.put_object(Bucket="cg-replica", Key=f"backups/{backup.name}", Body=b"x" * backup.size)
    state = check_copy(copies, backup)
    assert (state.status, state.checked_by) == ("corrupt", "read")
    aws.delete_object(Bucket="cg-replica", Key=f"backups/{backup.name}.json")
    assert check_copy(copies, backup).status == "missing"

    assert replicate(primary, copies, backup).ok


def test_a_big_object_goes_through_a_multipart_copy_and_is_read_back(source, aws, monkeypatch):
    monkeypatch.setattr(replica_mod, "SINGLE_COPY_MAX", 0)
    primary, copies = s3_pair()
    backup = create_backup(source, primary, ENV)

    state = replicate(primary, copies, backup)

    assert state.ok
    assert check_copy(copies, backup).ok


def test_a_failed_copy_fails_create_but_the_primary_backup_stays(project_db, aws):
    with override_settings(STORAGES=s3_storages("no-such-bucket"), BACKUP_ENV=ENV):
        with pytest.raises(CommandError) as err:
            run("create")
        message = str(err.value)
        assert "is complete in s3://cg-backups/backups, but its copy to the replica " in message
        assert "s3://no-such-bucket/backups failed" in message
        assert "`python manage.py backup replicate choregarden-test-" in message
        names = [b["name"] for b in json.loads(run("list", "--json"))]
    assert len(names) == 1


def test_create_list_and_replicate_on_s3_through_the_command(project_db, aws):
    with override_settings(STORAGES=s3_storages(), BACKUP_ENV=ENV):
        made = json.loads(run("create", "--json"))
        assert made["replica"]["checked_by"] == "s3 checksum"
        name = made["name"]
        assert listed()[name]["replica"] == "ok"
        aws.delete_object(Bucket="cg-replica", Key=f"backups/{name}")
        row = listed()[name]
        assert (row["primary"], row["replica"]) == ("ok", "missing")
        assert row["replica_detail"] == f"{name} is missing in s3://cg-replica/backups"
        run("replicate", "latest")
        assert listed()[name]["replica"] == "ok"


def test_prune_prunes_the_replica_too_behind_the_same_pre_check(source, tmp_path):
    primary = FileSystemStorage(location=tmp_path / "primary")
    copies = FileSystemStorage(location=tmp_path / "replica")
    now = datetime.now(UTC)
    old = create_backup(source, primary, ENV, now=now - timedelta(days=9))
    older = create_backup(source, primary, ENV, now=now - timedelta(days=10))
    new = create_backup(source, primary, ENV, now=now - timedelta(hours=1))
    for backup in (older, old, new):
        replicate(primary, copies, backup)
    stranger = Path(copies.location) / "unrelated.txt"
    stranger.write_text("keep me")

    # Pre-check: two good ones to keep, but only the oldest is good: nothing goes anywhere.
    for backup in (new, old):
        (Path(primary.location) / backup.name).write_bytes(b"y" * backup.size)
    refused = plan_prune(primary, ENV, 7, 2, now, copies)
    assert refused.refusal and refused.replica_delete
    with pytest.raises(PruneRefused, match="Refusing to prune"):
        execute_prune(primary, refused, copies)
    assert len(list(Path(copies.location).iterdir())) == 7

    for backup in (new, old):  # put the good bytes back, from the replica
        good = (Path(copies.location) / backup.name).read_bytes()
        (Path(primary.location) / backup.name).write_bytes(good)
    plan = plan_prune(primary, ENV, 7, 1, now, copies)
    deleted = execute_prune(primary, plan, copies)

    gone = [older.name + ".json", older.name, old.name + ".json", old.name]
    assert [o.name for o in plan.replica_delete] == gone  # each manifest before its dump
    assert sorted(deleted) == sorted(gone)
    assert sorted(p.name for p in Path(copies.location).iterdir()) == sorted(
        [new.name, new.name + ".json", "unrelated.txt"]
    )


def test_prune_command_lists_the_replicas_deletes(two_folders, source):
    primary, copies = two_folders
    now = datetime.now(UTC)
    old = create_backup(source, primary, ENV, now=now - timedelta(days=9))
    new = create_backup(source, primary, ENV, now=now - timedelta(hours=1))
    for backup in (old, new):
        replicate(primary, copies, backup)

    dry = json.loads(run("prune", "--keep-min", "1", "--dry-run", "--json"))
    assert dry["replica_deleted"] == [old.name + ".json", old.name]
    assert check_copy(copies, old).ok  # a dry run deletes nothing
    text = run("prune", "--keep-min", "1")
    assert f"Deleted {old.name}.json in the replica {copies.location}" in text
    assert check_copy(copies, old).status == "missing" and check_copy(copies, new).ok


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ({"BACKUP_REPLICA_BUCKET": "cg-replica"}, "error: BACKUP_REPLICA_REGION is not set"),
        (
            {"BACKUP_REPLICA_BUCKET": "cg", "BACKUP_REPLICA_REGION": "x", "BACKUP_BUCKET": "cg"},
            "error: BACKUP_REPLICA_BUCKET is BACKUP_BUCKET",
        ),
        (
            {"BACKUP_REPLICA_BUCKET": "b", "BACKUP_REPLICA_REGION": "x", "BACKUP_REPLICA_DIR": "d"},
            "error: BACKUP_REPLICA_BUCKET and BACKUP_REPLICA_DIR are both set",
        ),
    ],
)
def test_half_a_replica_setting_is_refused_with_exit_2(tmp_path, extra, line):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_ENV": "test", "BACKUP_DIR": str(tmp_path), **extra}
    proc = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "backup", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(line), proc.stderr


def test_settings_make_the_replica_storage(tmp_path):
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.STORAGES.get('backups_replica'), default=str))"
    )
    base = {"PATH": "/usr/bin:/bin", "DJANGO_ENV": "test", "DJANGO_SETTINGS_MODULE":
            "choregarden.settings", "BACKUP_DIR": str(tmp_path / "b")}  # fmt: skip

    def storage(**extra: str) -> dict | None:
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env={**base, **extra},
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert storage() is None
    assert storage(BACKUP_REPLICA_REGION="eu-central-1") is None  # RDS's setting too: allowed
    s3 = storage(BACKUP_REPLICA_BUCKET="cg-dr", BACKUP_REPLICA_REGION="eu-central-1")
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    assert (s3["OPTIONS"]["bucket_name"], s3["OPTIONS"]["region_name"]) == ("cg-dr", "eu-central-1")
    assert s3["OPTIONS"]["object_parameters"] == {"ServerSideEncryption": "AES256"}
    folder = storage(BACKUP_REPLICA_DIR=str(tmp_path / "r"))
    assert folder["OPTIONS"]["location"] == str(tmp_path / "r")


def test_replicate_all_missing_copies_the_good_ones_and_names_a_damaged_one(two_folders, source):
    primary, copies = two_folders
    now = datetime.now(UTC)
    damaged = create_backup(source, primary, ENV, now=now - timedelta(hours=2))
    good = create_backup(source, primary, ENV, now=now - timedelta(hours=1))
    (Path(primary.location) / damaged.name).write_bytes(b"z" * damaged.size)

    with pytest.raises(CommandError) as err:
        run("replicate", "--all-missing")

    assert str(err.value).startswith(
        f"1 backup(s) not copied: {damaged.name} does not match its manifest (sha256 differs)"
    )
    assert check_copy(copies, good).ok
    assert check_copy(copies, damaged).status == "missing"  # nothing damaged was copied
