"""`backup doctor` (issue 13.11): each check of the backup bucket passes and fails (moto)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from moto import mock_aws

from tests.helpers import REPO

BUCKET = "choregarden-backups"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/backup-key"


def documented_policy() -> dict[str, Any]:
    """The bucket policy of docs/backups.md: the test applies exactly what the doc says."""
    doc = (REPO / "docs" / "backups.md").read_text()
    section = doc.split("## Securing the backup bucket", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return json.loads(match.group(1))


def storage_settings(kms_key: str | None = KEY_ARN) -> dict[str, Any]:
    sse = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key}
        if kms_key
        else {"ServerSideEncryption": "AES256"}
    )
    return {
        "backups": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": BUCKET, "region_name": "us-east-1", "location": "db",
                        "default_acl": None, "object_parameters": sse},
        }
    }  # fmt: skip


def secure(s3: Any, *, lock: bool = False) -> None:
    """Make BUCKET as docs/backups.md says."""
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=lock)
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        },
    )  # fmt: skip
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(documented_policy()))
    if lock:
        s3.put_object_lock_configuration(
            Bucket=BUCKET,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
            },
        )
    else:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN}}]
        },
    )  # fmt: skip


@pytest.fixture
def s3(monkeypatch: Any) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(), override_settings(STORAGES=storage_settings()):
        yield boto3.client("s3", region_name="us-east-1")


def doctor(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("backup", "doctor", *args, stdout=out)
    except CommandError as err:
        return out.getvalue(), err
    return out.getvalue(), None


def line(out: str, check: str) -> str:
    return next(ln for ln in out.splitlines() if re.match(rf"(OK|FAIL) +{check} ", ln))


def test_a_bucket_set_up_as_documented_passes_every_check(s3: Any) -> None:
    secure(s3)
    out, error = doctor()
    assert error is None, out
    assert line(out, "public access").startswith("OK")
    assert line(out, "TLS only").startswith("OK")
    assert "versioning is on and the bucket policy denies" in line(out, "history")
    assert KEY_ARN in line(out, "KMS encryption")
    assert line(out, "signing key").startswith("OK")
    assert out.splitlines()[-1] == "Done! 5 checks of s3://choregarden-backups/db: all OK."


def test_object_lock_keeps_history_without_versioning_policy(s3: Any) -> None:
    secure(s3, lock=True)
    out, error = doctor()
    assert error is None, out
    assert (
        "OK" in line(out, "history") and "Object Lock COMPLIANCE keeps each object 30 days" in out
    )


def no_public_access_block(s3: Any) -> None:
    s3.delete_public_access_block(Bucket=BUCKET)


def one_block_off(s3: Any) -> None:
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": False, "RestrictPublicBuckets": True,
        },
    )  # fmt: skip


def policy_without(sid: str) -> Callable[[Any], None]:
    def change(s3: Any) -> None:
        policy = documented_policy()
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != sid]
        s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))

    return change


def no_policy(s3: Any) -> None:
    s3.delete_bucket_policy(Bucket=BUCKET)


def versioning_suspended(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})


def sse_s3(s3: Any) -> None:
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


@pytest.mark.parametrize(
    ("change", "failed", "says"),
    [
        (no_public_access_block, "public access", "Block Public Access is off for BlockPublicAcls"),
        (one_block_off, "public access", "is off for BlockPublicPolicy. Fix: turn all four on"),
        (policy_without("DenyInsecureTransport"), "TLS only", "aws:SecureTransport is false"),
        (no_policy, "TLS only, history", "add the DenyInsecureTransport statement"),
        (policy_without("DenyDeletingHistory"), "history", "s3:DeleteObjectVersion"),
        (versioning_suspended, "history", "versioning is off and there is no Object Lock"),
        (sse_s3, "KMS encryption", "default encryption is AES256, not aws:kms"),
    ],
)
def test_each_check_fails_with_what_to_do(
    s3: Any, change: Callable[[Any], None], failed: str, says: str
) -> None:
    secure(s3)
    change(s3)
    out, error = doctor()
    assert error is not None, out
    checks = failed.split(", ")
    assert says in line(out, checks[0])
    for check in checks:
        assert line(out, check).startswith("FAIL") and "Fix: " in line(out, check)
    assert str(error) == (
        f"{len(checks)} of 5 checks of s3://choregarden-backups/db failed: {failed}."
    )
    assert len([ln for ln in out.splitlines() if ln.startswith("FAIL")]) == len(checks)


def test_uploads_with_aes256_into_a_kms_bucket_fail(s3: Any) -> None:
    secure(s3)
    with override_settings(STORAGES=storage_settings(kms_key=None)):
        out, error = doctor()
    assert error is not None
    assert "uploaded with AES256, which overrides it. Fix: set BACKUP_KMS_KEY_ID" in out


def test_a_missing_signing_key_fails(s3: Any) -> None:
    secure(s3)
    with override_settings(BACKUP_SIGNING_KEY=""):
        out, error = doctor()
    assert error is not None and "signing key" in str(error)
    assert "FAIL signing key" in out and "Fix: set BACKUP_SIGNING_KEY" in out


def test_a_role_that_may_not_read_a_setting_fails_naming_the_permission(
    s3: Any, monkeypatch: Any
) -> None:
    secure(s3)
    from botocore.exceptions import ClientError

    def denied(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied"}}, "GetBucketEncryption")

    from django.core.files.storage import storages

    client = storages["backups"].connection.meta.client
    monkeypatch.setattr(client, "get_bucket_encryption", denied)
    out, _error = doctor()
    assert "cannot read it (AccessDenied): give the role that runs the doctor " in out
    assert "s3:GetEncryptionConfiguration on choregarden-backups" in out


def test_json_output(s3: Any) -> None:
    secure(s3)
    versioning_suspended(s3)
    out, error = doctor("--json")
    assert error is not None
    report = json.loads(out)
    assert report["ok"] is False and report["storage"] == "s3://choregarden-backups/db"
    by_check = {c["check"]: c for c in report["checks"]}
    assert by_check["history"]["ok"] is False and by_check["history"]["fix"]
    assert by_check["TLS only"]["ok"] is True


def test_a_folder_open_to_other_users_fails(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    storages = {"backups": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                            "OPTIONS": {"location": str(folder)}}}  # fmt: skip
    with override_settings(STORAGES=storages):
        out, error = doctor()
        assert error is not None and f"chmod 700 {folder}" in out
        folder.chmod(0o700)
        out, error = doctor()
    assert error is None, out
    assert "has mode 0700: only its owner may open it" in out


def test_the_replica_gets_the_same_checks(tmp_path: Path) -> None:
    primary, copies = tmp_path / "backups", tmp_path / "replica"
    for folder in (primary, copies):
        folder.mkdir(mode=0o700)
    copies.chmod(0o755)
    storages = {
        "backups": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(primary)}},
        "backups_replica": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                            "OPTIONS": {"location": str(copies)}},
    }  # fmt: skip
    with override_settings(STORAGES=storages):
        out, error = doctor()
        assert error is not None and "1 of 3 checks of " in str(error), out
        assert f"and {copies} failed: replica folder permissions." in str(error)
        assert f"FAIL replica folder permissions  {copies} has mode 0755" in out
        assert f"Fix: chmod 700 {copies}." in out
        copies.chmod(0o700)
        out, error = doctor()
        assert error is None, out
        report = json.loads(doctor("--json")[0])
    assert report["replica"] == str(copies) and report["ok"] is True
    assert [c["check"] for c in report["checks"]] == [
        "folder permissions",
        "replica folder permissions",
        "signing key",
    ]


def test_settings_send_uploads_with_the_kms_key(manage_env: dict[str, str]) -> None:
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.STORAGES['backups']['OPTIONS']['object_parameters']))"
    )
    env = dict(manage_env, DJANGO_SETTINGS_MODULE="choregarden.settings",
               BACKUP_BUCKET=BUCKET, BACKUP_KMS_KEY_ID=KEY_ARN)  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KEY_ARN}
