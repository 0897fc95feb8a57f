"""`backup doctor`: is the backup storage safe to keep every user's data in?

On S3 (docs/backups.md, "Securing the backup bucket"): Block Public Access all on, a bucket
policy that refuses requests without TLS, history that the backup role cannot destroy
(Object Lock, or versioning with a policy that denies deleting old versions), and default
encryption with KMS that the project's own uploads do not override. In a folder: only the
owner may open it. Everywhere: a key to sign manifests with. Each check is a Finding with
what to do when it fails; nothing is changed.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import FileSystemStorage, Storage

from dbops.backups.signing import KEY_SETTINGS, SigningKeyError, key_id, signing_key
from dbops.backups.store import _is_s3
from sqlmigrations.redact import redact

DOC = 'docs/backups.md, "Securing the backup bucket"'
BLOCKS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
KMS = ("aws:kms", "aws:kms:dsse")
# The IAM permission each read needs (they are not named like the API calls).
PERMISSIONS = {
    "get_public_access_block": "s3:GetBucketPublicAccessBlock",
    "get_bucket_policy": "s3:GetBucketPolicy",
    "get_object_lock_configuration": "s3:GetBucketObjectLockConfiguration",
    "get_bucket_versioning": "s3:GetBucketVersioning",
    "get_bucket_encryption": "s3:GetEncryptionConfiguration",
}


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


class CannotRead(Exception):
    """The bucket refused to show a setting (or it is not set): the message says which."""


def _call(client: Any, method: str, bucket: str, missing: tuple[str, ...] = ()) -> Any:
    """Call client.`method`; None when the setting is absent (one of the `missing` codes)."""
    try:
        return getattr(client, method)(Bucket=bucket)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in missing:
            return None
        raise CannotRead(
            f"cannot read it ({code or 'error'}): give the role that runs the doctor "
            f"{PERMISSIONS[method]} on {bucket}"
        ) from None
    except BotoCoreError as err:
        raise CannotRead(f"cannot reach S3 ({redact(str(err))})") from None


def _policy(client: Any, bucket: str) -> list[dict[str, Any]]:
    response = _call(client, "get_bucket_policy", bucket, ("NoSuchBucketPolicy",))
    if response is None:
        return []
    statements = json.loads(response["Policy"]).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _everyone(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or (
        isinstance(principal, dict) and _listed(principal.get("AWS")) == ["*"]
    )


def _denies(statement: dict[str, Any], action: str) -> bool:
    if statement.get("Effect") != "Deny":
        return False
    actions = _listed(statement.get("Action", []))
    return any(a in ("*", "s3:*", action) for a in actions)


def _denies_plain_http(statement: dict[str, Any], bucket: str) -> bool:
    condition = statement.get("Condition", {}).get("Bool", {})
    secure = [v.lower() for v in _listed(condition.get("aws:SecureTransport", []))]
    resources = set(_listed(statement.get("Resource", [])))
    covered = {
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/*",
    } <= resources or "*" in resources
    return _denies(statement, "s3:*") and _everyone(statement) and secure == ["false"] and covered


def check_public_access(client: Any, bucket: str) -> Finding:
    name = "public access"
    try:
        response = _call(
            client, "get_public_access_block", bucket, ("NoSuchPublicAccessBlockConfiguration",)
        )
    except CannotRead as err:
        return Finding(name, False, str(err))
    config = (response or {}).get("PublicAccessBlockConfiguration", {})
    off = [b for b in BLOCKS if not config.get(b)]
    if not off:
        return Finding(name, True, "all four Block Public Access settings are on")
    return Finding(
        name,
        False,
        f"Block Public Access is off for {', '.join(off)}",
        f"turn all four on: aws s3api put-public-access-block --bucket {bucket} "
        "--public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,"
        "BlockPublicPolicy=true,RestrictPublicBuckets=true",
    )


def check_tls_only(statements: list[dict[str, Any]], bucket: str) -> Finding:
    name = "TLS only"
    if any(_denies_plain_http(s, bucket) for s in statements):
        return Finding(name, True, "the bucket policy denies every request without TLS")
    return Finding(
        name,
        False,
        "no bucket policy statement denies s3:* to everyone when aws:SecureTransport is false",
        f"add the DenyInsecureTransport statement to the bucket policy ({DOC})",
    )


def check_history(client: Any, bucket: str, statements: list[dict[str, Any]]) -> Finding:
    name = "history"
    try:
        lock = _call(
            client,
            "get_object_lock_configuration",
            bucket,
            ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"),
        )
        versioning = _call(client, "get_bucket_versioning", bucket)
    except CannotRead as err:
        return Finding(name, False, str(err))
    config = (lock or {}).get("ObjectLockConfiguration", {})
    retention = config.get("Rule", {}).get("DefaultRetention", {})
    if config.get("ObjectLockEnabled") == "Enabled" and retention:
        span = retention.get("Days") or retention.get("Years")
        unit = "days" if retention.get("Days") else "years"
        return Finding(
            name, True, f"Object Lock {retention.get('Mode', '?')} keeps each object {span} {unit}"
        )
    if (versioning or {}).get("Status") != "Enabled":
        return Finding(
            name,
            False,
            "versioning is off and there is no Object Lock: a role that may delete or "
            "overwrite a backup destroys it for good",
            f"turn on versioning (aws s3api put-bucket-versioning --bucket {bucket} "
            "--versioning-configuration Status=Enabled) and add the DenyDeletingHistory "
            f"statement, or use Object Lock ({DOC})",
        )
    # The TLS statement denies s3:* too, but only to plain HTTP: it protects nothing here.
    guarded = any(
        _denies(s, "s3:DeleteObjectVersion") and not _denies_plain_http(s, bucket)
        for s in statements
    )
    if guarded:
        return Finding(
            name, True, "versioning is on and the bucket policy denies s3:DeleteObjectVersion"
        )
    return Finding(
        name,
        False,
        "versioning is on, but nothing in the bucket policy stops a role from deleting old "
        "versions (s3:DeleteObjectVersion)",
        f"add the DenyDeletingHistory statement to the bucket policy, or use Object Lock ({DOC})",
    )


def check_kms(client: Any, bucket: str, object_parameters: dict[str, Any]) -> Finding:
    name = "KMS encryption"
    try:
        response = _call(
            client,
            "get_bucket_encryption",
            bucket,
            ("ServerSideEncryptionConfigurationNotFoundError",),
        )
    except CannotRead as err:
        return Finding(name, False, str(err))
    rules = (response or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    defaults = [r.get("ApplyServerSideEncryptionByDefault", {}) for r in rules]
    kms = next((d for d in defaults if d.get("SSEAlgorithm") in KMS), None)
    if kms is None:
        found = ", ".join(d.get("SSEAlgorithm", "?") for d in defaults) or "none"
        return Finding(
            name,
            False,
            f"the bucket's default encryption is {found}, not aws:kms",
            f"aws s3api put-bucket-encryption --bucket {bucket} --server-side-encryption-"
            'configuration \'{"Rules": [{"ApplyServerSideEncryptionByDefault": '
            '{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "<key arn>"}, '
            '"BucketKeyEnabled": true}]}\' and set BACKUP_KMS_KEY_ID to the same key',
        )
    sent = object_parameters.get("ServerSideEncryption")
    if sent is not None and sent not in KMS:
        return Finding(
            name,
            False,
            f"the bucket defaults to aws:kms, but backups are uploaded with {sent}, "
            "which overrides it",
            "set BACKUP_KMS_KEY_ID to the bucket's KMS key",
        )
    key = kms.get("KMSMasterKeyID") or "the AWS-managed key aws/s3"
    return Finding(name, True, f"default encryption aws:kms with {key}")


def check_folder(location: str) -> Finding:
    name = "folder permissions"
    path = Path(location)
    if not path.exists():
        return Finding(name, True, f"{path} does not exist yet (backup create makes it 0700)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Finding(
            name,
            False,
            f"{path} has mode {mode:04o}: other users can open the dumps",
            f"chmod 700 {path}",
        )
    return Finding(name, True, f"{path} has mode {mode:04o}: only its owner may open it")


def check_signing_key() -> Finding:
    name = "signing key"
    try:
        key = signing_key()
    except SigningKeyError as err:
        return Finding(name, False, str(err))
    if key is None:
        return Finding(
            name,
            False,
            "no key to sign manifests with: `backup create` refuses to run",
            f"set {KEY_SETTINGS} for the backup job ({DOC})",
        )
    return Finding(name, True, f"manifests are signed (key id {key_id(key)})")


def _storage_findings(storage: Storage) -> list[Finding]:
    """The checks of one storage: the bucket's, or the folder's."""
    findings: list[Finding] = []
    if _is_s3(storage):
        s3: Any = storage
        client, bucket = s3.connection.meta.client, s3.bucket_name
        findings.append(check_public_access(client, bucket))
        try:
            statements = _policy(client, bucket)
        except CannotRead as err:
            findings.append(Finding("TLS only", False, f"bucket policy: {err}"))
            statements = []
        else:
            findings.append(check_tls_only(statements, bucket))
        findings.append(check_history(client, bucket, statements))
        findings.append(check_kms(client, bucket, dict(s3.object_parameters or {})))
    elif isinstance(storage, FileSystemStorage):
        findings.append(check_folder(str(storage.location)))
    return findings


def examine(storage: Storage, replica: Storage | None = None) -> list[Finding]:
    """Every check that applies to `storage` and its replica, in the order they are printed.

    The replica holds the same dumps, so it gets the same checks, named "replica ...".
    """
    findings = _storage_findings(storage)
    if replica is not None:
        for finding in _storage_findings(replica):
            finding.check = f"replica {finding.check}"
            findings.append(finding)
    findings.append(check_signing_key())
    return findings
