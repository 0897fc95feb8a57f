"""Signed manifests (issue 13.11): restore and verify refuse what the backup role did not write."""

from __future__ import annotations

import hashlib
import json
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from dbops.backups.dump import create_backup
from dbops.backups.manifest import ManifestError
from dbops.backups.signing import check_signature, key_id, sign
from dbops.connections import secrets
from tests.dbops.backupkit import ENV, run

OTHER_KEY = "another-signing-key-of-32-characters-or-more"


def call(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("backup", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def manifest_path(folder: Any, name: str) -> Path:
    return Path(folder.location) / f"{name}.json"


def rewrite_manifest(folder: Any, name: str, **changes: Any) -> dict[str, Any]:
    path = manifest_path(folder, name)
    manifest = {**json.loads(path.read_bytes()), **changes}
    manifest = {k: v for k, v in manifest.items() if v is not None}
    path.write_text(json.dumps(manifest))
    return manifest


def database_exists(project_db: Any, name: str) -> bool:
    with psycopg.connect(**project_db) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return row is not None


def test_backup_create_signs_the_manifest_over_the_dumps_sha256(project_db, settings_folder):
    manifest = json.loads(run("create", "--json"))
    signature = manifest["signature"]
    assert signature["algorithm"] == "hmac-sha256"
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    key = django_settings.BACKUP_SIGNING_KEY.encode()
    assert sign(unsigned, key)["signature"] == signature
    assert signature["key_id"] == key_id(key)


def test_a_tampered_dump_is_refused_naming_the_file(project_db, settings_folder, scratch):
    manifest = json.loads(run("create", "--json"))
    path = Path(settings_folder.location) / manifest["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    damaged = rf"{manifest['name']} does not match its manifest \(sha256 differs\)"
    with pytest.raises(CommandError, match=damaged):
        run("restore", "latest", "--database", scratch)
    assert not database_exists(project_db, scratch)


def test_a_replaced_dump_with_a_forged_manifest_is_refused_before_restoring(
    project_db, settings_folder, source, tmp_path, scratch
):
    """What someone who can write the bucket, but lacks the key, can do: swap both."""
    manifest = json.loads(run("create", "--json"))
    other = create_backup(source, FileSystemStorage(location=tmp_path / "other"), ENV)
    forged = (tmp_path / "other" / other.name).read_bytes()
    (Path(settings_folder.location) / manifest["name"]).write_bytes(forged)
    rewrite_manifest(
        settings_folder,
        manifest["name"],
        size=len(forged),
        sha256=hashlib.sha256(forged).hexdigest(),
        database=source.dbname,
    )
    name = manifest["name"] + ".json"
    with pytest.raises(CommandError, match=rf"{name}'s signature does not match its contents"):
        run("restore", "latest", "--database", scratch)
    with pytest.raises(CommandError, match=rf"{name}'s signature does not match"):
        run("restore", "latest", "--database", scratch, "--allow-unsigned")
    with pytest.raises(CommandError, match=rf"{name}'s signature does not match"):
        run("verify")
    assert not database_exists(project_db, scratch)


def test_a_tampered_manifest_is_refused(project_db, settings_folder, scratch):
    manifest = json.loads(run("create", "--json"))
    rewrite_manifest(settings_folder, manifest["name"], database="somewhere_else")
    with pytest.raises(CommandError, match=r"signature does not match its contents"):
        run("restore", manifest["name"], "--database", scratch, "--dry-run")


def test_an_unsigned_old_backup_is_refused_with_a_clear_message_unless_allowed(
    project_db, settings_folder, scratch
):
    manifest = json.loads(run("create", "--json"))
    rewrite_manifest(settings_folder, manifest["name"], signature=None)
    with pytest.raises(CommandError) as refused:
        run("restore", "latest", "--database", scratch)
    assert str(refused.value) == (
        f"{manifest['name']}.json is not signed: it was written before backups were signed, "
        f"or not by `backup create`, so nothing proves the backup role wrote "
        f"{manifest['name']}. Restore it only if you trust it: add --allow-unsigned (or set "
        "BACKUP_SIGNING_KEY (or BACKUP_SIGNING_KEY_SECRET_ID) to the key that signed it)."
    )
    assert not database_exists(project_db, scratch)
    assert [b["signed"] for b in json.loads(run("list", "--json"))] == [False]
    assert "1 unsigned (from before signing; a restore needs --allow-unsigned)" in run("list")

    out, err = call("restore", "latest", "--database", scratch, "--allow-unsigned")
    assert "Done! Restored" in out
    assert err.startswith(f"WARNING: {manifest['name']}.json is not signed")
    assert "--allow-unsigned: this backup may not be the one the backup role wrote" in err


def test_a_backup_signed_with_another_key_names_both_key_ids(project_db, settings_folder, scratch):
    with override_settings(BACKUP_SIGNING_KEY=OTHER_KEY):
        run("create")
    with pytest.raises(CommandError, match=rf"another key \(key id '{key_id(OTHER_KEY.encode())}'"):
        run("verify")
    with override_settings(BACKUP_SIGNING_KEY=OTHER_KEY):
        assert "Done!" in run("verify")


def test_create_refuses_without_a_key_or_with_a_short_one(project_db, settings_folder):
    with (
        override_settings(BACKUP_SIGNING_KEY=""),
        pytest.raises(CommandError, match=r"No backup signing key is set: set BACKUP_SIGNING_KEY"),
    ):
        run("create")
    with (
        override_settings(BACKUP_SIGNING_KEY="short-key-never-printed"),
        pytest.raises(
            CommandError, match=r"BACKUP_SIGNING_KEY has 23 characters; it needs 32 or more"
        ) as refused,
    ):
        run("create")
    assert "short-key-never-printed" not in str(refused.value)
    assert list(Path(settings_folder.location).glob("*")) == []


def test_the_key_can_come_from_secrets_manager(project_db, settings_folder, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    secrets.reset()
    with (
        mock_aws(),
        override_settings(
            BACKUP_SIGNING_KEY="",
            BACKUP_SIGNING_KEY_SECRET_ID="backup-signing",
            AWS_REGION="us-east-1",
        ),
    ):
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="backup-signing", SecretString=OTHER_KEY
        )
        manifest = json.loads(run("create", "--json"))
        assert manifest["signature"]["key_id"] == key_id(OTHER_KEY.encode())
        assert "Done!" in run("verify")
    secrets.reset()


MANIFEST = {"name": "choregarden-test-20260101T000000Z.dump", "env": "test", "size": 10,
            "sha256": "0" * 64, "created_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
KEY = b"k" * 32


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(sorted(MANIFEST)), value=st.one_of(st.integers(), st.text()))
def test_any_change_to_a_signed_manifest_is_refused(field: str, value: Any) -> None:
    signed = sign(MANIFEST, KEY)
    assert check_signature("m.json", signed, KEY, allow_unsigned=False) == ""
    changed = {**signed, field: value}
    if changed == signed:
        return
    with pytest.raises(ManifestError, match="signature does not match its contents"):
        check_signature("m.json", changed, KEY, allow_unsigned=True)
